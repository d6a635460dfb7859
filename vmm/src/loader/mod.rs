//! Loading the guest kernel. The image is untrusted input: its headers are parsed with every
//! offset and size checked against the file, its segments against guest RAM and each other,
//! and nothing is allocated from a size read from the file. Then the segments are copied to
//! their physical addresses. A kernel may ask for any RAM outside `placement::reserved`;
//! [`placement`] then puts the boot structures and [`modules`] where the kernel is not.
//!
//! Three kinds of kernel boot:
//! - an ELF64 (x86-64) or ELF32 (i386) image with a PVH entry note (`XEN_ELFNOTE_PHYS32_ENTRY`):
//!   entered in 32-bit protected mode with EBX = `hvm_start_info`;
//! - a multiboot v1 kernel ([`multiboot`]): an ELF image loaded by its program headers, or any
//!   image whose multiboot header has the a.out-kludge address fields, which then take
//!   precedence (as in GRUB and QEMU); entered in 32-bit protected mode with EAX =
//!   0x2BADB002 and EBX = the multiboot information;
//! - an ELF64 image without either: entered at e_entry in long mode on the VMM's page tables.
//!
//! With `--entry auto`, the PVH note wins over a multiboot header, which wins over the long
//! mode entry.

mod elf;
mod entry;
pub mod modules;
mod multiboot;
pub mod placement;
#[cfg(test)]
mod tests;

use std::path::Path;

use firmware::layout::IVT_BDA_END;
use firmware::multiboot::{find_header, HeaderError};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

pub use elf::Class as ElfClass;
pub use entry::{Entry, EntryMode};
pub use modules::{ModuleError, ModuleSpec};
pub use placement::{BootLayout, PlacementError, Span};

/// Most program headers sipi reads: real kernels have a handful.
pub const MAX_PHDRS: usize = 64;

/// A kernel in guest memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedKernel {
    /// PVH entry, if the image has a PVH note.
    pub pvh_entry: Option<u32>,
    /// Multiboot entry, if the image has a valid multiboot header.
    pub multiboot_entry: Option<u32>,
    /// ELF entry point (0 for an image that is not ELF).
    pub elf_entry: u64,
    /// The ELF class, if the image is ELF.
    pub elf_class: Option<ElfClass>,
    /// Lowest loaded address.
    pub start: u64,
    /// First byte after the highest loaded segment.
    pub end: u64,
    /// Every loaded segment (bss included), sorted by address: what the boot structures must
    /// stay out of.
    pub segments: Vec<Span>,
}

