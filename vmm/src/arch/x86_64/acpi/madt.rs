//! Builds the Multiple APIC Description Table (ACPI 6.5, 5.2.12).
//!
//! The header is [`super::sdt`]'s, written once with revision 6; the body is the Local
//! Interrupt Controller Address and the Flags, then the interrupt controller structures from
//! the firmware crate's encoders (which the guest decodes with the same crate). `acpi_tables`'
//! own MADT is not used: it fixes the revision at 1 and the flags at 0, and has no Local x2APIC
//! (type 9), Interrupt Source Override (type 2) or NMI (types 4 and 0xA) structures.
//!
//! Which vCPUs get a Processor Local APIC (type 0) and which a Processor Local x2APIC (type 9)
//! structure is the topology's decision ([`Topology::xapic_addressable`]): type 0 holds 8-bit
//! IDs and 0xFF is the broadcast ID, so IDs from 255 on need type 9 (ACPI 6.5, 5.2.12.12).

use std::mem::size_of;

use firmware::acpi::madt::{
    interrupt_source_override, io_apic, local_apic, local_apic_nmi, local_x2apic, local_x2apic_nmi,
    ALL_PROCESSORS_UID32, ALL_PROCESSORS_UID8, LAPIC_ENABLED, MADT_ENTRIES_OFFSET,
    MADT_PCAT_COMPAT, MADT_SIGNATURE, MPS_INTI_ACTIVE_HIGH_EDGE, MPS_INTI_CONFORMING,
};
use firmware::acpi::sdt::SDT_HEADER_SIZE;
use firmware::layout::{IOAPIC_BASE, IOAPIC_ID, LAPIC_BASE};

use crate::arch::x86_64::topology::Topology;

/// OEM table ID of the MADT.
const MADT_OEM_TABLE_ID: [u8; 8] = *b"SIPIMADT";
/// MADT revision defined by ACPI 6.5 (Table 5.19).
const MADT_REVISION: u8 = 6;

/// The ISA IRQ of the PIT's timer (the 8254's counter 0 drives IRQ0 on a PC).
const ISA_IRQ_TIMER: u8 = 0;
/// The GSI the PIT timer is wired to on the I/O APIC (pin 2, as on every PC chipset; KVM's
/// in-kernel PIT raises it there).
const GSI_TIMER: u32 = 2;
/// The I/O APIC's first Global System Interrupt: its pin 0 is GSI 0 (ACPI 6.5, 5.2.12.3).
const IOAPIC_GSI_BASE: u32 = 0;
/// The local APIC input that NMIs arrive on: LINT1, as on PCs (ACPI 6.5, Tables 5.33, 5.46).
const NMI_LINT: u8 = 1;

/// [`LAPIC_BASE`] as the MADT's 32-bit Local Interrupt Controller Address field holds it.
const LAPIC_ADDR: u32 = {
    assert!(LAPIC_BASE <= u32::MAX as u64);
    LAPIC_BASE as u32
};
/// [`IOAPIC_BASE`] as the I/O APIC structure's 32-bit address field holds it.
const IOAPIC_ADDR: u32 = {
    assert!(IOAPIC_BASE <= u32::MAX as u64);
    IOAPIC_BASE as u32
};

// The body starts with the two 32-bit fixed fields, and the structures follow them where the
// firmware's decoder looks for them.
const _: () = assert!(MADT_ENTRIES_OFFSET == SDT_HEADER_SIZE + 2 * size_of::<u32>());

/// The exact length of the MADT [`build`] makes for `vcpus` vCPUs, computed without building
/// it (so that an absurd count is rejected before anything is allocated). The lengths come
/// from the encoders themselves.
pub(super) fn len(topology: Topology) -> u64 {
    let xapic_cpus = u64::from(topology.xapic_vcpus());
    let x2apic_cpus = u64::from(topology.vcpus()) - xapic_cpus;
    let size = |n: usize| n as u64;
    let mut len = size(MADT_ENTRIES_OFFSET)
        + xapic_cpus * size(local_apic(0, 0, 0).len())
        + x2apic_cpus * size(local_x2apic(0, 0, 0).len())
        + size(io_apic(0, 0, 0).len())
        + size(interrupt_source_override(0, 0, 0).len())
        + size(local_apic_nmi(0, 0, 0).len());
    if x2apic_cpus > 0 {
        len += size(local_x2apic_nmi(0, 0, 0).len());
    }
    len
}

/// Builds the MADT for the topology's vCPUs, each with its APIC ID and its index as ACPI
/// processor UID, in one pass over the vCPUs.
pub(super) fn build(topology: Topology) -> Vec<u8> {
    let body_len = usize::try_from(len(topology) - SDT_HEADER_SIZE as u64).unwrap_or(0);
    let mut body = Vec::with_capacity(body_len);
    body.extend_from_slice(&LAPIC_ADDR.to_le_bytes());
    body.extend_from_slice(&MADT_PCAT_COMPAT.to_le_bytes());
    for uid in 0..topology.vcpus() {
        let id = topology.apic_id(uid);
        match (u8::try_from(uid), u8::try_from(id)) {
            (Ok(uid8), Ok(id8)) if topology.xapic_addressable(uid) => {
                body.extend_from_slice(&local_apic(uid8, id8, LAPIC_ENABLED));
            }
            _ => body.extend_from_slice(&local_x2apic(uid, id, LAPIC_ENABLED)),
        }
    }
    body.extend_from_slice(&io_apic(IOAPIC_ID, IOAPIC_ADDR, IOAPIC_GSI_BASE));
    body.extend_from_slice(&interrupt_source_override(
        ISA_IRQ_TIMER,
        GSI_TIMER,
        MPS_INTI_CONFORMING,
    ));
    body.extend_from_slice(&local_apic_nmi(
        ALL_PROCESSORS_UID8,
        MPS_INTI_ACTIVE_HIGH_EDGE,
        NMI_LINT,
    ));
    if topology.x2apic() {
        body.extend_from_slice(&local_x2apic_nmi(
            ALL_PROCESSORS_UID32,
            MPS_INTI_ACTIVE_HIGH_EDGE,
            NMI_LINT,
        ));
    }
    debug_assert_eq!(body.len(), body_len);
    super::sdt(*MADT_SIGNATURE, MADT_REVISION, MADT_OEM_TABLE_ID, &body)
}
