//! Per-CPU state of the APs: what each AP's CPL-0 entry loads (its own GDT, TSS and the frame
//! it drops to CPL 3 with), and its two stacks.
//!
//! Every AP gets a 512-byte [`PerCpu`] header in [`PER_CPU`], indexed by its slot (its record
//! index in [`crate::cpus`]), so the trampoline finds it from the slot with one shift and
//! addresses every field with a constant displacement. The BSP fills the headers natively, at
//! CPL 3, before it kicks an AP; the AP only reads its own (LGDT, LTR, IRETQ), except for the one
//! byte that makes its restart safe (see below).
//!
//! **Why a GDT per AP.** LTR marks the TSS descriptor busy in the GDT, and a second LTR of a busy
//! descriptor faults. With one shared GDT, the APs would have to patch one TSS descriptor and load
//! it one at a time under a lock; in the trampoline that runs emulated on kvm_pvm, a waiting AP
//! would spin, slowly emulated, on a host core the others need. A GDT per AP (64 bytes, the boot
//! GDT's segments plus the AP's own TSS descriptor) needs no lock: nothing the APs write in the
//! trampoline is shared. The trampoline rewrites its descriptor's access byte to "available" before
//! LTR, so that an AP restarted by a re-kick that raced with its call-in loads its TSS again
//! instead of faulting.
//!
//! **TSS.** Each AP's TSS has RSP0 (its kernel stack: exceptions and supervisor calls) and an
//! I/O permission bitmap of its own allowing the same ports as the BSP's (see [`crate::gdt`]
//! for which, and why the bitmap is needed at all).
//!
//! **Stacks.** 16 KiB per AP (8 KiB kernel stack, 8 KiB user stack), in RAM that the PVH memory
//! map lists as usable above the kernel image: 16 MiB for 1024 CPUs, so they are placed at run
//! time, for the CPUs the MADT lists, rather than reserved in `.bss` for every possible one. An
//! AP without room for its stacks is not started (see [`crate::bringup`]).

use core::mem::{offset_of, size_of};

use firmware::layout::{IDENTITY_MAP_SIZE, MMIO_HOLE_START, PAGE_SIZE};
use firmware::pvh::{MemmapEntry, memmap_type};

use crate::cpus::CAPACITY;
use crate::gdt::{
    GDT_SEGMENTS, IO_BITMAP_BYTES, TSS_ACCESS_AVAILABLE, TSS_SELECTOR, TSS_SIZE, USER_CS, USER_DS,
    USER_RFLAGS, tss_descriptor,
};
use crate::global::Global;
use crate::phys;

/// log2 of the size of a [`PerCpu`] header: the trampoline turns a slot into a header offset by
/// shifting it left by this much.
pub(crate) const HEADER_SHIFT: u32 = 9;
/// Entries of an AP's GDT: the boot GDT's segments, then the 16-byte TSS descriptor.
const GDT_ENTRIES: usize = GDT_SEGMENTS.len() + 2;
/// Size of an AP's kernel stack (TSS RSP0): exception and supervisor-call frames, and the Rust
/// exception handler, which runs below the frame on this stack.
const KERNEL_STACK_SIZE: u64 = 8 * 1024;
/// Size of an AP's user stack, on which its Rust code runs at CPL 3.
const USER_STACK_SIZE: u64 = 8 * 1024;
/// Bytes of stack per AP.
const STACKS_SIZE: u64 = KERNEL_STACK_SIZE + USER_STACK_SIZE;

/// A 64-bit TSS (Intel SDM Vol. 3A, 8.7, Figure 8-11). The 64-bit fields sit at offsets 4 mod 8,
/// hence `packed(4)`.
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(4))]
struct Tss {
    reserved0: u32,
    /// RSP0, RSP1, RSP2: the stack pointers for privilege levels 0 to 2.
    rsp: [u64; 3],
    reserved1: u64,
    /// IST1-IST7 (unused: every gate has IST 0).
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    /// Offset of the I/O permission bitmap from the TSS base.
    iomap_base: u16,
}
const _: () = assert!(size_of::<Tss>() == TSS_SIZE as usize);

