//! Builds the Differentiated System Description Table (ACPI 6.5, 5.2.11.1): a definition
//! block holding only the `\_S3` and `\_S5` sleep-state packages (7.4.2), which tell an
//! ACPI-aware kernel the SLP_TYP values that suspend the machine to RAM and power it off
//! through PM1a control.

use acpi_tables::aml::{Name, Package, ZERO};
use acpi_tables::Aml;
use firmware::layout::{ACPI_SLP_TYP_S3, ACPI_SLP_TYP_S5};

/// OEM table ID of the DSDT.
const DSDT_OEM_TABLE_ID: [u8; 8] = *b"SIPIDSDT";
/// DSDT revision 2: integers in the definition block are 64 bits (ACPI 6.5, 5.2.11.1).
const DSDT_REVISION: u8 = 2;
/// The AML name of the S3 sleep state object.
const S3_NAME: &str = "_S3_";
/// The AML name of the S5 sleep state object.
const S5_NAME: &str = "_S5_";

/// The DSDT: `Name (\_S3, Package () { SLP_TYPa, SLP_TYPb, 0, 0 })` with both SLP_TYP values
/// [`ACPI_SLP_TYP_S3`], then the same for `\_S5` with [`ACPI_SLP_TYP_S5`] (there is no PM1b
/// block).
pub(super) fn build() -> Vec<u8> {
    let mut aml = Vec::new();
    for (name, slp_typ) in [(S3_NAME, ACPI_SLP_TYP_S3), (S5_NAME, ACPI_SLP_TYP_S5)] {
        Name::new(
            name.into(),
            &Package::new(vec![&slp_typ, &slp_typ, &ZERO, &ZERO]),
        )
        .to_aml_bytes(&mut aml);
    }
    super::sdt(*b"DSDT", DSDT_REVISION, DSDT_OEM_TABLE_ID, &aml)
}
