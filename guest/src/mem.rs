//! The C memory functions that compiled Rust code calls (`memcpy`, `memmove`, `memset`,
//! `memcmp`, `bcmp`). The host target's compiler-builtins does not export them and there is no
//! libc, so the kernel provides them.
//!
//! They are written with string instructions in inline assembly: a plain Rust loop could be
//! recognised by LLVM as a memory idiom and compiled back into a call to the very function it
//! implements. The direction flag is clear on entry (System V ABI) and on return.

use core::arch::asm;

/// Copies `n` bytes from `src` to `dest`; the regions must not overlap.
///
/// # Safety
///
/// `src` must be valid for reads and `dest` for writes of `n` bytes, and the regions must not
/// overlap.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both regions are valid for `n` bytes; REP MOVSB copies
    // exactly RCX bytes forwards from RSI to RDI.
    unsafe {
        asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags),
        );
    }
    dest
}

/// Copies `n` bytes from `src` to `dest`; the regions may overlap.
///
/// # Safety
///
/// `src` must be valid for reads and `dest` for writes of `n` bytes.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if n == 0 {
        return dest;
    }
    if (dest as usize) <= (src as usize) || (dest as usize) >= (src as usize).wrapping_add(n) {
        // SAFETY: a forward copy never overwrites a source byte before reading it when the
        // destination starts before the source or after its end.
        unsafe { memcpy(dest, src, n) }
    } else {
        // SAFETY: the destination overlaps the end of the source: copy backwards (DF=1) from the
        // last byte, then clear DF again as the ABI requires. The caller guarantees both regions
        // are valid for `n` bytes.
        unsafe {
            asm!(
                "std",
                "rep movsb",
                "cld",
                inout("rcx") n => _,
                inout("rdi") dest.add(n - 1) => _,
                inout("rsi") src.add(n - 1) => _,
                options(nostack),
            );
        }
        dest
    }
}

/// Fills `n` bytes at `dest` with the byte `c`.
///
/// # Safety
///
/// `dest` must be valid for writes of `n` bytes.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the region is valid; REP STOSB stores AL RCX times at RDI.
    unsafe {
        asm!(
            "rep stosb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            in("al") c as u8,
            options(nostack, preserves_flags),
        );
    }
    dest
}

/// Compares `n` bytes; returns the difference of the first differing bytes (as unsigned
/// values), or 0.
///
/// # Safety
///
/// `a` and `b` must be valid for reads of `n` bytes.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    if n == 0 {
        return 0;
    }
    let equal: u8;
    let (a_next, b_next): (*const u8, *const u8);
    // SAFETY: the caller guarantees both regions are valid for `n` bytes. REPE CMPSB compares
    // [RSI] with [RDI] until a difference or RCX reaches 0, leaving RSI/RDI one past the last
    // compared byte and ZF set only if that byte was equal.
    unsafe {
        asm!(
            "repe cmpsb",
            "sete {equal}",
            equal = out(reg_byte) equal,
            inout("rcx") n => _,
            inout("rsi") a => a_next,
            inout("rdi") b => b_next,
            options(nostack, readonly),
        );
    }
    if equal != 0 {
        return 0;
    }
    // SAFETY: the comparison stopped on a byte inside both regions, one before the pointers.
    let (x, y) = unsafe { (*a_next.sub(1), *b_next.sub(1)) };
    i32::from(x) - i32::from(y)
}

/// Compares `n` bytes for equality only: 0 if equal, non-zero otherwise.
///
/// # Safety
///
/// `a` and `b` must be valid for reads of `n` bytes.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: forwarded with the caller's guarantee.
    unsafe { memcmp(a, b, n) }
}
