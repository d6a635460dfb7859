//! The common System Description Table header (ACPI 6.5, 5.2.6, Table 5.4).

use core::mem::size_of;

use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{sig8, sum, AcpiError};

/// Size of the SDT header ([`RawSdtHeader`]).
pub const SDT_HEADER_SIZE: usize = size_of::<RawSdtHeader>();
// ACPI 6.5, Table 5.4.
const _: () = assert!(SDT_HEADER_SIZE == 36);

/// The SDT header as ACPI lays it out (Table 5.4): little endian, unaligned.
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
pub struct RawSdtHeader {
    /// [`SdtHeader::signature`].
    pub signature: [u8; 4],
    /// [`SdtHeader::length`].
    pub length: U32,
    /// [`SdtHeader::revision`].
    pub revision: u8,
    /// Makes the whole table sum to zero.
    pub checksum: u8,
    /// [`SdtHeader::oem_id`].
    pub oem_id: [u8; 6],
    /// The manufacturer's name for this table.
    pub oem_table_id: [u8; 8],
    /// The manufacturer's revision of this table.
    pub oem_revision: U32,
    /// Vendor ID of the utility that created the table.
    pub creator_id: [u8; 4],
    /// Revision of that utility.
    pub creator_revision: U32,
}

/// A decoded SDT header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdtHeader {
    /// Four-character table signature, e.g. `APIC` for the MADT.
    pub signature: [u8; 4],
    /// Length of the whole table, header included.
    pub length: u32,
    /// Table revision.
    pub revision: u8,
    /// OEM ID.
    pub oem_id: [u8; 6],
}

impl SdtHeader {
    /// Decodes the header at the start of `bytes` without checking the table body.
    pub fn parse(bytes: &[u8]) -> Result<Self, AcpiError> {
        let (raw, _) = RawSdtHeader::ref_from_prefix(bytes).map_err(|_| AcpiError::Truncated {
            needed: SDT_HEADER_SIZE,
            available: bytes.len(),
        })?;
        Ok(Self {
            signature: raw.signature,
            length: raw.length.get(),
            revision: raw.revision,
            oem_id: raw.oem_id,
        })
    }
}

/// Validates a whole table: `bytes` must hold at least the length its header claims, that
/// length must cover the header, the signature must be `signature`, and the table must sum to
/// zero. Returns the header and exactly the table's bytes.
pub fn validate<'a>(
    bytes: &'a [u8],
    signature: &[u8; 4],
) -> Result<(SdtHeader, &'a [u8]), AcpiError> {
    let h = SdtHeader::parse(bytes)?;
    if &h.signature != signature {
        return Err(AcpiError::BadSignature {
            expected: sig8(signature),
            found: sig8(&h.signature),
        });
    }
    let length = h.length as usize;
    if length < SDT_HEADER_SIZE {
        return Err(AcpiError::BadLength {
            what: "table",
            length,
        });
    }
    let table = bytes.get(..length).ok_or(AcpiError::Truncated {
        needed: length,
        available: bytes.len(),
    })?;
    if sum(table) != 0 {
        return Err(AcpiError::BadChecksum { what: "table" });
    }
    Ok((h, table))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acpi::checksum;

    fn table(sig: &[u8; 4], body: &[u8]) -> [u8; 64] {
        let mut t = [0u8; 64];
        let len = SDT_HEADER_SIZE + body.len();
        t[..4].copy_from_slice(sig);
        t[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        t[SDT_HEADER_SIZE..len].copy_from_slice(body);
        t[9] = checksum(&t[..len]);
        t
    }

    #[test]
    fn accepts_a_valid_table() {
        let t = table(b"TEST", &[1, 2, 3]);
        let (h, bytes) = validate(&t, b"TEST").unwrap();
        assert_eq!(h.length as usize, SDT_HEADER_SIZE + 3);
        assert_eq!(bytes.len(), SDT_HEADER_SIZE + 3);
    }

    #[test]
    fn rejects_corruption() {
        let mut t = table(b"TEST", &[1, 2, 3]);
        assert!(matches!(
            validate(&t, b"APIC"),
            Err(AcpiError::BadSignature { .. })
        ));
        t[SDT_HEADER_SIZE] ^= 0x55;
        assert_eq!(
            validate(&t, b"TEST"),
            Err(AcpiError::BadChecksum { what: "table" })
        );
        let t = table(b"TEST", &[]);
        assert!(matches!(
            validate(&t[..20], b"TEST"),
            Err(AcpiError::Truncated { .. })
        ));
        let mut t = table(b"TEST", &[]);
        t[4..8].copy_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(
            validate(&t, b"TEST"),
            Err(AcpiError::Truncated { needed: 1000, .. })
        ));
        t[4..8].copy_from_slice(&4u32.to_le_bytes());
        assert!(matches!(
            validate(&t, b"TEST"),
            Err(AcpiError::BadLength { .. })
        ));
    }
}
