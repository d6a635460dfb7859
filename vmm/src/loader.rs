//! Loading the guest kernel: a validating pass over the ELF headers (the image is untrusted
//! input), then linux-loader copies the segments to their physical addresses.

use std::io::Cursor;
use std::path::Path;

use firmware::bytes::{u16_at, u32_at, u64_at};
use firmware::layout::KERNEL_MIN_ADDR;
use linux_loader::loader::elf::{Elf, PvhBootCapability};
use linux_loader::loader::KernelLoader;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// ELF identification: magic bytes (System V ABI, "ELF Header").
const ELFMAG: &[u8; 4] = b"\x7fELF";
/// e_ident[EI_CLASS] offset.
const EI_CLASS: usize = 4;
/// e_ident[EI_DATA] offset.
const EI_DATA: usize = 5;
/// EI_CLASS value of a 32-bit object.
const ELFCLASS32: u8 = 1;
/// EI_CLASS value of a 64-bit object.
const ELFCLASS64: u8 = 2;
/// EI_DATA value of a little-endian object.
const ELFDATA2LSB: u8 = 1;
/// e_machine of AMD x86-64.
const EM_X86_64: u16 = 62;
/// Size of an ELF64 file header.
const ELF64_EHDR_SIZE: usize = 64;
/// Size of an ELF64 program header.
const ELF64_PHDR_SIZE: usize = 56;
/// Program header type of a loadable segment.
const PT_LOAD: u32 = 1;
/// Most program headers sipi reads: real kernels have a handful.
pub const MAX_PHDRS: usize = 64;

/// How the BSP enters the loaded kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// PVH: 32-bit protected mode at this address, EBX = start_info.
    Pvh(u32),
    /// The ELF entry point in 64-bit long mode, RBX = start_info.
    Long(u64),
}

/// A kernel in guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadedKernel {
    /// PVH entry, if the image has a PVH note.
    pub pvh_entry: Option<u32>,
    /// ELF entry point.
    pub elf_entry: u64,
    /// Lowest loaded address.
    pub start: u64,
    /// First byte after the highest loaded segment.
    pub end: u64,
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
    /// No ELF magic.
    #[error("the kernel is not an ELF image")]
    NotElf,
    /// Shorter than its own headers.
    #[error(
        "the kernel image is truncated: its ELF header needs {needed} bytes, the file has {len}"
    )]
    Truncated { needed: usize, len: usize },
    /// ELF32 (multiboot is a later feature).
    #[error("the kernel is a 32-bit ELF image; sipi boots 64-bit ELF kernels (with or without a PVH note)")]
    Elf32,
    /// Neither class.
    #[error("the kernel's ELF class {0} is invalid")]
    BadClass(u8),
    /// Big endian.
    #[error("the kernel is a big-endian ELF image, not x86-64")]
    BigEndian,
    /// Another machine.
    #[error("the kernel is an ELF image for machine {0}, not x86-64 ({EM_X86_64})")]
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
    /// Into the reserved low area.
    #[error("kernel segment {index} at {addr:#x} overlaps the VMM's reserved area below {KERNEL_MIN_ADDR:#x}")]
    SegmentInReservedArea { index: usize, addr: u64 },
    /// Out of RAM.
    #[error("kernel segment {index} ({start:#x}..{end:#x}) lies outside guest RAM; more --memory may be needed")]
    SegmentOutsideRam { index: usize, start: u64, end: u64 },
    /// Two segments overlap.
    #[error("kernel segments {0} and {1} overlap")]
    SegmentsOverlap(usize, usize),
    /// The entry point is not in a loaded segment.
    #[error("the kernel's entry point {0:#x} is not inside a loaded segment")]
    EntryOutsideImage(u64),
    /// --entry pvh without a PVH note.
    #[error("the kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)")]
    NoPvhNote,
    /// linux-loader refused it.
    #[error("cannot load the kernel: {0}")]
    Load(#[source] linux_loader::loader::Error),
}

