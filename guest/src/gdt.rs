//! The kernel's segment descriptors, selectors and TSS layout: what the BSP's GDT and TSS
//! ([`crate::boot`]), every AP's GDT and TSS ([`crate::percpu`]), the AP trampoline's GDT
//! ([`crate::trampoline`]) and the IDT's gates ([`crate::idt`]) are built from.
//!
//! The code and data descriptors are flat and have their Accessed bit preset, so that the CPU
//! never writes them (see [`crate::boot`], "Memory that must not be written"). The TSS carries
//! an I/O permission bitmap that allows every port below [`IO_BITMAP_PORTS`], which covers
//! every port the kernel uses (see there for why the bitmap is needed at all).

use firmware::layout::{
    COM1_PORT, COM1_PORT_COUNT, CONSOLE_PORT, DEBUG_EXIT_PORT, EXIT_PORT, REPORT_PORT,
};

use crate::cpu::rflags;

/// Segment descriptor bits (Intel SDM Vol. 3A, 3.4.5, Figure 3-8, and 8.2.3, Figure 8-4).
mod seg {
    /// Limit 15:0 and 19:16 all ones: with 4 KiB granularity, all 4 GiB.
    pub(super) const LIMIT_MAX: u64 = 0xFFFF | (0xF << 48);
    /// Type: accessed (preset so the CPU never writes the descriptor).
    pub(super) const ACCESSED: u64 = 1 << 40;
    /// Type: readable (code) / writable (data).
    pub(super) const READ_WRITE: u64 = 1 << 41;
    /// Type: code segment (execute).
    pub(super) const EXECUTABLE: u64 = 1 << 43;
    /// Type of a system descriptor: available 64-bit TSS.
    pub(super) const TYPE_TSS_AVAILABLE: u64 = 0x9 << 40;
    /// S: code or data segment (not system).
    pub(super) const CODE_OR_DATA: u64 = 1 << 44;
    /// DPL 3.
    pub(super) const DPL_3: u64 = 3 << 45;
    /// P: segment present.
    pub(super) const PRESENT: u64 = 1 << 47;
    /// L: 64-bit code segment.
    pub(super) const LONG_MODE: u64 = 1 << 53;
    /// D/B: 32-bit default operand size / big segment.
    pub(super) const DEFAULT_32: u64 = 1 << 54;
    /// G: limit in 4 KiB units.
    pub(super) const GRANULARITY_4K: u64 = 1 << 55;
    /// Flat code or data segment: base 0, all 4 GiB, present, accessed.
    pub(super) const FLAT: u64 = LIMIT_MAX | GRANULARITY_4K | PRESENT | CODE_OR_DATA | ACCESSED;
}

/// Flat 32-bit code segment (selector [`KERNEL_CS32`]; unused today, kept so that the AP
/// trampoline's GDT and the kernel's share their selectors).
pub(crate) const GDT_CODE32: u64 = seg::FLAT | seg::DEFAULT_32 | seg::EXECUTABLE | seg::READ_WRITE;
/// 64-bit code segment, CPL 0.
pub(crate) const GDT_CODE64: u64 = seg::FLAT | seg::LONG_MODE | seg::EXECUTABLE | seg::READ_WRITE;
/// Flat data segment, DPL 0.
pub(crate) const GDT_DATA: u64 = seg::FLAT | seg::DEFAULT_32 | seg::READ_WRITE;
/// Flat data segment, DPL 3.
pub(crate) const GDT_USER_DATA: u64 = GDT_DATA | seg::DPL_3;
/// 64-bit code segment, CPL 3.
pub(crate) const GDT_USER_CODE64: u64 = GDT_CODE64 | seg::DPL_3;

const _: () = assert!(GDT_CODE32 == 0x00CF_9B00_0000_FFFF);
const _: () = assert!(GDT_CODE64 == 0x00AF_9B00_0000_FFFF);
const _: () = assert!(GDT_DATA == 0x00CF_9300_0000_FFFF);
const _: () = assert!(GDT_USER_DATA == 0x00CF_F300_0000_FFFF);
const _: () = assert!(GDT_USER_CODE64 == 0x00AF_FB00_0000_FFFF);

