//! Reading structures that firmware (the VMM) left in guest-physical memory: `hvm_start_info`,
//! the command line, ACPI tables. The kernel runs identity-mapped, so a physical address is
//! also a pointer. Every range is checked before it is read: it must lie in RAM below the
//! 32-bit MMIO hole and must not overlap memory the kernel itself writes.

use core::ops::Range;

use firmware::layout::{
    AP_FLOOR_TABLE_ADDR, AP_FLOOR_TABLE_SIZE, MMIO_HOLE_START, TRAMPOLINE_ADDR, TRAMPOLINE_MAX,
    range_within,
};

unsafe extern "C" {
    /// First byte of the kernel image (linker.ld).
    static __kernel_start: u8;
    /// First byte after the kernel image, `.bss` included (linker.ld).
    static __kernel_end: u8;
}

/// The kernel image, whose `.data` and `.bss` the kernel writes.
pub(crate) fn kernel_image() -> Range<u64> {
    (&raw const __kernel_start) as u64..(&raw const __kernel_end) as u64
}

/// True if `[addr, addr + len)` overlaps `range`.
fn overlaps(addr: u64, len: u64, range: Range<u64>) -> bool {
    addr < range.end && range.start < addr.saturating_add(len)
}

/// True if `[addr, addr + len)` may be read as firmware data: not null, inside RAM below the
/// MMIO hole (so the identity map covers it and no device answers the read), and disjoint from
/// everything the kernel writes at a fixed address (its image, the AP trampoline page and the
/// AP floor table). The only other memory the kernel writes, the AP stacks, lies in RAM that the
/// firmware memory map lists as usable (see [`crate::percpu`]), where no firmware structure is.
fn readable(addr: u64, len: u64) -> bool {
    addr != 0
        && range_within(addr, len, 0, MMIO_HOLE_START)
        && !overlaps(addr, len, kernel_image())
        && !overlaps(
            addr,
            len,
            TRAMPOLINE_ADDR..TRAMPOLINE_ADDR + TRAMPOLINE_MAX as u64,
        )
        && !overlaps(
            addr,
            len,
            AP_FLOOR_TABLE_ADDR..AP_FLOOR_TABLE_ADDR + AP_FLOOR_TABLE_SIZE,
        )
}

/// The `len` bytes at guest-physical `addr`, or `None` if that range may not be read.
pub(crate) fn bytes(addr: u64, len: usize) -> Option<&'static [u8]> {
    if !readable(addr, len as u64) {
        return None;
    }
    // SAFETY: the range is identity-mapped RAM (below the MMIO hole, inside the 4 GiB map) and
    // the kernel never writes it: it is outside the kernel image, the trampoline page and the
    // floor table, and the AP stacks go only where the memory map says no firmware data is. So
    // the bytes stay valid and unchanged for the rest of the boot.
    Some(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
}

/// The NUL-terminated string at `addr`, without its NUL, reading at most `max` bytes (the NUL
/// included); `None` if the memory may not be read. A string with no NUL in its first `max`
/// bytes is cut to `max - 1` bytes. Bytes past the NUL are never read.
pub(crate) fn c_string(addr: u64, max: usize) -> Option<&'static [u8]> {
    let mut len = 0;
    while len + 1 < max {
        let byte = bytes(addr.checked_add(len as u64)?, 1)?[0];
        if byte == 0 {
            break;
        }
        len += 1;
    }
    if len == 0 {
        return Some(&[]);
    }
    bytes(addr, len)
}

/// Writes `value` to the firmware field at guest-physical `addr` (4 bytes, readable as
/// [`bytes`] requires); false if that range may not be read. The one such field the kernel
/// writes is the FACS's waking vector before an S3 suspend ([`crate::resume`]); it keeps no
/// slice of the FACS from [`bytes`], which would see the write.
pub(crate) fn write_u32(addr: u64, value: u32) -> bool {
    if !readable(addr, 4) {
        return false;
    }
    // SAFETY: the range is identity-mapped RAM outside everything the kernel writes at a fixed
    // address (see `readable`), and no slice of it is alive (the contract above).
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) };
    true
}
