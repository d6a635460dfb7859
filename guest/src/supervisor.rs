//! Supervisor calls: the privileged operations the kernel's CPL-3 code asks CPL 0 for (see
//! [`crate::boot`] for why the Rust code runs at CPL 3).
//!
//! A call is `UD2` followed by the 4-byte [`MARKER`], with the function in RAX and the arguments
//! in RDI and RSI (and RDX, R10 where a [`Function`] says so); the result comes back in RAX, and
//! RCX, RDX and R11 are clobbered, plus the registers a [`Function`] lists. The #UD
//! stub (CPL 0) recognises the marker after a `UD2` executed at CPL 3, carries the function out
//! and returns after the marker with IRETQ; any other #UD is reported as a fault. A fault inside
//! a call (RDMSR of a missing MSR, say) is reported like any other exception.
//!
//! Why not `INT n` or `SYSCALL`: kvm_pvm turns an `INT n` at CPL 3 into #UD and runs the SYSCALL
//! target at CPL 3, while it delivers exceptions from CPL 3 to the IDT at CPL 0 as the
//! architecture says. On hardware virtualisation all three work; the #UD path costs the same.
//!
//! Cost on kvm_pvm: a call is ~70 us (the exception, ~15 emulated instructions of this stub at
//! ~2 us each, IRETQ), so a loop over many items belongs inside one call, as in
//! [`kick_x2apic`]. [`Function::Halt`] is dispatched first: every AP ends with it.

use core::arch::{asm, global_asm};
use core::sync::atomic::AtomicU32;

use crate::apic::{self, Register, icr};
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
    /// Starts APs in x2APIC mode: RDI = their x2APIC IDs (`u32` each), RSI = a `u64` per AP
    /// for the TSC just before its INIT, RDX = how many, R10 = a destination shorthand for
    /// the ICR's low half (0: none). For each AP in order: RDTSC, INIT, STARTUP, STARTUP through
    /// the ICR MSR. RDI, RSI, R8, R9 and R10 are clobbered too.
    KickX2Apic = 3,
    /// Halts with interrupts enabled while the `u32` at RDI equals ESI: STI; HLT until an
    /// interrupt (the [`vector::WAKE`] IPI), then CLI and check again. Returns with IF=0.
    WaitWhile = 4,
    /// Parks APs in wait-for-SIPI: RDI = their x2APIC IDs (`u32` each), RSI = a `u64` per AP
    /// for the TSC just before its INIT, RDX = how many. For each AP in order: RDTSC, then INIT
    /// through the ICR MSR. RDI, RSI, R8 and R9 are clobbered too.
    InitX2Apic = 5,
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
    cmp ${fn_halt}, %rax
    je 3f
    cmp ${fn_read_msr}, %rax
    je 1f
    cmp ${fn_write_msr}, %rax
    je 2f
    cmp ${fn_kick_x2apic}, %rax
    je 4f
    cmp ${fn_wait_while}, %rax
    je 6f
    cmp ${fn_init_x2apic}, %rax
    je 7f
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
4:  test %rdx, %rdx                     /* KICK_X2APIC: RDI = IDs, RSI = stamps, RDX = */
    jz 42f                              /* count, R10 = shorthand */
    lea (%rdi,%rdx,4), %rdi             /* one past the last ID */
    lea (%rsi,%rdx,8), %rsi             /* one past the last stamp */
    neg %rdx
    mov %rdx, %r8                       /* R8 = index, from -count up to 0 */
    mov ${icr_init}, %r9d
    or %r10d, %r9d                      /* R9 = INIT's low half */
    or ${icr_startup}, %r10d            /* R10 = STARTUP's low half */
    mov ${x2apic_icr}, %ecx
41: rdtsc                               /* ApPhase::Kick, just before the INIT */
    mov %eax, (%rsi,%r8,8)
    mov %edx, 4(%rsi,%r8,8)
    mov (%rdi,%r8,4), %edx              /* ICR 63:32: the destination x2APIC ID */
    mov %r9d, %eax
    wrmsr
    mov %r10d, %eax
    wrmsr
    wrmsr                               /* the second STARTUP (Intel SDM Vol. 3A, 9.4.4.1) */
    inc %r8
    jnz 41b
42: iretq
6:  cmp %esi, (%rdi)                    /* WAIT_WHILE: RDI = address, ESI = value */
    jne 61f
    sti                                 /* an interrupt pending now is taken after HLT starts */
    hlt                                 /* (STI's shadow), so no wake-up is lost */
    cli
    jmp 6b
61: iretq
7:  test %rdx, %rdx                     /* INIT_X2APIC: RDI = IDs, RSI = stamps, RDX = count */
    jz 72f
    lea (%rdi,%rdx,4), %rdi
    lea (%rsi,%rdx,8), %rsi
    neg %rdx
    mov %rdx, %r8                       /* R8 = index, from -count up to 0 */
    mov ${x2apic_icr}, %ecx
