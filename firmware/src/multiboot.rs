//! The multiboot v1 hand-off (Multiboot Specification version 0.6.96): the header a kernel
//! carries in its first 8 KiB, and the boot information a boot loader gives it.
//!
//! A multiboot kernel is entered in 32-bit protected mode with paging off, flat segments,
//! EAX = [`MULTIBOOT_BOOTLOADER_MAGIC`] and EBX = the physical address of an [`Info`]
//! (specification, 3.2 "Machine state").

use crate::bytes::{put_u32, put_u64, u32_at, u64_at};

/// `magic` of the multiboot header (3.1.2 "The magic fields of Multiboot header").
pub const MULTIBOOT_HEADER_MAGIC: u32 = 0x1BAD_B002;
/// EAX at entry: tells the kernel a multiboot-compliant boot loader loaded it (3.2).
pub const MULTIBOOT_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// The header must lie entirely within this many bytes from the start of the image (3.1).
pub const MULTIBOOT_SEARCH: usize = 8192;
/// The header is 32-bit aligned (3.1).
pub const MULTIBOOT_HEADER_ALIGN: usize = 4;
/// Size of the magic, flags and checksum fields.
pub const MULTIBOOT_HEADER_SIZE: usize = 12;
/// Size of the header with the address fields (flag 16): header_addr .. entry_addr.
pub const MULTIBOOT_HEADER_AOUT_SIZE: usize = 32;

/// Header flag 0: align boot modules on 4 KiB pages.
pub const MULTIBOOT_PAGE_ALIGN: u32 = 1 << 0;
/// Header flag 1: the kernel needs `mem_*` (and the memory map if available).
pub const MULTIBOOT_MEMORY_INFO: u32 = 1 << 1;
/// Header flag 2: the kernel wants the video mode table.
pub const MULTIBOOT_VIDEO_MODE: u32 = 1 << 2;
/// Header flag 16: the address fields are valid and the loader must use them instead of the
/// ELF program headers ("a.out kludge").
pub const MULTIBOOT_AOUT_KLUDGE: u32 = 1 << 16;
/// Header flags 0-15 are requirements: a loader that does not understand one must refuse to
/// boot the kernel (3.1.3 "The flags fields of Multiboot header").
pub const MULTIBOOT_REQUIRED_FLAGS: u32 = 0xFFFF;

/// Info flag 0: `mem_lower` and `mem_upper` are valid.
pub const MULTIBOOT_INFO_MEMORY: u32 = 1 << 0;
/// Info flag 2: `cmdline` is valid.
pub const MULTIBOOT_INFO_CMDLINE: u32 = 1 << 2;
/// Info flag 3: `mods_count` and `mods_addr` are valid.
pub const MULTIBOOT_INFO_MODS: u32 = 1 << 3;
/// Info flag 6: `mmap_length` and `mmap_addr` are valid.
pub const MULTIBOOT_INFO_MEM_MAP: u32 = 1 << 6;
/// Info flag 9: `boot_loader_name` is valid.
pub const MULTIBOOT_INFO_BOOT_LOADER_NAME: u32 = 1 << 9;

/// Size of the boot information structure up to and including the VBE fields (offset 88).
pub const MULTIBOOT_INFO_SIZE: usize = 88;
/// Size of one memory-map entry, its own `size` field included.
pub const MULTIBOOT_MMAP_ENTRY_SIZE: usize = 24;
/// The `size` field of a memory-map entry: the bytes after it (base, length, type).
pub const MULTIBOOT_MMAP_ENTRY_SIZE_FIELD: u32 = 20;

/// Memory-map entry types (3.3, "mmap_*").
pub mod memory_type {
    /// Available RAM.
    pub const AVAILABLE: u32 = 1;
    /// Reserved.
    pub const RESERVED: u32 = 2;
    /// ACPI tables, reclaimable.
    pub const ACPI_RECLAIMABLE: u32 = 3;
    /// ACPI non-volatile storage.
    pub const NVS: u32 = 4;
    /// Defective RAM.
    pub const BADRAM: u32 = 5;
}

/// The address fields of a header with [`MULTIBOOT_AOUT_KLUDGE`] (3.1.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AoutAddresses {
    /// Physical address where the header itself is to be loaded.
    pub header_addr: u32,
    /// Physical address of the start of the text segment: the first byte loaded.
    pub load_addr: u32,
    /// End of the data segment (0: load to the end of the file).
    pub load_end_addr: u32,
    /// End of the bss segment (0: no bss).
    pub bss_end_addr: u32,
    /// The entry point.
    pub entry_addr: u32,
}

/// A multiboot header found in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Offset of the header in the image.
    pub offset: usize,
    /// The header's flags.
    pub flags: u32,
    /// The address fields, when flag 16 is set.
    pub aout: Option<AoutAddresses>,
}

