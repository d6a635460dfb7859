//! The multiboot v1 hand-off (Multiboot Specification version 0.6.96): the header a kernel
//! carries in its first 8 KiB, and the boot information a boot loader gives it.
//!
//! A multiboot kernel is entered in 32-bit protected mode with paging off, flat segments,
//! EAX = [`MULTIBOOT_BOOTLOADER_MAGIC`] and EBX = the physical address of an [`Info`]
//! (specification, 3.2 "Machine state").

use core::mem::{offset_of, size_of};

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `magic` of the multiboot header (3.1.2 "The magic fields of Multiboot header").
pub const MULTIBOOT_HEADER_MAGIC: u32 = 0x1BAD_B002;
/// EAX at entry: tells the kernel a multiboot-compliant boot loader loaded it (3.2).
pub const MULTIBOOT_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// The header must lie entirely within this many bytes from the start of the image (3.1).
pub const MULTIBOOT_SEARCH: usize = 8192;
/// The header is 32-bit aligned (3.1).
pub const MULTIBOOT_HEADER_ALIGN: usize = 4;
/// Size of the magic, flags and checksum fields ([`RawHeader`]).
pub const MULTIBOOT_HEADER_SIZE: usize = size_of::<RawHeader>();
/// Size of the header with the address fields (flag 16): header_addr .. entry_addr.
pub const MULTIBOOT_HEADER_AOUT_SIZE: usize = MULTIBOOT_HEADER_SIZE + size_of::<AoutAddresses>();

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

/// Size of the boot information structure up to and including the VBE fields ([`RawInfo`]).
pub const MULTIBOOT_INFO_SIZE: usize = size_of::<RawInfo>();
/// Size of one memory-map entry, its own `size` field included ([`RawMmapEntry`]).
pub const MULTIBOOT_MMAP_ENTRY_SIZE: usize = size_of::<RawMmapEntry>();
/// The `size` field of a memory-map entry: the bytes after it (base, length, type).
pub const MULTIBOOT_MMAP_ENTRY_SIZE_FIELD: u32 =
    (MULTIBOOT_MMAP_ENTRY_SIZE - offset_of!(RawMmapEntry, base_addr)) as u32;
// The sizes of the specification (3.1.1 and 3.3).
const _: () = assert!(MULTIBOOT_HEADER_SIZE == 12 && MULTIBOOT_HEADER_AOUT_SIZE == 32);
const _: () = assert!(MULTIBOOT_INFO_SIZE == 88);
const _: () = assert!(MULTIBOOT_MMAP_ENTRY_SIZE == 24 && MULTIBOOT_MMAP_ENTRY_SIZE_FIELD == 20);

/// Memory-map entry types (3.3, "mmap_*"): the E820 types, as PVH's memory map has them too
/// ([`crate::pvh::memmap_type`]).
pub mod memory_type {
    use crate::pvh::memmap_type as e820;

    /// Available RAM.
    pub const AVAILABLE: u32 = e820::RAM;
    /// Reserved.
    pub const RESERVED: u32 = e820::RESERVED;
    /// ACPI tables, reclaimable.
    pub const ACPI_RECLAIMABLE: u32 = e820::ACPI;
    /// ACPI non-volatile storage.
    pub const NVS: u32 = e820::NVS;
    /// Defective RAM.
    pub const BADRAM: u32 = e820::UNUSABLE;
}

/// The magic, flags and checksum fields that start every multiboot header (3.1.1).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct RawHeader {
    /// [`MULTIBOOT_HEADER_MAGIC`].
    pub magic: u32,
    /// The header's flags.
    pub flags: u32,
    /// Makes magic + flags + checksum zero (mod 2^32).
    pub checksum: u32,
}

/// The address fields of a header with [`MULTIBOOT_AOUT_KLUDGE`] (3.1.4), in their wire
/// layout: they follow the [`RawHeader`].
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
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
    for offset in (0..window.len()).step_by(MULTIBOOT_HEADER_ALIGN) {
        let Ok((h, rest)) = RawHeader::read_from_prefix(&window[offset..]) else {
            break;
        };
        if h.magic != MULTIBOOT_HEADER_MAGIC {
            continue;
        }
        if h.magic.wrapping_add(h.flags).wrapping_add(h.checksum) == 0 {
            return header_at(rest, offset, h.flags).map(Some);
        }
        bad.get_or_insert(offset);
    }
    match bad {
        Some(offset) => Err(HeaderError::BadChecksum { offset }),
        None => Ok(None),
    }
}

