//! The boot hand-off, written where the boot plan says (firmware::layout's addresses unless a
//! foreign kernel occupies them): the command line, and the PVH `hvm_start_info` with its
//! memory map or, for a multiboot kernel, the multiboot information with its own memory map,
//! boot loader name and module list; and the boot modules with their list and strings.

use firmware::cmdline::SIPI_OPTION_PREFIX;
use firmware::layout::{
    BIOS_AREA_END, BIOS_AREA_START, CMDLINE_MAX, KERNEL_MIN_ADDR, LOW_RAM_END, MEMMAP_MAX_ENTRIES,
    RSDP_ADDR,
};
use firmware::multiboot::{
    self, MULTIBOOT_INFO_BOOT_LOADER_NAME, MULTIBOOT_INFO_CMDLINE, MULTIBOOT_INFO_MEMORY,
    MULTIBOOT_INFO_MEM_MAP, MULTIBOOT_INFO_MODS, MULTIBOOT_MMAP_ENTRY_SIZE,
};
use firmware::pvh::{
    memmap_type, HvmModlistEntry, MemmapEntry, StartInfo, START_INFO_VERSION,
    XEN_HVM_START_MAGIC_VALUE,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::loader::modules::Module;
use crate::loader::placement::{ModulePlan, Plan};
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

/// Writes each module and its NUL-terminated string where `plan` says; returns the module
/// list's entries as (address, size, string address).
fn write_modules(
    mem: &GuestMemoryMmap,
    plan: &ModulePlan,
    modules: &[Module],
) -> Result<Vec<(u64, u64, u64)>, BootInfoError> {
    let mut string_at = plan.strings;
    let mut listed = Vec::with_capacity(modules.len());
    for (m, &at) in modules.iter().zip(&plan.addrs) {
        mem.write_slice(&m.data, GuestAddress(at))
            .map_err(BootInfoError::Write)?;
        let mut string = m.string.as_bytes().to_vec();
        string.push(0);
        mem.write_slice(&string, GuestAddress(string_at))
            .map_err(BootInfoError::Write)?;
        listed.push((at, m.data.len() as u64, string_at));
        string_at += string.len() as u64;
    }
    Ok(listed)
}

/// Writes the multiboot information, its memory map (the same regions as the PVH one), the
/// boot loader name and the module list (`mods`: address and count).
fn write_multiboot(
    mem: &GuestMemoryMmap,
    map: &[MemmapEntry],
    plan: &Plan,
    mods: (u64, usize),
) -> Result<(), BootInfoError> {
    let layout = &plan.layout;
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
        // The plan keeps every boot structure below the MMIO hole, so below 4 GiB.
        cmdline: layout.cmdline as u32,
        mods_count: mods.1 as u32,
        mods_addr: mods.0 as u32,
        mmap_length: mmap.len() as u32,
        mmap_addr: layout.multiboot_mmap() as u32,
        boot_loader_name: layout.multiboot_loader_name() as u32,
    };
    let mut name = BOOT_LOADER_NAME.as_bytes().to_vec();
    name.push(0);
    mem.write_slice(&mmap, GuestAddress(layout.multiboot_mmap()))
        .map_err(BootInfoError::Write)?;
    mem.write_slice(&name, GuestAddress(layout.multiboot_loader_name()))
        .map_err(BootInfoError::Write)?;
    mem.write_slice(&info.to_bytes(), GuestAddress(layout.multiboot_info))
        .map_err(BootInfoError::Write)
}

/// What a boot hands the kernel: the command line, how it is entered, and the kernel's file
/// name (the first word of a multiboot command line).
pub(crate) struct Handoff<'a> {
    /// The whole command line (sipi's options and the user's); a multiboot kernel gets
    /// [`multiboot_cmdline`] of it instead.
    pub cmdline: &'a str,
    /// The entry.
    pub entry: Entry,
    /// The kernel's file name, if it came from a file.
    pub kernel_name: Option<&'a str>,
}