/// The frame IRETQ pops to enter CPL 3 (Intel SDM Vol. 3A, 6.14.1, Figure 6-9), lowest address
/// first.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct IretFrame {
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// One AP's header, read by its CPL-0 entry (see [`crate::trampoline`]).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(512))]
pub(crate) struct PerCpu {
    /// The AP's GDT: [`GDT_SEGMENTS`], then the descriptor of `tss`.
    gdt: [u64; GDT_ENTRIES],
    _pad0: [u16; 3],
    /// LGDT's operand (limit, then base): the limit at offset 6 mod 8 aligns the base.
    gdt_limit: u16,
    gdt_base: u64,
    /// LTR's operand: [`TSS_SELECTOR`].
    tss_selector: u16,
    _pad1: [u16; 3],
    /// What the AP's CPL-0 entry drops to CPL 3 with: the Rust entry on the user stack.
    iret_frame: IretFrame,
    tss: Tss,
    /// The I/O permission bitmap (all zero: every port allowed), then the 0xFF byte that must
    /// follow it (Intel SDM Vol. 1, 19.5.2).
    io_bitmap: [u8; IO_BITMAP_BYTES as usize + 1],
}
const _: () = assert!(size_of::<PerCpu>() == 1 << HEADER_SHIFT);
const _: () = assert!(offset_of!(PerCpu, gdt_base) % 8 == 0);
const _: () = assert!(offset_of!(PerCpu, io_bitmap) == offset_of!(PerCpu, tss) + TSS_SIZE as usize);
// The TSS must not cross a page boundary (Intel SDM Vol. 3A, 8.2.1): headers are 512-byte
// aligned, so it is enough that it lies inside one header.
const _: () = assert!(offset_of!(PerCpu, tss) + TSS_SIZE as usize <= 1 << HEADER_SHIFT);

/// Field offsets inside a [`PerCpu`] header, for the trampoline's assembly.
pub(crate) mod offset {
    use super::*;

    /// LGDT operand.
    pub(crate) const GDTR: usize = offset_of!(PerCpu, gdt_limit);
    /// LTR operand.
    pub(crate) const TSS_SELECTOR: usize = offset_of!(PerCpu, tss_selector);
    /// The access byte of the TSS descriptor (byte 5 of the descriptor).
    pub(crate) const TSS_ACCESS: usize = offset_of!(PerCpu, gdt) + super::TSS_SELECTOR as usize + 5;
    /// The IRETQ frame.
    pub(crate) const IRET_FRAME: usize = offset_of!(PerCpu, iret_frame);
}

/// An empty header.
const EMPTY: PerCpu = PerCpu {
    gdt: [0; GDT_ENTRIES],
    _pad0: [0; 3],
    gdt_limit: 0,
    gdt_base: 0,
    tss_selector: 0,
    _pad1: [0; 3],
    iret_frame: IretFrame {
        rip: 0,
        cs: 0,
        rflags: 0,
        rsp: 0,
        ss: 0,
    },
    tss: Tss {
        reserved0: 0,
        rsp: [0; 3],
        reserved1: 0,
        ist: [0; 7],
        reserved2: 0,
        reserved3: 0,
        iomap_base: 0,
    },
    io_bitmap: [0; IO_BITMAP_BYTES as usize + 1],
};

/// The headers, one per slot (the BSP's slot is unused). `pub(crate)` for the trampoline, which
/// reads them by symbol; Rust code goes through [`prepare`].
pub(crate) static PER_CPU: Global<[PerCpu; CAPACITY]> = Global::new([EMPTY; CAPACITY]);

/// Where the AP stacks are: slot `s` owns `[base + s * STACKS_SIZE, + STACKS_SIZE)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stacks {
    base: u64,
    /// Slots `0..slots` have stacks.
    slots: usize,
}