/// Why the kernel could not be loaded. Every variant is a problem with the input file.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// The file cannot be read.
    #[error("cannot read kernel {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A directory was given.
    #[error("kernel {0} is a directory, not a kernel image")]
    IsDirectory(String),
    /// Zero bytes.
    #[error("kernel {0} is empty")]
    Empty(String),
    /// Larger than guest memory.
    #[error("kernel {path} is {size} bytes, larger than the {mem} bytes of guest memory")]
    TooLarge { path: String, size: u64, mem: u64 },
    /// Neither ELF nor multiboot.
    #[error("the kernel is not an ELF image and has no multiboot header")]
    NotElf,
    /// Shorter than its own headers.
    #[error(
        "the kernel image is truncated: its ELF header needs {needed} bytes, the file has {len}"
    )]
    Truncated { needed: usize, len: usize },
    /// ELF32 for a machine other than i386.
    #[error("the kernel is a 32-bit ELF image for machine {0}; 32-bit kernels must be i386 (3)")]
    Elf32NotI386(u16),
    /// ELF32 with nothing that says how to enter it.
    #[error(
        "the kernel is a 32-bit ELF image with neither a PVH entry note nor a multiboot header"
    )]
    Elf32NoEntry,
    /// Neither class.
    #[error("the kernel's ELF class {0} is invalid")]
    BadClass(u8),
    /// Big endian.
    #[error("the kernel is a big-endian ELF image, not x86")]
    BigEndian,
    /// Another machine.
    #[error("the kernel is a 64-bit ELF image for machine {0}, not x86-64 (62)")]
    NotX86_64(u16),
    /// Program header table malformed.
    #[error("the kernel's program header table (offset {offset}, {count} entries of {entsize} bytes) is invalid")]
    BadPhdrTable {
        offset: u64,
        count: usize,
        entsize: usize,
    },
    /// Absurd program-header count.
    #[error("the kernel has {0} program headers, more than the {MAX_PHDRS} sipi accepts")]
    TooManyPhdrs(usize),
    /// Nothing to load.
    #[error("the kernel has no loadable segments")]
    NoLoadableSegments,
    /// File bytes out of the file.
    #[error("kernel segment {0} refers to bytes beyond the end of the file")]
    SegmentOutsideFile(usize),
    /// filesz > memsz.
    #[error("kernel segment {0} has more file bytes than memory bytes")]
    SegmentFileExceedsMem(usize),
    /// Into a range no kernel may occupy (`placement::reserved`).
    #[error("kernel segment {index} ({start:#x}..{end:#x}) overlaps {owner} at {area_start:#x}..{area_end:#x}, which no kernel may occupy")]
    SegmentInReservedArea {
        index: usize,
        start: u64,
        end: u64,
        owner: &'static str,
        area_start: u64,
        area_end: u64,
    },
    /// Out of RAM.
    #[error("kernel segment {index} ({start:#x}..{end:#x}) lies outside guest RAM; more --memory may be needed")]
    SegmentOutsideRam { index: usize, start: u64, end: u64 },
    /// Two segments overlap.
    #[error("kernel segments {0} and {1} overlap")]
    SegmentsOverlap(usize, usize),
    /// The entry point is not in a loaded segment.
    #[error("the kernel's entry point {0:#x} is not inside a loaded segment")]
    EntryOutsideImage(u64),
    /// A note runs past its segment.
    #[error("the kernel's ELF note at file offset {offset:#x} runs past the end of its segment")]
    BadNote { offset: usize },
    /// The PVH note's descriptor is neither 4 nor 8 bytes.
    #[error("the kernel's PVH entry note has a {0}-byte descriptor; it must be 4 or 8 bytes")]
    BadPvhNote(usize),
    /// The PVH entry cannot be reached in 32-bit mode.
    #[error("the kernel's PVH entry point {0:#x} is above 4 GiB")]
    PvhEntryAbove4G(u64),
    /// --entry pvh without a PVH note.
    #[error("the kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)")]
    NoPvhNote,
    /// --entry long on a kernel that is not ELF64.
    #[error("--entry long needs a 64-bit ELF kernel")]
    LongNeedsElf64,
    /// The multiboot header cannot be used.
    #[error(transparent)]
    MultibootHeader(#[from] HeaderError),
    /// linux-loader refused an image this validator accepted.
    #[error("cannot load the kernel")]
    Load(#[source] linux_loader::loader::Error),
    /// linux-loader read the PVH note differently.
    #[error("the kernel's PVH note is ambiguous (two readers disagree on its entry point)")]
    PvhNoteDisagrees,
    /// A multiboot header without address fields on an image that is not ELF.
    #[error(
        "the kernel has a multiboot header but is not an ELF image, and the header has no \
         address fields (flag 16)"
    )]
    MultibootNeedsAddresses,
    /// The multiboot header requires something sipi does not provide.
    #[error("the kernel's multiboot header requires features sipi lacks (flags {0:#x})")]
    MultibootUnsupportedFlags(u32),
    /// Inconsistent a.out-kludge address fields.
    #[error("the kernel's multiboot header has inconsistent address fields: {0}")]
    MultibootAddresses(&'static str),
    /// A multiboot ELF entry point beyond 32 bits.
    #[error("the kernel's multiboot entry point {0:#x} is above 4 GiB")]
    MultibootEntryAbove4G(u64),
    /// Guest memory refused a write inside RAM (cannot happen after validation).
    #[error("cannot copy kernel segment {0} into guest memory")]
    Copy(usize, #[source] vm_memory::GuestMemoryError),
}

/// A loadable segment: file bytes `offset..offset + filesz` go to guest-physical `start`, and
/// memory up to `end` is the segment's (the rest is bss).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Program header index (0 for an a.out-kludge image).
    pub index: usize,
    /// File offset of the first byte.
    pub offset: u64,
    /// Bytes taken from the file.
    pub filesz: u64,
    /// First guest-physical address.
    pub start: u64,
    /// First guest-physical address after the segment (start + memsz).
    pub end: u64,
}

