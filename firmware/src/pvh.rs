//! The PVH boot hand-off (Xen's `arch-x86/hvm/start_info.h`, the "x86/HVM direct boot ABI").
//!
//! A PVH kernel carries an ELF note of type [`XEN_ELFNOTE_PHYS32_ENTRY`] holding the physical
//! address of its 32-bit entry point. It is entered in 32-bit protected mode with paging off,
//! flat segments, and EBX holding the guest-physical address of an [`StartInfo`].

use core::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// ELF note type of the PVH 32-bit entry point (Xen `elfnote.h`, XEN_ELFNOTE_PHYS32_ENTRY).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// Owner name of Xen ELF notes.
pub const XEN_ELFNOTE_NAME: &[u8] = b"Xen";
/// `hvm_start_info.magic` (XEN_HVM_START_MAGIC_VALUE).
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;
/// `hvm_start_info.version` that carries a memory map.
pub const START_INFO_VERSION: u32 = 1;
/// Size of `hvm_start_info` (version 1).
pub const START_INFO_SIZE: usize = size_of::<HvmStartInfo>();
/// Size of one `hvm_memmap_table_entry`.
pub const MEMMAP_ENTRY_SIZE: usize = size_of::<HvmMemmapTableEntry>();
/// Size of one `hvm_modlist_entry`.
pub const MODLIST_ENTRY_SIZE: usize = size_of::<HvmModlistEntry>();
// The sizes `start_info.h` gives.
const _: () = assert!(MODLIST_ENTRY_SIZE == 32);
const _: () = assert!(START_INFO_SIZE == 56);
const _: () = assert!(MEMMAP_ENTRY_SIZE == 24);

/// Memory-map entry types (the E820 types, as `start_info.h` defines them).
pub mod memmap_type {
    /// Usable RAM.
    pub const RAM: u32 = 1;
    /// Reserved: not to be used by the OS.
    pub const RESERVED: u32 = 2;
    /// ACPI tables, reclaimable once read.
    pub const ACPI: u32 = 3;
    /// ACPI non-volatile storage.
    pub const NVS: u32 = 4;
    /// Unusable (defective) memory.
    pub const UNUSABLE: u32 = 5;
    /// Disabled memory.
    pub const DISABLED: u32 = 6;
    /// Persistent memory.
    pub const PMEM: u32 = 7;
}

/// `hvm_start_info`, version 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartInfo {
    /// Must be [`XEN_HVM_START_MAGIC_VALUE`].
    pub magic: u32,
    /// Structure version; 1 adds the memory map.
    pub version: u32,
    /// SIF_xxx flags.
    pub flags: u32,
    /// Number of modules in the module list.
    pub nr_modules: u32,
    /// Guest-physical address of the module list.
    pub modlist_paddr: u64,
    /// Guest-physical address of the NUL-terminated command line.
    pub cmdline_paddr: u64,
    /// Guest-physical address of the RSDP.
    pub rsdp_paddr: u64,
    /// Guest-physical address of the memory map.
    pub memmap_paddr: u64,
    /// Entries in the memory map.
    pub memmap_entries: u32,
}

impl StartInfo {
    /// Encodes the structure in its wire layout.
    pub fn to_bytes(&self) -> [u8; START_INFO_SIZE] {
        zerocopy::transmute!(HvmStartInfo {
            magic: self.magic,
            version: self.version,
            flags: self.flags,
            nr_modules: self.nr_modules,
            modlist_paddr: self.modlist_paddr,
            cmdline_paddr: self.cmdline_paddr,
            rsdp_paddr: self.rsdp_paddr,
            memmap_paddr: self.memmap_paddr,
            memmap_entries: self.memmap_entries,
            reserved: 0,
        })
    }

    /// Decodes the structure; `None` if `b` is too short or the magic is wrong.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let (raw, _) = HvmStartInfo::read_from_prefix(b).ok()?;
        let info = Self {
            magic: raw.magic,
            version: raw.version,
            flags: raw.flags,
            nr_modules: raw.nr_modules,
            modlist_paddr: raw.modlist_paddr,
            cmdline_paddr: raw.cmdline_paddr,
            rsdp_paddr: raw.rsdp_paddr,
            memmap_paddr: raw.memmap_paddr,
            memmap_entries: raw.memmap_entries,
        };
        (info.magic == XEN_HVM_START_MAGIC_VALUE).then_some(info)
    }
}

