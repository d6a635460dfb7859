//! The Root System Description Table (ACPI 6.5, 5.2.7): 32-bit pointers to other tables. ACPI
//! 1.0 firmware (a revision 0 RSDP, as QEMU's pc and q35 machines have) offers only this one;
//! later firmware may offer it next to the XSDT, which then takes precedence.

use core::mem::size_of;

use zerocopy::little_endian::U32;
use zerocopy::FromBytes;

use super::sdt::{validate, SDT_HEADER_SIZE};
use super::AcpiError;

/// RSDT signature.
pub const RSDT_SIGNATURE: &[u8; 4] = b"RSDT";
/// Size of one table pointer in the RSDT: a little-endian 32-bit address.
pub const RSDT_ENTRY_SIZE: usize = size_of::<U32>();

/// Validates an RSDT (signature, length, checksum) and returns an iterator over the table
/// addresses it lists, widened to 64 bits. A trailing partial entry is ignored.
pub fn entries(bytes: &[u8]) -> Result<impl Iterator<Item = u64> + '_, AcpiError> {
    let (_, table) = validate(bytes, RSDT_SIGNATURE)?;
    let body = &table[SDT_HEADER_SIZE..];
    Ok(body
        .chunks_exact(RSDT_ENTRY_SIZE)
        .filter_map(|e| U32::read_from_bytes(e).ok())
        .map(|addr| u64::from(addr.get())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acpi::checksum;
    use std::vec::Vec;

    fn rsdt(pointers: &[u32]) -> Vec<u8> {
        let mut t = std::vec![0u8; SDT_HEADER_SIZE];
        t[..4].copy_from_slice(RSDT_SIGNATURE);
        t[8] = 1;
        t[10..16].copy_from_slice(b"BOCHS ");
        for p in pointers {
            t.extend_from_slice(&p.to_le_bytes());
        }
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        t[9] = checksum(&t);
        t
    }

    #[test]
    fn lists_32_bit_pointers() {
        let t = rsdt(&[0x0FFE_1000, 0x0FFE_2000, 0xFFFF_FFFF]);
        let e: Vec<u64> = entries(&t).unwrap().collect();
        assert_eq!(e, [0x0FFE_1000, 0x0FFE_2000, 0xFFFF_FFFF]);
        assert_eq!(entries(&rsdt(&[])).unwrap().count(), 0);
    }

    #[test]
    fn rejects_a_corrupted_byte_anywhere() {
        let good = rsdt(&[0x0FFE_1000, 0x0FFE_2000]);
        for i in 0..good.len() {
            let mut t = good.clone();
            t[i] ^= 0x10;
            assert!(entries(&t).is_err(), "byte {i} corrupted");
        }
    }

    #[test]
    fn rejects_an_xsdt_and_a_length_past_the_bytes() {
        let mut t = rsdt(&[1]);
        t[..4].copy_from_slice(b"XSDT");
        t[9] = 0;
        t[9] = checksum(&t);
        assert!(matches!(entries(&t), Err(AcpiError::BadSignature { .. })));
        let t = rsdt(&[1, 2]);
        assert!(matches!(
            entries(&t[..t.len() - 1]),
            Err(AcpiError::Truncated { .. })
        ));
    }
}
