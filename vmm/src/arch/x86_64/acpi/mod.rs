//! The ACPI tables sipi hands its guest: RSDP, XSDT and RSDT, FADT with its FACS and DSDT,
//! and MADT (ACPI 6.5, 5.2).
//!
//! The tables are built with the `acpi_tables` crate and the firmware crate's MADT structure
//! encoders, which the guest's decoders mirror. The RSDP goes where an OS scans for it
//! ([`RSDP_ADDR`], in the BIOS area) and names both root tables: the XSDT (64-bit pointers)
//! and, for kernels that only know ACPI 1.0, an RSDT (32-bit pointers) listing the same
//! tables. The other tables are packed after it from [`ACPI_TABLES_ADDR`], each 8-byte aligned
//! (the FACS 64-byte aligned), the MADT last, and must end by [`ACPI_TABLES_END`]. With 16-byte
//! Local x2APIC structures this holds up to about 8000 vCPUs, twice KVM's largest vCPU ID.
//!
//! The FADT describes the PM1a blocks of [`crate::devices::acpi_pm`], and the DSDT holds only
//! `\_S5`, so an ACPI-aware kernel can power the VM off; sipi's own guest needs only the MADT.

mod dsdt;
mod fadt;
mod madt;
#[cfg(test)]
mod tests;

use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::Aml;
use firmware::acpi::rsdp::{RSDP_V1_SIZE, RSDP_V2_SIZE};
use firmware::acpi::sdt::SDT_HEADER_SIZE;
use firmware::layout::{range_within, ACPI_TABLES_ADDR, ACPI_TABLES_END, RSDP_ADDR};
use vm_memory::{Bytes, GuestAddress, GuestMemoryError, GuestMemoryMmap};

/// OEM ID in every table sipi builds (ACPI 6.5, Tables 5.3 and 5.4).
const OEM_ID: [u8; 6] = *b"SIPIVM";
/// OEM revision in every table sipi builds.
const OEM_REVISION: u32 = 1;
/// OEM table ID of the XSDT.
const XSDT_OEM_TABLE_ID: [u8; 8] = *b"SIPIXSDT";
/// OEM table ID of the RSDT.
const RSDT_OEM_TABLE_ID: [u8; 8] = *b"SIPIRSDT";
/// Size of one XSDT entry: a 64-bit table address (ACPI 6.5, Table 5.6).
const XSDT_ENTRY_SIZE: u64 = 8;
/// Size of one RSDT entry: a 32-bit table address (ACPI 6.5, Table 5.5).
const RSDT_ENTRY_SIZE: u64 = 4;
/// RSDT revision (ACPI 6.5, Table 5.5).
const RSDT_REVISION: u8 = 1;
/// Tables the root tables list: the FADT and the MADT.
const ROOT_ENTRIES: u64 = 2;
/// Offset of the RSDT address in the RSDP (ACPI 6.5, Table 5.3).
const RSDP_RSDT_ADDRESS_OFFSET: usize = 16;
/// Offset of the RSDP's ACPI 1.0 checksum.
const RSDP_CHECKSUM_OFFSET: usize = 8;
/// Offset of the RSDP's extended checksum.
const RSDP_EXTENDED_CHECKSUM_OFFSET: usize = 32;
/// Alignment of every table after the RSDP. ACPI requires none for the XSDT's targets, but
/// 8 bytes keeps their 64-bit fields naturally aligned for the guest.
const TABLE_ALIGN: u64 = 8;
/// Offset of the Revision field in the system description table header (ACPI 6.5, Table 5.4).
const SDT_REVISION_OFFSET: usize = 8;
/// Offset of the Checksum field in the system description table header (ACPI 6.5, Table 5.4).
const SDT_CHECKSUM_OFFSET: usize = 9;

// The RSDP must fit before the other tables, and those must start aligned.
const _: () = assert!(RSDP_ADDR + RSDP_V2_SIZE as u64 <= ACPI_TABLES_ADDR);
const _: () = assert!(ACPI_TABLES_ADDR.is_multiple_of(TABLE_ALIGN));

