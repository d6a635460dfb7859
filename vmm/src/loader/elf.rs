//! ELF32 and ELF64 headers (System V ABI, "ELF Header" and "Program Header"), parsed with
//! every offset and size checked against the file, and the PVH entry note.

use firmware::bytes::{u16_at, u32_at, u64_at};
use firmware::pvh::{XEN_ELFNOTE_NAME, XEN_ELFNOTE_PHYS32_ENTRY};

use super::{LoaderError, Segment, MAX_PHDRS};

/// ELF identification: magic bytes.
pub(super) const ELFMAG: &[u8; 4] = b"\x7fELF";
/// e_ident[EI_CLASS] offset.
pub(super) const EI_CLASS: usize = 4;
/// e_ident[EI_DATA] offset.
pub(super) const EI_DATA: usize = 5;
/// EI_CLASS value of a 32-bit object.
pub(super) const ELFCLASS32: u8 = 1;
/// EI_CLASS value of a 64-bit object.
pub(super) const ELFCLASS64: u8 = 2;
/// EI_DATA value of a little-endian object.
pub(super) const ELFDATA2LSB: u8 = 1;
/// e_machine of Intel 80386: what a 32-bit x86 kernel is built for.
pub(super) const EM_386: u16 = 3;
/// e_machine of AMD x86-64.
pub(super) const EM_X86_64: u16 = 62;
/// Offset of e_machine (both classes).
const E_MACHINE: usize = 18;
/// Size of an ELF32 file header.
pub(super) const ELF32_EHDR_SIZE: usize = 52;
/// Size of an ELF32 program header.
pub(super) const ELF32_PHDR_SIZE: usize = 32;
/// Size of an ELF64 file header.
pub(super) const ELF64_EHDR_SIZE: usize = 64;
/// Size of an ELF64 program header.
pub(super) const ELF64_PHDR_SIZE: usize = 56;
/// Program header type of a loadable segment.
pub(super) const PT_LOAD: u32 = 1;
/// Program header type of a note segment.
pub(super) const PT_NOTE: u32 = 4;
/// Size of a note header: namesz, descsz, type (System V ABI, "Note Section").
const NOTE_HEADER_SIZE: usize = 12;
/// Note name and descriptor are padded to 4 bytes in both classes (Linux and Xen kernels).
const NOTE_ALIGN: usize = 4;

/// The ELF class of a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// ELFCLASS32 (i386).
    Elf32,
    /// ELFCLASS64 (x86-64).
    Elf64,
}

/// Where the fields of one class live.
struct Layout {
    ehdr_size: usize,
    phdr_size: usize,
    /// e_entry, e_phoff, e_phentsize, e_phnum offsets, and whether addresses are 8 bytes.
    entry: usize,
    phoff: usize,
    phentsize: usize,
    phnum: usize,
    wide: bool,
    /// p_offset, p_paddr, p_filesz, p_memsz offsets in a program header.
    p_offset: usize,
    p_paddr: usize,
    p_filesz: usize,
    p_memsz: usize,
}

const LAYOUT32: Layout = Layout {
    ehdr_size: ELF32_EHDR_SIZE,
    phdr_size: ELF32_PHDR_SIZE,
    entry: 24,
    phoff: 28,
    phentsize: 42,
    phnum: 44,
    wide: false,
    p_offset: 4,
    p_paddr: 12,
    p_filesz: 16,
    p_memsz: 20,
};

const LAYOUT64: Layout = Layout {
    ehdr_size: ELF64_EHDR_SIZE,
    phdr_size: ELF64_PHDR_SIZE,
    entry: 24,
    phoff: 32,
    phentsize: 54,
    phnum: 56,
    wide: true,
    p_offset: 8,
    p_paddr: 24,
    p_filesz: 32,
    p_memsz: 40,
};

impl Layout {
    /// An address-sized field: 4 bytes in ELF32, 8 in ELF64.
    fn addr(&self, buf: &[u8], off: usize) -> u64 {
        if self.wide {
            u64_at(buf, off).unwrap_or(0)
        } else {
            u32_at(buf, off).map_or(0, u64::from)
        }
    }
}

/// A parsed ELF kernel: its loadable segments (not yet checked against guest RAM) and notes.
#[derive(Debug, Clone)]
pub(super) struct ElfImage {
    /// 32 or 64 bit.
    pub class: Class,
    /// e_entry.
    pub entry: u64,
    /// PT_LOAD segments with a non-zero memory size, in program header order.
    pub segments: Vec<Segment>,
    /// (file offset, size) of every PT_NOTE segment, inside the file.
    notes: Vec<(usize, usize)>,
}

/// True if `image` starts with the ELF magic.
pub(super) fn is_elf(image: &[u8]) -> bool {
    image.starts_with(ELFMAG)
}

