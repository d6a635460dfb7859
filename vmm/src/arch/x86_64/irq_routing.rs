//! The wiring of the legacy interrupt lines to KVM's in-kernel 8259s and IOAPIC, matching what
//! the MADT tells the guest.
//!
//! The MADT has an Interrupt Source Override saying ISA IRQ 0 (the PIT) arrives at GSI 2, as
//! on every PC chipset. KVM's default routing sends line 0 to IOAPIC pin 0 instead, so a
//! kernel that follows the MADT would program pin 2 and never see a timer interrupt (Linux
//! then reports "8254 timer not connected to IO-APIC"). sipi installs the routing QEMU's pc
//! machines use (`kvm_pc_setup_irq_routing`): lines 0-15 to the 8259 pins they name (line 2,
//! the cascade, to none), line 0 to IOAPIC pin 2, and lines 1-23 other than 2 to the IOAPIC
//! pin of the same number.

use kvm_bindings::{
    kvm_irq_routing_entry, KvmIrqRouting, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KVM_IRQ_ROUTING_IRQCHIP,
};
use kvm_ioctls::VmFd;

/// Pins of KVM's in-kernel IOAPIC.
pub(crate) const IOAPIC_PINS: u32 = 24;
/// Lines wired to the two 8259s.
pub(crate) const PIC_LINES: u32 = 16;
/// The 8259 master's pin that cascades the slave.
pub(crate) const PIC_CASCADE_PIN: u32 = 2;
/// The ISA IRQ of the PIT, and the IOAPIC pin (GSI) it is wired to.
pub(crate) const PIT_IRQ: u32 = 0;
/// The GSI of the PIT in the MADT's Interrupt Source Override.
pub(crate) const PIT_GSI: u32 = 2;

/// Why the routing could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum IrqRoutingError {
    /// The routing table could not be allocated.
    #[error("cannot build the interrupt routing table")]
    Table,
    /// KVM_SET_GSI_ROUTING failed.
    #[error("cannot set the interrupt routing")]
    Set(#[source] kvm_ioctls::Error),
}

fn route(line: u32, irqchip: u32, pin: u32) -> kvm_irq_routing_entry {
    let mut e = kvm_irq_routing_entry {
        gsi: line,
        type_: KVM_IRQ_ROUTING_IRQCHIP,
        ..Default::default()
    };
    e.u.irqchip.irqchip = irqchip;
    e.u.irqchip.pin = pin;
    e
}

/// The routing entries: (line, irqchip, pin).
pub(crate) fn entries() -> Vec<(u32, u32, u32)> {
    let mut v = Vec::new();
    for line in 0..PIC_LINES {
        match line {
            PIC_CASCADE_PIN => {}
            0..8 => v.push((line, KVM_IRQCHIP_PIC_MASTER, line)),
            _ => v.push((line, KVM_IRQCHIP_PIC_SLAVE, line - 8)),
        }
    }
    for line in 0..IOAPIC_PINS {
        match line {
            PIT_IRQ => v.push((line, KVM_IRQCHIP_IOAPIC, PIT_GSI)),
            PIT_GSI => {}
            _ => v.push((line, KVM_IRQCHIP_IOAPIC, line)),
        }
    }
    v
}

/// Installs the routing on a VM with an in-kernel irqchip.
pub(crate) fn install(vm: &VmFd) -> Result<(), IrqRoutingError> {
    let entries: Vec<kvm_irq_routing_entry> = entries()
        .into_iter()
        .map(|(line, chip, pin)| route(line, chip, pin))
        .collect();
    let routing = KvmIrqRouting::from_entries(&entries).map_err(|_| IrqRoutingError::Table)?;
    vm.set_gsi_routing(&routing).map_err(IrqRoutingError::Set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pit_reaches_ioapic_pin_2_and_nothing_else_moves() {
        let e = entries();
        let ioapic: Vec<_> = e
            .iter()
            .filter(|(_, chip, _)| *chip == KVM_IRQCHIP_IOAPIC)
            .collect();
        assert_eq!(ioapic.len(), 23, "every pin but one");
        assert!(ioapic.contains(&&(0, KVM_IRQCHIP_IOAPIC, 2)));
        assert!(!ioapic.iter().any(|(line, _, _)| *line == 2));
        assert!(ioapic
            .iter()
            .all(|(line, _, pin)| *line == *pin || *line == 0));
        let pics = e.len() - ioapic.len();
        assert_eq!(pics, 15, "the cascade pin has no line");
        assert!(e.contains(&(8, KVM_IRQCHIP_PIC_SLAVE, 0)));
    }
}
