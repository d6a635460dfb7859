//! The HPET Description Table (IA-PC HPET specification 1.0a, 3.2.4, Table 3): where an event
//! timer block is and what its capabilities register says.

use core::mem::size_of;

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::sdt::{validate, SDT_HEADER_SIZE};
use super::AcpiError;

/// HPET table signature.
pub const HPET_SIGNATURE: &[u8; 4] = b"HPET";
/// Revision of the table (the specification's, 1).
pub const HPET_REVISION: u8 = 1;
/// Generic Address Structure address space: system memory (ACPI 6.5, Table 5.1).
pub const GAS_SYSTEM_MEMORY: u8 = 0;
/// Size of the table body after the SDT header ([`RawHpetBody`]).
pub const HPET_BODY_SIZE: usize = size_of::<RawHpetBody>();
// IA-PC HPET 1.0a, Table 3: 56 bytes in all.
const _: () = assert!(SDT_HEADER_SIZE + HPET_BODY_SIZE == 56);

/// A Generic Address Structure (ACPI 6.5, 5.2.3.2, Table 5.1).
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
pub struct RawGas {
    /// Address space ([`GAS_SYSTEM_MEMORY`] for the HPET).
    pub address_space_id: u8,
    /// Register width in bits.
    pub register_bit_width: u8,
    /// Register offset in bits.
    pub register_bit_offset: u8,
    /// Access size (0: undefined).
    pub access_size: u8,
    /// The address.
    pub address: U64,
}

/// The HPET table's body as the specification lays it out (Table 3), after the SDT header.
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
pub struct RawHpetBody {
    /// Event Timer Block ID: the low 32 bits of the block's General Capabilities and ID
    /// register (revision, number of comparators, counter size, legacy route, vendor).
    pub event_timer_block_id: U32,
    /// Where the block's registers are.
    pub base_address: RawGas,
    /// The block's sequence number (0 for the first).
    pub hpet_number: u8,
    /// Main counter minimum clock tick in periodic mode.
    pub min_tick: U16,
    /// Page protection and OEM attribute (0: no guarantee for page protection).
    pub page_protection: u8,
}

/// Registers of an event timer block are 64 bits wide.
pub const HPET_REGISTER_BITS: u8 = 64;

impl RawHpetBody {
    /// The body describing the first event timer block, at `address` in system memory, with
    /// capabilities `event_timer_block_id`; no minimum tick or page protection promised (as
    /// QEMU's table).
    pub fn new(event_timer_block_id: u32, address: u64) -> Self {
        Self {
            event_timer_block_id: U32::new(event_timer_block_id),
            base_address: RawGas {
                address_space_id: GAS_SYSTEM_MEMORY,
                register_bit_width: HPET_REGISTER_BITS,
                register_bit_offset: 0,
                access_size: 0,
                address: U64::new(address),
            },
            hpet_number: 0,
            min_tick: U16::new(0),
            page_protection: 0,
        }
    }

    /// The body's bytes, as they follow the SDT header.
    pub fn to_bytes(&self) -> [u8; HPET_BODY_SIZE] {
        let mut out = [0u8; HPET_BODY_SIZE];
        out.copy_from_slice(self.as_bytes());
        out
    }
}

/// A decoded HPET table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hpet {
    /// The Event Timer Block ID.
    pub event_timer_block_id: u32,
    /// The base address's address space.
    pub address_space_id: u8,
    /// The block's base address.
    pub address: u64,
    /// The HPET number.
    pub hpet_number: u8,
    /// The minimum clock tick.
    pub min_tick: u16,
    /// Page protection and OEM attribute.
    pub page_protection: u8,
}

impl Hpet {
    /// Validates an HPET table (signature, length, checksum) and decodes its fields.
    pub fn parse(bytes: &[u8]) -> Result<Self, AcpiError> {
        let (_, table) = validate(bytes, HPET_SIGNATURE)?;
        let body = &table[SDT_HEADER_SIZE..];
        let (raw, _) = RawHpetBody::ref_from_prefix(body).map_err(|_| AcpiError::Truncated {
            needed: SDT_HEADER_SIZE + HPET_BODY_SIZE,
            available: table.len(),
        })?;
        Ok(Self {
            event_timer_block_id: raw.event_timer_block_id.get(),
            address_space_id: raw.base_address.address_space_id,
            address: raw.base_address.address.get(),
            hpet_number: raw.hpet_number,
            min_tick: raw.min_tick.get(),
            page_protection: raw.page_protection,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acpi::checksum;
    use std::vec::Vec;

    fn table(body: &RawHpetBody, len: u32) -> Vec<u8> {
        let mut t = std::vec![0u8; SDT_HEADER_SIZE];
        t[..4].copy_from_slice(HPET_SIGNATURE);
        t[8] = HPET_REVISION;
        t.extend_from_slice(&body.to_bytes());
        t[4..8].copy_from_slice(&len.to_le_bytes());
        t[9] = checksum(&t[..len as usize]);
        t
    }

    fn body() -> RawHpetBody {
        RawHpetBody::new(0x8086_2201, 0xFED0_0000)
    }

    #[test]
    fn decodes_the_fields() {
        let h = Hpet::parse(&table(&body(), 56)).unwrap();
        assert_eq!(h.event_timer_block_id, 0x8086_2201);
        assert_eq!((h.address_space_id, h.address), (0, 0xFED0_0000));
        assert_eq!((h.hpet_number, h.min_tick, h.page_protection), (0, 0, 0));
    }

    #[test]
    fn rejects_a_bad_checksum_a_short_table_and_another_signature() {
        let mut t = table(&body(), 56);
        t[SDT_HEADER_SIZE + 8] ^= 1;
        assert_eq!(
            Hpet::parse(&t),
            Err(AcpiError::BadChecksum { what: "table" })
        );
        // A header that claims only part of the body.
        assert!(matches!(
            Hpet::parse(&table(&body(), 40)),
            Err(AcpiError::Truncated { needed: 56, .. })
        ));
        let mut t = table(&body(), 56);
        t[..4].copy_from_slice(b"APIC");
        assert!(matches!(
            Hpet::parse(&t),
            Err(AcpiError::BadSignature { .. })
        ));
    }
}
