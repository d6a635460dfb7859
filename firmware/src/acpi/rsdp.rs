//! The Root System Description Pointer (ACPI 6.5, 5.2.5.3, Table 5.3).
//!
//! Revision 0 (ACPI 1.0) is the first 20 bytes only, covered by one checksum, and points to an
//! RSDT with 32-bit table pointers; QEMU's pc and q35 machines hand one to their guests.
//! Revision 2 and later (ACPI 2.0+) adds the length, the XSDT's 64-bit address and an extended
//! checksum over the whole structure. An OS uses the XSDT when there is one, else the RSDT
//! (ACPI 6.5, 5.2.5.3 and 5.2.7).

use core::mem::size_of;

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{sum, AcpiError};

/// The RSDP signature.
pub const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";
/// Bytes covered by the ACPI 1.0 checksum ([`RawRsdpV1`]).
pub const RSDP_V1_SIZE: usize = size_of::<RawRsdpV1>();
/// Size of the ACPI 2.0+ RSDP, covered by the extended checksum ([`RawRsdp`]).
pub const RSDP_V2_SIZE: usize = size_of::<RawRsdp>();
// ACPI 6.5, Table 5.3.
const _: () = assert!(RSDP_V1_SIZE == 20 && RSDP_V2_SIZE == 36);
/// The RSDP is found on a 16-byte boundary when scanning (ACPI 6.5, 5.2.5.1).
pub const RSDP_ALIGN: usize = 16;

/// The first RSDP revision with the extended fields (length, XSDT address, extended checksum).
pub const RSDP_REVISION_ACPI_2: u8 = 2;

/// The ACPI 1.0 part of the RSDP (the first 20 bytes of Table 5.3), covered by `checksum`.
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
pub struct RawRsdpV1 {
    /// [`RSDP_SIGNATURE`].
    pub signature: [u8; 8],
    /// Makes these 20 bytes sum to zero.
    pub checksum: u8,
    /// [`Rsdp::oem_id`].
    pub oem_id: [u8; 6],
    /// [`Rsdp::revision`].
    pub revision: u8,
    /// [`Rsdp::rsdt_addr`].
    pub rsdt_address: U32,
}

/// The whole ACPI 2.0+ RSDP (Table 5.3), covered by `extended_checksum`.
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
pub struct RawRsdp {
    /// The ACPI 1.0 fields.
    pub v1: RawRsdpV1,
    /// Length of the whole structure.
    pub length: U32,
    /// [`Rsdp::xsdt_addr`].
    pub xsdt_address: U64,
    /// Makes the whole structure sum to zero.
    pub extended_checksum: u8,
    /// Reserved (0).
    pub reserved: [u8; 3],
}

/// A validated RSDP, ACPI 1.0 (revision 0) or 2.0+ (revision 2 or later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rsdp {
    /// OEM ID.
    pub oem_id: [u8; 6],
    /// Revision: 0 for ACPI 1.0, 2 or later for ACPI 2.0+.
    pub revision: u8,
    /// Guest-physical address of the RSDT (32-bit table pointers; 0 if there is none).
    pub rsdt_addr: u32,
    /// Guest-physical address of the XSDT (64-bit table pointers); 0 for a revision 0 RSDP,
    /// which has no such field.
    pub xsdt_addr: u64,
}

/// The root table an OS should walk, as [`Rsdp::root_table`] chooses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootTable {
    /// The XSDT at this address.
    Xsdt(u64),
    /// The RSDT at this address.
    Rsdt(u32),
}

