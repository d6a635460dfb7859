//! Setting the legacy interrupt lines of KVM's in-kernel 8259s and IOAPIC from the VMM
//! (KVM_IRQ_LINE, Documentation/virt/kvm/api.rst), for the ISA devices sipi emulates:
//! pc-testdev's line ports and the RTC's IRQ 8.

use kvm_ioctls::VmFd;

/// Something that sets the level of a VM's interrupt lines: the VM itself (KVM_IRQ_LINE), or
/// a recorder in unit tests.
pub(crate) trait IrqLines: Send + Sync {
    /// Sets interrupt line `line` (a GSI of the VM's routing) high or low.
    fn set_level(&self, line: u32, high: bool) -> Result<(), kvm_ioctls::Error>;

    /// Pulses line `line`: raised, then lowered, as an ISA device's edge-triggered interrupt.
    fn pulse(&self, line: u32) -> Result<(), kvm_ioctls::Error> {
        self.set_level(line, true)?;
        self.set_level(line, false)
    }
}

impl IrqLines for VmFd {
    fn set_level(&self, line: u32, high: bool) -> Result<(), kvm_ioctls::Error> {
        self.set_irq_line(line, high)
    }
}
