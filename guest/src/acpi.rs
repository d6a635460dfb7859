//! Finding the processors: RSDP -> XSDT (or, with ACPI 1.0 firmware, RSDT) -> MADT, decoded in
//! place with the firmware crate; and, for an S3 suspend, the FADT's sleep controls.
//!
//! The tables are read where the firmware left them, through the identity map. Every address
//! and length is checked before it is read (see [`crate::phys`]) and no table may claim more
//! than [`TABLE_MAX_LEN`] bytes.

use core::fmt;

use firmware::acpi::AcpiError;
use firmware::acpi::facs::{FACS_LEN, FACS_SIGNATURE};
use firmware::acpi::fadt::{self, FADT_SIGNATURE, SleepControl};
use firmware::acpi::madt::{MADT_SIGNATURE, Madt};
use firmware::acpi::rsdp::{RSDP_V1_SIZE, RSDP_V2_SIZE, RootTable, Rsdp};
use firmware::acpi::sdt::{SDT_HEADER_SIZE, SdtHeader};
use firmware::acpi::{rsdt, xsdt};
use firmware::layout::{BIOS_AREA_END, BIOS_AREA_START};

use crate::phys;

/// The longest ACPI table the kernel reads. Real MADTs for 4096 x2APIC CPUs are ~64 KiB.
const TABLE_MAX_LEN: usize = 1 << 20;

/// Why the MADT could not be found.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Error {
    /// No valid RSDP at the address start_info gave, nor in the BIOS area.
    NoRsdp {
        /// `hvm_start_info.rsdp_paddr` (0: none given).
        hint: u64,
        /// Why the RSDP at `hint` was rejected, if it could be read.
        hint_error: Option<AcpiError>,
    },
    /// A table lies outside readable RAM.
    Unreadable { what: &'static str, addr: u64 },
    /// A table claims more than [`TABLE_MAX_LEN`] bytes.
    TooLong {
        what: &'static str,
        addr: u64,
        length: u32,
    },
    /// A table failed validation.
    Invalid {
        what: &'static str,
        addr: u64,
        error: AcpiError,
    },
    /// The RSDP points to neither an XSDT nor an RSDT.
    NoRootTable,
    /// The root table (XSDT or RSDT) lists no MADT.
    NoMadt { root: &'static str, addr: u64 },
    /// The root table lists no FADT.
    NoFadt { root: &'static str, addr: u64 },
    /// The FADT's FACS is unreadable or has the wrong signature.
    BadFacs { addr: u64 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRsdp {
                hint,
                hint_error: Some(e),
            } => write!(
                f,
                "no usable ACPI RSDP: the one at {hint:#x} is rejected ({e}) and the BIOS area \
                 holds no valid RSDP"
            ),
            Self::NoRsdp { hint, .. } => write!(
                f,
                "no usable ACPI RSDP: none at {hint:#x} and no valid RSDP in the BIOS area"
            ),
            Self::Unreadable { what, addr } => {
                write!(f, "the ACPI {what} at {addr:#x} is outside readable RAM")
            }
            Self::TooLong { what, addr, length } => write!(
                f,
                "the ACPI {what} at {addr:#x} claims {length} bytes, more than the \
                 {TABLE_MAX_LEN} allowed"
            ),
            Self::Invalid { what, addr, error } => {
                write!(f, "the ACPI {what} at {addr:#x} is invalid: {error}")
            }
            Self::NoRootTable => {
                write!(f, "the ACPI RSDP points to neither an XSDT nor an RSDT")
            }
            Self::NoMadt { root, addr } => {
                write!(f, "the {root} at {addr:#x} lists no MADT (APIC table)")
            }
            Self::NoFadt { root, addr } => {
                write!(f, "the {root} at {addr:#x} lists no FADT (FACP table)")
            }
            Self::BadFacs { addr } => {
                write!(
                    f,
                    "the FADT's FACS at {addr:#x} is unreadable or not a FACS"
                )
            }
        }
    }
}

/// Finds and validates the MADT, starting from the RSDP address in `hvm_start_info` (0 or
/// invalid: the BIOS area is scanned as ACPI 6.5, 5.2.5.1 describes), through the XSDT when
/// the RSDP has one and the RSDT otherwise.
pub(crate) fn find_madt(rsdp_hint: u64) -> Result<Madt<'static>, Error> {
    let (addr, bytes) = find_table(rsdp_hint, MADT_SIGNATURE, "MADT")?
        .ok_or_else(|| no_table(rsdp_hint, |root, addr| Error::NoMadt { root, addr }))?;
    Madt::parse(bytes).map_err(|error| Error::Invalid {
        what: "MADT",
        addr,
        error,
    })
}

