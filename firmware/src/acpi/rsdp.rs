//! The Root System Description Pointer (ACPI 6.5, 5.2.5.3, Table 5.3).

use super::{sig8, sum, AcpiError};
use crate::bytes::{array, u32_at, u64_at, u8_at};

/// The RSDP signature.
pub const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";
/// Bytes covered by the ACPI 1.0 checksum.
pub const RSDP_V1_SIZE: usize = 20;
/// Size of the ACPI 2.0+ RSDP, covered by the extended checksum.
pub const RSDP_V2_SIZE: usize = 36;
/// The RSDP is found on a 16-byte boundary when scanning (ACPI 6.5, 5.2.5.1).
pub const RSDP_ALIGN: usize = 16;

/// A validated ACPI 2.0+ RSDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rsdp {
    /// OEM ID.
    pub oem_id: [u8; 6],
    /// Revision (2 or later).
    pub revision: u8,
    /// Guest-physical address of the XSDT.
    pub xsdt_addr: u64,
}

impl Rsdp {
    /// Decodes and validates an RSDP at the start of `bytes`: signature, both checksums, and a
    /// revision that has an XSDT.
    pub fn parse(bytes: &[u8]) -> Result<Self, AcpiError> {
        let head = bytes.get(..RSDP_V2_SIZE).ok_or(AcpiError::Truncated {
            needed: RSDP_V2_SIZE,
            available: bytes.len(),
        })?;
        let signature: [u8; 8] = array(head, 0).unwrap_or_default();
        if &signature != RSDP_SIGNATURE {
            return Err(AcpiError::BadSignature {
                expected: *RSDP_SIGNATURE,
                found: sig8(&signature),
            });
        }
        if sum(&head[..RSDP_V1_SIZE]) != 0 {
            return Err(AcpiError::BadChecksum { what: "RSDP" });
        }
        let revision = u8_at(head, 15).unwrap_or(0);
        if revision < 2 {
            return Err(AcpiError::NoXsdt(revision));
        }
        let length = u32_at(head, 20).unwrap_or(0) as usize;
        if length < RSDP_V2_SIZE {
            return Err(AcpiError::BadLength {
                what: "RSDP",
                length,
            });
        }
        if sum(head) != 0 {
            return Err(AcpiError::BadChecksum {
                what: "RSDP extended",
            });
        }
        Ok(Self {
            oem_id: array(head, 9).unwrap_or_default(),
            revision,
            xsdt_addr: u64_at(head, 24).unwrap_or(0),
        })
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

    #[test]
    fn parses_and_scans() {
        let r = Rsdp::parse(&rsdp(0xE0040)).unwrap();
        assert_eq!(r.xsdt_addr, 0xE0040);
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
}
