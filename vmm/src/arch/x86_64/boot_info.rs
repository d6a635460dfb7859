//! The boot hand-off, written where firmware::layout says: the PVH `hvm_start_info` with its
//! memory map, the command line, and for a multiboot kernel the multiboot information with its
//! own memory map, boot loader name and (empty) module list.

use firmware::cmdline::SIPI_OPTION_PREFIX;
use firmware::layout::{
    BIOS_AREA_END, BIOS_AREA_START, CMDLINE_ADDR, CMDLINE_MAX, KERNEL_MIN_ADDR, LOW_RAM_END,
    MEMMAP_ADDR, MEMMAP_MAX_ENTRIES, MULTIBOOT_INFO_ADDR, MULTIBOOT_LOADER_NAME_ADDR,
    MULTIBOOT_MMAP_ADDR, MULTIBOOT_MODS_ADDR, RSDP_ADDR, START_INFO_ADDR,
};
use firmware::multiboot::{
    self, MULTIBOOT_INFO_BOOT_LOADER_NAME, MULTIBOOT_INFO_CMDLINE, MULTIBOOT_INFO_MEMORY,
    MULTIBOOT_INFO_MEM_MAP, MULTIBOOT_INFO_MODS, MULTIBOOT_MMAP_ENTRY_SIZE,
};
use firmware::pvh::{
    memmap_type, MemmapEntry, StartInfo, START_INFO_VERSION, XEN_HVM_START_MAGIC_VALUE,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::loader::Entry;

/// The boot loader name a multiboot kernel finds (`boot_loader_name`).
pub(crate) const BOOT_LOADER_NAME: &str = concat!("sipi ", env!("CARGO_PKG_VERSION"));
/// The first word of a multiboot command line when the kernel has no file name.
const UNNAMED_KERNEL: &str = "kernel";

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
pub(crate) fn memory_map(mem: &GuestMemoryMmap) -> Vec<MemmapEntry> {
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

/// The command line a multiboot kernel gets: its file name, then the user's words (those of
/// `cmdline` that are not sipi's `sipi.*` options), as QEMU's `-kernel` passes them.
pub(crate) fn multiboot_cmdline(kernel_name: Option<&str>, cmdline: &str) -> String {
    let mut line = String::from(kernel_name.unwrap_or(UNNAMED_KERNEL));
    for word in cmdline
        .split_ascii_whitespace()
        .filter(|w| !w.starts_with(SIPI_OPTION_PREFIX))
    {
        line.push(' ');
        line.push_str(word);
    }
    line
}

/// KiB of RAM from 1 MiB up to the first hole (multiboot `mem_upper`).
fn mem_upper_kib(mem: &GuestMemoryMmap) -> u32 {
    mem.iter()
        .find(|r| {
            let start = r.start_addr().0;
            start <= KERNEL_MIN_ADDR && start + r.len() > KERNEL_MIN_ADDR
        })
        .map_or(0, |r| {
            let kib = (r.start_addr().0 + r.len() - KERNEL_MIN_ADDR) >> 10;
            u32::try_from(kib).unwrap_or(u32::MAX)
        })
}

/// Writes the multiboot information, its memory map (the same regions as the PVH one), the
/// boot loader name and the empty module list. The command line is at [`CMDLINE_ADDR`].
fn write_multiboot(mem: &GuestMemoryMmap, map: &[MemmapEntry]) -> Result<(), BootInfoError> {
    let mut mmap = Vec::with_capacity(map.len() * MULTIBOOT_MMAP_ENTRY_SIZE);
    for e in map {
        let kind = match e.kind {
            memmap_type::RAM => multiboot::memory_type::AVAILABLE,
            memmap_type::ACPI => multiboot::memory_type::ACPI_RECLAIMABLE,
            _ => multiboot::memory_type::RESERVED,
        };
        let entry = multiboot::MmapEntry {
            addr: e.addr,
            len: e.size,
            kind,
        };
        mmap.extend_from_slice(&entry.to_bytes());
    }
    let info = multiboot::Info {
        flags: MULTIBOOT_INFO_MEMORY
            | MULTIBOOT_INFO_CMDLINE
            | MULTIBOOT_INFO_MODS
            | MULTIBOOT_INFO_MEM_MAP
            | MULTIBOOT_INFO_BOOT_LOADER_NAME,
        mem_lower: (LOW_RAM_END >> 10) as u32,
        mem_upper: mem_upper_kib(mem),
        cmdline: CMDLINE_ADDR as u32,
        mods_count: 0,
        mods_addr: MULTIBOOT_MODS_ADDR as u32,
        mmap_length: mmap.len() as u32,
        mmap_addr: MULTIBOOT_MMAP_ADDR as u32,
        boot_loader_name: MULTIBOOT_LOADER_NAME_ADDR as u32,
    };
    let mut name = BOOT_LOADER_NAME.as_bytes().to_vec();
    name.push(0);
    mem.write_slice(&mmap, GuestAddress(MULTIBOOT_MMAP_ADDR))
        .map_err(BootInfoError::Write)?;
    mem.write_slice(&name, GuestAddress(MULTIBOOT_LOADER_NAME_ADDR))
        .map_err(BootInfoError::Write)?;
    mem.write_slice(&info.to_bytes(), GuestAddress(MULTIBOOT_INFO_ADDR))
        .map_err(BootInfoError::Write)
}

/// Writes start_info, the memory map and the command line into guest memory, and the
/// multiboot information when the kernel is entered through multiboot. `cmdline` is the whole
/// command line (sipi's options and the user's); a multiboot kernel gets
/// [`multiboot_cmdline`] of it instead, with `kernel_name` as its first word.
pub(crate) fn write(
    mem: &GuestMemoryMmap,
    cmdline: &str,
    entry: Entry,
    kernel_name: Option<&str>,
) -> Result<(), BootInfoError> {
    let multiboot_line;
    let cmdline = match entry {
        Entry::Multiboot(_) => {
            multiboot_line = multiboot_cmdline(kernel_name, cmdline);
            multiboot_line.as_str()
        }
        Entry::Pvh(_) | Entry::Long(_) => cmdline,
    };
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
    if let Entry::Multiboot(_) = entry {
        write_multiboot(mem, &map)?;
    }
    mem.write_slice(&info.to_bytes(), GuestAddress(START_INFO_ADDR))
        .map_err(BootInfoError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware::multiboot::{Info, MmapEntry as MbEntry, MULTIBOOT_INFO_SIZE};
    use firmware::pvh::START_INFO_SIZE;

    fn read<const N: usize>(mem: &GuestMemoryMmap, addr: u64) -> [u8; N] {
        let mut b = [0u8; N];
        mem.read_slice(&mut b, GuestAddress(addr)).unwrap();
        b
    }

    fn cstr(mem: &GuestMemoryMmap, addr: u64) -> String {
        let raw: [u8; 256] = read(mem, addr);
        let end = raw.iter().position(|b| *b == 0).expect("NUL-terminated");
        String::from_utf8(raw[..end].to_vec()).unwrap()
    }

    #[test]
    fn writes_a_complete_start_info_per_the_pvh_abi() {
        let mem = GuestMemoryMmap::from_ranges(&crate::memory::ram_ranges(64 << 20)).unwrap();
        write(
            &mem,
            "sipi.bringup=serial quiet",
            Entry::Pvh(0x10_0000),
            None,
        )
        .unwrap();
        let raw: [u8; START_INFO_SIZE] = read(&mem, START_INFO_ADDR);
        let info = StartInfo::from_bytes(&raw).unwrap();
        assert_eq!(
            info,
            StartInfo {
                magic: XEN_HVM_START_MAGIC_VALUE,
                version: 1,
                flags: 0,
                nr_modules: 0,
                modlist_paddr: 0,
                cmdline_paddr: CMDLINE_ADDR,
                rsdp_paddr: RSDP_ADDR,
                memmap_paddr: MEMMAP_ADDR,
                memmap_entries: 3,
            }
        );
        assert_eq!(&raw[52..], &[0; 4], "the reserved field is zero");
        assert_eq!(cstr(&mem, info.cmdline_paddr), "sipi.bringup=serial quiet");
        let entries: Vec<MemmapEntry> = (0..3)
            .map(|i| {
                let e: [u8; 24] = read(&mem, info.memmap_paddr + 24 * i);
                assert_eq!(&e[20..], &[0; 4], "entry reserved field");
                MemmapEntry::from_bytes(&e).unwrap()
            })
            .collect();
        let spans: Vec<_> = entries.iter().map(|e| (e.addr, e.size, e.kind)).collect();
        assert_eq!(
            spans,
            [
                (0, LOW_RAM_END, memmap_type::RAM),
                (
                    BIOS_AREA_START,
                    BIOS_AREA_END - BIOS_AREA_START,
                    memmap_type::RESERVED
                ),
                (BIOS_AREA_END, (64 << 20) - BIOS_AREA_END, memmap_type::RAM),
            ]
        );
        let mb: [u8; MULTIBOOT_INFO_SIZE] = read(&mem, MULTIBOOT_INFO_ADDR);
        assert_eq!(mb, [0; MULTIBOOT_INFO_SIZE], "no multiboot info for PVH");
    }

    #[test]
    fn memory_above_the_hole_is_listed() {
        // A small stand-in for RAM split around the MMIO hole.
        let mem = GuestMemoryMmap::from_ranges(&[
            (GuestAddress(0), 2 << 20),
            (GuestAddress(1 << 32), 1 << 20),
        ])
        .unwrap();
        let map = memory_map(&mem);
        let spans: Vec<_> = map
            .iter()
            .skip(2)
            .map(|e| (e.addr, e.size, e.kind))
            .collect();
        assert_eq!(
            spans,
            [
                (BIOS_AREA_END, (2 << 20) - BIOS_AREA_END, memmap_type::RAM),
                (1 << 32, 1 << 20, memmap_type::RAM)
            ]
        );
        assert_eq!(
            mem_upper_kib(&mem),
            1024,
            "mem_upper stops at the first hole"
        );
    }

    #[test]
    fn writes_multiboot_information() {
        let mem = GuestMemoryMmap::from_ranges(&crate::memory::ram_ranges(64 << 20)).unwrap();
        let line = "sipi.bringup=parallel sipi.kick=per-cpu sipi.init_delay_us=0 a=1  b";
        write(&mem, line, Entry::Multiboot(0x10_0000), Some("/k/mb.elf")).unwrap();
        let raw: [u8; MULTIBOOT_INFO_SIZE] = read(&mem, MULTIBOOT_INFO_ADDR);
        let info = Info::from_bytes(&raw).unwrap();
        assert_eq!(
            info.flags,
            MULTIBOOT_INFO_MEMORY
                | MULTIBOOT_INFO_CMDLINE
                | MULTIBOOT_INFO_MODS
                | MULTIBOOT_INFO_MEM_MAP
                | MULTIBOOT_INFO_BOOT_LOADER_NAME
        );
        assert_eq!((info.mem_lower, info.mem_upper), (640, (63 << 10)));
        assert_eq!(
            (info.mods_count, info.mods_addr),
            (0, MULTIBOOT_MODS_ADDR as u32)
        );
        assert_eq!(cstr(&mem, u64::from(info.cmdline)), "/k/mb.elf a=1 b");
        assert_eq!(
            cstr(&mem, u64::from(info.boot_loader_name)),
            BOOT_LOADER_NAME
        );
        assert_eq!(info.mmap_length, 3 * 24);
        let last: [u8; 24] = read(&mem, u64::from(info.mmap_addr) + 48);
        let last = MbEntry::from_bytes(&last).unwrap();
        assert_eq!(
            (last.addr, last.len, last.kind),
            (
                BIOS_AREA_END,
                (64 << 20) - BIOS_AREA_END,
                multiboot::memory_type::AVAILABLE
            )
        );
        let pvh: [u8; START_INFO_SIZE] = read(&mem, START_INFO_ADDR);
        assert_eq!(
            StartInfo::from_bytes(&pvh).unwrap().cmdline_paddr,
            u64::from(info.cmdline),
            "both hand-offs share the command line"
        );
        assert_eq!(multiboot_cmdline(None, "sipi.x=1"), "kernel");
    }

    #[test]
    fn rejects_bad_command_lines() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 2 << 20)]).unwrap();
        let pvh = Entry::Pvh(0x10_0000);
        let long = "x".repeat(CMDLINE_MAX);
        assert!(matches!(
            write(&mem, &long, pvh, None),
            Err(BootInfoError::CmdlineTooLong { .. })
        ));
        assert!(matches!(
            write(&mem, "a\0b", pvh, None),
            Err(BootInfoError::CmdlineNul)
        ));
        let name = "n".repeat(CMDLINE_MAX);
        assert!(matches!(
            write(&mem, "", Entry::Multiboot(0x10_0000), Some(&name)),
            Err(BootInfoError::CmdlineTooLong { .. })
        ));
    }
}
