//! The Multiple APIC Description Table (ACPI 6.5, 5.2.12): encoders for the interrupt
//! controller structures the `acpi_tables` crate lacks, and a validating decoder.

use super::sdt::{validate, SDT_HEADER_SIZE};
use super::AcpiError;
use crate::bytes::{u16_at, u32_at, u8_at};

/// MADT signature.
pub const MADT_SIGNATURE: &[u8; 4] = b"APIC";
/// Offset of the first interrupt controller structure (after header, LAPIC address, flags).
pub const MADT_ENTRIES_OFFSET: usize = SDT_HEADER_SIZE + 8;
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

/// Encodes a Processor Local APIC structure (type 0, 8 bytes).
pub fn local_apic(uid: u8, apic_id: u8, flags: u32) -> [u8; 8] {
    let f = flags.to_le_bytes();
    [
        entry_type::LOCAL_APIC,
        8,
        uid,
        apic_id,
        f[0],
        f[1],
        f[2],
        f[3],
    ]
}

/// Encodes a Processor Local x2APIC structure (type 9, 16 bytes).
pub fn local_x2apic(uid: u32, x2apic_id: u32, flags: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = entry_type::LOCAL_X2APIC;
    b[1] = 16;
    b[4..8].copy_from_slice(&x2apic_id.to_le_bytes());
    b[8..12].copy_from_slice(&flags.to_le_bytes());
    b[12..16].copy_from_slice(&uid.to_le_bytes());
    b
}

/// Encodes an I/O APIC structure (type 1, 12 bytes).
pub fn io_apic(id: u8, addr: u32, gsi_base: u32) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0] = entry_type::IO_APIC;
    b[1] = 12;
    b[2] = id;
    b[4..8].copy_from_slice(&addr.to_le_bytes());
    b[8..12].copy_from_slice(&gsi_base.to_le_bytes());
    b
}

/// Encodes an Interrupt Source Override structure (type 2, 10 bytes) for ISA bus 0.
pub fn interrupt_source_override(source: u8, gsi: u32, flags: u16) -> [u8; 10] {
    let mut b = [0u8; 10];
    b[0] = entry_type::INTERRUPT_SOURCE_OVERRIDE;
    b[1] = 10;
    b[2] = 0; // bus: ISA
    b[3] = source;
    b[4..8].copy_from_slice(&gsi.to_le_bytes());
    b[8..10].copy_from_slice(&flags.to_le_bytes());
    b
}

/// Encodes a Local APIC NMI structure (type 4, 6 bytes).
pub fn local_apic_nmi(uid: u8, flags: u16, lint: u8) -> [u8; 6] {
    let f = flags.to_le_bytes();
    [entry_type::LOCAL_APIC_NMI, 6, uid, f[0], f[1], lint]
}

/// Encodes a Local x2APIC NMI structure (type 0xA, 12 bytes).
pub fn local_x2apic_nmi(uid: u32, flags: u16, lint: u8) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0] = entry_type::LOCAL_X2APIC_NMI;
    b[1] = 12;
    b[2..4].copy_from_slice(&flags.to_le_bytes());
    b[4..8].copy_from_slice(&uid.to_le_bytes());
    b[8] = lint;
    b
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
        if table.len() < MADT_ENTRIES_OFFSET {
            return Err(AcpiError::BadLength {
                what: "MADT",
                length: table.len(),
            });
        }
        Ok(Self {
            table,
            local_apic_addr: u32_at(table, SDT_HEADER_SIZE).unwrap_or(0),
            flags: u32_at(table, SDT_HEADER_SIZE + 4).unwrap_or(0),
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
        let off = self.offset;
        let t = self.table;
        let kind = u8_at(t, off).unwrap_or(0);
        let Some(length) = u8_at(t, off + 1) else {
            self.done = true;
            return Some(MadtEntry::Invalid {
                kind,
                length: 0,
                offset: off,
            });
        };
        let len = usize::from(length);
        let expected = match kind {
            entry_type::LOCAL_APIC => Some(8),
            entry_type::IO_APIC => Some(12),
            entry_type::INTERRUPT_SOURCE_OVERRIDE => Some(10),
            entry_type::LOCAL_APIC_NMI => Some(6),
            entry_type::LOCAL_X2APIC => Some(16),
            entry_type::LOCAL_X2APIC_NMI => Some(12),
            _ => None,
        };
        let fits = off.checked_add(len).is_some_and(|end| end <= t.len());
        if len < 2 || !fits || expected.is_some_and(|e| e != len) {
            self.done = true;
            return Some(MadtEntry::Invalid {
                kind,
                length,
                offset: off,
            });
        }
        self.offset = off + len;
        let e = &t[off..off + len];
        // The length check above guarantees every field read below is in bounds.
        let entry = match kind {
            entry_type::LOCAL_APIC => MadtEntry::LocalApic {
                uid: e[2],
                apic_id: e[3],
                flags: u32_at(e, 4).unwrap_or(0),
            },
            entry_type::IO_APIC => MadtEntry::IoApic {
                id: e[2],
                addr: u32_at(e, 4).unwrap_or(0),
                gsi_base: u32_at(e, 8).unwrap_or(0),
            },
            entry_type::INTERRUPT_SOURCE_OVERRIDE => MadtEntry::InterruptSourceOverride {
                bus: e[2],
                source: e[3],
                gsi: u32_at(e, 4).unwrap_or(0),
                flags: u16_at(e, 8).unwrap_or(0),
            },
            entry_type::LOCAL_APIC_NMI => MadtEntry::LocalApicNmi {
                uid: e[2],
                flags: u16_at(e, 3).unwrap_or(0),
                lint: e[5],
            },
            entry_type::LOCAL_X2APIC => MadtEntry::LocalX2Apic {
                x2apic_id: u32_at(e, 4).unwrap_or(0),
                flags: u32_at(e, 8).unwrap_or(0),
                uid: u32_at(e, 12).unwrap_or(0),
            },
            entry_type::LOCAL_X2APIC_NMI => MadtEntry::LocalX2ApicNmi {
                flags: u16_at(e, 2).unwrap_or(0),
                uid: u32_at(e, 4).unwrap_or(0),
                lint: e[8],
            },
            _ => MadtEntry::Unknown { kind, length },
        };
        Some(entry)
    }
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
