//! How a VM ended, as its vCPUs saw it.

use crate::devices::DeviceEvent;

/// The first terminal event of a VM, seen by vCPU `vcpu`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The guest ended the VM through a device: sipi's exit port, isa-debug-exit, a reset
    /// line or ACPI S5.
    Stop { vcpu: u32, event: DeviceEvent },
    /// Triple fault (KVM_EXIT_SHUTDOWN).
    TripleFault { vcpu: u32, rip: u64 },
    /// KVM could not emulate an instruction or hit an internal error.
    InternalError { vcpu: u32, suberror: u32, rip: u64 },
    /// VM entry failed.
    FailEntry { vcpu: u32, reason: u64 },
    /// The guest asked for a power-off or reset through a KVM system event.
    SystemEvent { vcpu: u32, kind: u32 },
    /// The guest suspended the VM (ACPI S3) more than `limit` times.
    TooManySuspends { vcpu: u32, limit: u32 },
    /// KVM_RUN failed or returned an exit sipi does not handle.
    VcpuFailed { vcpu: u32, message: String },
}
