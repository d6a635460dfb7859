//! Deliberate exceptions for tests (`sipi.fault_vector=N`): the BSP raises vector N so that the
//! fault path (handler, fault report, exit status) can be checked end to end.
//!
//! Exceptions that push an error code are raised for real (a software `int` would not push
//! one, and the stub would misread the frame); the others with a software `int` unless a real
//! instruction causes them easily. The BSP runs at CPL 3 (see [`crate::boot`]); kvm_pvm turns
//! a CPL-3 `INT n` other than INT1, INT3 and INT 4 into #UD, so there vectors 2, 5, 7, 9, 15,
//! 16, 18-20, 22-28 and 31 arrive as #UD (6). Vector 0 cannot be requested: 0 means "none".

use core::arch::asm;

use firmware::layout::IDENTITY_MAP_SIZE;

use crate::idt::{ERROR_CODE_VECTORS, vector};

/// A non-canonical address: bit 63 set, bits 62:47 clear (Intel SDM Vol. 1, 3.3.7.1).
const NON_CANONICAL: u64 = 0x8000_0000_0000_0000;

/// Raises a software interrupt with vector `$v` if it is one of those listed.
macro_rules! software_interrupt {
    ($v:expr; $($n:literal)*) => {
        match $v {
            $(
                $n => {
                    // SAFETY: INT n only delivers vector n through the IDT, whose handler reports
                    // the exception and never returns; no memory is touched.
                    unsafe { asm!("int {}", const $n, options(nomem, nostack)) };
                }
            )*
            _ => {}
        }
    };
}

/// Raises exception `v` on this CPU. The exception handler never returns.
///
/// # Panics
///
/// If `v` is not an exception vector, or is one that cannot be raised on demand (#DF, #TS,
/// #NP, #AC, #CP, #VC, #SX): their error code comes only from a real fault of that kind.
pub(crate) fn raise(v: u32) -> ! {
    match v {
        vector::DE => {
            // SAFETY: DIV by a zero divisor raises #DE before writing any register; the asm is
            // opaque, so the compiler cannot fold or reject the division.
            unsafe {
                asm!("div ecx", inout("eax") 1u32 => _, inout("edx") 0u32 => _, in("ecx") 0u32,
                     options(nomem, nostack));
            }
        }
        vector::DB => {
            // SAFETY: INT1 (ICEBP, opcode F1; LLVM has no mnemonic for it) raises #DB as a trap; no
            // memory is touched.
            unsafe { asm!(".byte 0xF1", options(nomem, nostack)) };
        }
        vector::BP => {
            // SAFETY: INT3 raises #BP; no memory is touched.
            unsafe { asm!("int3", options(nomem, nostack)) };
        }
        vector::UD => {
            // SAFETY: UD2 raises #UD; no memory is touched.
            unsafe { asm!("ud2", options(nomem, nostack)) };
        }
        vector::SS => {
            // SAFETY: a non-canonical address through the stack segment (base RSP) raises
            // #SS(0) before any access.
            unsafe {
                asm!("mov {0}, [rsp + {0}]", inout(reg) NON_CANONICAL => _, options(readonly, nostack));
            }
        }
        vector::GP => {
            // SAFETY: a non-canonical data address raises #GP(0) before any access.
            unsafe {
                asm!("mov {0}, [{0}]", inout(reg) NON_CANONICAL => _, options(readonly, nostack))
            };
        }
        vector::PF => {
            // SAFETY: the boot page tables map only the first 4 GiB, so a read at 4 GiB raises
            // #PF (not-present) before any access.
            unsafe {
                asm!("mov {0}, [{0}]", inout(reg) IDENTITY_MAP_SIZE => _, options(readonly, nostack))
            };
        }
        v if v >= 32 => panic!("sipi.fault_vector={v} is not an exception vector (0..31)"),
        v if ERROR_CODE_VECTORS & (1 << v) != 0 => panic!(
            "sipi.fault_vector={v}: this exception cannot be raised on demand (the CPU pushes its \
             error code only for a real fault)"
        ),
        v => {
            software_interrupt!(v; 2 4 5 7 9 15 16 18 19 20 22 23 24 25 26 27 28 31);
        }
    }
    panic!("raising exception vector {v} returned")
}