/// Why a multiboot header could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The magic is there but magic + flags + checksum is not zero.
    #[error("the multiboot header at offset {offset:#x} has a bad checksum")]
    BadChecksum { offset: usize },
    /// The address fields run past the first 8 KiB or the end of the image.
    #[error(
        "the multiboot header at offset {offset:#x} needs its address fields, which run past \
         the first {MULTIBOOT_SEARCH} bytes or the end of the image"
    )]
    Truncated { offset: usize },
}

/// Finds the multiboot header: the first 4-byte aligned position in the first 8 KiB whose
/// magic and checksum agree (as GRUB searches). `Ok(None)` if there is no magic at all; if
/// every magic found has a bad checksum, the first one is reported.
pub fn find_header(image: &[u8]) -> Result<Option<Header>, HeaderError> {
    let window = &image[..image.len().min(MULTIBOOT_SEARCH)];
    let mut bad = None;
    let mut offset = 0;
    while offset + MULTIBOOT_HEADER_SIZE <= window.len() {
        if u32_at(window, offset) == Some(MULTIBOOT_HEADER_MAGIC) {
            let flags = u32_at(window, offset + 4).unwrap_or(0);
            let checksum = u32_at(window, offset + 8).unwrap_or(0);
            if MULTIBOOT_HEADER_MAGIC
                .wrapping_add(flags)
                .wrapping_add(checksum)
                == 0
            {
                return header_at(window, offset, flags).map(Some);
            }
            bad.get_or_insert(offset);
        }
        offset += MULTIBOOT_HEADER_ALIGN;
    }
    match bad {
        Some(offset) => Err(HeaderError::BadChecksum { offset }),
        None => Ok(None),
    }
}

/// Decodes the header whose magic and checksum are valid at `offset` of `window`.
fn header_at(window: &[u8], offset: usize, flags: u32) -> Result<Header, HeaderError> {
    if flags & MULTIBOOT_AOUT_KLUDGE == 0 {
        return Ok(Header {
            offset,
            flags,
            aout: None,
        });
    }
    let field = |i: usize| u32_at(window, offset + MULTIBOOT_HEADER_SIZE + 4 * i);
    let aout = (|| {
        Some(AoutAddresses {
            header_addr: field(0)?,
            load_addr: field(1)?,
            load_end_addr: field(2)?,
            bss_end_addr: field(3)?,
            entry_addr: field(4)?,
        })
    })()
    .ok_or(HeaderError::Truncated { offset })?;
    Ok(Header {
        offset,
        flags,
        aout: Some(aout),
    })
}

/// The multiboot boot information structure (3.3), the fields sipi fills in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Info {
    /// Which fields are valid (`MULTIBOOT_INFO_*`).
    pub flags: u32,
    /// KiB of memory from address 0 (at most 640).
    pub mem_lower: u32,
    /// KiB of memory from 1 MiB up to the first hole.
    pub mem_upper: u32,
    /// Physical address of the NUL-terminated command line.
    pub cmdline: u32,
    /// Number of boot modules.
    pub mods_count: u32,
    /// Physical address of the module list.
    pub mods_addr: u32,
    /// Bytes of memory map.
    pub mmap_length: u32,
    /// Physical address of the memory map.
    pub mmap_addr: u32,
    /// Physical address of the NUL-terminated boot loader name.
    pub boot_loader_name: u32,
}

impl Info {
    /// Encodes the structure in its wire layout (fields sipi does not fill are zero).
    pub fn to_bytes(&self) -> [u8; MULTIBOOT_INFO_SIZE] {
        let mut b = [0u8; MULTIBOOT_INFO_SIZE];
        // Every offset is inside the fixed-size array, so these writes cannot fail.
        let _ = put_u32(&mut b, 0, self.flags);
        let _ = put_u32(&mut b, 4, self.mem_lower);
        let _ = put_u32(&mut b, 8, self.mem_upper);
        let _ = put_u32(&mut b, 16, self.cmdline);
        let _ = put_u32(&mut b, 20, self.mods_count);
        let _ = put_u32(&mut b, 24, self.mods_addr);
        let _ = put_u32(&mut b, 44, self.mmap_length);
        let _ = put_u32(&mut b, 48, self.mmap_addr);
        let _ = put_u32(&mut b, 64, self.boot_loader_name);
        b
    }

    /// Decodes the structure; `None` if `b` is too short.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let b = b.get(..MULTIBOOT_INFO_SIZE)?;
        Some(Self {
            flags: u32_at(b, 0)?,
            mem_lower: u32_at(b, 4)?,
            mem_upper: u32_at(b, 8)?,
            cmdline: u32_at(b, 16)?,
            mods_count: u32_at(b, 20)?,
            mods_addr: u32_at(b, 24)?,
            mmap_length: u32_at(b, 44)?,
            mmap_addr: u32_at(b, 48)?,
            boot_loader_name: u32_at(b, 64)?,
        })
    }
}

/// One memory-map entry (3.3): `size`, then base address, length and type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MmapEntry {
    /// Base physical address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u64,
    /// One of [`memory_type`].
    pub kind: u32,
}

