//! The interrupt descriptor table, complete at assembly time and shared by every CPU (the entry
//! code loads it through `idt_pointer`): the 32 architectural exception vectors (Intel SDM
//! Vol. 3A, 6.3.1, Table 6-1), each with a stub that funnels into [`exception_handler`], and
//! the one interrupt vector the kernel uses, [`vector::WAKE`].
//!
//! Every exception is fatal: the handler prints a line on COM1, sends a fault report and ends
//! the VM. The stubs run at CPL 0 on the TSS's RSP0 stack; they add CR2 to the frame and return
//! to CPL 3 to run the Rust handler there, below the frame (see [`crate::boot`] for why all Rust
//! code runs at CPL 3). Interrupts stay masked (IF=0) everywhere except inside
//! [`crate::supervisor::wait_while`], where a CPU halts until another one wakes it with a
//! [`vector::WAKE`] IPI: that vector's stub only signals the end of the interrupt to the local
//! APIC and returns into the wait. A vector above [`vector::WAKE`] is beyond the IDT limit and
//! turns into a #GP.
//!
//! The #UD vector is also the way in for supervisor calls: its entry, here with the other
//! CPL-0 entry code, carries out the calls that [`crate::supervisor`] defines and makes.

use core::arch::global_asm;
use core::fmt::Write;

use firmware::layout::{KERNEL_MIN_ADDR, LAPIC_BASE};
use firmware::report::{Fault, exception_name};

use crate::apic::{self, Register, icr};
use crate::cpu;
use crate::gdt::{KERNEL_CS, USER_CS, USER_DS, USER_RFLAGS};
use crate::report::{self, Claim};
use crate::serial::Com1;
use crate::supervisor::{self, Function, MARKER};

/// Exception vectors (Intel SDM Vol. 3A, Table 6-1) the kernel names.
pub(crate) mod vector {
    /// Divide error.
    pub(crate) const DE: u32 = 0;
    /// Debug.
    pub(crate) const DB: u32 = 1;
    /// Breakpoint.
    pub(crate) const BP: u32 = 3;
    /// Invalid opcode.
    pub(crate) const UD: u32 = 6;
    /// Double fault.
    pub(crate) const DF: u32 = 8;
    /// Invalid TSS.
    pub(crate) const TS: u32 = 10;
    /// Segment not present.
    pub(crate) const NP: u32 = 11;
    /// Stack-segment fault.
    pub(crate) const SS: u32 = 12;
    /// General protection.
    pub(crate) const GP: u32 = 13;
    /// Page fault.
    pub(crate) const PF: u32 = 14;
    /// Alignment check.
    pub(crate) const AC: u32 = 17;
    /// Control protection.
    pub(crate) const CP: u32 = 21;
    /// VMM communication (AMD SEV-ES).
    pub(crate) const VC: u32 = 29;
    /// Security exception (AMD).
    pub(crate) const SX: u32 = 30;
    /// The wake-up IPI: the first vector above the exceptions (priority class 2), sent as a
    /// fixed interrupt to CPUs halted in [`crate::supervisor::wait_while`].
    pub(crate) const WAKE: u32 = 32;
}

/// The vectors for which the CPU pushes an error code (Intel SDM Vol. 3A, 6.13; AMD APM Vol. 2,
/// 8.2 for #VC and #SX), as a bit mask.
pub(crate) const ERROR_CODE_VECTORS: u32 = (1 << vector::DF)
    | (1 << vector::TS)
    | (1 << vector::NP)
    | (1 << vector::SS)
    | (1 << vector::GP)
    | (1 << vector::PF)
    | (1 << vector::AC)
    | (1 << vector::CP)
    | (1 << vector::VC)
    | (1 << vector::SX);