/// Reads a kernel file with its size bounded by `mem_size` before any allocation.
pub fn read_image(path: &Path, mem_size: u64) -> Result<Vec<u8>, LoaderError> {
    let shown = path.display().to_string();
    let read_err = |source| LoaderError::Read {
        path: shown.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.is_dir() {
        return Err(LoaderError::IsDirectory(shown));
    }
    if meta.len() == 0 {
        return Err(LoaderError::Empty(shown));
    }
    if meta.len() > mem_size {
        return Err(LoaderError::TooLarge {
            path: shown,
            size: meta.len(),
            mem: mem_size,
        });
    }
    std::fs::read(path).map_err(read_err)
}

/// Checks segments against `mem`: outside the ranges no kernel may occupy, inside one RAM
/// region, and not overlapping each other. Returns them sorted by address.
fn check_placement(
    mut segments: Vec<Segment>,
    mem: &GuestMemoryMmap,
) -> Result<Vec<Segment>, LoaderError> {
    for s in &segments {
        if let Some(r) = placement::reserved::overlapping(s.start, s.end) {
            return Err(LoaderError::SegmentInReservedArea {
                index: s.index,
                start: s.start,
                end: s.end,
                owner: r.owner,
                area_start: r.start,
                area_end: r.end,
            });
        }
        let in_ram = mem.iter().any(|r| {
            let rs = r.start_addr().0;
            s.start >= rs && s.end <= rs + r.len()
        });
        if !in_ram {
            return Err(LoaderError::SegmentOutsideRam {
                index: s.index,
                start: s.start,
                end: s.end,
            });
        }
    }
    segments.sort_by_key(|s| s.start);
    if let Some(w) = segments.windows(2).find(|w| w[0].end > w[1].start) {
        return Err(LoaderError::SegmentsOverlap(
            w[0].index.min(w[1].index),
            w[0].index.max(w[1].index),
        ));
    }
    Ok(segments)
}

/// Copies the file bytes of each (validated) segment to guest memory. The bss is not written:
/// sipi loads into freshly mapped guest RAM, which is zero, and writing it would make the
/// host commit memory the guest may never touch.
fn copy(image: &[u8], segments: &[Segment], mem: &GuestMemoryMmap) -> Result<(), LoaderError> {
    for s in segments {
        // Validation put offset + filesz inside the file, so these conversions hold.
        let from = s.offset as usize;
        let bytes = &image[from..from + s.filesz as usize];
        mem.write_slice(bytes, GuestAddress(s.start))
            .map_err(|e| LoaderError::Copy(s.index, e))?;
    }
    Ok(())
}

/// Loads a validated ELF64 image with linux-loader (the rust-vmm loader), which copies each
/// PT_LOAD segment to its physical address; its PVH note reading must agree with ours.
fn load_elf64(
    image: &[u8],
    mem: &GuestMemoryMmap,
    pvh_entry: Option<u32>,
) -> Result<(), LoaderError> {
    use linux_loader::loader::elf::{Elf, PvhBootCapability};
    use linux_loader::loader::KernelLoader;
    // Its lowest accepted address; the reserved ranges were already checked.
    let highmem = Some(GuestAddress(IVT_BDA_END));
    let r = Elf::load(mem, None, &mut std::io::Cursor::new(image), highmem)
        .map_err(LoaderError::Load)?;
    let theirs = match r.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(a) => u32::try_from(a.0).ok(),
        _ => None,
    };
    if theirs != pvh_entry {
        return Err(LoaderError::PvhNoteDisagrees);
    }
    Ok(())
}

