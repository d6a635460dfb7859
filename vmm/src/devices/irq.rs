//! Raising a legacy interrupt line of KVM's in-kernel 8259s and IOAPIC from the VMM
//! (KVM_IRQ_LINE, Documentation/virt/kvm/api.rst), for the ISA devices sipi emulates.

use kvm_ioctls::VmFd;

/// Pulses line `irq`: raised, then lowered, as an ISA device's edge-triggered interrupt.
pub(crate) fn pulse(vm: &VmFd, irq: u32) -> Result<(), kvm_ioctls::Error> {
    vm.set_irq_line(irq, true)?;
    vm.set_irq_line(irq, false)
}