impl Rsdp {
    /// Decodes and validates an RSDP at the start of `bytes`: the signature and the ACPI 1.0
    /// checksum over the first [`RSDP_V1_SIZE`] bytes, and for revision 2 or later also the
    /// length and the extended checksum over [`RSDP_V2_SIZE`] bytes. A revision 0 RSDP needs
    /// only [`RSDP_V1_SIZE`] bytes in `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, AcpiError> {
        let (v1, _) = RawRsdpV1::ref_from_prefix(bytes).map_err(|_| AcpiError::Truncated {
            needed: RSDP_V1_SIZE,
            available: bytes.len(),
        })?;
        if &v1.signature != RSDP_SIGNATURE {
            return Err(AcpiError::BadSignature {
                expected: *RSDP_SIGNATURE,
                found: v1.signature,
            });
        }
        if sum(v1.as_bytes()) != 0 {
            return Err(AcpiError::BadChecksum { what: "RSDP" });
        }
        let mut rsdp = Self {
            oem_id: v1.oem_id,
            revision: v1.revision,
            rsdt_addr: v1.rsdt_address.get(),
            xsdt_addr: 0,
        };
        if v1.revision < RSDP_REVISION_ACPI_2 {
            return Ok(rsdp);
        }
        let (full, _) = RawRsdp::ref_from_prefix(bytes).map_err(|_| AcpiError::Truncated {
            needed: RSDP_V2_SIZE,
            available: bytes.len(),
        })?;
        let length = full.length.get() as usize;
        if length < RSDP_V2_SIZE {
            return Err(AcpiError::BadLength {
                what: "RSDP",
                length,
            });
        }
        if sum(full.as_bytes()) != 0 {
            return Err(AcpiError::BadChecksum {
                what: "RSDP extended",
            });
        }
        rsdp.xsdt_addr = full.xsdt_address.get();
        Ok(rsdp)
    }

    /// The root table to walk: the XSDT when the RSDP has a non-zero XSDT address, else the
    /// RSDT when it has a non-zero RSDT address (ACPI 6.5, 5.2.5.3: an OS uses the XSDT when it
    /// is present). `None` if the RSDP points to neither.
    pub fn root_table(&self) -> Option<RootTable> {
        if self.xsdt_addr != 0 {
            Some(RootTable::Xsdt(self.xsdt_addr))
        } else if self.rsdt_addr != 0 {
            Some(RootTable::Rsdt(self.rsdt_addr))
        } else {
            None
        }
    }

    /// Scans `area` on 16-byte boundaries for a valid RSDP, as an OS scans the BIOS area.
    /// Returns its offset in `area` and the decoded RSDP.
    pub fn scan(area: &[u8]) -> Option<(usize, Self)> {
        (0..area.len())
            .step_by(RSDP_ALIGN)
            .find_map(|off| Self::parse(&area[off..]).ok().map(|r| (off, r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acpi::checksum;

    fn rsdp(xsdt: u64) -> [u8; RSDP_V2_SIZE] {
        let mut b = [0u8; RSDP_V2_SIZE];
        b[..8].copy_from_slice(RSDP_SIGNATURE);
        b[9..15].copy_from_slice(b"SIPIVM");
        b[15] = 2;
        b[20..24].copy_from_slice(&(RSDP_V2_SIZE as u32).to_le_bytes());
        b[24..32].copy_from_slice(&xsdt.to_le_bytes());
        b[8] = checksum(&b[..RSDP_V1_SIZE]);
        b[32] = checksum(&b);
        b
    }

    /// An ACPI 1.0 RSDP as QEMU's pc machine writes it: 20 bytes, revision 0, an RSDT.
    fn rsdp_v1(rsdt: u32) -> [u8; RSDP_V1_SIZE] {
        let mut b = [0u8; RSDP_V1_SIZE];
        b[..8].copy_from_slice(RSDP_SIGNATURE);
        b[9..15].copy_from_slice(b"BOCHS ");
        b[16..20].copy_from_slice(&rsdt.to_le_bytes());
        b[8] = checksum(&b);
        b
    }

    #[test]
    fn parses_and_scans() {
        let r = Rsdp::parse(&rsdp(0xE0040)).unwrap();
        assert_eq!(r.xsdt_addr, 0xE0040);
        assert_eq!(r.root_table(), Some(RootTable::Xsdt(0xE0040)));
        let mut area = [0u8; 256];
        area[96..96 + RSDP_V2_SIZE].copy_from_slice(&rsdp(0x1234));
        assert_eq!(
            Rsdp::scan(&area).map(|(o, r)| (o, r.xsdt_addr)),
            Some((96, 0x1234))
        );
    }

    #[test]
    fn rejects_bad_checksums_and_misaligned_copies() {
        let mut b = rsdp(0xE0040);
        b[30] ^= 1;
        assert_eq!(
            Rsdp::parse(&b),
            Err(AcpiError::BadChecksum {
                what: "RSDP extended"
            })
        );
        let mut b = rsdp(0xE0040);
        b[10] ^= 1;
        assert_eq!(
            Rsdp::parse(&b),
            Err(AcpiError::BadChecksum { what: "RSDP" })
        );
        let mut area = [0u8; 128];
        area[8..8 + RSDP_V2_SIZE].copy_from_slice(&rsdp(1));
        assert_eq!(
            Rsdp::scan(&area),
            None,
            "only 16-byte boundaries are scanned"
        );
    }

    #[test]
    fn parses_a_revision_0_rsdp_from_its_20_bytes() {
        let b = rsdp_v1(0x0FFE_2000);
        let r = Rsdp::parse(&b).unwrap();
        assert_eq!(
            (r.revision, r.rsdt_addr, r.xsdt_addr, &r.oem_id),
            (0, 0x0FFE_2000, 0, b"BOCHS ")
        );
        assert_eq!(r.root_table(), Some(RootTable::Rsdt(0x0FFE_2000)));
        assert!(matches!(
            Rsdp::parse(&b[..RSDP_V1_SIZE - 1]),
            Err(AcpiError::Truncated { needed: 20, .. })
        ));
        // Found by scanning even at the very end of the area, with no room for 36 bytes.
        let mut area = [0u8; 64];
        area[32..32 + RSDP_V1_SIZE].copy_from_slice(&b);
        assert_eq!(Rsdp::scan(&area[..52]).map(|(o, _)| o), Some(32));
    }

    #[test]
    fn rejects_a_revision_0_rsdp_with_a_corrupted_byte() {
        for i in 0..RSDP_V1_SIZE {
            let mut b = rsdp_v1(0x0FFE_2000);
            b[i] ^= 0x40;
            assert!(Rsdp::parse(&b).is_err(), "byte {i} corrupted");
        }
    }

    #[test]
    fn a_revision_2_rsdp_needs_all_36_bytes_and_prefers_the_xsdt() {
        let mut b = rsdp(0xE0040);
        b[16..20].copy_from_slice(&0xE0100u32.to_le_bytes());
        b[8] = 0;
        b[8] = checksum(&b[..RSDP_V1_SIZE]);
        b[32] = 0;
        b[32] = checksum(&b);
        let r = Rsdp::parse(&b).unwrap();
        assert_eq!((r.rsdt_addr, r.xsdt_addr), (0xE0100, 0xE0040));
        assert_eq!(r.root_table(), Some(RootTable::Xsdt(0xE0040)));
        assert!(matches!(
            Rsdp::parse(&b[..RSDP_V2_SIZE - 1]),
            Err(AcpiError::Truncated { needed: 36, .. })
        ));
    }
}
