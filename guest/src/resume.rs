//! ACPI S3 from the BSP's side (`sipi.scenario=suspend-resume`): suspending to RAM through the
//! FADT's PM1a control block, and the way back from the FACS waking vector to the CPL-3 caller.
//!
//! # Suspend ([`suspend`])
//!
//! The BSP installs the AP trampoline's real-mode part at [`TRAMPOLINE_ADDR`] with its far jump
//! aimed at `resume_entry64` instead of an AP's entry, points the FACS's firmware waking vector
//! at that page, stamps the suspend, and calls `resume_suspend` at CPL 3, which pushes the
//! callee-saved registers, saves RSP and writes SLP_TYP = S3 with SLP_EN to PM1a_CNT. The VMM
//! stops every vCPU there; memory is kept (ACPI 6.5, 16.1.3.3).
//!
//! # Resume
//!
//! The platform wakes the BSP in real mode at the waking vector, as after INIT (CS = the
//! vector >> 4, IP = 0); the APs wait for SIPI. The trampoline's first instruction reads the
//! TSC: the resume stamp, from which the round's bringup is measured. It takes the BSP straight
//! to long mode on the boot page tables as it takes an AP (see [`crate::trampoline`]), then
//! `resume_entry64`, at CPL 0 with no stack, reloads the BSP's boot GDT and segment registers,
//! marks the BSP's TSS available again (the descriptor is still busy from boot) and loads TR,
//! loads the IDT, and returns to CPL 3 with IRETQ on the saved stack, where `resume_suspend`
//! pops the callee-saved registers and returns the resume stamp. Nothing else survives a
//! reset that the kernel needs: FS and GS are 0 as at boot, MXCSR and the x87 state are at
//! their reset values, and the local APIC is re-enabled by the caller in Rust
//! ([`crate::apic::LocalApic::enable`]), as at boot.

use core::arch::global_asm;

use firmware::acpi::facs::FACS_FIRMWARE_WAKING_VECTOR_OFFSET;
use firmware::acpi::fadt::{SleepControl, sleep_command};
use firmware::layout::{ACPI_SLP_TYP_S3, TRAMPOLINE_ADDR};

use crate::cpu;
use crate::gdt::{KERNEL_DS, TSS_ACCESS_AVAILABLE, TSS_SELECTOR, USER_CS, USER_DS, USER_RFLAGS};
use crate::phys;
use crate::trampoline::{self, Trampoline};

/// The byte of a system-segment descriptor that holds its type and present bit (Intel SDM
/// Vol. 3A, 3.4.5, Figure 3-8: bits 47:40).
const DESCRIPTOR_ACCESS_BYTE: u16 = 5;
/// The offset of the base in the 10-byte operand of LGDT/SGDT in 64-bit mode.
const GDTR_BASE_OFFSET: u16 = 2;
/// The PM1a control value that enters S3.
const S3_COMMAND: u16 = sleep_command(ACPI_SLP_TYP_S3);

global_asm!(
    r#"
    .section .text.resume, "ax", @progbits
    .code64
    .global resume_suspend
resume_suspend:                         /* CPL 3: EDI = PM1a_CNT port, ESI = the S3 command */
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, resume_saved_rsp(%rip)
    mov %edi, %edx
    mov %esi, %eax
    out %ax, (%dx)                      /* S3: every vCPU stops here */
    xor %eax, %eax                      /* no suspend happened: 0 */
    jmp resume_user

    .global resume_entry64
resume_entry64:                         /* CPL 0, no stack; EDI:ESI = resume TSC (EDI low) */
    lgdt boot_gdt_pointer(%rip)
    mov ${kernel_ds}, %eax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %eax, %eax
    mov %ax, %fs
    mov %ax, %gs
    mov boot_gdt_pointer + {gdtr_base}(%rip), %rax
    movb ${tss_available}, {tss_selector} + {access_byte}(%rax)   /* busy since boot */
    mov ${tss_selector}, %eax
    ltr %ax
    lidt idt_pointer(%rip)
    mov %edi, %edi
    shl $32, %rsi
    or %rsi, %rdi                       /* RDI = resume TSC */
    mov resume_saved_rsp(%rip), %rsp
    mov %rsp, %rax
    pushq ${user_ds}                    /* IRETQ frame: SS, RSP, RFLAGS, CS, RIP */
    push %rax
    pushq ${user_rflags}
    pushq ${user_cs}
    lea resume_user(%rip), %rax
    push %rax
    mov %rdi, %rax
    iretq

resume_user:                            /* CPL 3, RAX = the result */
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret

    .section .bss.resume, "aw", @nobits
    .balign 8
resume_saved_rsp:
    .skip 8

    .text
"#,
    kernel_ds = const KERNEL_DS,
    gdtr_base = const GDTR_BASE_OFFSET,
    tss_available = const TSS_ACCESS_AVAILABLE,
    tss_selector = const TSS_SELECTOR,
    access_byte = const DESCRIPTOR_ACCESS_BYTE,
    user_ds = const USER_DS,
    user_cs = const USER_CS,
    user_rflags = const USER_RFLAGS,
    options(att_syntax),
);

unsafe extern "sysv64" {
    static resume_entry64: u8;
    /// Saves the callee-saved registers and RSP, writes `command` to port `port`, and returns
    /// the resume TSC once the BSP is back from S3 (0 if the write did not suspend).
    fn resume_suspend(port: u64, command: u64) -> u64;
}

/// One suspend and resume, in the BSP's TSC.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sleep {
    /// Just before the write to PM1a_CNT.
    pub(crate) suspend: u64,
    /// The first instruction after the wake (the trampoline's RDTSC).
    pub(crate) resume: u64,
}

/// Suspends the VM to S3 through `control` and comes back (BSP only; every AP stops and is
/// left waiting for SIPI). None if the FACS cannot be written or the write did not suspend.
/// The caller re-enables the local APIC and reinstalls the AP trampoline before any SIPI.
pub(crate) fn suspend(control: SleepControl) -> Option<Sleep> {
    let entry64 = (&raw const resume_entry64) as u64;
    trampoline::install(Trampoline::Resume { entry64 });
    let vector = u32::try_from(TRAMPOLINE_ADDR).expect("the trampoline is below 1 MiB");
    let waking_vector = control
        .facs
        .checked_add(FACS_FIRMWARE_WAKING_VECTOR_OFFSET as u64)?;
    if !phys::write_u32(waking_vector, vector) {
        return None;
    }
    let suspend = cpu::rdtsc();
    // SAFETY: `resume_suspend` follows the sysv64 ABI (it restores every callee-saved register
    // and RSP, also on the way back from S3, where the resume entry reloads the GDT, TSS and
    // IDT the kernel runs on); the trampoline page now leads to that entry, and the waking
    // vector points at it.
    let resume = unsafe { resume_suspend(u64::from(control.pm1a_cnt), u64::from(S3_COMMAND)) };
    (resume != 0).then_some(Sleep { suspend, resume })
}