impl Stacks {
    /// True if slot `slot` has stacks.
    pub(crate) fn covers(&self, slot: usize) -> bool {
        slot < self.slots
    }
}

/// Places the stacks of `slots` slots in usable RAM above the kernel image, below the MMIO hole
/// (the boot page tables map only the first 4 GiB): in the RAM entry of `memory_map` that holds
/// the most of them. Fewer slots get stacks when RAM is short (none without a memory map).
pub(crate) fn place_stacks(memory_map: impl Iterator<Item = MemmapEntry>, slots: usize) -> Stacks {
    let floor = align_up(phys::kernel_image().end, PAGE_SIZE);
    let ceiling = MMIO_HOLE_START.min(IDENTITY_MAP_SIZE);
    let mut best = Stacks { base: 0, slots: 0 };
    for e in memory_map.filter(|e| e.kind == memmap_type::RAM) {
        let lo = align_up(e.addr.max(floor), PAGE_SIZE);
        let hi = e.addr.saturating_add(e.size).min(ceiling) & !(PAGE_SIZE - 1);
        let fit = (hi.saturating_sub(lo) / STACKS_SIZE).min(slots as u64) as usize;
        if fit > best.slots {
            best = Stacks {
                base: lo,
                slots: fit,
            };
        }
    }
    best
}

/// `value` rounded up to a multiple of `align` (a power of two); saturates near the top.
fn align_up(value: u64, align: u64) -> u64 {
    value.saturating_add(align - 1) & !(align - 1)
}

/// Fills the header of `slot` for an AP about to be kicked: its GDT with its own TSS
/// descriptor, its TSS (RSP0 at the top of its kernel stack, the I/O bitmap), and the frame
/// that enters `user_entry` at CPL 3 on its user stack.
///
/// # Panics
///
/// If `slot` is out of range or has no stacks: bugs in the caller.
pub(crate) fn prepare(slot: usize, stacks: &Stacks, user_entry: u64) {
    assert!(
        slot < CAPACITY && stacks.covers(slot),
        "slot {slot} has no per-CPU area"
    );
    let stack_base = stacks.base + slot as u64 * STACKS_SIZE;
    let kernel_stack_top = stack_base + KERNEL_STACK_SIZE;
    let user_stack_top = kernel_stack_top + USER_STACK_SIZE;
    // SAFETY: slot < CAPACITY, so the header is inside the array. Only the BSP writes headers,
    // and only before it kicks the header's AP, which reads it after the kick (an IPI sent by a
    // supervisor call, which orders this store before the AP's loads).
    let header = unsafe { &mut (*PER_CPU.get())[slot] };
    let tss_base = (&raw const header.tss) as u64;
    let mut gdt = [0u64; GDT_ENTRIES];
    gdt[..GDT_SEGMENTS.len()].copy_from_slice(&GDT_SEGMENTS);
    gdt[GDT_SEGMENTS.len()..].copy_from_slice(&tss_descriptor(tss_base));
    *header = PerCpu {
        gdt,
        gdt_limit: (size_of::<[u64; GDT_ENTRIES]>() - 1) as u16,
        gdt_base: (&raw const header.gdt) as u64,
        tss_selector: TSS_SELECTOR,
        iret_frame: IretFrame {
            rip: user_entry,
            cs: u64::from(USER_CS),
            rflags: USER_RFLAGS,
            rsp: user_stack_top,
            ss: u64::from(USER_DS),
        },
        tss: Tss {
            rsp: [kernel_stack_top, 0, 0],
            iomap_base: TSS_SIZE as u16,
            ..EMPTY.tss
        },
        ..EMPTY
    };
    header.io_bitmap[IO_BITMAP_BYTES as usize] = 0xFF;
    debug_assert_eq!(
        (header.gdt[GDT_SEGMENTS.len()] >> 40) as u8,
        TSS_ACCESS_AVAILABLE
    );
}
