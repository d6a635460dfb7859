//! Builds the Fixed ACPI Description Table (ACPI 6.5, 5.2.9, Table 5.9) and the FACS it
//! points to (5.2.10).
//!
//! The platform is a full (not hardware-reduced) ACPI PC: PM1a event and control blocks at
//! the ports the ACPI PM device emulates, SCI on IRQ 9, no SMI command port (the system is
//! always in ACPI mode), no PM timer and no GPE blocks. The reset register is the 8042's
//! command port with the 8042's reset command, so `reboot=acpi` reaches the same reset as
//! `reboot=kbd`. CENTURY names the CMOS century byte. Every port, register and value the FADT
//! shares with a device comes from firmware::layout, where the device takes it too.

use acpi_tables::facs::FACS;
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::Aml;
use firmware::layout::{
    ACPI_PM1A_CNT_PORT, ACPI_PM1A_EVT_PORT, ACPI_PM1_CNT_LEN, ACPI_PM1_EVT_LEN, ACPI_SCI_IRQ,
    CMOS_CENTURY_INDEX, I8042_CMD_RESET, I8042_COMMAND_PORT,
};

use super::{OEM_ID, OEM_REVISION};

/// OEM table ID of the FADT.
const FADT_OEM_TABLE_ID: [u8; 8] = *b"SIPIFACP";
/// IA-PC boot architecture flags (ACPI 6.5, Table 5.11): legacy devices (the UART, the RTC).
const IAPC_LEGACY_DEVICES: u16 = 1 << 0;
/// IA-PC boot architecture flags: an 8042 is present.
const IAPC_8042: u16 = 1 << 1;
/// IA-PC boot architecture flags: VGA is not present.
const IAPC_VGA_NOT_PRESENT: u16 = 1 << 2;
pub(super) use firmware::acpi::facs::FACS_ALIGN;

/// The FACS: no waking vector, no global lock owner.
pub(super) fn facs() -> Vec<u8> {
    let mut bytes = Vec::with_capacity(FACS::len());
    FACS::new().to_aml_bytes(&mut bytes);
    bytes
}

/// An I/O-port Generic Address Structure of `bits` bits accessed `access`-wide.
fn io(port: u16, bits: u8, access: AccessSize) -> GAS {
    GAS::new(AddressSpace::SystemIo, bits, 0, access, u64::from(port))
}

/// The FADT pointing at the DSDT and FACS at these addresses (both below 4 GiB, so the
/// 32-bit fields carry them too, for ACPI 1.0 readers).
pub(super) fn build(dsdt: u32, facs: u32) -> Vec<u8> {
    let mut f = FADTBuilder::new(OEM_ID, FADT_OEM_TABLE_ID, OEM_REVISION)
        .flag(Flags::Wbinvd)
        .flag(Flags::ProcC1)
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton)
        .flag(Flags::ResetRegSup);
    f.firmware_ctrl = facs.into();
    f.x_firmware_ctrl = u64::from(facs).into();
    f.dsdt = dsdt.into();
    f.x_dsdt = u64::from(dsdt).into();
    f.sci_int = ACPI_SCI_IRQ.into();
    f.pm1a_evt_blk = u32::from(ACPI_PM1A_EVT_PORT).into();
    f.pm1a_cnt_blk = u32::from(ACPI_PM1A_CNT_PORT).into();
    f.pm1_evt_len = ACPI_PM1_EVT_LEN;
    f.pm1_cnt_len = ACPI_PM1_CNT_LEN;
    f.x_pm1a_evt_blk = io(
        ACPI_PM1A_EVT_PORT,
        8 * ACPI_PM1_EVT_LEN,
        AccessSize::WordAccess,
    );
    f.x_pm1a_cnt_blk = io(
        ACPI_PM1A_CNT_PORT,
        8 * ACPI_PM1_CNT_LEN,
        AccessSize::WordAccess,
    );
    f.century = CMOS_CENTURY_INDEX;
    f.iapc_boot_arch = (IAPC_LEGACY_DEVICES | IAPC_8042 | IAPC_VGA_NOT_PRESENT).into();
    f.reset_reg = io(I8042_COMMAND_PORT, 8, AccessSize::ByteAccess);
    f.reset_value = I8042_CMD_RESET;
    let mut bytes = Vec::with_capacity(acpi_tables::fadt::FADT::len());
    f.finalize().to_aml_bytes(&mut bytes);
    bytes
}