/// Writes the command line, the modules (`modules`, placed by `plan.modules`), and start_info
/// with its memory map, or the multiboot information when the kernel is entered through
/// multiboot, where `plan` says.
pub(crate) fn write(
    mem: &GuestMemoryMmap,
    handoff: &Handoff<'_>,
    plan: &Plan,
    modules: &[Module],
) -> Result<(), BootInfoError> {
    let (cmdline, entry, kernel_name) = (handoff.cmdline, handoff.entry, handoff.kernel_name);
    let layout = &plan.layout;
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
    let mut line = Vec::with_capacity(cmdline.len() + 1);
    line.extend_from_slice(cmdline.as_bytes());
    line.push(0);
    mem.write_slice(&line, GuestAddress(layout.cmdline))
        .map_err(BootInfoError::Write)?;
    let listed = match &plan.modules {
        Some(p) => write_modules(mem, p, modules)?,
        None => Vec::new(),
    };
    if let Entry::Multiboot(_) = entry {
        let mods = match &plan.modules {
            Some(p) => {
                let list: Vec<u8> = listed
                    .iter()
                    .flat_map(|&(at, size, string)| {
                        // Below the MMIO hole: the plan keeps every module there.
                        multiboot::ModuleEntry {
                            mod_start: at as u32,
                            mod_end: (at + size) as u32,
                            string: string as u32,
                            reserved: 0,
                        }
                        .to_bytes()
                    })
                    .collect();
                mem.write_slice(&list, GuestAddress(p.list))
                    .map_err(BootInfoError::Write)?;
                (p.list, listed.len())
            }
            None => (layout.multiboot_mods(), 0),
        };
        return write_multiboot(mem, &map, plan, mods);
    }
    let modlist_paddr = match &plan.modules {
        Some(p) => {
            let list: Vec<u8> = listed
                .iter()
                .flat_map(|&(paddr, size, cmdline_paddr)| {
                    HvmModlistEntry {
                        paddr,
                        size,
                        cmdline_paddr,
                        reserved: 0,
                    }
                    .to_bytes()
                })
                .collect();
            mem.write_slice(&list, GuestAddress(p.list))
                .map_err(BootInfoError::Write)?;
            p.list
        }
        None => 0,
    };
    let info = StartInfo {
        magic: XEN_HVM_START_MAGIC_VALUE,
        version: START_INFO_VERSION,
        flags: 0,
        nr_modules: listed.len() as u32,
        modlist_paddr,
        cmdline_paddr: layout.cmdline,
        rsdp_paddr: RSDP_ADDR,
        memmap_paddr: layout.memmap(),
        memmap_entries: map.len() as u32,
    };
    mem.write_slice(&bytes, GuestAddress(layout.memmap()))
        .map_err(BootInfoError::Write)?;
    mem.write_slice(&info.to_bytes(), GuestAddress(layout.start_info))
        .map_err(BootInfoError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::placement::{self, ModuleNeed, Span};
    use crate::loader::BootLayout;
    use firmware::layout::{
        CMDLINE_ADDR, MEMMAP_ADDR, MULTIBOOT_INFO_ADDR, MULTIBOOT_MODS_ADDR, START_INFO_ADDR,
    };
    use firmware::multiboot::{Info, MmapEntry as MbEntry, MULTIBOOT_INFO_SIZE};
    use firmware::pvh::{MODLIST_ENTRY_SIZE, START_INFO_SIZE};

    /// Writes the hand-off on the fixed layout, without modules.
    fn write(
        mem: &GuestMemoryMmap,
        cmdline: &str,
        entry: Entry,
        kernel_name: Option<&str>,
    ) -> Result<(), BootInfoError> {
        let plan = Plan {
            layout: BootLayout::FIXED,
            modules: None,
        };
        let handoff = Handoff {
            cmdline,
            entry,
            kernel_name,
        };
        super::write(mem, &handoff, &plan, &[])
    }

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
        assert_eq!(pvh, [0; START_INFO_SIZE], "no start_info for multiboot");
        assert_eq!(u64::from(info.cmdline), CMDLINE_ADDR);
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

    fn modules() -> Vec<Module> {
        vec![
            Module {
                data: b"first".to_vec(),
                string: "one a=1".into(),
            },
            Module {
                data: vec![7; 5000],
                string: String::new(),
            },
        ]
    }

    #[test]
    fn lists_modules_for_multiboot_and_pvh() {
        let kernel = [Span {
            start: 0x10_0000,
            end: 0x10_0800,
        }];
        let mods = modules();
        let needs: Vec<ModuleNeed> = mods.iter().map(|m| m.need()).collect();
        for entry in [Entry::Multiboot(0x10_0000), Entry::Pvh(0x10_0000)] {
            let mem = GuestMemoryMmap::from_ranges(&crate::memory::ram_ranges(64 << 20)).unwrap();
            let ram = placement::ram_spans(&mem);
            let plan = placement::plan(&kernel, &ram, entry, false, &needs).unwrap();
            let handoff = Handoff {
                cmdline: "x",
                entry,
                kernel_name: Some("k"),
            };
            super::write(&mem, &handoff, &plan, &mods).unwrap();
            let list: Vec<(u64, u64, u64)> = match entry {
                Entry::Multiboot(_) => {
                    let raw: [u8; MULTIBOOT_INFO_SIZE] = read(&mem, plan.layout.multiboot_info);
                    let info = Info::from_bytes(&raw).unwrap();
                    assert_ne!(info.flags & MULTIBOOT_INFO_MODS, 0);
                    assert_eq!(info.mods_count, 2);
                    (0..2)
                        .map(|i| {
                            let e: [u8; 16] = read(&mem, u64::from(info.mods_addr) + 16 * i);
                            let w = |o: usize| {
                                u64::from(u32::from_le_bytes(e[o..o + 4].try_into().unwrap()))
                            };
                            (w(0), w(4) - w(0), w(8))
                        })
                        .collect()
                }
                _ => {
                    let raw: [u8; START_INFO_SIZE] = read(&mem, plan.layout.start_info);
                    let info = StartInfo::from_bytes(&raw).unwrap();
                    assert_eq!(info.nr_modules, 2);
                    (0..2)
                        .map(|i| {
                            let e: [u8; MODLIST_ENTRY_SIZE] =
                                read(&mem, info.modlist_paddr + (MODLIST_ENTRY_SIZE as u64) * i);
                            let w = |o: usize| u64::from_le_bytes(e[o..o + 8].try_into().unwrap());
                            (w(0), w(8), w(16))
                        })
                        .collect()
                }
            };
            assert_eq!(
                list[0].0, 0x10_1000,
                "{entry:?}: page aligned after the kernel"
            );
            assert_eq!(list[0].1, 5);
            assert_eq!(list[1], (0x10_2000, 5000, list[0].2 + 8));
            assert_eq!(cstr(&mem, list[0].2), "one a=1");
            assert_eq!(cstr(&mem, list[1].2), "");
            let first: [u8; 5] = read(&mem, list[0].0);
            assert_eq!(&first, b"first");
        }
    }

    #[test]
    fn moved_structures_are_where_the_hand_off_points() {
        let mem = GuestMemoryMmap::from_ranges(&crate::memory::ram_ranges(64 << 20)).unwrap();
        let layout = BootLayout {
            multiboot_info: 0x2_0000,
            cmdline: 0x3_0000,
            ..BootLayout::FIXED
        };
        let plan = Plan {
            layout,
            modules: None,
        };
        let handoff = Handoff {
            cmdline: "a",
            entry: Entry::Multiboot(0x8000),
            kernel_name: Some("k"),
        };
        super::write(&mem, &handoff, &plan, &[]).unwrap();
        let raw: [u8; MULTIBOOT_INFO_SIZE] = read(&mem, 0x2_0000);
        let info = Info::from_bytes(&raw).unwrap();
        assert_eq!(info.cmdline, 0x3_0000);
        assert_eq!(cstr(&mem, 0x3_0000), "k a");
        assert_eq!(u64::from(info.mmap_addr), layout.multiboot_mmap());
        assert_eq!(u64::from(info.mods_addr), layout.multiboot_mods());
        assert_eq!(cstr(&mem, layout.multiboot_loader_name()), BOOT_LOADER_NAME);
        let fixed: [u8; MULTIBOOT_INFO_SIZE] = read(&mem, MULTIBOOT_INFO_ADDR);
        assert_eq!(
            fixed, [0; MULTIBOOT_INFO_SIZE],
            "nothing at the fixed place"
        );
    }
}
