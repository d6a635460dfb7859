//! ACPI table encoding and decoding (ACPI 6.5, chapter 5.2 "ACPI System Description Tables").
//!
//! The root of the tables is the RSDP ([`rsdp`]), which points to an XSDT ([`xsdt`], 64-bit
//! pointers, ACPI 2.0+) or an RSDT ([`rsdt`], 32-bit pointers, ACPI 1.0); those list the other
//! tables, among them the MADT ([`madt`]) and the HPET table ([`hpet`]).
//!
//! The VMM builds the tables with the `acpi_tables` crate plus the MADT structures that crate
//! lacks ([`madt`] encoders); the guest, and the VMM's own tests, read them back with the
//! decoders here, which validate lengths and checksums and never panic on hostile bytes.

pub mod facs;
pub mod hpet;
pub mod madt;
pub mod rsdp;
pub mod rsdt;
pub mod sdt;
pub mod xsdt;

/// The byte that makes `data` sum to zero modulo 256 when added to it (ACPI 6.5, 5.2.5.3).
pub fn checksum(data: &[u8]) -> u8 {
    0u8.wrapping_sub(sum(data))
}

/// The 8-bit sum of `data`; a valid ACPI structure sums to zero.
pub fn sum(data: &[u8]) -> u8 {
    data.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))
}

/// Why an ACPI structure could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AcpiError {
    /// Fewer bytes than the structure needs.
    #[error("the ACPI structure is truncated: {needed} bytes needed, {available} available")]
    Truncated { needed: usize, available: usize },
    /// The signature is not the one expected.
    #[error("the ACPI signature is {found:?}, expected {expected:?}")]
    BadSignature { expected: [u8; 8], found: [u8; 8] },
    /// The bytes do not sum to zero.
    #[error("the ACPI {what} checksum is wrong")]
    BadChecksum { what: &'static str },
    /// A length field is smaller than the structure's own header.
    #[error("the ACPI {what} length {length} is invalid")]
    BadLength { what: &'static str, length: usize },
}

/// Pads a 4-byte signature into the 8-byte form [`AcpiError::BadSignature`] carries.
pub(crate) fn sig8(sig: &[u8]) -> [u8; 8] {
    let mut out = [b' '; 8];
    let n = sig.len().min(8);
    out[..n].copy_from_slice(&sig[..n]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_makes_the_sum_zero() {
        let mut data = [1u8, 2, 3, 250, 0];
        data[4] = checksum(&data[..4]);
        assert_eq!(sum(&data), 0);
    }
}