/// Gate attributes (Intel SDM Vol. 3A, 6.14.1, Figure 6-8): present, DPL 3, type 0xE (64-bit
/// interrupt gate: IF is cleared on entry). DPL 3 lets CPL-3 code use INT3 and INT n (the fault
/// tests; kvm_pvm turns most INT n at CPL 3 into #UD); hardware exceptions ignore the DPL.
const GATE_ATTRIBUTES: u8 = (1 << 7) | (3 << 5) | 0xE;
/// The wake-up interrupt's gate: present, DPL 0 (an `INT 32` from CPL 3 is a #GP, not a fake
/// wake-up), 64-bit interrupt gate.
const WAKE_GATE_ATTRIBUTES: u8 = (1 << 7) | 0xE;

/// Where the exception stubs start (linker.ld places `.text.exceptions` first): the IDT is
/// built at assembly time from this address, split into the gates' three offset fields.
const STUBS_BASE: u64 = KERNEL_MIN_ADDR;
/// Room for the stubs: they must not carry into the upper offset fields (linker.ld checks it).
const STUBS_MAX_SIZE: u64 = 0x1000;
const _: () = assert!((STUBS_BASE & 0xFFFF) + STUBS_MAX_SIZE <= 0x1_0000);
// The IDT's vectors are 0-31 (exceptions), then WAKE: it must be the next one.
const _: () = assert!(vector::WAKE == 32);
// The xAPIC EOI register's address fits the 32-bit MOV in the wake-up stub.
const _: () = assert!(LAPIC_BASE + Register::Eoi as u64 <= u32::MAX as u64);

/// Length of `UD2` (0F 0B), the start of every supervisor call.
const UD2_LEN: u64 = 2;

/// What the stubs leave on the kernel stack: CR2, the vector and the error code (0 when the CPU
/// pushes none), then the CPU's own interrupt frame.
#[derive(Debug)]
#[repr(C)]
struct ExceptionFrame {
    cr2: u64,
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    // SS follows; the handler does not need it.
}

