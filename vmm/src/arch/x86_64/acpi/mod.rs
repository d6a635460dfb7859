//! The ACPI tables sipi hands its guest: RSDP, XSDT and RSDT, FADT with its FACS and DSDT,
//! MADT (ACPI 6.5, 5.2), and the HPET table (IA-PC HPET 1.0a) for the HPET device.
//!
//! Every table is written once, with its final contents: the placement is computed first
//! (lengths are known from the vCPU count), then each table is built knowing the addresses it
//! names. The `acpi_tables` crate provides what it models fully: the FADT and its Generic
//! Address Structures, the FACS, the XSDT, the DSDT's AML, and [`Sdt`], the generic table
//! builder that writes the header (signature, length, revision, OEM fields, checksum) of the
//! RSDT, the DSDT and the MADT. The MADT's interrupt controller structures are the firmware
//! crate's encoders, which the guest's decoders mirror. The RSDP is written here field by
//! field, because `acpi_tables`' RSDP cannot carry an RSDT address.
//!
//! The RSDP goes where an OS scans for it ([`RSDP_ADDR`], in the BIOS area) and names both root
//! tables: the XSDT (64-bit pointers) and, for kernels that only know ACPI 1.0, an RSDT (32-bit
//! pointers) listing the same tables. The other tables are packed after it from
//! [`ACPI_TABLES_ADDR`], each 8-byte aligned (the FACS 64-byte aligned), the MADT last (the
//! root tables list it second, before the HPET table, so readers that stop early find it), and must
//! end by [`ACPI_TABLES_END`]. With 16-byte Local x2APIC structures this holds up to about 8000
//! vCPUs, twice KVM's largest vCPU ID.
//!
//! The FADT describes the PM1a blocks at the ports of firmware::layout (which the ACPI PM device
//! emulates), and the DSDT holds only `\_S5`, so an ACPI-aware kernel can power the VM off;
//! sipi's own guest needs only the MADT.

mod dsdt;
mod fadt;
mod hpet;
mod madt;
#[cfg(test)]
mod tests;

use crate::arch::x86_64::topology::Topology;
use std::mem::size_of;

use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::Aml;
use firmware::acpi::checksum;
use firmware::acpi::rsdp::{RSDP_REVISION_ACPI_2, RSDP_SIGNATURE, RSDP_V1_SIZE, RSDP_V2_SIZE};
use firmware::acpi::rsdt::RSDT_SIGNATURE;
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
/// RSDT revision (ACPI 6.5, Table 5.5).
const RSDT_REVISION: u8 = 1;
/// Tables the root tables list: the FADT, the MADT and the HPET table.
const ROOT_ENTRIES: u64 = 3;
/// Alignment of every table after the RSDP. ACPI requires none for the XSDT's targets, but
/// 8 bytes keeps their 64-bit fields naturally aligned for the guest.
const TABLE_ALIGN: u64 = 8;

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
pub(crate) struct AcpiTables {
    /// (guest address, bytes) of every table in address order: RSDP, XSDT, RSDT, FACS, FADT,
    /// DSDT, HPET, MADT.
    tables: Vec<(u64, Vec<u8>)>,
}