71: rdtsc                               /* the teardown's Init stamp, just before the INIT */
    mov %eax, (%rsi,%r8,8)
    mov %edx, 4(%rsi,%r8,8)
    mov (%rdi,%r8,4), %edx              /* ICR 63:32: the destination x2APIC ID */
    mov ${icr_init}, %eax
    wrmsr
    inc %r8
    jnz 71b
72: iretq
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
    fn_kick_x2apic = const Function::KickX2Apic as u64,
    fn_wait_while = const Function::WaitWhile as u64,
    fn_init_x2apic = const Function::InitX2Apic as u64,
    x2apic_icr = const apic::x2apic_msr(Register::IcrLow),
    icr_init = const icr::INIT,
    icr_startup = const icr::STARTUP,
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

/// Starts the APs with x2APIC IDs `apic_ids`: for each in order, records the TSC in the same
/// place of `stamps`, then sends INIT, STARTUP, STARTUP (the STARTUP vector is the trampoline's
/// page), all in one supervisor call. With a non-zero destination `shorthand` (ICR bits 19:18)
/// each sequence goes where the shorthand says and the IDs are ignored.
///
/// # Safety
///
/// The local APIC must be in x2APIC mode, and every ID (or the shorthand) must name CPUs the
/// caller means to reset and start at the trampoline (never this CPU).
///
/// # Panics
///
/// If the slices differ in length.
pub unsafe fn kick_x2apic(apic_ids: &[u32], stamps: &mut [u64], shorthand: u32) {
    assert_eq!(apic_ids.len(), stamps.len());
    // SAFETY: the supervisor call reads `apic_ids.len()` IDs and writes as many stamps, both
    // inside the slices; it sends only the IPIs the caller asked for, and clobbers only the
    // registers listed.
    unsafe {
        asm!(
            "ud2",
            ".long {marker}",
            marker = const MARKER,
            inout("rax") Function::KickX2Apic as u64 => _,
            inout("rdi") apic_ids.as_ptr() => _,
            inout("rsi") stamps.as_mut_ptr() => _,
            inout("rdx") apic_ids.len() => _,
            inout("r10") shorthand => _,
            out("rcx") _,
            out("r8") _,
            out("r9") _,
            out("r11") _,
            options(nostack),
        );
    }
}

/// Parks the APs with x2APIC IDs `apic_ids` in wait-for-SIPI: for each in order, records the
/// TSC in the same place of `stamps`, then sends INIT, all in one supervisor call.
///
/// # Safety
///
/// The local APIC must be in x2APIC mode, and every ID must name an AP the caller means to
/// reset (never this CPU): whatever it was doing is lost.
///
/// # Panics
///
/// If the slices differ in length.
pub unsafe fn init_x2apic(apic_ids: &[u32], stamps: &mut [u64]) {
    assert_eq!(apic_ids.len(), stamps.len());
    // SAFETY: the supervisor call reads `apic_ids.len()` IDs and writes as many stamps, both
    // inside the slices; it sends only the INITs the caller asked for, and clobbers only the
    // registers listed.
    unsafe {
        asm!(
            "ud2",
            ".long {marker}",
            marker = const MARKER,
            inout("rax") Function::InitX2Apic as u64 => _,
            inout("rdi") apic_ids.as_ptr() => _,
            inout("rsi") stamps.as_mut_ptr() => _,
            inout("rdx") apic_ids.len() => _,
            out("rcx") _,
            out("r8") _,
            out("r9") _,
            out("r11") _,
            options(nostack),
        );
    }
}

/// Halts this CPU while `word` holds `value`: at CPL 0, with interrupts enabled only around
/// the HLT, so that a [`vector::WAKE`] IPI from the CPU that changes `word` wakes it. Returns
/// once `word` differs from `value` (it may have changed back since). Costs one supervisor call
/// (~70 us on kvm_pvm) plus ~15 us per wake-up; the vCPU thread sleeps in KVM meanwhile.
///
/// The CPU changing `word` must send the wake-up after its store (see
/// [`crate::apic::LocalApic::send`] with [`crate::apic::Ipi::Fixed`]); a wake-up without a change
/// only costs a check.
pub fn wait_while(word: &AtomicU32, value: u32) {
    // SAFETY: the supervisor call reads the u32 behind the reference (valid and aligned) at
    // CPL 0 and halts until it changes; interrupts are enabled only around its HLT, where the
    // only one that arrives is the wake-up, whose stub returns into the loop. It clobbers only
    // the registers listed.
    unsafe {
        asm!(
            "ud2",
            ".long {marker}",
            marker = const MARKER,
            inout("rax") Function::WaitWhile as u64 => _,
            in("rdi") word.as_ptr(),
            in("rsi") u64::from(value),
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
