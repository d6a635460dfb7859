//! The Multiple APIC Description Table (ACPI 6.5, 5.2.12): encoders for the interrupt
//! controller structures the `acpi_tables` crate lacks, and a validating decoder.

use core::mem::size_of;

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::sdt::{validate, RawSdtHeader};
use super::AcpiError;

/// MADT signature.
pub const MADT_SIGNATURE: &[u8; 4] = b"APIC";
/// Offset of the first interrupt controller structure (after header, LAPIC address, flags):
/// the size of [`RawMadtHeader`].
pub const MADT_ENTRIES_OFFSET: usize = size_of::<RawMadtHeader>();
/// MADT flag: the system also has dual 8259 PICs (ACPI 6.5, Table 5.20).
pub const MADT_PCAT_COMPAT: u32 = 1;

/// Interrupt controller structure types (ACPI 6.5, Table 5.21).
pub mod entry_type {
    /// Processor Local APIC.
    pub const LOCAL_APIC: u8 = 0;
    /// I/O APIC.
    pub const IO_APIC: u8 = 1;
    /// Interrupt Source Override.
    pub const INTERRUPT_SOURCE_OVERRIDE: u8 = 2;
    /// Local APIC NMI.
    pub const LOCAL_APIC_NMI: u8 = 4;
    /// Processor Local x2APIC.
    pub const LOCAL_X2APIC: u8 = 9;
    /// Local x2APIC NMI.
    pub const LOCAL_X2APIC_NMI: u8 = 0xA;
}

/// Local APIC / x2APIC flag: the processor is usable (ACPI 6.5, Table 5.23).
pub const LAPIC_ENABLED: u32 = 1 << 0;
/// Local APIC / x2APIC flag: the processor can be enabled at run time (ACPI 6.3+).
pub const LAPIC_ONLINE_CAPABLE: u32 = 1 << 1;
/// The processor UID that means "all processors" in a Local APIC NMI structure.
pub const ALL_PROCESSORS_UID8: u8 = 0xFF;
/// The processor UID that means "all processors" in a Local x2APIC NMI structure.
pub const ALL_PROCESSORS_UID32: u32 = 0xFFFF_FFFF;
/// The largest APIC ID a type-0 (xAPIC) entry may carry: 0xFF is the broadcast ID.
pub const MAX_XAPIC_ID: u32 = 0xFE;
/// MPS INTI flags: active high, edge triggered (ACPI 6.5, Table 5.26).
pub const MPS_INTI_ACTIVE_HIGH_EDGE: u16 = 0b0101;
/// MPS INTI flags: conforms to the bus (ACPI 6.5, Table 5.26).
pub const MPS_INTI_CONFORMING: u16 = 0;

/// The fixed part of the MADT (ACPI 6.5, Table 5.19): the SDT header, the local interrupt
/// controller address and the flags. The interrupt controller structures follow.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct RawMadtHeader {
    /// Signature [`MADT_SIGNATURE`].
    pub header: RawSdtHeader,
    /// [`Madt::local_apic_addr`].
    pub local_apic_address: U32,
    /// [`Madt::flags`].
    pub flags: U32,
}

/// The type and length that start every interrupt controller structure (ACPI 6.5, 5.2.12).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct RawEntryHeader {
    /// One of [`entry_type`].
    pub kind: u8,
    /// Length of the structure, this header included.
    pub length: u8,
}

impl RawEntryHeader {
    /// The header of a structure of type `kind` laid out as `T`.
    const fn of<T>(kind: u8) -> Self {
        assert!(size_of::<T>() <= u8::MAX as usize);
        Self {
            kind,
            length: size_of::<T>() as u8,
        }
    }
}

/// Processor Local APIC structure (type 0, ACPI 6.5, Table 5.22).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct RawLocalApic {
    /// Type [`entry_type::LOCAL_APIC`].
    pub header: RawEntryHeader,
    /// ACPI processor UID.
    pub uid: u8,
    /// APIC ID.
    pub apic_id: u8,
    /// [`LAPIC_ENABLED`], [`LAPIC_ONLINE_CAPABLE`].
    pub flags: U32,
}