impl AcpiTables {
    /// Builds the tables for the topology's vCPUs.
    ///
    /// Costs one pass over the vCPUs. Fails if `vcpus` is zero or the tables would not fit
    /// below [`ACPI_TABLES_END`]; the size is checked before anything is built.
    pub(crate) fn build(topology: Topology) -> Result<AcpiTables, AcpiError> {
        let vcpus = topology.vcpus();
        if vcpus == 0 {
            return Err(AcpiError::NoVcpus);
        }
        // Placement first: every length is known without building the table.
        let header = SDT_HEADER_SIZE as u64;
        let xsdt_addr = ACPI_TABLES_ADDR;
        let xsdt_len = header + ROOT_ENTRIES * size_of::<u64>() as u64;
        check_fits("XSDT", vcpus, xsdt_addr, xsdt_len)?;
        let rsdt_addr = align_up(xsdt_addr + xsdt_len);
        let rsdt_len = header + ROOT_ENTRIES * size_of::<u32>() as u64;
        check_fits("RSDT", vcpus, rsdt_addr, rsdt_len)?;
        let facs_addr = (rsdt_addr + rsdt_len).next_multiple_of(fadt::FACS_ALIGN);
        let facs = fadt::facs();
        check_fits("FACS", vcpus, facs_addr, facs.len() as u64)?;
        let fadt_addr = align_up(facs_addr + facs.len() as u64);
        let fadt_len = acpi_tables::fadt::FADT::len() as u64;
        check_fits("FADT", vcpus, fadt_addr, fadt_len)?;
        let dsdt_addr = align_up(fadt_addr + fadt_len);
        let dsdt = dsdt::build();
        check_fits("DSDT", vcpus, dsdt_addr, dsdt.len() as u64)?;
        let hpet_addr = align_up(dsdt_addr + dsdt.len() as u64);
        let hpet = hpet::build();
        check_fits("HPET", vcpus, hpet_addr, hpet.len() as u64)?;
        let madt_addr = align_up(hpet_addr + hpet.len() as u64);
        check_fits("MADT", vcpus, madt_addr, madt::len(topology))?;

        // Then each table, once, with the addresses it names.
        let madt = madt::build(topology);
        // The computed length decided the placement; the real one must agree with it.
        check_fits("MADT", vcpus, madt_addr, madt.len() as u64)?;
        let fadt = fadt::build(addr32(dsdt_addr), addr32(facs_addr));
        debug_assert_eq!(fadt.len() as u64, fadt_len);
        let mut xsdt = XSDT::new(OEM_ID, XSDT_OEM_TABLE_ID, OEM_REVISION);
        xsdt.add_entry(fadt_addr);
        xsdt.add_entry(madt_addr);
        xsdt.add_entry(hpet_addr);
        let mut xsdt_bytes = Vec::with_capacity(xsdt_len as usize);
        xsdt.to_aml_bytes(&mut xsdt_bytes);
        let rsdt_body: Vec<u8> = [fadt_addr, madt_addr, hpet_addr]
            .into_iter()
            .flat_map(|a| addr32(a).to_le_bytes())
            .collect();
        let rsdt = sdt(
            *RSDT_SIGNATURE,
            RSDT_REVISION,
            RSDT_OEM_TABLE_ID,
            &rsdt_body,
        );

        Ok(AcpiTables {
            tables: vec![
                (RSDP_ADDR, rsdp(xsdt_addr, addr32(rsdt_addr))),
                (xsdt_addr, xsdt_bytes),
                (rsdt_addr, rsdt),
                (facs_addr, facs),
                (fadt_addr, fadt),
                (dsdt_addr, dsdt),
                (hpet_addr, hpet),
                (madt_addr, madt),
            ],
        })
    }

    /// The guest address of the FACS, whose waking vector a resume from S3 starts at.
    pub(crate) fn facs_addr(&self) -> u64 {
        self.tables
            .iter()
            .find(|(_, bytes)| bytes.starts_with(&firmware::acpi::facs::FACS_SIGNATURE))
            .map_or(0, |(addr, _)| *addr)
    }

    /// Writes every table into guest memory at its address.
    pub(crate) fn write_to(&self, mem: &GuestMemoryMmap) -> Result<(), AcpiError> {
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
}

/// A system description table: the header (ACPI 6.5, Table 5.4) with this signature and
/// revision and sipi's OEM fields, then `body`. `acpi_tables`' [`Sdt`] writes the header and
/// sets the length and checksum as the body is appended, in one pass over the body.
fn sdt(signature: [u8; 4], revision: u8, oem_table_id: [u8; 8], body: &[u8]) -> Vec<u8> {
    let mut table = Sdt::new(
        signature,
        SDT_HEADER_SIZE as u32,
        revision,
        OEM_ID,
        oem_table_id,
        OEM_REVISION,
    );
    table.append_slice(body);
    table.as_slice().to_vec()
}

/// The ACPI 2.0 RSDP (ACPI 6.5, 5.2.5.3, Table 5.3) naming both root tables, written field by
/// field in table order, each checksum computed from the fields it covers.
fn rsdp(xsdt_addr: u64, rsdt_addr: u32) -> Vec<u8> {
    let revision = [RSDP_REVISION_ACPI_2];
    let rsdt = rsdt_addr.to_le_bytes();
    let length = (RSDP_V2_SIZE as u32).to_le_bytes();
    let xsdt = xsdt_addr.to_le_bytes();
    let reserved = [0u8; 3];
    let v1_checksum = checksum(&[RSDP_SIGNATURE.as_slice(), &OEM_ID, &revision, &rsdt].concat());
    // The ACPI 1.0 part sums to zero with its checksum, so the extended checksum, which covers
    // the whole structure, only has to balance the fields after it.
    let extended_checksum = checksum(&[length.as_slice(), &xsdt, &reserved].concat());
    let bytes = [
        RSDP_SIGNATURE.as_slice(),
        &[v1_checksum],
        &OEM_ID,
        &revision,
        &rsdt,
        &length,
        &xsdt,
        &[extended_checksum],
        &reserved,
    ]
    .concat();
    debug_assert_eq!(bytes.len(), RSDP_V2_SIZE);
    debug_assert_eq!(firmware::acpi::sum(&bytes[..RSDP_V1_SIZE]), 0);
    bytes
}

/// A table address as a 32-bit ACPI field holds it (the RSDT's entries, the RSDP's RSDT
/// address, the FADT's FACS and DSDT). Every table lies in the BIOS area, below 4 GiB.
fn addr32(addr: u64) -> u32 {
    const _: () = assert!(ACPI_TABLES_END <= u32::MAX as u64);
    debug_assert!(addr < ACPI_TABLES_END);
    addr as u32
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