global_asm!(
    r#"
    /* ---------------------------------------------------------------------------------- */
    /* Exception stubs (CPL 0): push an error code if the CPU did not, then the vector.   */
    /* ---------------------------------------------------------------------------------- */
    .section .text.exceptions, "ax", @progbits
    .global exception_stubs_start
exception_stubs_start:
    .irp vector, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .balign 16
exception_stub_\vector:
    .if \vector == {ud_vector}
    jmp invalid_opcode_entry            /* a supervisor call, or a real #UD (below) */
    .else
    .if (({error_code_vectors} >> \vector) & 1) == 0
    pushq $0                            /* no error code from the CPU: push one */
    .endif
    pushq $\vector
    jmp exception_common
    .endif
    .endr

    /* Every exception: add CR2, then run the Rust handler at CPL 3 on this kernel stack,  */
    /* below the frame, by returning to CPL 3 with IRETQ. The handler never returns.      */
    .global exception_common
exception_common:
    cld                                 /* the exception may have hit inside a backward copy */
    mov %cr2, %rax
    pushq %rax
    mov %rsp, %rdi                      /* RDI = &ExceptionFrame */
    lea -64(%rsp), %rax
    and $-16, %rax                      /* the handler's stack: below the IRETQ frame */
    pushq ${user_ds}
    pushq %rax
    pushq ${user_rflags}
    pushq ${user_cs}
    lea exception_user(%rip), %rax
    pushq %rax
    iretq
exception_user:                         /* CPL 3 */
    call {handler}
    ud2

    /* The wake-up interrupt (vector {wake_vector}): only ever taken inside the HLT loop of a  */
    /* supervisor wait, at CPL 0 (IF=0 everywhere else). Signal EOI, return into the loop. */
    .balign 16
wake_interrupt_stub:
    push %rax
    push %rcx
    push %rdx
    xor %eax, %eax
    cmpb $0, {x2apic_mode}(%rip)
    je 1f
    mov ${x2apic_eoi_msr}, %ecx         /* x2APIC: WRMSR 0 to the EOI MSR */
    xor %edx, %edx
    wrmsr
    jmp 2f
1:  mov ${xapic_eoi}, %ecx              /* xAPIC: write 0 to the EOI register */
    movl %eax, (%rcx)
2:  pop %rdx
    pop %rcx
    pop %rax
    iretq

    .global exception_stubs_end
exception_stubs_end:

    /* ---------------------------------------------------------------------------------- */
    /* The IDT: vectors 0-31 to the exception stubs.                                      */
    /* ---------------------------------------------------------------------------------- */
    .section .rodata.idt, "a", @progbits
    .balign 16
idt:
    .irp vector, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .word {stubs_base_low} + (exception_stub_\vector - exception_stubs_start)
    .word {kernel_cs}
    .byte 0                             /* IST: none */
    .byte {gate_attributes}
    .word {stubs_base_mid}
    .long {stubs_base_high}
    .long 0
    .endr
    .word {stubs_base_low} + (wake_interrupt_stub - exception_stubs_start)   /* vector 32 */
    .word {kernel_cs}
    .byte 0
    .byte {wake_gate_attributes}
    .word {stubs_base_mid}
    .long {stubs_base_high}
    .long 0
idt_end:
    .balign 8
    .global idt_pointer
idt_pointer:
    .word idt_end - idt - 1
    .quad idt

    .text
"#,
    error_code_vectors = const ERROR_CODE_VECTORS,
    ud_vector = const vector::UD,
    handler = sym exception_handler,
    user_ds = const USER_DS,
    user_cs = const USER_CS,
    user_rflags = const USER_RFLAGS,
    kernel_cs = const KERNEL_CS,
    gate_attributes = const GATE_ATTRIBUTES,
    wake_gate_attributes = const WAKE_GATE_ATTRIBUTES,
    wake_vector = const vector::WAKE,
    x2apic_mode = sym apic::X2APIC_MODE,
    x2apic_eoi_msr = const apic::x2apic_msr(Register::Eoi),
    xapic_eoi = const LAPIC_BASE + Register::Eoi as u64,
    stubs_base_low = const STUBS_BASE & 0xFFFF,
    stubs_base_mid = const (STUBS_BASE >> 16) & 0xFFFF,
    stubs_base_high = const STUBS_BASE >> 32,
    options(att_syntax),
);

// The #UD entry: a supervisor call (see crate::supervisor for the contract: the marker, the
// function numbers, the registers) is carried out here at CPL 0, in `.text.supervisor` outside
// the stubs' page; any other #UD goes to `exception_common` like every other exception.
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

/// The common exception handler, at CPL 3 on the kernel stack below the frame: reports the
/// exception and ends the VM.
extern "sysv64" fn exception_handler(frame: *const ExceptionFrame) -> ! {
    // SAFETY: `exception_common` passes the address of the frame the stub and the CPU just
    // pushed; this function's stack starts below it, and the frame stays untouched because
    // nothing returns to the interrupted code.
    let frame = unsafe { &*frame };
    let cr2 = frame.cr2;
    let apic_id = cpu::initial_apic_id();
    match report::claim_fatal(apic_id) {
        Claim::First => {}
        Claim::Nested => report::exit(report::EXIT_NESTED_FATAL),
        Claim::OtherCpu => supervisor::halt(),
    }
    let vector = frame.vector as u32;
    let _ = writeln!(
        Com1::new(),
        "sipi-guest: exception {} ({vector}) on apic {apic_id} at rip {:#x} (cpl {}), error code \
         {:#x}, cr2 {cr2:#x}, rsp {:#x}, rflags {:#x}",
        exception_name(vector),
        frame.rip,
        frame.cs & 3,
        frame.error_code,
        frame.rsp,
        frame.rflags,
    );
    report::send_fault(&Fault {
        apic_id,
        vector,
        error_code: frame.error_code,
        rip: frame.rip,
        cr2,
        rsp: frame.rsp,
    })
}