/// The GDT's segment descriptors in selector order (null, [`KERNEL_CS32`], [`KERNEL_CS`],
/// [`KERNEL_DS`], [`USER_DS`], [`USER_CS`]); the TSS descriptor follows at [`TSS_SELECTOR`].
/// Every AP's own GDT starts with the same entries (see [`crate::percpu`]).
pub(crate) const GDT_SEGMENTS: [u64; 6] = [
    0,
    GDT_CODE32,
    GDT_CODE64,
    GDT_DATA,
    GDT_USER_DATA,
    GDT_USER_CODE64,
];
const _: () = assert!(
    GDT_SEGMENTS.len() * 8 == TSS_SELECTOR as usize
        && GDT_SEGMENTS[(KERNEL_CS32 >> 3) as usize] == GDT_CODE32
        && GDT_SEGMENTS[(KERNEL_CS >> 3) as usize] == GDT_CODE64
        && GDT_SEGMENTS[(KERNEL_DS >> 3) as usize] == GDT_DATA
        && GDT_SEGMENTS[(USER_DS >> 3) as usize] == GDT_USER_DATA
        && GDT_SEGMENTS[(USER_CS >> 3) as usize] == GDT_USER_CODE64
);

/// Size of a 64-bit TSS (Intel SDM Vol. 3A, 8.7, Figure 8-11), without an I/O bitmap.
pub(crate) const TSS_SIZE: u64 = 104;
/// Ports covered by the TSS's I/O permission bitmap (Intel SDM Vol. 1, 19.5.2), all allowed.
///
/// IOPL 3 alone should allow port I/O at CPL 3, but kvm_pvm's instruction emulator, which
/// carries out every CPL-3 `in`/`out`, sees IOPL 0 and consults the bitmap instead. Ports at or
/// above this bound are beyond the TSS limit and fault.
const IO_BITMAP_PORTS: u64 = 0x800;
/// Bytes of the I/O bitmap (one bit per port), then the 0xFF byte that must end it.
pub(crate) const IO_BITMAP_BYTES: u64 = IO_BITMAP_PORTS / 8;
const _: () = assert!(
    (COM1_PORT + COM1_PORT_COUNT) as u64 <= IO_BITMAP_PORTS
        && (REPORT_PORT as u64) < IO_BITMAP_PORTS
        && (EXIT_PORT as u64) < IO_BITMAP_PORTS
        && (CONSOLE_PORT as u64) < IO_BITMAP_PORTS
        && (DEBUG_EXIT_PORT as u64) < IO_BITMAP_PORTS
);
/// The TSS limit: the TSS, its I/O bitmap and the final 0xFF byte, minus one.
const TSS_LIMIT: u64 = TSS_SIZE + IO_BITMAP_BYTES;
/// The low half of the TSS descriptor without its base (patched in at boot): limit, type,
/// present. 64-bit TSS descriptors are 16 bytes; the high half is base 63:32.
pub(crate) const GDT_TSS_LOW: u64 = TSS_LIMIT | seg::TYPE_TSS_AVAILABLE | seg::PRESENT;
const _: () = assert!(TSS_LIMIT <= 0xFFFF);
/// The access byte (byte 5) of an available, present 64-bit TSS descriptor: what LTR needs to
/// find, and what it turns into "busy".
pub(crate) const TSS_ACCESS_AVAILABLE: u8 = (GDT_TSS_LOW >> 40) as u8;

/// The 16-byte GDT descriptor of an available 64-bit TSS at `base` (Intel SDM Vol. 3A, 8.2.3,
/// Figure 8-4): limit, type and present from [`GDT_TSS_LOW`], the base split over its fields.
pub(crate) const fn tss_descriptor(base: u64) -> [u64; 2] {
    let low = GDT_TSS_LOW
        | ((base & 0xFF_FFFF) << 16) // base 23:0 in bits 39:16
        | (((base >> 24) & 0xFF) << 56); // base 31:24 in bits 63:56
    [low, base >> 32]
}

/// Requested privilege level 3 in a selector.
const RPL_3: u16 = 3;
/// Selector of the flat 32-bit code segment.
const KERNEL_CS32: u16 = 0x08;
/// Selector of the CPL-0 64-bit code segment.
pub(crate) const KERNEL_CS: u16 = 0x10;
/// Selector of the DPL-0 flat data segment.
pub(crate) const KERNEL_DS: u16 = 0x18;
/// Selector of the DPL-3 flat data segment, with RPL 3.
pub(crate) const USER_DS: u16 = 0x20 | RPL_3;
/// Selector of the CPL-3 64-bit code segment, with RPL 3.
pub(crate) const USER_CS: u16 = 0x28 | RPL_3;
/// Selector of the TSS.
pub(crate) const TSS_SELECTOR: u16 = 0x30;

/// RFLAGS of the kernel's CPL-3 code: IOPL 3 (port I/O allowed), IF=0 (interrupts masked).
pub(crate) const USER_RFLAGS: u64 = rflags::RESERVED_1 | rflags::IOPL_3;
