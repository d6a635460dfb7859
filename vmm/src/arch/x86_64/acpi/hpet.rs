//! Builds the HPET Description Table (IA-PC HPET specification 1.0a, 3.2.4, Table 3) for the
//! HPET device at [`HPET_BASE`]: its Event Timer Block ID is the low half of the device's
//! capabilities register, as the specification requires.

use firmware::acpi::hpet::{RawHpetBody, HPET_REVISION, HPET_SIGNATURE};
use firmware::layout::HPET_BASE;

use super::sdt;
use crate::devices::hpet::CAPABILITIES;

/// OEM table ID of the HPET table.
const HPET_OEM_TABLE_ID: [u8; 8] = *b"SIPIHPET";

/// The table.
pub(super) fn build() -> Vec<u8> {
    let body = RawHpetBody::new(CAPABILITIES as u32, HPET_BASE);
    sdt(
        *HPET_SIGNATURE,
        HPET_REVISION,
        HPET_OEM_TABLE_ID,
        &body.to_bytes(),
    )
}