/// Why the ACPI tables could not be built or written.
#[derive(Debug, thiserror::Error)]
pub enum AcpiError {
    /// A VM has at least its boot processor.
    #[error("the ACPI tables cannot describe a VM with no vCPUs")]
    NoVcpus,
    /// The tables outgrow the ACPI area of the guest memory map.
    #[error(
        "the {table} for {vcpus} vCPUs needs {len} bytes at {addr:#x}, past the end of the \
         ACPI area at {end:#x}"
    )]
    DoesNotFit {
        /// Signature of the table that does not fit.
        table: &'static str,
        /// vCPUs requested.
        vcpus: u32,
        /// Where the table would start.
        addr: u64,
        /// Its length in bytes.
        len: u64,
        /// End (exclusive) of the ACPI area.
        end: u64,
    },
    /// Guest memory does not cover a table's range.
    #[error("cannot write {len} bytes of ACPI tables to guest memory at {addr:#x}")]
    GuestMemory {
        /// Guest-physical address of the table.
        addr: u64,
        /// Its length in bytes.
        len: usize,
        /// What guest memory reported.
        #[source]
        source: GuestMemoryError,
    },
}

/// The ACPI tables of one VM, built and placed at their guest-physical addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiTables {
    /// (guest address, bytes) of every table, RSDP first.
    tables: Vec<(u64, Vec<u8>)>,
}

impl AcpiTables {
    /// Builds the tables for `vcpus` vCPUs whose APIC IDs (and ACPI processor UIDs) are
    /// `0..vcpus`.
    ///
    /// Costs one pass over the vCPUs (the MADT's checksum is kept running). Fails if `vcpus`
    /// is zero or the tables would not fit below [`ACPI_TABLES_END`]; the size is checked
    /// before anything is built.
    pub fn build(vcpus: u32) -> Result<AcpiTables, AcpiError> {
        if vcpus == 0 {
            return Err(AcpiError::NoVcpus);
        }
        let header = SDT_HEADER_SIZE as u64;
        let xsdt_addr = ACPI_TABLES_ADDR;
        let xsdt_len = header + ROOT_ENTRIES * XSDT_ENTRY_SIZE;
        check_fits("XSDT", vcpus, xsdt_addr, xsdt_len)?;
        let rsdt_addr = align_up(xsdt_addr + xsdt_len);
        let rsdt_len = header + ROOT_ENTRIES * RSDT_ENTRY_SIZE;
        check_fits("RSDT", vcpus, rsdt_addr, rsdt_len)?;
        let facs_addr = (rsdt_addr + rsdt_len).next_multiple_of(fadt::FACS_ALIGN);
        let facs = fadt::facs();
        check_fits("FACS", vcpus, facs_addr, facs.len() as u64)?;
        let fadt_addr = align_up(facs_addr + facs.len() as u64);
        let dsdt = dsdt::build();
        let fadt_len = acpi_tables::fadt::FADT::len() as u64;
        check_fits("FADT", vcpus, fadt_addr, fadt_len)?;
        let dsdt_addr = align_up(fadt_addr + fadt_len);
        check_fits("DSDT", vcpus, dsdt_addr, dsdt.len() as u64)?;
        let madt_addr = align_up(dsdt_addr + dsdt.len() as u64);
        check_fits("MADT", vcpus, madt_addr, madt::len(vcpus))?;

        let madt = madt::build(vcpus);
        // The computed length decided the placement; the real one must agree with it.
        check_fits("MADT", vcpus, madt_addr, madt.len() as u64)?;
        // Every address is inside the BIOS area, below 1 MiB.
        let fadt = fadt::build(dsdt_addr as u32, facs_addr as u32);

        let mut xsdt = XSDT::new(OEM_ID, XSDT_OEM_TABLE_ID, OEM_REVISION);
        xsdt.add_entry(fadt_addr);
        xsdt.add_entry(madt_addr);
        let xsdt = to_bytes(&xsdt);
        let mut rsdt = Sdt::new(
            *b"RSDT",
            SDT_HEADER_SIZE as u32,
            RSDT_REVISION,
            OEM_ID,
            RSDT_OEM_TABLE_ID,
            OEM_REVISION,
        );
        rsdt.append(fadt_addr as u32);
        rsdt.append(madt_addr as u32);
        let rsdt = rsdt.as_slice().to_vec();
        let rsdp = rsdp(xsdt_addr, rsdt_addr as u32);

        Ok(AcpiTables {
            tables: vec![
                (RSDP_ADDR, rsdp),
                (xsdt_addr, xsdt),
                (rsdt_addr, rsdt),
                (facs_addr, facs),
                (fadt_addr, fadt),
                (dsdt_addr, dsdt),
                (madt_addr, madt),
            ],
        })
    }