/// A loadable segment as validated.
#[derive(Debug, Clone, Copy)]
struct Segment {
    index: usize,
    start: u64,
    end: u64,
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

/// Validates the ELF headers of `image` against `mem`'s RAM.
fn validate(image: &[u8], mem: &GuestMemoryMmap) -> Result<Vec<Segment>, LoaderError> {
    if image.len() < ELFMAG.len() || &image[..4] != ELFMAG {
        return Err(LoaderError::NotElf);
    }
    match image.get(EI_CLASS).copied() {
        Some(ELFCLASS64) => {}
        Some(ELFCLASS32) => return Err(LoaderError::Elf32),
        other => return Err(LoaderError::BadClass(other.unwrap_or(0))),
    }
    if image.len() < ELF64_EHDR_SIZE {
        return Err(LoaderError::Truncated {
            needed: ELF64_EHDR_SIZE,
            len: image.len(),
        });
    }
    if image[EI_DATA] != ELFDATA2LSB {
        return Err(LoaderError::BigEndian);
    }
    let machine = u16_at(image, 18).unwrap_or(0);
    if machine != EM_X86_64 {
        return Err(LoaderError::NotX86_64(machine));
    }
    let phoff = u64_at(image, 32).unwrap_or(0);
    let entsize = usize::from(u16_at(image, 54).unwrap_or(0));
    let count = usize::from(u16_at(image, 56).unwrap_or(0));
    if count > MAX_PHDRS {
        return Err(LoaderError::TooManyPhdrs(count));
    }
    let table_ok = entsize == ELF64_PHDR_SIZE
        && usize::try_from(phoff)
            .ok()
            .and_then(|o| o.checked_add(count * ELF64_PHDR_SIZE))
            .is_some_and(|end| end <= image.len());
    if !table_ok {
        return Err(LoaderError::BadPhdrTable {
            offset: phoff,
            count,
            entsize,
        });
    }
    let mut segments = Vec::with_capacity(count);
    for index in 0..count {
        let ph = &image[phoff as usize + index * ELF64_PHDR_SIZE..][..ELF64_PHDR_SIZE];
        let p_type = u32_at(ph, 0).unwrap_or(0);
        let (offset, paddr) = (u64_at(ph, 8).unwrap_or(0), u64_at(ph, 24).unwrap_or(0));
        let (filesz, memsz) = (u64_at(ph, 32).unwrap_or(0), u64_at(ph, 40).unwrap_or(0));
        if p_type != PT_LOAD || memsz == 0 {
            continue;
        }
        if offset
            .checked_add(filesz)
            .is_none_or(|end| end > image.len() as u64)
        {
            return Err(LoaderError::SegmentOutsideFile(index));
        }
        if filesz > memsz {
            return Err(LoaderError::SegmentFileExceedsMem(index));
        }
        if paddr < KERNEL_MIN_ADDR {
            return Err(LoaderError::SegmentInReservedArea { index, addr: paddr });
        }
        let end = paddr.saturating_add(memsz);
        let in_ram = mem.iter().any(|r| {
            let rs = r.start_addr().0;
            paddr >= rs && end <= rs + r.len()
        });
        if !in_ram {
            return Err(LoaderError::SegmentOutsideRam {
                index,
                start: paddr,
                end,
            });
        }
        segments.push(Segment {
            index,
            start: paddr,
            end,
        });
    }
    if segments.is_empty() {
        return Err(LoaderError::NoLoadableSegments);
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

/// Validates `image` and loads it into `mem` at its physical addresses.
pub fn load(image: &[u8], mem: &GuestMemoryMmap) -> Result<LoadedKernel, LoaderError> {
    let segments = validate(image, mem)?;
    let inside = |addr: u64| segments.iter().any(|s| addr >= s.start && addr < s.end);
    let elf_entry = u64_at(image, 24).unwrap_or(0);
    let result = Elf::load(
        mem,
        None,
        &mut Cursor::new(image),
        Some(GuestAddress(KERNEL_MIN_ADDR)),
    )
    .map_err(LoaderError::Load)?;
    let pvh_entry = match result.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(addr) => {
            if !inside(addr.0) {
                return Err(LoaderError::EntryOutsideImage(addr.0));
            }
            u32::try_from(addr.0).ok()
        }
        _ => None,
    };
    if pvh_entry.is_none() && !inside(elf_entry) {
        return Err(LoaderError::EntryOutsideImage(elf_entry));
    }
    Ok(LoadedKernel {
        pvh_entry,
        elf_entry,
        start: segments.first().map_or(0, |s| s.start),
        end: segments.iter().map(|s| s.end).max().unwrap_or(0),
    })
}

impl LoadedKernel {
    /// The entry to use for `mode`.
    pub fn entry(&self, mode: crate::cli::EntryMode) -> Result<Entry, LoaderError> {
        use crate::cli::EntryMode;
        match (mode, self.pvh_entry) {
            (EntryMode::Auto | EntryMode::Pvh, Some(addr)) => Ok(Entry::Pvh(addr)),
            (EntryMode::Pvh, None) => Err(LoaderError::NoPvhNote),
            (EntryMode::Auto | EntryMode::Long, _) => {
                if self.elf_entry >= self.start && self.elf_entry < self.end {
                    Ok(Entry::Long(self.elf_entry))
                } else {
                    Err(LoaderError::EntryOutsideImage(self.elf_entry))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 x86-64 image with one PT_LOAD segment at `paddr` holding `code`.
    pub(crate) fn tiny_elf(paddr: u64, code: &[u8]) -> Vec<u8> {
        elf(&[(paddr, code)], paddr)
    }

    /// An ELF64 x86-64 image with one PT_LOAD segment per `(paddr, bytes)`.
    fn elf(segments: &[(u64, &[u8])], entry: u64) -> Vec<u8> {
        let headers = ELF64_EHDR_SIZE + segments.len() * ELF64_PHDR_SIZE;
        let mut f = vec![0u8; headers];
        f[..4].copy_from_slice(ELFMAG);
        f[EI_CLASS] = ELFCLASS64;
        f[EI_DATA] = ELFDATA2LSB;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        f[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        f[24..32].copy_from_slice(&entry.to_le_bytes());
        f[32..40].copy_from_slice(&(ELF64_EHDR_SIZE as u64).to_le_bytes());
        f[52..54].copy_from_slice(&(ELF64_EHDR_SIZE as u16).to_le_bytes());
        f[54..56].copy_from_slice(&(ELF64_PHDR_SIZE as u16).to_le_bytes());
        f[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for (i, (paddr, code)) in segments.iter().enumerate() {
            let ph = ELF64_EHDR_SIZE + i * ELF64_PHDR_SIZE;
            let data_off = f.len() as u64;
            let len = code.len() as u64;
            f[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            f[ph + 8..ph + 16].copy_from_slice(&data_off.to_le_bytes());
            f[ph + 16..ph + 24].copy_from_slice(&paddr.to_le_bytes());
            f[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes());
            f[ph + 32..ph + 40].copy_from_slice(&len.to_le_bytes());
            f[ph + 40..ph + 48].copy_from_slice(&len.to_le_bytes());
            f.extend_from_slice(code);
        }
        f
    }

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 4 << 20)]).unwrap()
    }

    #[test]
    fn loads_a_valid_image_at_its_physical_address() {
        use vm_memory::Bytes;
        let m = mem();
        let k = load(&tiny_elf(0x20_0000, &[0xF4, 0x90]), &m).unwrap();
        assert_eq!(
            (k.start, k.end, k.elf_entry, k.pvh_entry),
            (0x20_0000, 0x20_0002, 0x20_0000, None)
        );
        assert_eq!(m.read_obj::<u8>(GuestAddress(0x20_0000)).unwrap(), 0xF4);
        assert_eq!(
            k.entry(crate::cli::EntryMode::Auto).unwrap(),
            Entry::Long(0x20_0000)
        );
        assert!(matches!(
            k.entry(crate::cli::EntryMode::Pvh),
            Err(LoaderError::NoPvhNote)
        ));
    }

    #[test]
    fn rejects_malformed_images() {
        let m = mem();
        let good = tiny_elf(0x20_0000, &[0xF4]);
        let check = |img: &[u8], want: &str| {
            let e = load(img, &m).unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} should mention {want:?}");
        };
        check(b"MZ\x90\x00", "not an ELF");
        check(&good[..40], "truncated");
        let mut b = good.clone();
        b[EI_CLASS] = ELFCLASS32;
        check(&b, "32-bit");
        let mut b = good.clone();
        b[18] = 183; // EM_AARCH64
        check(&b, "machine 183");
        let mut b = good.clone();
        b[56..58].copy_from_slice(&0xFFFFu16.to_le_bytes());
        check(&b, "65535 program headers");
        let mut b = good.clone();
        b[56..58].copy_from_slice(&3u16.to_le_bytes());
        check(&b, "program header table");
        check(&tiny_elf(0x8000, &[0xF4]), "reserved area");
        check(&tiny_elf(0x3F_FFFF, &[0xF4, 0xF4]), "outside guest RAM");
        let mut b = good.clone();
        let ph = ELF64_EHDR_SIZE;
        b[ph + 32..ph + 40].copy_from_slice(&1000u64.to_le_bytes());
        check(&b, "beyond the end of the file");
        let mut b = good;
        b[24..32].copy_from_slice(&0x30_0000u64.to_le_bytes());
        check(&b, "entry point");
    }

    #[test]
    fn rejects_overlapping_segments() {
        let img = elf(
            &[(0x20_0000, &[0xF4; 16]), (0x20_0008, &[0x90; 16])],
            0x20_0000,
        );
        let e = load(&img, &mem()).unwrap_err();
        assert!(matches!(e, LoaderError::SegmentsOverlap(0, 1)), "{e}");
        let img = elf(
            &[(0x20_0000, &[0xF4; 16]), (0x20_0010, &[0x90; 16])],
            0x20_0000,
        );
        assert_eq!(
            load(&img, &mem()).unwrap().end,
            0x20_0020,
            "adjacent segments are fine"
        );
    }

    #[test]
    fn read_image_bounds_size_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_image(dir.path(), 1 << 20).unwrap_err();
        assert!(matches!(e, LoaderError::IsDirectory(_)));
        let p = dir.path().join("empty");
        std::fs::write(&p, b"").unwrap();
        assert!(matches!(
            read_image(&p, 1 << 20),
            Err(LoaderError::Empty(_))
        ));
        std::fs::write(&p, vec![0u8; 2048]).unwrap();
        assert!(matches!(
            read_image(&p, 1024),
            Err(LoaderError::TooLarge { .. })
        ));
        assert!(matches!(
            read_image(&dir.path().join("nope"), 1024),
            Err(LoaderError::Read { .. })
        ));
    }
}