/// I/O APIC structure (type 1, ACPI 6.5, Table 5.24).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct RawIoApic {
    /// Type [`entry_type::IO_APIC`].
    pub header: RawEntryHeader,
    /// I/O APIC ID.
    pub id: u8,
    /// Reserved (0).
    pub reserved: u8,
    /// Physical address of the I/O APIC.
    pub address: U32,
    /// The first Global System Interrupt of its pins.
    pub gsi_base: U32,
}

/// Interrupt Source Override structure (type 2, ACPI 6.5, Table 5.25).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct RawInterruptSourceOverride {
    /// Type [`entry_type::INTERRUPT_SOURCE_OVERRIDE`].
    pub header: RawEntryHeader,
    /// The bus: 0 for ISA.
    pub bus: u8,
    /// The bus-relative interrupt source (the ISA IRQ).
    pub source: u8,
    /// The Global System Interrupt it signals.
    pub gsi: U32,
    /// MPS INTI flags.
    pub flags: U16,
}

/// Local APIC NMI structure (type 4, ACPI 6.5, Table 5.32).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct RawLocalApicNmi {
    /// Type [`entry_type::LOCAL_APIC_NMI`].
    pub header: RawEntryHeader,
    /// ACPI processor UID ([`ALL_PROCESSORS_UID8`]: all).
    pub uid: u8,
    /// MPS INTI flags.
    pub flags: U16,
    /// The local APIC input (LINTn) the NMI arrives on.
    pub lint: u8,
}

/// Processor Local x2APIC structure (type 9, ACPI 6.5, Table 5.45).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct RawLocalX2Apic {
    /// Type [`entry_type::LOCAL_X2APIC`].
    pub header: RawEntryHeader,
    /// Reserved (0).
    pub reserved: [u8; 2],
    /// x2APIC ID.
    pub x2apic_id: U32,
    /// [`LAPIC_ENABLED`], [`LAPIC_ONLINE_CAPABLE`].
    pub flags: U32,
    /// ACPI processor UID.
    pub uid: U32,
}

/// Local x2APIC NMI structure (type 0xA, ACPI 6.5, Table 5.46).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct RawLocalX2ApicNmi {
    /// Type [`entry_type::LOCAL_X2APIC_NMI`].
    pub header: RawEntryHeader,
    /// MPS INTI flags.
    pub flags: U16,
    /// ACPI processor UID ([`ALL_PROCESSORS_UID32`]: all).
    pub uid: U32,
    /// The local APIC input (LINTn) the NMI arrives on.
    pub lint: u8,
    /// Reserved (0).
    pub reserved: [u8; 3],
}

// The lengths ACPI 6.5 gives each structure (Tables 5.19, 5.22, 5.24, 5.25, 5.32, 5.45, 5.46).
const _: () = assert!(MADT_ENTRIES_OFFSET == 44);
const _: () = assert!(size_of::<RawLocalApic>() == 8);
const _: () = assert!(size_of::<RawIoApic>() == 12);
const _: () = assert!(size_of::<RawInterruptSourceOverride>() == 10);
const _: () = assert!(size_of::<RawLocalApicNmi>() == 6);
const _: () = assert!(size_of::<RawLocalX2Apic>() == 16);
const _: () = assert!(size_of::<RawLocalX2ApicNmi>() == 12);

/// Encodes a Processor Local APIC structure (type 0, 8 bytes).
pub fn local_apic(uid: u8, apic_id: u8, flags: u32) -> [u8; 8] {
    zerocopy::transmute!(RawLocalApic {
        header: RawEntryHeader::of::<RawLocalApic>(entry_type::LOCAL_APIC),
        uid,
        apic_id,
        flags: U32::new(flags),
    })
}

/// Encodes a Processor Local x2APIC structure (type 9, 16 bytes).
pub fn local_x2apic(uid: u32, x2apic_id: u32, flags: u32) -> [u8; 16] {
    zerocopy::transmute!(RawLocalX2Apic {
        header: RawEntryHeader::of::<RawLocalX2Apic>(entry_type::LOCAL_X2APIC),
        reserved: [0; 2],
        x2apic_id: U32::new(x2apic_id),
        flags: U32::new(flags),
        uid: U32::new(uid),
    })
}