/// Parses and checks the file header and program headers of an ELF32 (i386) or ELF64 (x86-64)
/// little-endian image. Nothing is allocated from a size in the file: the program header
/// count is bounded by [`MAX_PHDRS`] before anything else.
pub(super) fn parse(image: &[u8]) -> Result<ElfImage, LoaderError> {
    let (class, layout) = match image.get(EI_CLASS).copied() {
        Some(ELFCLASS64) => (Class::Elf64, &LAYOUT64),
        Some(ELFCLASS32) => (Class::Elf32, &LAYOUT32),
        other => return Err(LoaderError::BadClass(other.unwrap_or(0))),
    };
    if image.len() < layout.ehdr_size {
        return Err(LoaderError::Truncated {
            needed: layout.ehdr_size,
            len: image.len(),
        });
    }
    if image[EI_DATA] != ELFDATA2LSB {
        return Err(LoaderError::BigEndian);
    }
    let machine = u16_at(image, E_MACHINE).unwrap_or(0);
    match (class, machine) {
        (Class::Elf64, EM_X86_64) | (Class::Elf32, EM_386) => {}
        (Class::Elf64, m) => return Err(LoaderError::NotX86_64(m)),
        (Class::Elf32, m) => return Err(LoaderError::Elf32NotI386(m)),
    }
    let entry = layout.addr(image, layout.entry);
    let phoff = layout.addr(image, layout.phoff);
    let entsize = usize::from(u16_at(image, layout.phentsize).unwrap_or(0));
    let count = usize::from(u16_at(image, layout.phnum).unwrap_or(0));
    if count > MAX_PHDRS {
        return Err(LoaderError::TooManyPhdrs(count));
    }
    let table = usize::try_from(phoff)
        .ok()
        .filter(|_| entsize == layout.phdr_size)
        .and_then(|o| Some((o, o.checked_add(count * layout.phdr_size)?)))
        .filter(|(_, end)| *end <= image.len());
    let Some((table_start, _)) = table else {
        return Err(LoaderError::BadPhdrTable {
            offset: phoff,
            count,
            entsize,
        });
    };
    let mut segments = Vec::with_capacity(count);
    let mut notes = Vec::new();
    for index in 0..count {
        let ph = &image[table_start + index * layout.phdr_size..][..layout.phdr_size];
        let p_type = u32_at(ph, 0).unwrap_or(0);
        let offset = layout.addr(ph, layout.p_offset);
        let paddr = layout.addr(ph, layout.p_paddr);
        let filesz = layout.addr(ph, layout.p_filesz);
        let memsz = layout.addr(ph, layout.p_memsz);
        let in_file = offset
            .checked_add(filesz)
            .is_some_and(|end| end <= image.len() as u64);
        match p_type {
            PT_LOAD if memsz > 0 => {
                if !in_file {
                    return Err(LoaderError::SegmentOutsideFile(index));
                }
                if filesz > memsz {
                    return Err(LoaderError::SegmentFileExceedsMem(index));
                }
                segments.push(Segment {
                    index,
                    offset,
                    filesz,
                    start: paddr,
                    end: paddr
                        .checked_add(memsz)
                        .ok_or(LoaderError::SegmentOutsideRam {
                            index,
                            start: paddr,
                            end: u64::MAX,
                        })?,
                });
            }
            PT_NOTE => {
                if !in_file {
                    return Err(LoaderError::SegmentOutsideFile(index));
                }
                // Both fit in usize: they are inside `image`.
                notes.push((offset as usize, filesz as usize));
            }
            _ => {}
        }
    }
    if segments.is_empty() {
        return Err(LoaderError::NoLoadableSegments);
    }
    Ok(ElfImage {
        class,
        entry,
        segments,
        notes,
    })
}

impl ElfImage {
    /// The PVH entry point from a `XEN_ELFNOTE_PHYS32_ENTRY` note, if there is one. The
    /// descriptor is a 32-bit address, or a 64-bit one (Linux writes `_ASM_PTR`) that must
    /// fit in 32 bits. Every note of every PT_NOTE segment is bounds-checked.
    pub(super) fn pvh_entry(&self, image: &[u8]) -> Result<Option<u32>, LoaderError> {
        for &(offset, size) in &self.notes {
            let segment = &image[offset..offset + size];
            let mut at = 0;
            while at + NOTE_HEADER_SIZE <= segment.len() {
                let namesz = u32_at(segment, at).unwrap_or(0) as usize;
                let descsz = u32_at(segment, at + 4).unwrap_or(0) as usize;
                let kind = u32_at(segment, at + 8).unwrap_or(0);
                let name_at = at + NOTE_HEADER_SIZE;
                let desc_at = name_at
                    .checked_add(namesz.next_multiple_of(NOTE_ALIGN))
                    .filter(|d| *d <= segment.len())
                    .ok_or(LoaderError::BadNote {
                        offset: offset + at,
                    })?;
                let next = desc_at
                    .checked_add(descsz.next_multiple_of(NOTE_ALIGN))
                    .filter(|n| *n <= segment.len() || desc_at + descsz <= segment.len())
                    .ok_or(LoaderError::BadNote {
                        offset: offset + at,
                    })?;
                let name = &segment[name_at..name_at + namesz];
                let is_xen = name.strip_suffix(&[0]).unwrap_or(name) == XEN_ELFNOTE_NAME;
                if is_xen && kind == XEN_ELFNOTE_PHYS32_ENTRY {
                    let desc = &segment[desc_at..desc_at + descsz];
                    let addr = match descsz {
                        4 => u32_at(desc, 0).map(u64::from),
                        8 => u64_at(desc, 0),
                        _ => None,
                    }
                    .ok_or(LoaderError::BadPvhNote(descsz))?;
                    return u32::try_from(addr)
                        .map(Some)
                        .map_err(|_| LoaderError::PvhEntryAbove4G(addr));
                }
                at = next;
            }
        }
        Ok(None)
    }
}
