//! Where the boot structures go. sipi's own guest gets the fixed addresses of
//! [`firmware::layout`] (its ABI). A foreign kernel may load anywhere outside the
//! `reserved` ranges, so for it each structure its entry needs keeps its fixed address when
//! the kernel leaves that free, and otherwise moves: first fit in low RAM (above the BIOS
//! data area, below the EBDA), else first fit after the kernel image. Boot modules go page
//! aligned after the kernel image, as QEMU places them. docs/boot.md, "Where the boot
//! structures go", has the table.

pub(crate) mod reserved;
#[cfg(test)]
mod tests;

use firmware::layout::{
    BOOT_GDT_ADDR, BOOT_GDT_SIZE, CMDLINE_ADDR, CMDLINE_MAX, EBDA_START, IVT_BDA_END,
    KERNEL_MIN_ADDR, MEMMAP_ADDR, MMIO_HOLE_START, MULTIBOOT_HANDOFF_SIZE, MULTIBOOT_INFO_ADDR,
    MULTIBOOT_LOADER_NAME_ADDR, MULTIBOOT_MMAP_ADDR, MULTIBOOT_MODS_ADDR, PAGE_SIZE,
    PAGE_TABLES_SIZE, PDPT_ADDR, PD_ADDR, PML4_ADDR, PVH_HANDOFF_SIZE, START_INFO_ADDR,
};
use firmware::multiboot::MULTIBOOT_MODULE_ENTRY_SIZE;
use firmware::pvh::MODLIST_ENTRY_SIZE;

use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use super::Entry;

/// Alignment of the hand-off blocks: enough for every field in them (u64).
const BLOCK_ALIGN: u64 = 16;

/// A half-open range of guest-physical addresses, `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: u64,
    /// First byte after.
    pub end: u64,
}

impl Span {
    /// True if the two ranges share a byte.
    fn overlaps(&self, other: &Span) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Where the boot structures of one boot are. Blocks keep their inner layout when they move:
/// the PVH memory map follows start_info, the multiboot memory map, boot loader name and
/// module list follow the multiboot information, and the PDPT and page directories follow
/// the PML4, at the same offsets as in [`firmware::layout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootLayout {
    /// The boot GDT.
    pub gdt: u64,
    /// The PVH block: start_info, then its memory map.
    pub start_info: u64,
    /// The multiboot block: the information, its memory map, the loader name, the module list.
    pub multiboot_info: u64,
    /// The kernel command line (room for [`CMDLINE_MAX`] bytes).
    pub cmdline: u64,
    /// The identity map's PML4, then its PDPT and page directories (long-mode entry).
    pub pml4: u64,
}

impl BootLayout {
    /// The fixed addresses of [`firmware::layout`]: sipi's guest always gets these.
    pub const FIXED: Self = Self {
        gdt: BOOT_GDT_ADDR,
        start_info: START_INFO_ADDR,
        multiboot_info: MULTIBOOT_INFO_ADDR,
        cmdline: CMDLINE_ADDR,
        pml4: PML4_ADDR,
    };

    /// The PVH memory map.
    pub fn memmap(&self) -> u64 {
        self.start_info + (MEMMAP_ADDR - START_INFO_ADDR)
    }

    /// The multiboot memory map.
    pub fn multiboot_mmap(&self) -> u64 {
        self.multiboot_info + (MULTIBOOT_MMAP_ADDR - MULTIBOOT_INFO_ADDR)
    }

    /// The multiboot boot loader name.
    pub fn multiboot_loader_name(&self) -> u64 {
        self.multiboot_info + (MULTIBOOT_LOADER_NAME_ADDR - MULTIBOOT_INFO_ADDR)
    }

    /// The multiboot module list when there are no modules (an empty list).
    pub fn multiboot_mods(&self) -> u64 {
        self.multiboot_info + (MULTIBOOT_MODS_ADDR - MULTIBOOT_INFO_ADDR)
    }

    /// The identity map's PDPT.
    pub fn pdpt(&self) -> u64 {
        self.pml4 + (PDPT_ADDR - PML4_ADDR)
    }

    /// The identity map's first page directory.
    pub fn pd(&self) -> u64 {
        self.pml4 + (PD_ADDR - PML4_ADDR)
    }

    /// The address the BSP finds in EBX for `entry`.
    pub fn handoff(&self, entry: Entry) -> u64 {
        match entry {
            Entry::Multiboot(_) => self.multiboot_info,
            Entry::Pvh(_) | Entry::Long(_) => self.start_info,
        }
    }
}

/// What a boot module needs: its size and its string's length (without the NUL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleNeed {
    /// Bytes of the module.
    pub size: u64,
    /// Bytes of its string.
    pub string_len: u64,
}