/// Decodes the header whose magic and checksum are valid at `offset`; `rest` is what follows
/// its [`RawHeader`] in the searched window.
fn header_at(rest: &[u8], offset: usize, flags: u32) -> Result<Header, HeaderError> {
    if flags & MULTIBOOT_AOUT_KLUDGE == 0 {
        return Ok(Header {
            offset,
            flags,
            aout: None,
        });
    }
    let (aout, _) =
        AoutAddresses::read_from_prefix(rest).map_err(|_| HeaderError::Truncated { offset })?;
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
        zerocopy::transmute!(RawInfo {
            flags: self.flags,
            mem_lower: self.mem_lower,
            mem_upper: self.mem_upper,
            cmdline: self.cmdline,
            mods_count: self.mods_count,
            mods_addr: self.mods_addr,
            mmap_length: self.mmap_length,
            mmap_addr: self.mmap_addr,
            boot_loader_name: self.boot_loader_name,
            ..RawInfo::default()
        })
    }

    /// Decodes the structure; `None` if `b` is too short.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let (raw, _) = RawInfo::read_from_prefix(b).ok()?;
        Some(Self {
            flags: raw.flags,
            mem_lower: raw.mem_lower,
            mem_upper: raw.mem_upper,
            cmdline: raw.cmdline,
            mods_count: raw.mods_count,
            mods_addr: raw.mods_addr,
            mmap_length: raw.mmap_length,
            mmap_addr: raw.mmap_addr,
            boot_loader_name: raw.boot_loader_name,
        })
    }
}

/// One entry of the module list at `mods_addr` (3.3): the module occupies `mod_start` up to
/// `mod_end` (exclusive), and `string` is the physical address of its NUL-terminated string.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct ModuleEntry {
    /// First byte of the module.
    pub mod_start: u32,
    /// First byte after the module.
    pub mod_end: u32,
    /// Physical address of the module's string (0: none).
    pub string: u32,
    /// Reserved (0).
    pub reserved: u32,
}

impl ModuleEntry {
    /// Encodes the entry in its wire layout.
    pub fn to_bytes(&self) -> [u8; MULTIBOOT_MODULE_ENTRY_SIZE] {
        zerocopy::transmute!(*self)
    }
}

/// Size of one module-list entry.
pub const MULTIBOOT_MODULE_ENTRY_SIZE: usize = size_of::<ModuleEntry>();
const _: () = assert!(MULTIBOOT_MODULE_ENTRY_SIZE == 16);

/// The boot information structure (3.3) up to and including the VBE fields, as the
/// specification lays it out.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct RawInfo {
    /// [`Info::flags`].
    pub flags: u32,
    /// [`Info::mem_lower`].
    pub mem_lower: u32,
    /// [`Info::mem_upper`].
    pub mem_upper: u32,
    /// The BIOS disk the kernel was loaded from (not filled in by sipi).
    pub boot_device: u32,
    /// [`Info::cmdline`].
    pub cmdline: u32,
    /// [`Info::mods_count`].
    pub mods_count: u32,
    /// [`Info::mods_addr`].
    pub mods_addr: u32,
    /// The a.out or ELF symbol table (not filled in by sipi).
    pub syms: [u32; 4],
    /// [`Info::mmap_length`].
    pub mmap_length: u32,
    /// [`Info::mmap_addr`].
    pub mmap_addr: u32,
    /// Bytes of the drive structures (not filled in by sipi).
    pub drives_length: u32,
    /// Address of the drive structures (not filled in by sipi).
    pub drives_addr: u32,
    /// Address of the ROM configuration table (not filled in by sipi).
    pub config_table: u32,
    /// [`Info::boot_loader_name`].
    pub boot_loader_name: u32,
    /// Address of the APM table (not filled in by sipi).
    pub apm_table: u32,
    /// VBE control information (not filled in by sipi).
    pub vbe_control_info: u32,
    /// VBE mode information (not filled in by sipi).
    pub vbe_mode_info: u32,
    /// The current VBE mode (not filled in by sipi).
    pub vbe_mode: u16,
    /// The VBE 3.0 protected-mode interface segment (not filled in by sipi).
    pub vbe_interface_seg: u16,
    /// Its offset (not filled in by sipi).
    pub vbe_interface_off: u16,
    /// Its length (not filled in by sipi).
    pub vbe_interface_len: u16,
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
        zerocopy::transmute!(RawMmapEntry {
            size: U32::new(MULTIBOOT_MMAP_ENTRY_SIZE_FIELD),
            base_addr: U64::new(self.addr),
            length: U64::new(self.len),
            kind: U32::new(self.kind),
        })
    }

    /// Decodes an entry; `None` if `b` is too short or its `size` field is not 20.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let (raw, _) = RawMmapEntry::ref_from_prefix(b).ok()?;
        (raw.size.get() == MULTIBOOT_MMAP_ENTRY_SIZE_FIELD).then(|| Self {
            addr: raw.base_addr.get(),
            len: raw.length.get(),
            kind: raw.kind.get(),
        })
    }
}

/// A memory-map entry as the specification lays it out (3.3). The 64-bit fields sit at
/// offsets 4 and 12, so they are unaligned little-endian integers.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct RawMmapEntry {
    /// Bytes of the entry after this field ([`MULTIBOOT_MMAP_ENTRY_SIZE_FIELD`]).
    pub size: U32,
    /// [`MmapEntry::addr`].
    pub base_addr: U64,
    /// [`MmapEntry::len`].
    pub length: U64,
    /// [`MmapEntry::kind`] (`type` in the specification).
    pub kind: U32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::u32_at;
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
