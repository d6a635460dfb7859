//! The TSC as a VMM sees it: KVM_GET/SET_MSRS of IA32_TSC, whether this KVM keeps a VMM's TSC
//! writes, and the test-only skew of one vCPU's TSC (`--test-skew-tsc`).

use kvm_bindings::{kvm_msr_entry, Msrs};
use kvm_ioctls::{Kvm, VcpuFd};

/// IA32_TIME_STAMP_COUNTER, the TSC (Intel SDM Vol. 4, Table 2-2).
const MSR_IA32_TSC: u32 = 0x10;

/// Why a TSC access failed.
#[derive(Debug, thiserror::Error)]
pub enum TscError {
    /// KVM_SET_MSRS failed.
    #[error("cannot set the vCPU's TSC")]
    Set(#[source] kvm_ioctls::Error),
    /// KVM_GET_MSRS failed.
    #[error("cannot read the vCPU's TSC")]
    Get(#[source] kvm_ioctls::Error),
    /// The MSR list could not be built or came back wrong.
    #[error("KVM returned no IA32_TSC value")]
    MsrList,
    /// The throwaway VM of the TSC-write probe could not be created.
    #[error("cannot create a VM to probe KVM's TSC writes")]
    Probe(#[source] kvm_ioctls::Error),
    /// KVM did not keep a TSC write (it takes writes close to the other vCPUs' TSC for a
    /// resynchronisation).
    #[error(
        "KVM did not keep the TSC skew: the TSC read {before} before writing {written}, and {after} after"
    )]
    SkewLost {
        before: u64,
        written: u64,
        after: u64,
    },
}

/// Reads the vCPU's TSC (IA32_TSC through KVM_GET_MSRS).
fn read_tsc(vcpu: &VcpuFd) -> Result<u64, TscError> {
    let mut msrs = Msrs::from_entries(&[kvm_msr_entry {
        index: MSR_IA32_TSC,
        ..Default::default()
    }])
    .map_err(|_| TscError::MsrList)?;
    let read = vcpu.get_msrs(&mut msrs).map_err(TscError::Get)?;
    match msrs.as_slice() {
        [e] if read == 1 => Ok(e.data),
        _ => Err(TscError::MsrList),
    }
}

/// Writes the vCPU's TSC (IA32_TSC through KVM_SET_MSRS).
fn write_tsc(vcpu: &VcpuFd, value: u64) -> Result<(), TscError> {
    let msrs = Msrs::from_entries(&[kvm_msr_entry {
        index: MSR_IA32_TSC,
        data: value,
        ..Default::default()
    }])
    .map_err(|_| TscError::MsrList)?;
    vcpu.set_msrs(&msrs).map_err(TscError::Set).map(|_| ())
}

/// How far the probe moves its vCPU's TSC: 2^40 cycles, minutes at any TSC frequency, far beyond
/// the one second within which KVM takes a TSC write for a resynchronisation.
const TSC_PROBE_SKEW: u64 = 1 << 40;

/// True if this KVM keeps a VMM's TSC write: probed on a throwaway VM with one vCPU. kvm_pvm
/// does not (its guests read the host's TSC: every vCPU's TSC offset stays 0).
pub(crate) fn kvm_keeps_tsc_writes(kvm: &Kvm) -> Result<bool, TscError> {
    let vm = kvm.create_vm().map_err(TscError::Probe)?;
    let vcpu = vm.create_vcpu(0).map_err(TscError::Probe)?;
    let before = read_tsc(&vcpu)?;
    write_tsc(&vcpu, before.saturating_add(TSC_PROBE_SKEW))?;
    Ok(read_tsc(&vcpu)? >= before.saturating_add(TSC_PROBE_SKEW))
}

/// Test only: moves the vCPU's TSC `cycles` ahead of where it is (IA32_TSC through
/// KVM_SET_MSRS; KVM adjusts this vCPU's TSC offset, the others keep theirs), then reads it back
/// to check that KVM kept the write. Call it after every vCPU of the VM is created (KVM gives
/// later vCPUs the offset of the last write) and before this one runs.
pub(crate) fn skew_tsc(vcpu: &VcpuFd, cycles: u64) -> Result<(), TscError> {
    let before = read_tsc(vcpu)?;
    let written = before.saturating_add(cycles);
    write_tsc(vcpu, written)?;
    let after = read_tsc(vcpu)?;
    // The TSC runs on between the write and the read, but by far less than the skew.
    if after < written || after - written >= cycles {
        return Err(TscError::SkewLost {
            before,
            written,
            after,
        });
    }
    Ok(())
}