/// Where the boot modules go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModulePlan {
    /// The module list (multiboot entries or PVH `hvm_modlist_entry`s), then the strings.
    pub list: u64,
    /// The first string; each is NUL-terminated and follows the previous one.
    pub strings: u64,
    /// Each module's first byte (page aligned), in the order given.
    pub addrs: Vec<u64>,
}

/// The placement of one boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The boot structures.
    pub layout: BootLayout,
    /// The modules, if any were given.
    pub modules: Option<ModulePlan>,
}

/// Why the boot structures or modules cannot be placed. Problems with the input.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// Modules for a kernel whose entry has no module list.
    #[error(
        "boot modules (--initrd, --module) need a multiboot or PVH kernel; {0} has no module list"
    )]
    ModulesUnsupported(&'static str),
    /// No free RAM for a boot structure.
    #[error("there is no free guest RAM for the {0} outside the kernel's segments; more --memory may be needed")]
    NoRoom(&'static str),
    /// The modules do not fit.
    #[error("boot module {index} ({size} bytes) does not fit in guest RAM below 4 GiB after the kernel; more --memory may be needed")]
    ModuleDoesNotFit { index: usize, size: u64 },
}

/// The RAM regions of `mem`, as the planner takes them.
pub fn ram_spans(mem: &GuestMemoryMmap) -> Vec<Span> {
    mem.iter()
        .map(|r| Span {
            start: r.start_addr().0,
            end: r.start_addr().0 + r.len(),
        })
        .collect()
}

/// Free guest RAM, as the planner hands it out.
struct Allocator<'a> {
    ram: &'a [Span],
    taken: Vec<Span>,
}

impl Allocator<'_> {
    /// True if `span` is inside one RAM region and free.
    fn is_free(&self, span: Span) -> bool {
        self.ram
            .iter()
            .any(|r| span.start >= r.start && span.end <= r.end)
            && !self.taken.iter().any(|t| t.overlaps(&span))
    }

    /// The lowest `align`-aligned free `size` bytes inside `lo..hi` and one RAM region.
    fn first_fit(&self, size: u64, align: u64, lo: u64, hi: u64) -> Option<u64> {
        self.ram.iter().find_map(|r| {
            let (lo, hi) = (lo.max(r.start), hi.min(r.end));
            let mut at = lo.checked_next_multiple_of(align)?;
            loop {
                let span = Span {
                    start: at,
                    end: at.checked_add(size)?,
                };
                if span.end > hi {
                    return None;
                }
                match self.taken.iter().find(|t| t.overlaps(&span)) {
                    // Past the range in the way: `at` grows, so this ends.
                    Some(t) => at = t.end.checked_next_multiple_of(align)?,
                    None => return Some(at),
                }
            }
        })
    }

    /// Takes `size` bytes: first fit in low RAM, else after `after` below the MMIO hole.
    fn place(&mut self, size: u64, align: u64, after: u64) -> Option<u64> {
        let at = self
            .first_fit(size, align, IVT_BDA_END, EBDA_START)
            .or_else(|| self.first_fit(size, align, after, MMIO_HOLE_START))?;
        self.take(at, size);
        Some(at)
    }

    fn take(&mut self, start: u64, size: u64) {
        self.taken.push(Span {
            start,
            end: start + size,
        });
    }
}

/// The boot structures that move as one block each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Structure {
    Gdt,
    Cmdline,
    Multiboot,
    Pvh,
    PageTables,
}

impl Structure {
    /// Its name, for errors.
    fn name(self) -> &'static str {
        match self {
            Self::Gdt => "boot GDT",
            Self::Cmdline => "command line",
            Self::Multiboot => "multiboot information",
            Self::Pvh => "PVH start_info",
            Self::PageTables => "identity page tables",
        }
    }

    /// Its fixed address, size and alignment.
    fn block(self) -> (u64, u64, u64) {
        match self {
            Self::Gdt => (BOOT_GDT_ADDR, BOOT_GDT_SIZE, BLOCK_ALIGN),
            Self::Cmdline => (CMDLINE_ADDR, CMDLINE_MAX as u64, BLOCK_ALIGN),
            Self::Multiboot => (MULTIBOOT_INFO_ADDR, MULTIBOOT_HANDOFF_SIZE, BLOCK_ALIGN),
            Self::Pvh => (START_INFO_ADDR, PVH_HANDOFF_SIZE, BLOCK_ALIGN),
            Self::PageTables => (PML4_ADDR, PAGE_TABLES_SIZE, PAGE_SIZE),
        }
    }
}

