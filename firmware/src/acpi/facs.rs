//! The Firmware ACPI Control Structure (ACPI 6.5, 5.2.10, Table 5.14): the fields the OS and
//! the firmware share across a sleep. The VMM builds the FACS with the `acpi_tables` crate;
//! these are the offsets it reads back (the waking vector at resume) and a guest writes.
//! The FACS has no checksum.

/// The FACS signature.
pub const FACS_SIGNATURE: [u8; 4] = *b"FACS";
/// The FACS's length: 64 bytes (ACPI 6.5, Table 5.14).
pub const FACS_LEN: usize = 64;
/// The FACS's alignment in memory (ACPI 6.5, 5.2.10: "64-byte aligned").
pub const FACS_ALIGN: u64 = 64;
/// Offset of the length field (u32).
pub const FACS_LENGTH_OFFSET: usize = 4;
/// Offset of Firmware_Waking_Vector (u32): the real-mode address the BSP resumes at,
/// CS:IP = (vector >> 4):(vector & 0xF).
pub const FACS_FIRMWARE_WAKING_VECTOR_OFFSET: usize = 12;
/// Offset of X_Firmware_Waking_Vector (u64), which sipi does not use (it is 0 from the VMM,
/// and a guest that sets it is resumed at the 32-bit vector).
pub const FACS_X_FIRMWARE_WAKING_VECTOR_OFFSET: usize = 24;
/// Offset of the version field (u8).
pub const FACS_VERSION_OFFSET: usize = 32;

/// The waking vector in a FACS's bytes, or None if they are too short to hold it.
pub fn firmware_waking_vector(facs: &[u8]) -> Option<u32> {
    let bytes =
        facs.get(FACS_FIRMWARE_WAKING_VECTOR_OFFSET..FACS_FIRMWARE_WAKING_VECTOR_OFFSET + 4)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waking_vector_is_read_little_endian_and_short_input_is_refused() {
        let mut facs = [0u8; FACS_LEN];
        facs[FACS_FIRMWARE_WAKING_VECTOR_OFFSET..][..4].copy_from_slice(&0x1000u32.to_le_bytes());
        assert_eq!(firmware_waking_vector(&facs), Some(0x1000));
        assert_eq!(firmware_waking_vector(&facs[..15]), None);
    }
}