/// Encodes an I/O APIC structure (type 1, 12 bytes).
pub fn io_apic(id: u8, addr: u32, gsi_base: u32) -> [u8; 12] {
    zerocopy::transmute!(RawIoApic {
        header: RawEntryHeader::of::<RawIoApic>(entry_type::IO_APIC),
        id,
        reserved: 0,
        address: U32::new(addr),
        gsi_base: U32::new(gsi_base),
    })
}

/// The bus of an Interrupt Source Override for an ISA IRQ (ACPI 6.5, Table 5.25).
const ISA_BUS: u8 = 0;

/// Encodes an Interrupt Source Override structure (type 2, 10 bytes) for ISA bus 0.
pub fn interrupt_source_override(source: u8, gsi: u32, flags: u16) -> [u8; 10] {
    zerocopy::transmute!(RawInterruptSourceOverride {
        header: RawEntryHeader::of::<RawInterruptSourceOverride>(
            entry_type::INTERRUPT_SOURCE_OVERRIDE
        ),
        bus: ISA_BUS,
        source,
        gsi: U32::new(gsi),
        flags: U16::new(flags),
    })
}

/// Encodes a Local APIC NMI structure (type 4, 6 bytes).
pub fn local_apic_nmi(uid: u8, flags: u16, lint: u8) -> [u8; 6] {
    zerocopy::transmute!(RawLocalApicNmi {
        header: RawEntryHeader::of::<RawLocalApicNmi>(entry_type::LOCAL_APIC_NMI),
        uid,
        flags: U16::new(flags),
        lint,
    })
}

/// Encodes a Local x2APIC NMI structure (type 0xA, 12 bytes).
pub fn local_x2apic_nmi(uid: u32, flags: u16, lint: u8) -> [u8; 12] {
    zerocopy::transmute!(RawLocalX2ApicNmi {
        header: RawEntryHeader::of::<RawLocalX2ApicNmi>(entry_type::LOCAL_X2APIC_NMI),
        flags: U16::new(flags),
        uid: U32::new(uid),
        lint,
        reserved: [0; 3],
    })
}

/// One decoded interrupt controller structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MadtEntry {
    /// Type 0.
    LocalApic { uid: u8, apic_id: u8, flags: u32 },
    /// Type 1.
    IoApic { id: u8, addr: u32, gsi_base: u32 },
    /// Type 2.
    InterruptSourceOverride {
        bus: u8,
        source: u8,
        gsi: u32,
        flags: u16,
    },
    /// Type 4.
    LocalApicNmi { uid: u8, flags: u16, lint: u8 },
    /// Type 9.
    LocalX2Apic {
        x2apic_id: u32,
        flags: u32,
        uid: u32,
    },
    /// Type 0xA.
    LocalX2ApicNmi { uid: u32, flags: u16, lint: u8 },
    /// A well-formed structure of a type this decoder does not interpret.
    Unknown { kind: u8, length: u8 },
    /// A structure whose length is impossible for its type or runs past the table; decoding
    /// stops after it because later offsets cannot be trusted.
    Invalid { kind: u8, length: u8, offset: usize },
}

/// A processor found in the MADT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MadtCpu {
    /// Its (x2)APIC ID.
    pub apic_id: u32,
    /// Its ACPI processor UID.
    pub uid: u32,
    /// Enabled (usable now) rather than only online-capable.
    pub enabled: bool,
}

/// A validated MADT.
#[derive(Debug, Clone, Copy)]
pub struct Madt<'a> {
    table: &'a [u8],
    /// Physical address of the local APIC.
    pub local_apic_addr: u32,
    /// MADT flags.
    pub flags: u32,
}