/// Places the boot structures that `entry` needs and the `modules`, around the `kernel`'s
/// segments (already checked against the `reserved` ranges and inside `ram`). sipi's own
/// guest (`sipi_guest`) gets [`BootLayout::FIXED`] and no modules.
pub fn plan(
    kernel: &[Span],
    ram: &[Span],
    entry: Entry,
    sipi_guest: bool,
    modules: &[ModuleNeed],
) -> Result<Plan, PlacementError> {
    let modules_refused = match entry {
        _ if modules.is_empty() => None,
        _ if sipi_guest => Some("sipi's own guest"),
        Entry::Long(_) => Some("a kernel entered in long mode"),
        Entry::Pvh(_) | Entry::Multiboot(_) => None,
    };
    if let Some(what) = modules_refused {
        return Err(PlacementError::ModulesUnsupported(what));
    }
    if sipi_guest {
        log::debug!("placement: sipi's own guest gets the fixed boot layout");
        return Ok(Plan {
            layout: BootLayout::FIXED,
            modules: None,
        });
    }
    let handoff = match entry {
        Entry::Multiboot(_) => Structure::Multiboot,
        Entry::Pvh(_) | Entry::Long(_) => Structure::Pvh,
    };
    let mut needed = vec![Structure::Gdt, Structure::Cmdline, handoff];
    if let Entry::Long(_) = entry {
        needed.push(Structure::PageTables);
    }
    let kernel_end = kernel.iter().map(|s| s.end).max().unwrap_or(0);
    let after_kernel = kernel_end.max(KERNEL_MIN_ADDR);
    let mut free = Allocator {
        ram,
        taken: kernel.to_vec(),
    };
    let mut layout = BootLayout::FIXED;
    // First every structure whose fixed place the kernel leaves free, so that a moved one
    // does not land on (and move) another's fixed place.
    let (stay, moved): (Vec<Structure>, Vec<Structure>) = needed.into_iter().partition(|s| {
        let (fixed, size, _) = s.block();
        free.is_free(Span {
            start: fixed,
            end: fixed + size,
        })
    });
    for s in stay {
        let (fixed, size, _) = s.block();
        log::debug!(
            "placement: the {} stays at its fixed place {fixed:#x}",
            s.name()
        );
        free.take(fixed, size);
    }
    for s in moved {
        let (_, size, align) = s.block();
        let at = free
            .place(size, align, after_kernel)
            .ok_or(PlacementError::NoRoom(s.name()))?;
        log::debug!(
            "placement: the kernel covers the {}'s fixed place, so it moves to {at:#x}",
            s.name()
        );
        match s {
            Structure::Gdt => layout.gdt = at,
            Structure::Cmdline => layout.cmdline = at,
            Structure::Multiboot => layout.multiboot_info = at,
            Structure::Pvh => layout.start_info = at,
            Structure::PageTables => layout.pml4 = at,
        }
    }
    let modules = match modules.is_empty() {
        true => None,
        false => Some(plan_modules(&mut free, entry, modules, after_kernel)?),
    };
    log::debug!("placement: {layout:x?}, modules {modules:x?}");
    Ok(Plan { layout, modules })
}

/// Places the module list with its strings (like the other boot structures) and each module,
/// page aligned, first fit after the kernel image below the MMIO hole (multiboot addresses
/// are 32-bit).
fn plan_modules(
    free: &mut Allocator<'_>,
    entry: Entry,
    modules: &[ModuleNeed],
    after_kernel: u64,
) -> Result<ModulePlan, PlacementError> {
    let entry_size = match entry {
        Entry::Pvh(_) => MODLIST_ENTRY_SIZE,
        _ => MULTIBOOT_MODULE_ENTRY_SIZE,
    } as u64;
    // The caller bounds the count and the string lengths, so these sums cannot overflow.
    let list_size = entry_size * modules.len() as u64;
    let strings_size: u64 = modules.iter().map(|m| m.string_len + 1).sum();
    let list = free
        .place(list_size + strings_size, BLOCK_ALIGN, after_kernel)
        .ok_or(PlacementError::NoRoom("boot module list"))?;
    let mut addrs = Vec::with_capacity(modules.len());
    for (index, m) in modules.iter().enumerate() {
        let fail = PlacementError::ModuleDoesNotFit {
            index,
            size: m.size,
        };
        // An empty module still gets a page, so that each has its own address.
        let size = m.size.max(1);
        let at = free
            .first_fit(size, PAGE_SIZE, after_kernel, MMIO_HOLE_START)
            .ok_or(fail)?;
        free.take(at, size);
        addrs.push(at);
    }
    Ok(ModulePlan {
        list,
        strings: list + list_size,
        addrs,
    })
}