    /// Writes every table into guest memory at its address.
    pub fn write_to(&self, mem: &GuestMemoryMmap) -> Result<(), AcpiError> {
        for (addr, bytes) in &self.tables {
            mem.write_slice(bytes, GuestAddress(*addr))
                .map_err(|source| AcpiError::GuestMemory {
                    addr: *addr,
                    len: bytes.len(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Guest-physical address of the RSDP (what PVH's `rsdp_paddr` carries).
    pub fn rsdp_addr(&self) -> u64 {
        RSDP_ADDR
    }

    /// (guest address, bytes) of every table, in address order: RSDP, XSDT, RSDT, FACS,
    /// FADT, DSDT, MADT.
    pub fn tables(&self) -> &[(u64, Vec<u8>)] {
        &self.tables
    }

    /// The table with this signature (the RSDP's is "RSD "), with its guest address.
    pub fn table(&self, signature: &[u8; 4]) -> Option<(u64, &[u8])> {
        self.tables
            .iter()
            .find(|(_, bytes)| bytes.starts_with(signature))
            .map(|(addr, bytes)| (*addr, bytes.as_slice()))
    }
}

/// The ACPI 2.0 RSDP naming both root tables. `acpi_tables`' RSDP has no RSDT field setter, so
/// the address is patched in and both checksums recomputed.
fn rsdp(xsdt_addr: u64, rsdt_addr: u32) -> Vec<u8> {
    let mut b = to_bytes(&Rsdp::new(OEM_ID, xsdt_addr));
    b[RSDP_RSDT_ADDRESS_OFFSET..][..4].copy_from_slice(&rsdt_addr.to_le_bytes());
    b[RSDP_CHECKSUM_OFFSET] = 0;
    b[RSDP_CHECKSUM_OFFSET] = firmware::acpi::checksum(&b[..RSDP_V1_SIZE]);
    b[RSDP_EXTENDED_CHECKSUM_OFFSET] = 0;
    b[RSDP_EXTENDED_CHECKSUM_OFFSET] = firmware::acpi::checksum(&b[..RSDP_V2_SIZE]);
    b
}

/// Serializes an `acpi_tables` table.
fn to_bytes(table: &dyn Aml) -> Vec<u8> {
    let mut bytes = Vec::new();
    table.to_aml_bytes(&mut bytes);
    bytes
}

/// Rounds `addr` up to [`TABLE_ALIGN`]. Addresses here are below 1 MiB, so this cannot
/// overflow.
fn align_up(addr: u64) -> u64 {
    addr.next_multiple_of(TABLE_ALIGN)
}

/// Checks that `[addr, addr + len)` lies in the ACPI table area.
fn check_fits(table: &'static str, vcpus: u32, addr: u64, len: u64) -> Result<(), AcpiError> {
    if range_within(addr, len, ACPI_TABLES_ADDR, ACPI_TABLES_END) {
        Ok(())
    } else {
        Err(AcpiError::DoesNotFit {
            table,
            vcpus,
            addr,
            len,
            end: ACPI_TABLES_END,
        })
    }
}

/// Overwrites a field of a serialized table's header and adjusts the header's checksum by the
/// difference, so the table still sums to zero without summing it again. Does nothing if the
/// field lies outside `table` or covers the checksum itself.
fn patch_header_field(table: &mut [u8], offset: usize, value: &[u8]) {
    let Some(end) = offset.checked_add(value.len()) else {
        return;
    };
    let covers_checksum = (offset..end).contains(&SDT_CHECKSUM_OFFSET);
    if end > table.len() || table.len() <= SDT_CHECKSUM_OFFSET || covers_checksum {
        return;
    }
    let old = firmware::acpi::sum(&table[offset..end]);
    let new = firmware::acpi::sum(value);
    table[offset..end].copy_from_slice(value);
    let checksum = &mut table[SDT_CHECKSUM_OFFSET];
    *checksum = checksum.wrapping_add(old).wrapping_sub(new);
}