impl<'a> Madt<'a> {
    /// Validates the table (signature, length, checksum) and its fixed fields.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, AcpiError> {
        let (_, table) = validate(bytes, MADT_SIGNATURE)?;
        let (fixed, _) =
            RawMadtHeader::ref_from_prefix(table).map_err(|_| AcpiError::BadLength {
                what: "MADT",
                length: table.len(),
            })?;
        Ok(Self {
            table,
            local_apic_addr: fixed.local_apic_address.get(),
            flags: fixed.flags.get(),
        })
    }

    /// Iterates over the interrupt controller structures.
    pub fn entries(&self) -> MadtIter<'a> {
        MadtIter {
            table: self.table,
            offset: MADT_ENTRIES_OFFSET,
            done: false,
        }
    }

    /// The processors the OS may use: Local APIC and Local x2APIC structures that are enabled or
    /// online-capable. Disabled entries are skipped, as ACPI requires.
    pub fn cpus(&self) -> impl Iterator<Item = MadtCpu> + 'a {
        let usable = |flags: u32| flags & (LAPIC_ENABLED | LAPIC_ONLINE_CAPABLE) != 0;
        self.entries().filter_map(move |e| match e {
            MadtEntry::LocalApic {
                uid,
                apic_id,
                flags,
            } if usable(flags) => Some(MadtCpu {
                apic_id: u32::from(apic_id),
                uid: u32::from(uid),
                enabled: flags & LAPIC_ENABLED != 0,
            }),
            MadtEntry::LocalX2Apic {
                x2apic_id,
                flags,
                uid,
            } if usable(flags) => Some(MadtCpu {
                apic_id: x2apic_id,
                uid,
                enabled: flags & LAPIC_ENABLED != 0,
            }),
            _ => None,
        })
    }

    /// True if any structure is [`MadtEntry::Invalid`].
    pub fn has_invalid_entries(&self) -> bool {
        self.entries()
            .any(|e| matches!(e, MadtEntry::Invalid { .. }))
    }
}

/// Iterator over MADT structures; see [`Madt::entries`].
#[derive(Debug, Clone)]
pub struct MadtIter<'a> {
    table: &'a [u8],
    offset: usize,
    done: bool,
}

impl Iterator for MadtIter<'_> {
    type Item = MadtEntry;

    fn next(&mut self) -> Option<MadtEntry> {
        if self.done || self.offset >= self.table.len() {
            return None;
        }
        let offset = self.offset;
        let rest = &self.table[offset..];
        let kind = rest[0];
        let length = rest.get(1).copied().unwrap_or(0);
        let len = usize::from(length);
        // A structure shorter than its own header, running past the table, or of a length
        // impossible for its type ends the walk: later offsets cannot be trusted.
        let entry = rest
            .get(..len)
            .filter(|_| len >= size_of::<RawEntryHeader>())
            .and_then(|bytes| decode_entry(kind, bytes));
        match entry {
            Some(entry) => {
                self.offset = offset + len;
                Some(entry)
            }
            None => {
                self.done = true;
                Some(MadtEntry::Invalid {
                    kind,
                    length,
                    offset,
                })
            }
        }
    }
}