impl MmapEntry {
    /// Encodes the entry with its `size` field.
    pub fn to_bytes(&self) -> [u8; MULTIBOOT_MMAP_ENTRY_SIZE] {
        let mut b = [0u8; MULTIBOOT_MMAP_ENTRY_SIZE];
        let _ = put_u32(&mut b, 0, MULTIBOOT_MMAP_ENTRY_SIZE_FIELD);
        let _ = put_u64(&mut b, 4, self.addr);
        let _ = put_u64(&mut b, 12, self.len);
        let _ = put_u32(&mut b, 20, self.kind);
        b
    }

    /// Decodes an entry; `None` if `b` is too short or its `size` field is not 20.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if u32_at(b, 0)? != MULTIBOOT_MMAP_ENTRY_SIZE_FIELD {
            return None;
        }
        Some(Self {
            addr: u64_at(b, 4)?,
            len: u64_at(b, 12)?,
            kind: u32_at(b, 20)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    fn header(flags: u32, checksum_fix: u32) -> [u8; 12] {
        let mut h = [0u8; 12];
        h[..4].copy_from_slice(&MULTIBOOT_HEADER_MAGIC.to_le_bytes());
        h[4..8].copy_from_slice(&flags.to_le_bytes());
        let checksum = 0u32
            .wrapping_sub(MULTIBOOT_HEADER_MAGIC)
            .wrapping_sub(flags)
            .wrapping_add(checksum_fix);
        h[8..].copy_from_slice(&checksum.to_le_bytes());
        h
    }

    #[test]
    fn finds_the_first_valid_header_on_a_4_byte_boundary() {
        let mut image = [0u8; 256];
        image[36..48].copy_from_slice(&header(MULTIBOOT_MEMORY_INFO, 1)); // bad checksum
        image[64..76].copy_from_slice(&header(MULTIBOOT_MEMORY_INFO, 0));
        let h = find_header(&image).unwrap().unwrap();
        assert_eq!(
            (h.offset, h.flags, h.aout),
            (64, MULTIBOOT_MEMORY_INFO, None)
        );
        let mut unaligned = [0u8; 256];
        unaligned[66..78].copy_from_slice(&header(0, 0));
        assert_eq!(find_header(&unaligned), Ok(None), "must be 32-bit aligned");
    }

    #[test]
    fn a_bad_checksum_alone_is_reported() {
        let mut image = [0u8; 64];
        image[8..20].copy_from_slice(&header(0, 0x100));
        assert_eq!(
            find_header(&image),
            Err(HeaderError::BadChecksum { offset: 8 })
        );
    }

    #[test]
    fn only_the_first_8_kib_are_searched() {
        let mut image = vec![0u8; MULTIBOOT_SEARCH + 64];
        image[MULTIBOOT_SEARCH - 8..MULTIBOOT_SEARCH + 4].copy_from_slice(&header(0, 0));
        assert_eq!(find_header(&image), Ok(None), "the header straddles 8 KiB");
        image[MULTIBOOT_SEARCH - 12..MULTIBOOT_SEARCH].copy_from_slice(&header(0, 0));
        assert_eq!(
            find_header(&image).unwrap().map(|h| h.offset),
            Some(MULTIBOOT_SEARCH - 12)
        );
    }

    #[test]
    fn address_fields_are_decoded_and_bounded() {
        let mut image = vec![0u8; 64];
        image[..12].copy_from_slice(&header(MULTIBOOT_AOUT_KLUDGE, 0));
        for (i, v) in [0x10_0000u32, 0x10_0000, 0x10_1000, 0x10_2000, 0x10_0020]
            .iter()
            .enumerate()
        {
            image[12 + 4 * i..16 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        let aout = find_header(&image).unwrap().unwrap().aout.unwrap();
        assert_eq!(
            aout,
            AoutAddresses {
                header_addr: 0x10_0000,
                load_addr: 0x10_0000,
                load_end_addr: 0x10_1000,
                bss_end_addr: 0x10_2000,
                entry_addr: 0x10_0020,
            }
        );
        assert_eq!(
            find_header(&image[..24]),
            Err(HeaderError::Truncated { offset: 0 })
        );
    }

    #[test]
    fn info_and_mmap_round_trip() {
        let info = Info {
            flags: MULTIBOOT_INFO_MEMORY | MULTIBOOT_INFO_MEM_MAP,
            mem_lower: 640,
            mem_upper: 65536,
            cmdline: 0x7000,
            mods_count: 0,
            mods_addr: 0x6780,
            mmap_length: 72,
            mmap_addr: 0x6480,
            boot_loader_name: 0x6700,
        };
        assert_eq!(Info::from_bytes(&info.to_bytes()), Some(info));
        assert!(Info::from_bytes(&info.to_bytes()[..87]).is_none());
        let e = MmapEntry {
            addr: 0x10_0000,
            len: 0x100_0000,
            kind: memory_type::AVAILABLE,
        };
        let b = e.to_bytes();
        assert_eq!(u32_at(&b, 0), Some(20), "size excludes the size field");
        assert_eq!(MmapEntry::from_bytes(&b), Some(e));
    }
}
