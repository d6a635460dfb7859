//! Builds the Multiple APIC Description Table (ACPI 6.5, 5.2.12).
//!
//! The table container (header, running checksum) is `acpi_tables`' [`MADT`], whose
//! `add_structure` updates length and checksum in O(1), so a 4096-vCPU table costs one pass.
//! The interrupt controller structures are the firmware crate's encoders, wrapped in
//! [`Structure`] because `acpi_tables` has no Local x2APIC (type 9), Interrupt Source Override
//! (type 2) or NMI (types 4 and 0xA) structures; the guest decodes the same bytes with the same
//! crate.

use acpi_tables::madt::{LocalInterruptController, MADT};
use acpi_tables::{Aml, AmlSink};
use firmware::acpi::madt::{
    interrupt_source_override, io_apic, local_apic, local_apic_nmi, local_x2apic, local_x2apic_nmi,
    ALL_PROCESSORS_UID32, ALL_PROCESSORS_UID8, LAPIC_ENABLED, MADT_ENTRIES_OFFSET,
    MADT_PCAT_COMPAT, MAX_XAPIC_ID, MPS_INTI_ACTIVE_HIGH_EDGE, MPS_INTI_CONFORMING,
};
use firmware::layout::{IOAPIC_BASE, IOAPIC_ID, LAPIC_BASE};
use zerocopy::{Immutable, IntoBytes};

use super::{patch_header_field, OEM_ID, OEM_REVISION, SDT_REVISION_OFFSET};

/// OEM table ID of the MADT.
const MADT_OEM_TABLE_ID: [u8; 8] = *b"SIPIMADT";
/// MADT revision defined by ACPI 6.5 (Table 5.19). `acpi_tables` writes 1 (ACPI 1.0, which
/// predates the x2APIC structures); sipi's table follows ACPI 6.5.
const MADT_REVISION: u8 = 6;
/// Offset of the MADT Flags field (ACPI 6.5, Table 5.19): after the header and the local
/// interrupt controller address. `acpi_tables` has no setter for it.
const MADT_FLAGS_OFFSET: usize = MADT_ENTRIES_OFFSET - 4;

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

/// One interrupt controller structure, as encoded by the firmware crate, in the form
/// [`MADT::add_structure`] takes: the bytes are the structure, and [`Aml`] emits them as is.
#[derive(Clone, Copy, IntoBytes, Immutable)]
#[repr(transparent)]
struct Structure<const N: usize>([u8; N]);

impl<const N: usize> Aml for Structure<N> {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(&self.0);
    }
}

/// Whether vCPU `apic_id` gets a Processor Local APIC structure (type 0) rather than a
/// Processor Local x2APIC structure (type 9): type 0 holds 8-bit IDs and 0xFF is the broadcast
/// ID, so IDs from 255 on need type 9 (ACPI 6.5, 5.2.12.12).
fn is_xapic(apic_id: u32) -> bool {
    apic_id <= MAX_XAPIC_ID
}

/// The exact length of the MADT [`build`] makes for `vcpus` vCPUs, computed without building
/// it (so that an absurd count is rejected before anything is allocated). The lengths come
/// from the encoders themselves.
pub(super) fn len(vcpus: u32) -> u64 {
    let vcpus = u64::from(vcpus);
    let xapic_cpus = vcpus.min(u64::from(MAX_XAPIC_ID) + 1);
    let x2apic_cpus = vcpus - xapic_cpus;
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

/// Builds the MADT for `vcpus` vCPUs with APIC IDs and ACPI processor UIDs `0..vcpus`.
pub(super) fn build(vcpus: u32) -> Vec<u8> {
    let mut madt = MADT::new(
        OEM_ID,
        MADT_OEM_TABLE_ID,
        OEM_REVISION,
        LocalInterruptController::Address(LAPIC_ADDR),
    );
    for id in 0..vcpus {
        match u8::try_from(id) {
            Ok(id8) if is_xapic(id) => {
                madt.add_structure(Structure(local_apic(id8, id8, LAPIC_ENABLED)));
            }
            _ => madt.add_structure(Structure(local_x2apic(id, id, LAPIC_ENABLED))),
        }
    }
    madt.add_structure(Structure(io_apic(IOAPIC_ID, IOAPIC_ADDR, IOAPIC_GSI_BASE)));
    madt.add_structure(Structure(interrupt_source_override(
        ISA_IRQ_TIMER,
        GSI_TIMER,
        MPS_INTI_CONFORMING,
    )));
    madt.add_structure(Structure(local_apic_nmi(
        ALL_PROCESSORS_UID8,
        MPS_INTI_ACTIVE_HIGH_EDGE,
        NMI_LINT,
    )));
    if vcpus > MAX_XAPIC_ID + 1 {
        madt.add_structure(Structure(local_x2apic_nmi(
            ALL_PROCESSORS_UID32,
            MPS_INTI_ACTIVE_HIGH_EDGE,
            NMI_LINT,
        )));
    }

    let mut bytes = Vec::with_capacity(usize::try_from(len(vcpus)).unwrap_or(0));
    madt.to_aml_bytes(&mut bytes);
    patch_header_field(&mut bytes, SDT_REVISION_OFFSET, &[MADT_REVISION]);
    patch_header_field(
        &mut bytes,
        MADT_FLAGS_OFFSET,
        &MADT_PCAT_COMPAT.to_le_bytes(),
    );
    bytes
}
