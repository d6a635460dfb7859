//! The identity page tables of a long-mode entry: 4 GiB with 2 MiB pages (this project's hosts
//! have no 1 GiB pages), written once before any vCPU runs, so that no page-table page is
//! written while in use (shadow paging would have to emulate the write).

use firmware::layout::{LARGE_PAGE_SIZE, PAGE_SIZE, PD_COUNT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryError, GuestMemoryMmap};

use crate::loader::BootLayout;

/// Page-table entry flags (Intel SDM Vol. 3A, 4.5, Tables 4-15 to 4-20).
const PTE_PRESENT: u64 = 1 << 0;
/// Writable.
const PTE_WRITABLE: u64 = 1 << 1;
/// Page size: this PDE maps a 2 MiB page.
const PTE_PAGE_SIZE: u64 = 1 << 7;

/// Entries in one page-table page (Intel SDM Vol. 3A, 4.5).
const ENTRIES_PER_TABLE: u64 = 512;

/// Writes the PML4, the PDPT and the page directories mapping the first 4 GiB 1:1, where
/// `layout` puts them.
pub(crate) fn write_identity_map(
    mem: &GuestMemoryMmap,
    layout: &BootLayout,
) -> Result<(), GuestMemoryError> {
    let table = PTE_PRESENT | PTE_WRITABLE;
    let (pml4, pdpt_addr, pd_addr) = (layout.pml4, layout.pdpt(), layout.pd());
    mem.write_obj(pdpt_addr | table, GuestAddress(pml4))?;
    let mut pdpt = Vec::with_capacity(PAGE_SIZE as usize);
    let mut pds = Vec::with_capacity((PD_COUNT * PAGE_SIZE) as usize);
    for d in 0..PD_COUNT {
        pdpt.extend_from_slice(&((pd_addr + d * PAGE_SIZE) | table).to_le_bytes());
        for e in 0..ENTRIES_PER_TABLE {
            let addr = (d * ENTRIES_PER_TABLE + e) * LARGE_PAGE_SIZE;
            pds.extend_from_slice(&(addr | table | PTE_PAGE_SIZE).to_le_bytes());
        }
    }
    mem.write_slice(&pdpt, GuestAddress(pdpt_addr))?;
    mem.write_slice(&pds, GuestAddress(pd_addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware::layout::{PDPT_ADDR, PD_ADDR, PML4_ADDR};

    #[test]
    fn identity_map_uses_2mib_pages_and_covers_4gib() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        write_identity_map(&mem, &BootLayout::FIXED).unwrap();
        let pml4: u64 = mem.read_obj(GuestAddress(PML4_ADDR)).unwrap();
        assert_eq!(pml4, PDPT_ADDR | 3);
        let pdpt3: u64 = mem.read_obj(GuestAddress(PDPT_ADDR + 24)).unwrap();
        assert_eq!(pdpt3, (PD_ADDR + 3 * PAGE_SIZE) | 3);
        let last: u64 = mem
            .read_obj(GuestAddress(PD_ADDR + PD_COUNT * PAGE_SIZE - 8))
            .unwrap();
        assert_eq!(last, ((4u64 << 30) - LARGE_PAGE_SIZE) | 0x83);
    }

    #[test]
    fn moved_tables_point_at_each_other() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let layout = BootLayout {
            pml4: 0x2_0000,
            ..BootLayout::FIXED
        };
        write_identity_map(&mem, &layout).unwrap();
        let pml4: u64 = mem.read_obj(GuestAddress(0x2_0000)).unwrap();
        assert_eq!(pml4, 0x2_1000 | 3);
        let pdpt0: u64 = mem.read_obj(GuestAddress(0x2_1000)).unwrap();
        assert_eq!(pdpt0, 0x2_2000 | 3);
        let untouched: u64 = mem.read_obj(GuestAddress(PML4_ADDR)).unwrap();
        assert_eq!(untouched, 0);
    }
}
