//! Builds the Differentiated System Description Table (ACPI 6.5, 5.2.11.1): a definition
//! block holding only the `\_S5` sleep-state package (7.4.2), which tells an ACPI-aware kernel
//! the SLP_TYP value that powers the machine off through PM1a control.

use acpi_tables::aml::{Name, Package, ZERO};
use acpi_tables::Aml;
use firmware::layout::ACPI_SLP_TYP_S5;

/// OEM table ID of the DSDT.
const DSDT_OEM_TABLE_ID: [u8; 8] = *b"SIPIDSDT";
/// DSDT revision 2: integers in the definition block are 64 bits (ACPI 6.5, 5.2.11.1).
const DSDT_REVISION: u8 = 2;
/// The AML name of the S5 sleep state object.
const S5_NAME: &str = "_S5_";

/// The DSDT: `Name (\_S5, Package () { SLP_TYPa, SLP_TYPb, 0, 0 })` with both SLP_TYP values
/// [`ACPI_SLP_TYP_S5`] (there is no PM1b block).
pub(super) fn build() -> Vec<u8> {
    let slp_typ = ACPI_SLP_TYP_S5;
    let mut aml = Vec::new();
    Name::new(
        S5_NAME.into(),
        &Package::new(vec![&slp_typ, &slp_typ, &ZERO, &ZERO]),
    )
    .to_aml_bytes(&mut aml);
    super::sdt(*b"DSDT", DSDT_REVISION, DSDT_OEM_TABLE_ID, &aml)
}