/// Decodes one interrupt controller structure of type `kind` from exactly its `bytes`; `None`
/// if their length is not the one its type has.
fn decode_entry(kind: u8, bytes: &[u8]) -> Option<MadtEntry> {
    Some(match kind {
        entry_type::LOCAL_APIC => {
            let e = RawLocalApic::ref_from_bytes(bytes).ok()?;
            MadtEntry::LocalApic {
                uid: e.uid,
                apic_id: e.apic_id,
                flags: e.flags.get(),
            }
        }
        entry_type::IO_APIC => {
            let e = RawIoApic::ref_from_bytes(bytes).ok()?;
            MadtEntry::IoApic {
                id: e.id,
                addr: e.address.get(),
                gsi_base: e.gsi_base.get(),
            }
        }
        entry_type::INTERRUPT_SOURCE_OVERRIDE => {
            let e = RawInterruptSourceOverride::ref_from_bytes(bytes).ok()?;
            MadtEntry::InterruptSourceOverride {
                bus: e.bus,
                source: e.source,
                gsi: e.gsi.get(),
                flags: e.flags.get(),
            }
        }
        entry_type::LOCAL_APIC_NMI => {
            let e = RawLocalApicNmi::ref_from_bytes(bytes).ok()?;
            MadtEntry::LocalApicNmi {
                uid: e.uid,
                flags: e.flags.get(),
                lint: e.lint,
            }
        }
        entry_type::LOCAL_X2APIC => {
            let e = RawLocalX2Apic::ref_from_bytes(bytes).ok()?;
            MadtEntry::LocalX2Apic {
                x2apic_id: e.x2apic_id.get(),
                flags: e.flags.get(),
                uid: e.uid.get(),
            }
        }
        entry_type::LOCAL_X2APIC_NMI => {
            let e = RawLocalX2ApicNmi::ref_from_bytes(bytes).ok()?;
            MadtEntry::LocalX2ApicNmi {
                uid: e.uid.get(),
                flags: e.flags.get(),
                lint: e.lint,
            }
        }
        _ => MadtEntry::Unknown {
            kind,
            length: bytes.len() as u8,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acpi::checksum;
    use std::vec::Vec;

    fn madt(entries: &[&[u8]]) -> Vec<u8> {
        let mut t = std::vec![0u8; MADT_ENTRIES_OFFSET];
        t[..4].copy_from_slice(MADT_SIGNATURE);
        t[8] = 5;
        t[36..40].copy_from_slice(&0xFEE0_0000u32.to_le_bytes());
        for e in entries {
            t.extend_from_slice(e);
        }
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        t[9] = checksum(&t);
        t
    }

    #[test]
    fn decodes_every_encoded_structure() {
        let t = madt(&[
            &local_apic(0, 0, LAPIC_ENABLED),
            &local_apic(1, 1, 0),
            &io_apic(0, 0xFEC0_0000, 0),
            &interrupt_source_override(0, 2, MPS_INTI_CONFORMING),
            &local_apic_nmi(ALL_PROCESSORS_UID8, MPS_INTI_ACTIVE_HIGH_EDGE, 1),
            &local_x2apic(255, 255, LAPIC_ONLINE_CAPABLE),
            &local_x2apic_nmi(ALL_PROCESSORS_UID32, MPS_INTI_ACTIVE_HIGH_EDGE, 1),
        ]);
        let m = Madt::parse(&t).unwrap();
        assert_eq!(m.local_apic_addr, 0xFEE0_0000);
        let e: Vec<_> = m.entries().collect();
        assert_eq!(e.len(), 7);
        assert_eq!(
            e[2],
            MadtEntry::IoApic {
                id: 0,
                addr: 0xFEC0_0000,
                gsi_base: 0
            }
        );
        assert_eq!(
            e[3],
            MadtEntry::InterruptSourceOverride {
                bus: 0,
                source: 0,
                gsi: 2,
                flags: 0
            }
        );
        assert_eq!(
            e[4],
            MadtEntry::LocalApicNmi {
                uid: 0xFF,
                flags: 5,
                lint: 1
            }
        );
        assert_eq!(
            e[6],
            MadtEntry::LocalX2ApicNmi {
                uid: u32::MAX,
                flags: 5,
                lint: 1
            }
        );
        let cpus: Vec<_> = m.cpus().collect();
        assert_eq!(
            cpus,
            [
                MadtCpu {
                    apic_id: 0,
                    uid: 0,
                    enabled: true
                },
                MadtCpu {
                    apic_id: 255,
                    uid: 255,
                    enabled: false
                },
            ],
            "the disabled CPU 1 is skipped, the online-capable CPU 255 is kept"
        );
        assert!(!m.has_invalid_entries());
    }

    #[test]
    fn stops_at_invalid_structures() {
        let mut bad = local_x2apic(1, 1, LAPIC_ENABLED);
        bad[1] = 12; // wrong length for type 9
        let t = madt(&[
            &local_apic(0, 0, LAPIC_ENABLED),
            &bad,
            &local_apic(2, 2, LAPIC_ENABLED),
        ]);
        let m = Madt::parse(&t).unwrap();
        let e: Vec<_> = m.entries().collect();
        assert_eq!(e.len(), 2);
        assert!(matches!(
            e[1],
            MadtEntry::Invalid {
                kind: 9,
                length: 12,
                ..
            }
        ));
        assert!(m.has_invalid_entries());

        let zero_len = [0x7Fu8, 0];
        let m2 = madt(&[&zero_len]);
        let m2 = Madt::parse(&m2).unwrap();
        assert_eq!(
            m2.entries().count(),
            1,
            "a zero length must not loop forever"
        );

        let mut overrun = local_apic(0, 0, 1).to_vec();
        overrun.truncate(5);
        let t = madt(&[&overrun]);
        assert!(matches!(
            Madt::parse(&t).unwrap().entries().next(),
            Some(MadtEntry::Invalid { .. })
        ));
    }

    #[test]
    fn rejects_a_table_that_is_not_a_madt() {
        let mut t = madt(&[]);
        t[0] = b'X';
        assert!(Madt::parse(&t).is_err());
    }
}
