//! Why a burst could not run.

use crate::kvm::KvmError;
use crate::memory::MapError;
use crate::seccomp::SeccompError;
use crate::status::Status;

/// Why the burst VM could not be set up or the burst could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum BurstError {
    /// KVM is unusable.
    #[error(transparent)]
    Kvm(#[from] KvmError),
    /// More vCPUs than KVM (or the guest loop's layout) allows.
    #[error("--vcpus {requested} is above the maximum of {max} for this KVM")]
    TooManyVcpus { requested: u32, max: u32 },
    /// A VM-level ioctl failed.
    #[error("cannot {0}")]
    VmIoctl(&'static str, #[source] kvm_ioctls::Error),
    /// The host refused the memory for the burst VM.
    #[error("cannot map {0} KiB of host memory for the burst VM")]
    Pool(u64, #[source] vm_memory::mmap::MmapRegionError),
    /// The guest program could not be written into guest memory.
    #[error("cannot write the guest program into the burst VM's memory")]
    GuestWrite(#[source] vm_memory::volatile_memory::Error),
    /// A vCPU could not be created or set up.
    #[error("cannot set up vCPU {0}")]
    Vcpu(u32, #[source] kvm_ioctls::Error),
    /// A vCPU thread could not be started.
    #[error("cannot start the thread of vCPU {0}")]
    Spawn(u32, #[source] std::io::Error),
    /// The memory map refused a change, or KVM refused a slot.
    #[error(transparent)]
    Map(#[from] MapError),
    /// The vCPU threads' seccomp filter could not be built.
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// A vCPU did not get through its loop in time.
    #[error("vCPU {vcpu} did not run its guest loop within {secs} s")]
    Stalled { vcpu: u32, secs: u64 },
}

impl BurstError {
    /// The exit status this error maps to.
    pub fn status(&self) -> Status {
        match self {
            Self::TooManyVcpus { .. } => Status::Usage,
            _ => Status::Host,
        }
    }
}
