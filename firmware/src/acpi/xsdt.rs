//! The Extended System Description Table (ACPI 6.5, 5.2.8): 64-bit pointers to other tables.

use super::sdt::{validate, SDT_HEADER_SIZE};
use super::AcpiError;
use crate::bytes::u64_at;

/// Validates an XSDT and returns an iterator over the table addresses it lists.
pub fn entries(bytes: &[u8]) -> Result<impl Iterator<Item = u64> + '_, AcpiError> {
    let (_, table) = validate(bytes, b"XSDT")?;
    let body = &table[SDT_HEADER_SIZE..];
    Ok((0..body.len() / 8).filter_map(move |i| u64_at(body, i * 8)))
}
