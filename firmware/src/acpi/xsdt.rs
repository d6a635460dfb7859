//! The Extended System Description Table (ACPI 6.5, 5.2.8): 64-bit pointers to other tables.

use core::mem::size_of;

use zerocopy::little_endian::U64;
use zerocopy::FromBytes;

use super::sdt::{validate, SDT_HEADER_SIZE};
use super::AcpiError;

/// XSDT signature.
pub const XSDT_SIGNATURE: &[u8; 4] = b"XSDT";
/// Size of one table pointer in the XSDT: a little-endian 64-bit address.
pub const XSDT_ENTRY_SIZE: usize = size_of::<U64>();

/// Validates an XSDT and returns an iterator over the table addresses it lists. A trailing
/// partial entry is ignored.
pub fn entries(bytes: &[u8]) -> Result<impl Iterator<Item = u64> + '_, AcpiError> {
    let (_, table) = validate(bytes, XSDT_SIGNATURE)?;
    let body = &table[SDT_HEADER_SIZE..];
    Ok(body
        .chunks_exact(XSDT_ENTRY_SIZE)
        .filter_map(|e| U64::read_from_bytes(e).ok())
        .map(U64::get))
}
