//! One boot, in three typed steps: [`create`] the VM (KVM, memory, kernel, ACPI, boot
//! hand-off), [`run`] it (devices, vCPU threads, the wait, teardown), and [`conclude`] (the
//! report, the verdict, the statistics) into a [`BootOutcome`].

mod clock;
mod conclude;
mod counters;
mod create;
mod ready;
mod remains;
mod run;
mod shared;
mod suspend;
pub(crate) mod verdict;
mod window;

use clock::PhaseClock;
pub use remains::Remains;

use crate::arch::x86_64::acpi::AcpiError;
use crate::arch::x86_64::bios_state::BiosStateError;
use crate::arch::x86_64::boot_info::BootInfoError;
use crate::arch::x86_64::irq_routing::IrqRoutingError;
use crate::arch::x86_64::regs::RegsError;
use crate::arch::x86_64::tsc::TscError;
use crate::config::VmConfig;
use crate::event_loop::EventLoopError;
use crate::fds::FdError;
use crate::kvm::KvmError;
use crate::loader::{LoaderError, ModuleError, PlacementError};
use crate::memory::MemoryError;
use crate::report::{BootOutcome, VmmPhasesUs};
use crate::status::Status;
use crate::vcpu::VcpuError;

/// Why the VM could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// KVM is unusable.
    #[error(transparent)]
    Kvm(#[from] KvmError),
    /// More vCPUs than KVM allows.
    #[error("--vcpus {requested} is above KVM's maximum of {max}")]
    TooManyVcpus { requested: u32, max: u32 },
    /// x2APIC API needed but missing.
    #[error("{0} vCPUs need KVM_CAP_X2APIC_API, which this KVM lacks")]
    NoX2ApicApi(u32),
    /// A VM-level ioctl failed.
    #[error("cannot {0}")]
    VmIoctl(&'static str, #[source] kvm_ioctls::Error),
    /// Memory setup failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The kernel is unusable.
    #[error(transparent)]
    Loader(#[from] LoaderError),
    /// A boot module is unusable.
    #[error(transparent)]
    Module(#[from] ModuleError),
    /// The boot structures or modules do not fit around the kernel.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// Boot information could not be written.
    #[error(transparent)]
    BootInfo(#[from] BootInfoError),
    /// ACPI tables could not be built.
    #[error(transparent)]
    Acpi(#[from] AcpiError),
    /// Boot structures could not be written.
    #[error(transparent)]
    Regs(#[from] RegsError),
    /// The BIOS state of a multiboot kernel could not be set up.
    #[error(transparent)]
    BiosState(#[from] BiosStateError),
    /// KVM's TSC writes could not be probed for `--test-skew-tsc`.
    #[error(transparent)]
    Tsc(#[from] TscError),
    /// A vCPU could not be set up.
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    /// The event loop failed.
    #[error(transparent)]
    EventLoop(#[from] EventLoopError),
    /// The memory registration thread panicked.
    #[error("the guest memory registration thread failed")]
    MemoryThread,
    /// The fd table could not be grown.
    #[error(transparent)]
    Fds(#[from] FdError),
    /// The interrupt routing could not be installed.
    #[error(transparent)]
    IrqRouting(#[from] IrqRoutingError),
    /// An event fd could not be created.
    #[error("cannot create the VM's exit event")]
    ExitEvent(#[source] std::io::Error),
    /// The FACS waking vector could not be read at a resume from S3.
    #[error("cannot read the FACS waking vector at {0:#x}")]
    WakingVector(u64, #[source] vm_memory::GuestMemoryError),
}

impl VmError {
    /// The exit status this error maps to.
    pub fn status(&self) -> Status {
        match self {
            Self::TooManyVcpus { .. }
            | Self::Loader(_)
            | Self::Module(_)
            | Self::Placement(_)
            | Self::BootInfo(_) => Status::Usage,
            Self::Memory(
                MemoryError::MoreThanHost { .. } | MemoryError::BeyondAddressWidth { .. },
            ) => Status::Usage,
            _ => Status::Host,
        }
    }
}

/// Boots one VM as `cfg` says and waits for it to end. An `Err` is a VM that could not be
/// set up or run; a VM that ran ends in a [`BootOutcome`], whatever its guest did.
pub fn boot(cfg: VmConfig) -> Result<BootOutcome, VmError> {
    // The remains are torn down here, before the outcome is returned.
    boot_and_keep(cfg).map(|(outcome, _remains)| outcome)
}

/// [`boot`], but the VM's remains (its halted vCPU threads, memory slots and the VM itself) are
/// handed back instead of torn down: a process that exits once it has written the outcome can
/// [`Remains::abandon`] them to the kernel.
pub fn boot_and_keep(mut cfg: VmConfig) -> Result<(BootOutcome, Remains), VmError> {
    let mut clock = PhaseClock::start();
    let mut phases = VmmPhasesUs::default();
    let created = create::create(&cfg, &mut clock, &mut phases)?;
    let ran = run::run(created, &mut cfg, &mut clock, &mut phases)?;
    let outcome = conclude::conclude(&ran, &cfg, phases);
    Ok((outcome, ran.remains))
}