/// True if `addr` lies inside one of `segments`.
fn inside(segments: &[Segment], addr: u64) -> bool {
    segments.iter().any(|s| addr >= s.start && addr < s.end)
}

/// Validates `image` and loads it into `mem` at its physical addresses.
pub fn load(image: &[u8], mem: &GuestMemoryMmap) -> Result<LoadedKernel, LoaderError> {
    let mb = find_header(image);
    // ELF64 program-header images go through linux-loader, the rust-vmm loader; ELF32 and
    // a.out-kludge images (which it does not read) are copied from the validated segments.
    let (segments, kernel, elf64_phdrs) = if elf::is_elf(image) {
        let parsed = elf::parse(image)?;
        let pvh_entry = parsed.pvh_entry(image)?;
        // A PVH note decides how the kernel boots; otherwise a multiboot header does, if there
        // is a valid one; otherwise an ELF64 image is entered in long mode.
        let header = match (pvh_entry, mb, parsed.class) {
            (Some(_), _, _) => None,
            (None, Ok(h), _) => h,
            (None, Err(e), ElfClass::Elf32) => return Err(e.into()),
            (None, Err(_), ElfClass::Elf64) => None,
        };
        if pvh_entry.is_none() && header.is_none() && parsed.class == ElfClass::Elf32 {
            return Err(LoaderError::Elf32NoEntry);
        }
        let (segments, multiboot_entry, phdrs) = match header {
            Some(h) => {
                multiboot::check_flags(&h)?;
                match h.aout {
                    Some(a) => {
                        let (segment, entry) = multiboot::aout_segment(image, &h, &a)?;
                        (vec![segment], Some(entry), false)
                    }
                    None => {
                        let entry = u32::try_from(parsed.entry)
                            .map_err(|_| LoaderError::MultibootEntryAbove4G(parsed.entry))?;
                        (parsed.segments.clone(), Some(entry), true)
                    }
                }
            }
            None => (parsed.segments.clone(), None, true),
        };
        let segments = check_placement(segments, mem)?;
        let entries = [
            pvh_entry.map(u64::from),
            multiboot_entry.map(u64::from),
            (pvh_entry.is_none() && multiboot_entry.is_none()).then_some(parsed.entry),
        ];
        if let Some(e) = entries
            .into_iter()
            .flatten()
            .find(|e| !inside(&segments, *e))
        {
            return Err(LoaderError::EntryOutsideImage(e));
        }
        let kernel = LoadedKernel {
            pvh_entry,
            multiboot_entry,
            elf_entry: parsed.entry,
            elf_class: Some(parsed.class),
            start: 0,
            end: 0,
            segments: Vec::new(),
        };
        (segments, kernel, phdrs && parsed.class == ElfClass::Elf64)
    } else {
        let header = mb?.ok_or(LoaderError::NotElf)?;
        multiboot::check_flags(&header)?;
        let a = header.aout.ok_or(LoaderError::MultibootNeedsAddresses)?;
        let (segment, entry) = multiboot::aout_segment(image, &header, &a)?;
        let segments = check_placement(vec![segment], mem)?;
        let kernel = LoadedKernel {
            pvh_entry: None,
            multiboot_entry: Some(entry),
            elf_entry: 0,
            elf_class: None,
            start: 0,
            end: 0,
            segments: Vec::new(),
        };
        (segments, kernel, false)
    };
    if elf64_phdrs {
        load_elf64(image, mem, kernel.pvh_entry)?;
    } else {
        copy(image, &segments, mem)?;
    }
    Ok(LoadedKernel {
        start: segments.first().map_or(0, |s| s.start),
        end: segments.iter().map(|s| s.end).max().unwrap_or(0),
        segments: segments
            .iter()
            .map(|s| Span {
                start: s.start,
                end: s.end,
            })
            .collect(),
        ..kernel
    })
}
