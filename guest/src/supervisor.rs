//! Supervisor calls: the privileged operations the kernel's CPL-3 code asks CPL 0 for (see
//! [`crate::boot`] for why the Rust code runs at CPL 3).
//!
//! A call is `UD2` followed by the 4-byte [`MARKER`], with the function in RAX and the arguments
//! in RDI and RSI; the result comes back in RAX, and RCX, RDX and R11 are clobbered. The #UD
//! stub (CPL 0) recognises the marker after a `UD2` executed at CPL 3, carries the function out
//! and returns after the marker with IRETQ; any other #UD is reported as a fault. A fault inside
//! a call (RDMSR of a missing MSR, say) is reported like any other exception.
//!
//! Why not `INT n` or `SYSCALL`: kvm_pvm turns an `INT n` at CPL 3 into #UD and runs the SYSCALL
//! target at CPL 3, while it delivers exceptions from CPL 3 to the IDT at CPL 0 as the
//! architecture says. On hardware virtualisation all three work; the #UD path costs the same.

use core::arch::{asm, global_asm};

use crate::idt::vector;

/// Bytes after the `UD2` of a supervisor call ("SUPV" little endian), never executed.
pub const MARKER: u32 = u32::from_le_bytes(*b"SUPV");
/// Length of `UD2` (0F 0B).
const UD2_LEN: u64 = 2;

/// Supervisor-call functions, in RAX.
#[derive(Debug, Clone, Copy)]
#[repr(u64)]
pub enum Function {
    /// RDMSR: RDI = MSR; returns its value.
    ReadMsr = 0,
    /// WRMSR: RDI = MSR, RSI = value.
    WriteMsr = 1,
    /// CLI; HLT, forever: never returns.
    Halt = 2,
}

global_asm!(
    r#"
    /* #UD lands here (from exception_stub_{ud_vector}) at CPL 0 on the kernel stack, with  */
    /* the CPU's frame: RIP, CS, RFLAGS, RSP, SS. RIP points at the faulting UD2.         */
    .section .text.supervisor, "ax", @progbits
    .global invalid_opcode_entry
invalid_opcode_entry:
    testb $3, 8(%rsp)                   /* from CPL 3? */
    jz 5f
    mov (%rsp), %r11
    cmpw $0x0B0F, (%r11)                /* UD2 */
    jne 5f
    cmpl ${marker}, {ud2_len}(%r11)     /* then the marker */
    jne 5f
    addq ${call_len}, (%rsp)            /* return after the marker */
    cmp ${fn_read_msr}, %rax
    je 1f
    cmp ${fn_write_msr}, %rax
    je 2f
    cmp ${fn_halt}, %rax
    je 3f
    jmp 5f                              /* unknown function: reported as a #UD */
1:  mov %edi, %ecx                      /* RDMSR: ECX = MSR, EDX:EAX = value */
    rdmsr
    shl $32, %rdx
    or %rdx, %rax
    iretq
2:  mov %edi, %ecx                      /* WRMSR: ECX = MSR, EDX:EAX = value */
    mov %esi, %eax
    mov %rsi, %rdx
    shr $32, %rdx
    wrmsr
    iretq
3:  cli                                 /* HALT: forever */
    hlt
    jmp 3b
5:  pushq $0                            /* a real #UD: no error code */
    pushq ${ud_vector}
    jmp exception_common

    .text
"#,
    marker = const MARKER,
    ud2_len = const UD2_LEN,
    call_len = const UD2_LEN + 4,
    ud_vector = const vector::UD,
    fn_read_msr = const Function::ReadMsr as u64,
    fn_write_msr = const Function::WriteMsr as u64,
    fn_halt = const Function::Halt as u64,
    options(att_syntax),
);

/// Reads a model-specific register.
///
/// # Safety
///
/// `msr` must exist on this CPU (RDMSR of an unknown MSR raises #GP, a fatal exception) and
/// reading it must have no side effect the caller has not accounted for.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let value: u64;
    // SAFETY: the supervisor call executes RDMSR at CPL 0 and returns after the marker; it
    // touches no memory of ours and clobbers only the registers listed. The caller guarantees
    // the MSR may be read.
    unsafe {
        asm!(
            "ud2",
            ".long {marker}",
            marker = const MARKER,
            inout("rax") Function::ReadMsr as u64 => value,
            in("rdi") u64::from(msr),
            out("rcx") _,
            out("rdx") _,
            out("r11") _,
            options(nostack),
        );
    }
    value
}

/// Writes a model-specific register.
///
/// # Safety
///
/// `msr` must exist and accept `value`, and the write must not break any assumption of the
/// running code (paging, the APIC mode, ...).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the supervisor call executes WRMSR at CPL 0 and returns after the marker; it
    // clobbers only the registers listed. The caller guarantees the write is valid and harmless
    // to the running code.
    unsafe {
        asm!(
            "ud2",
            ".long {marker}",
            marker = const MARKER,
            inout("rax") Function::WriteMsr as u64 => _,
            in("rdi") u64::from(msr),
            in("rsi") value,
            out("rcx") _,
            out("rdx") _,
            out("r11") _,
            options(nostack),
        );
    }
}

/// Masks interrupts and halts this CPU forever. NMIs, SMIs and INIT may wake it; it then halts
/// again.
pub fn halt() -> ! {
    // SAFETY: the supervisor call halts this CPU at CPL 0 forever; it never returns.
    unsafe {
        asm!(
            "ud2",
            ".long {marker}",
            marker = const MARKER,
            in("rax") Function::Halt as u64,
            options(noreturn, nomem, nostack),
        );
    }
}
