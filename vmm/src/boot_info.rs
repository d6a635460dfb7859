//! The PVH boot hand-off: `hvm_start_info`, its memory map and the command line, written where
//! firmware::layout says.

use firmware::layout::{
    BIOS_AREA_END, BIOS_AREA_START, CMDLINE_ADDR, CMDLINE_MAX, LOW_RAM_END, MEMMAP_ADDR,
    MEMMAP_MAX_ENTRIES, RSDP_ADDR, START_INFO_ADDR,
};
use firmware::pvh::{
    memmap_type, MemmapEntry, StartInfo, START_INFO_VERSION, XEN_HVM_START_MAGIC_VALUE,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// Why the boot information could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BootInfoError {
    /// Command line too long.
    #[error("the kernel command line is {len} bytes, more than the {max} that fit")]
    CmdlineTooLong { len: usize, max: usize },
    /// Command line with a NUL.
    #[error("the kernel command line contains a NUL byte")]
    CmdlineNul,
    /// Too many memory regions for the memory map area.
    #[error("the guest memory map needs {0} entries, more than fit")]
    TooManyRegions(usize),
    /// Guest memory write failed.
    #[error("cannot write the boot information into guest memory")]
    Write(#[source] vm_memory::GuestMemoryError),
}

/// The PVH memory map for `mem`: low RAM, the reserved BIOS area holding the ACPI tables, and
/// each RAM region above 1 MiB.
pub fn memory_map(mem: &GuestMemoryMmap) -> Vec<MemmapEntry> {
    let mut map = vec![
        MemmapEntry {
            addr: 0,
            size: LOW_RAM_END,
            kind: memmap_type::RAM,
        },
        MemmapEntry {
            addr: BIOS_AREA_START,
            size: BIOS_AREA_END - BIOS_AREA_START,
            kind: memmap_type::RESERVED,
        },
    ];
    for r in mem.iter() {
        let start = r.start_addr().0.max(BIOS_AREA_END);
        let end = r.start_addr().0 + r.len();
        if end > start {
            map.push(MemmapEntry {
                addr: start,
                size: end - start,
                kind: memmap_type::RAM,
            });
        }
    }
    map
}

/// Writes start_info, the memory map and `cmdline` into guest memory.
pub fn write(mem: &GuestMemoryMmap, cmdline: &str) -> Result<(), BootInfoError> {
    if cmdline.len() >= CMDLINE_MAX {
        return Err(BootInfoError::CmdlineTooLong {
            len: cmdline.len(),
            max: CMDLINE_MAX - 1,
        });
    }
    if cmdline.as_bytes().contains(&0) {
        return Err(BootInfoError::CmdlineNul);
    }
    let map = memory_map(mem);
    if map.len() > MEMMAP_MAX_ENTRIES {
        return Err(BootInfoError::TooManyRegions(map.len()));
    }
    let mut bytes = Vec::with_capacity(map.len() * firmware::pvh::MEMMAP_ENTRY_SIZE);
    for e in &map {
        bytes.extend_from_slice(&e.to_bytes());
    }
    let info = StartInfo {
        magic: XEN_HVM_START_MAGIC_VALUE,
        version: START_INFO_VERSION,
        flags: 0,
        nr_modules: 0,
        modlist_paddr: 0,
        cmdline_paddr: CMDLINE_ADDR,
        rsdp_paddr: RSDP_ADDR,
        memmap_paddr: MEMMAP_ADDR,
        memmap_entries: map.len() as u32,
    };
    let mut line = Vec::with_capacity(cmdline.len() + 1);
    line.extend_from_slice(cmdline.as_bytes());
    line.push(0);
    mem.write_slice(&bytes, GuestAddress(MEMMAP_ADDR))
        .map_err(BootInfoError::Write)?;
    mem.write_slice(&line, GuestAddress(CMDLINE_ADDR))
        .map_err(BootInfoError::Write)?;
    mem.write_slice(&info.to_bytes(), GuestAddress(START_INFO_ADDR))
        .map_err(BootInfoError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware::pvh::START_INFO_SIZE;

    #[test]
    fn writes_a_start_info_a_pvh_kernel_can_read() {
        let mem = GuestMemoryMmap::from_ranges(&crate::memory::ram_ranges(64 << 20)).unwrap();
        write(&mem, "sipi.bringup=serial quiet").unwrap();
        let mut raw = [0u8; START_INFO_SIZE];
        mem.read_slice(&mut raw, GuestAddress(START_INFO_ADDR))
            .unwrap();
        let info = StartInfo::from_bytes(&raw).unwrap();
        assert_eq!((info.rsdp_paddr, info.memmap_entries), (RSDP_ADDR, 3));
        let mut line = [0u8; 26];
        mem.read_slice(&mut line, GuestAddress(info.cmdline_paddr))
            .unwrap();
        assert_eq!(&line, b"sipi.bringup=serial quiet\0");
        let mut e = [0u8; 24];
        mem.read_slice(&mut e, GuestAddress(info.memmap_paddr + 48))
            .unwrap();
        let high = MemmapEntry::from_bytes(&e).unwrap();
        assert_eq!(
            (high.addr, high.size, high.kind),
            (BIOS_AREA_END, (64 << 20) - BIOS_AREA_END, memmap_type::RAM)
        );
    }

    #[test]
    fn rejects_bad_command_lines() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 2 << 20)]).unwrap();
        let long = "x".repeat(CMDLINE_MAX);
        assert!(matches!(
            write(&mem, &long),
            Err(BootInfoError::CmdlineTooLong { .. })
        ));
        assert!(matches!(
            write(&mem, "a\0b"),
            Err(BootInfoError::CmdlineNul)
        ));
    }
}