/// `struct hvm_start_info` (version 1) as `start_info.h` lays it out.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct HvmStartInfo {
    /// [`StartInfo::magic`].
    pub magic: u32,
    /// [`StartInfo::version`].
    pub version: u32,
    /// [`StartInfo::flags`].
    pub flags: u32,
    /// [`StartInfo::nr_modules`].
    pub nr_modules: u32,
    /// [`StartInfo::modlist_paddr`].
    pub modlist_paddr: u64,
    /// [`StartInfo::cmdline_paddr`].
    pub cmdline_paddr: u64,
    /// [`StartInfo::rsdp_paddr`].
    pub rsdp_paddr: u64,
    /// [`StartInfo::memmap_paddr`].
    pub memmap_paddr: u64,
    /// [`StartInfo::memmap_entries`].
    pub memmap_entries: u32,
    /// Reserved (0).
    pub reserved: u32,
}

/// `hvm_memmap_table_entry`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemmapEntry {
    /// Base guest-physical address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// One of [`memmap_type`].
    pub kind: u32,
}

impl MemmapEntry {
    /// Encodes the entry in its wire layout.
    pub fn to_bytes(&self) -> [u8; MEMMAP_ENTRY_SIZE] {
        zerocopy::transmute!(HvmMemmapTableEntry {
            addr: self.addr,
            size: self.size,
            kind: self.kind,
            reserved: 0,
        })
    }

    /// Decodes an entry; `None` if `b` is too short.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let (raw, _) = HvmMemmapTableEntry::read_from_prefix(b).ok()?;
        Some(Self {
            addr: raw.addr,
            size: raw.size,
            kind: raw.kind,
        })
    }
}

/// `struct hvm_memmap_table_entry` as `start_info.h` lays it out.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct HvmMemmapTableEntry {
    /// [`MemmapEntry::addr`].
    pub addr: u64,
    /// [`MemmapEntry::size`].
    pub size: u64,
    /// [`MemmapEntry::kind`] (`type` in `start_info.h`).
    pub kind: u32,
    /// Reserved (0).
    pub reserved: u32,
}

/// `struct hvm_modlist_entry` as `start_info.h` lays it out: one boot module.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct HvmModlistEntry {
    /// Guest-physical address of the module.
    pub paddr: u64,
    /// Size of the module in bytes.
    pub size: u64,
    /// Guest-physical address of the module's NUL-terminated command line (0: none).
    pub cmdline_paddr: u64,
    /// Reserved (0).
    pub reserved: u64,
}

impl HvmModlistEntry {
    /// Encodes the entry in its wire layout.
    pub fn to_bytes(&self) -> [u8; MODLIST_ENTRY_SIZE] {
        zerocopy::transmute!(*self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_info_round_trips() {
        let info = StartInfo {
            magic: XEN_HVM_START_MAGIC_VALUE,
            version: START_INFO_VERSION,
            cmdline_paddr: 0x7000,
            rsdp_paddr: 0xE0000,
            memmap_paddr: 0x6100,
            memmap_entries: 3,
            ..Default::default()
        };
        assert_eq!(StartInfo::from_bytes(&info.to_bytes()), Some(info));
    }

    #[test]
    fn start_info_rejects_bad_magic_and_short_input() {
        let mut b = StartInfo {
            magic: XEN_HVM_START_MAGIC_VALUE,
            ..Default::default()
        }
        .to_bytes();
        assert!(StartInfo::from_bytes(&b[..START_INFO_SIZE - 1]).is_none());
        b[0] ^= 1;
        assert!(StartInfo::from_bytes(&b).is_none());
    }

    #[test]
    fn memmap_entry_round_trips() {
        let e = MemmapEntry {
            addr: 0x10_0000,
            size: 0x1000_0000,
            kind: memmap_type::RAM,
        };
        assert_eq!(MemmapEntry::from_bytes(&e.to_bytes()), Some(e));
    }
}