/// Finds the FADT as [`find_madt`] finds the MADT, and reads what an S3 suspend needs from it:
/// the FACS (whose signature is checked) and the PM1a control port.
pub(crate) fn find_sleep_control(rsdp_hint: u64) -> Result<SleepControl, Error> {
    let (addr, bytes) = find_table(rsdp_hint, FADT_SIGNATURE, "FADT")?
        .ok_or_else(|| no_table(rsdp_hint, |root, addr| Error::NoFadt { root, addr }))?;
    let control = fadt::sleep_control(bytes).map_err(|error| Error::Invalid {
        what: "FADT",
        addr,
        error,
    })?;
    let facs = phys::bytes(control.facs, FACS_LEN);
    if facs.and_then(|f| f.get(..4)) != Some(FACS_SIGNATURE.as_slice()) {
        return Err(Error::BadFacs { addr: control.facs });
    }
    Ok(control)
}

/// The error for a table the root table does not list (the root is found again: this is the
/// rare path).
fn no_table(rsdp_hint: u64, err: impl Fn(&'static str, u64) -> Error) -> Error {
    match find_rsdp(rsdp_hint).ok().and_then(|r| r.root_table()) {
        Some(RootTable::Xsdt(addr)) => err("XSDT", addr),
        Some(RootTable::Rsdt(addr)) => err("RSDT", u64::from(addr)),
        None => Error::NoRootTable,
    }
}

/// The address and bytes (bounded, not yet validated) of the first table with `signature`
/// that the root table lists, or None if it lists none.
fn find_table(
    rsdp_hint: u64,
    signature: &[u8; 4],
    what: &'static str,
) -> Result<Option<(u64, &'static [u8])>, Error> {
    let rsdp = find_rsdp(rsdp_hint)?;
    match rsdp.root_table().ok_or(Error::NoRootTable)? {
        RootTable::Xsdt(addr) => {
            let tables = xsdt::entries(table(addr, "XSDT")?).map_err(|error| Error::Invalid {
                what: "XSDT",
                addr,
                error,
            })?;
            table_among(tables, signature, what)
        }
        RootTable::Rsdt(addr) => {
            let addr = u64::from(addr);
            let tables = rsdt::entries(table(addr, "RSDT")?).map_err(|error| Error::Invalid {
                what: "RSDT",
                addr,
                error,
            })?;
            table_among(tables, signature, what)
        }
    }
}

/// The first table with `signature` among the tables a root table lists.
fn table_among(
    tables: impl Iterator<Item = u64>,
    signature: &[u8; 4],
    what: &'static str,
) -> Result<Option<(u64, &'static [u8])>, Error> {
    for addr in tables {
        let Some(header) = phys::bytes(addr, SDT_HEADER_SIZE) else {
            continue;
        };
        if header.get(..4) != Some(signature.as_slice()) {
            continue;
        }
        return Ok(Some((addr, table(addr, what)?)));
    }
    Ok(None)
}

/// The RSDP at `hint`, else the first valid one in the BIOS area. An ACPI 1.0 RSDP is only
/// [`RSDP_V1_SIZE`] bytes long, so the hint is read with that length when the longer read fails.
fn find_rsdp(hint: u64) -> Result<Rsdp, Error> {
    let at_hint = phys::bytes(hint, RSDP_V2_SIZE).or_else(|| phys::bytes(hint, RSDP_V1_SIZE));
    let hint_error = match at_hint.map(Rsdp::parse) {
        Some(Ok(rsdp)) => return Ok(rsdp),
        Some(Err(e)) => Some(e),
        None => None,
    };
    phys::bytes(BIOS_AREA_START, (BIOS_AREA_END - BIOS_AREA_START) as usize)
        .and_then(Rsdp::scan)
        .map(|(_, rsdp)| rsdp)
        .ok_or(Error::NoRsdp { hint, hint_error })
}

/// The whole table at `addr` as its header's length field claims, bounded by
/// [`TABLE_MAX_LEN`]. Signature and checksum are left to the firmware decoders.
fn table(addr: u64, what: &'static str) -> Result<&'static [u8], Error> {
    let unreadable = Error::Unreadable { what, addr };
    let header = phys::bytes(addr, SDT_HEADER_SIZE).ok_or(unreadable)?;
    let length = SdtHeader::parse(header)
        .map_err(|error| Error::Invalid { what, addr, error })?
        .length;
    if length as usize > TABLE_MAX_LEN {
        return Err(Error::TooLong { what, addr, length });
    }
    // A length shorter than the header is rejected by the decoders, which see the whole header.
    phys::bytes(addr, (length as usize).max(SDT_HEADER_SIZE)).ok_or(unreadable)
}
