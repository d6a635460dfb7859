//! Builds the Multiple APIC Description Table (ACPI 6.5, 5.2.12).
//!
//! The header is [`super::sdt`]'s, written once with revision 6; the body is the Local
//! Interrupt Controller Address and the Flags, then the interrupt controller structures from
//! the firmware crate's encoders (which the guest decodes with the same crate). `acpi_tables`'
//! own MADT is not used: it fixes the revision at 1 and the flags at 0, and has no Local x2APIC
//! (type 9), Interrupt Source Override (type 2) or NMI (types 4 and 0xA) structures.
//!
//! Which vCPUs get a Processor Local APIC (type 0) and which a Processor Local x2APIC (type 9)
//! structure is decided by one constant, [`MAX_XAPIC_ID`] (firmware::acpi::madt): type 0 holds
//! 8-bit IDs and 0xFF is the broadcast ID, so IDs from 255 on need type 9 (ACPI 6.5, 5.2.12.12).

use std::mem::size_of;

use firmware::acpi::madt::{
    interrupt_source_override, io_apic, local_apic, local_apic_nmi, local_x2apic, local_x2apic_nmi,
    ALL_PROCESSORS_UID32, ALL_PROCESSORS_UID8, LAPIC_ENABLED, MADT_ENTRIES_OFFSET,
    MADT_PCAT_COMPAT, MADT_SIGNATURE, MAX_XAPIC_ID, MPS_INTI_ACTIVE_HIGH_EDGE, MPS_INTI_CONFORMING,
};
use firmware::acpi::sdt::SDT_HEADER_SIZE;
use firmware::layout::{IOAPIC_BASE, IOAPIC_ID, LAPIC_BASE};

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

/// How many of `vcpus` vCPUs (APIC IDs `0..vcpus`) get a Processor Local APIC structure: those
/// with IDs up to [`MAX_XAPIC_ID`]. The others get Processor Local x2APIC structures.
fn xapic_cpus(vcpus: u32) -> u32 {
    vcpus.min(MAX_XAPIC_ID + 1)
}

/// The exact length of the MADT [`build`] makes for `vcpus` vCPUs, computed without building
/// it (so that an absurd count is rejected before anything is allocated). The lengths come
/// from the encoders themselves.
pub(super) fn len(vcpus: u32) -> u64 {
    let xapic_cpus = u64::from(xapic_cpus(vcpus));
    let x2apic_cpus = u64::from(vcpus) - xapic_cpus;
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

/// Builds the MADT for `vcpus` vCPUs with APIC IDs and ACPI processor UIDs `0..vcpus`, in one
/// pass over the vCPUs.
pub(super) fn build(vcpus: u32) -> Vec<u8> {
    let body_len = usize::try_from(len(vcpus) - SDT_HEADER_SIZE as u64).unwrap_or(0);
    let mut body = Vec::with_capacity(body_len);
    body.extend_from_slice(&LAPIC_ADDR.to_le_bytes());
    body.extend_from_slice(&MADT_PCAT_COMPAT.to_le_bytes());
    let xapic_cpus = xapic_cpus(vcpus);
    for id in 0..vcpus {
        match u8::try_from(id) {
            Ok(id8) if id < xapic_cpus => {
                body.extend_from_slice(&local_apic(id8, id8, LAPIC_ENABLED));
            }
            _ => body.extend_from_slice(&local_x2apic(id, id, LAPIC_ENABLED)),
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
    if vcpus > xapic_cpus {
        body.extend_from_slice(&local_x2apic_nmi(
            ALL_PROCESSORS_UID32,
            MPS_INTI_ACTIVE_HIGH_EDGE,
            NMI_LINT,
        ));
    }
    debug_assert_eq!(body.len(), body_len);
    super::sdt(*MADT_SIGNATURE, MADT_REVISION, MADT_OEM_TABLE_ID, &body)
}
