//! Finding the processors: RSDP -> XSDT (or, with ACPI 1.0 firmware, RSDT) -> MADT, decoded in
//! place with the firmware crate.
//!
//! The tables are read where the firmware left them, through the identity map. Every address
//! and length is checked before it is read (see [`crate::phys`]) and no table may claim more
//! than [`TABLE_MAX_LEN`] bytes.

use core::fmt;

use firmware::acpi::AcpiError;
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
        }
    }
}

/// Finds and validates the MADT, starting from the RSDP address in `hvm_start_info` (0 or
/// invalid: the BIOS area is scanned as ACPI 6.5, 5.2.5.1 describes), through the XSDT when
/// the RSDP has one and the RSDT otherwise.
pub(crate) fn find_madt(rsdp_hint: u64) -> Result<Madt<'static>, Error> {
    let rsdp = find_rsdp(rsdp_hint)?;
    match rsdp.root_table().ok_or(Error::NoRootTable)? {
        RootTable::Xsdt(addr) => {
            let tables = xsdt::entries(table(addr, "XSDT")?).map_err(|error| Error::Invalid {
                what: "XSDT",
                addr,
                error,
            })?;
            madt_among(tables, "XSDT", addr)
        }
        RootTable::Rsdt(addr) => {
            let addr = u64::from(addr);
            let tables = rsdt::entries(table(addr, "RSDT")?).map_err(|error| Error::Invalid {
                what: "RSDT",
                addr,
                error,
            })?;
            madt_among(tables, "RSDT", addr)
        }
    }
}

/// The first MADT among the tables a root table (`root` at `root_addr`) lists.
fn madt_among(
    tables: impl Iterator<Item = u64>,
    root: &'static str,
    root_addr: u64,
) -> Result<Madt<'static>, Error> {
    for addr in tables {
        let Some(header) = phys::bytes(addr, SDT_HEADER_SIZE) else {
            continue;
        };
        if header.get(..4) != Some(MADT_SIGNATURE.as_slice()) {
            continue;
        }
        let bytes = table(addr, "MADT")?;
        return Madt::parse(bytes).map_err(|error| Error::Invalid {
            what: "MADT",
            addr,
            error,
        });
    }
    Err(Error::NoMadt {
        root,
        addr: root_addr,
    })
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
