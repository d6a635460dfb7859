//! The AP start-up code: real-mode trampolines that the BSP copies to
//! [`TRAMPOLINE_ADDR`] (the STARTUP IPI's vector [`SIPI_VECTOR`] names that page), and the
//! 64-bit CPL-0 entry that takes an AP from its first long-mode instruction to Rust at CPL 3.
//! The full trampoline's real-mode part also takes the BSP back from ACPI S3 (the FACS waking
//! vector names the same page; [`Trampoline::Resume`]).
//!
//! On kvm_pvm every instruction here is interpreted by KVM's instruction emulator (see
//! guest/README.md, "Running on kvm_pvm", for the cost of each), so the code is written for the
//! fewest instructions: ~40 from the first to IRETQ.
//!
//! # The full trampoline (serial and parallel bringup)
//!
//! Real mode, at `TRAMPOLINE_ADDR` (CS = `SIPI_VECTOR << 8`, IP = 0), no stack:
//! 1. `RDTSC`: the AP's Trampoline stamp, kept in EDI:ESI until the AP knows its slot.
//! 2. LGDT of a 3-entry GDT inside the page (null, 32-bit code, 64-bit code at [`KERNEL_CS`]).
//! 3. Straight to long mode (Intel SDM Vol. 3A, 10.8.5, without the protected-mode stop): CR4 =
//!    PAE + OSFXSR + OSXMMEXCPT (SSE for the prebuilt core), CR3 = the BSP's `boot_pml4`,
//!    EFER.LME, then CR0 = PE + PG + MP + ET at once (EM and TS clear: SSE enabled), and a far
//!    jump to the 64-bit entry for the BSP's APIC mode (patched in by [`install`]).
//!
//! 64-bit mode, CPL 0, still no stack:
//! 4. Enable the local APIC in the BSP's mode (IA32_APIC_BASE, then SVR) and read the APIC ID:
//!    x2APIC MSR 0x802, or the xAPIC ID register.
//! 5. Look the APIC ID up in [`cpus::SLOT_BY_APIC_ID`] (bounds-checked): no slot (not an AP to
//!    start, or the test option `sipi.lose_apic_id`) parks the AP with CLI; HLT before it has
//!    stamped anything.
//! 6. Write the Trampoline stamp into its record: the AP has "called in"; from now on the BSP
//!    never sends it INIT again.
//! 7. LGDT of its own GDT, LTR of its own TSS, LIDT of the shared IDT (all from its
//!    [`percpu::PerCpu`] header), then IRETQ with the header's prebuilt frame to
//!    `ap_user_entry` at CPL 3 on its own user stack, which calls [`crate::ap::ap_main`] with
//!    the slot and the APIC ID.
//!
//! Nothing the APs write here is shared, so no lock is needed: each AP writes only its own
//! record and its own GDT (see [`crate::percpu`] for why per-AP GDTs rather than a shared GDT
//! patched under a lock). Every step may run twice: an AP that a re-kick restarts after it
//! called in (a race the BSP keeps narrow but cannot close) stamps again and marks its TSS
//! descriptor available again before LTR.
//!
//! # The floor trampoline (floor bringup)
//!
//! The lower bound the others are measured against: `RDTSC`, the x2APIC ID from CPUID leaf 0xB
//! (one instruction in real mode, where the APIC registers are out of reach), then the stamp
//! and a present flag into the floor table at [`AP_FLOOR_TABLE_ADDR`] indexed by APIC ID, and
//! CLI; HLT. No mode switch, no stack, no slot lookup; `sipi.lose_apic_id` is a compare against
//! an ID patched into the page.

use core::arch::global_asm;

use firmware::layout::{
    AP_FLOOR_PRESENT_OFFSET, AP_FLOOR_STAMPS_OFFSET, AP_FLOOR_TABLE_ADDR, SIPI_VECTOR,
    TRAMPOLINE_ADDR, TRAMPOLINE_MAX,
};
use firmware::report::{ApPhase, CPU_RECORD_SIZE};

use crate::apic::{self, Register, SVR_ENABLED, XAPIC_ID_SHIFT};
use crate::cpu::{cpuid, cr0, cr4, efer, msr};
use crate::cpus::{self, APIC_ID_LIMIT, NO_SLOT};
use crate::gdt::{GDT_CODE32, GDT_CODE64, KERNEL_CS, TSS_ACCESS_AVAILABLE};
use crate::percpu::{self, HEADER_SHIFT};

/// CR4 of an AP entering long mode: PAE, and SSE enabled (Intel SDM Vol. 3A, 14.1.3).
const AP_CR4: u64 = cr4::PAE | cr4::OSFXSR | cr4::OSXMMEXCPT;
/// CR0 of an AP entering long mode: protection and paging at once, MP with EM and TS clear
/// (SSE), ET (hard-wired), CD and NW clear (caches on, unlike after INIT).
const AP_CR0: u64 = cr0::PE | cr0::MP | cr0::ET | cr0::PG;
/// The real-mode segment of the floor table.
const FLOOR_SEGMENT: u64 = AP_FLOOR_TABLE_ADDR >> 4;
/// The floor trampoline's "no AP is lost" ID: no APIC ID is this large.
const NO_LOST_APIC_ID: u32 = u32::MAX;

/// x2APIC MSRs the entry uses (Intel SDM Vol. 3A, 11.12.1.2, Table 11-6).
const X2APIC_ID_MSR: u32 = apic::x2apic_msr(Register::Id);
const X2APIC_SVR_MSR: u32 = apic::x2apic_msr(Register::SpuriousVector);

const _: () = assert!(AP_CR4 >> 32 == 0 && AP_CR0 >> 32 == 0);
const _: () = assert!((SIPI_VECTOR as u64) << 12 == TRAMPOLINE_ADDR);
// The entry stores the stamp as two 32-bit halves: it must be inside the record.
const _: () = assert!(cpus::stamp_offset(ApPhase::Trampoline) + 8 <= CPU_RECORD_SIZE);
// The AP's own IA32_APIC_BASE fits in EAX (EDX stays 0).
const _: () = assert!(apic::ap_apic_base(true) >> 32 == 0);

global_asm!(
    r#"
    /* ---------------------------------------------------------------------------------- */
    /* The full trampoline: real mode -> long mode. Copied to {trampoline_addr}.          */
    /* ---------------------------------------------------------------------------------- */
    .section .rodata.ap_trampoline, "a", @progbits
    .code16
    .global ap_trampoline_start
ap_trampoline_start:
    rdtsc                               /* ApPhase::Trampoline: the AP's first instruction */
    mov %eax, %edi                      /* EDI = stamp, low half */
    mov %edx, %esi                      /* ESI = stamp, high half */
    lgdtl %cs:(ap_trampoline_gdtr - ap_trampoline_start)
    mov ${ap_cr4}, %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov ${ia32_efer}, %ecx
    mov ${efer_lme}, %eax
    xor %edx, %edx                      /* EDX stays 0 up to the APIC ID */
    wrmsr
    mov ${ap_cr0}, %eax
    mov %eax, %cr0                      /* protected mode and paging: IA-32e mode active */
    .byte 0x66, 0xEA                    /* LJMPL: a 32-bit offset, then the selector */
    .global ap_trampoline_entry64
ap_trampoline_entry64:
    .long ap_entry64_x2apic             /* patched to ap_entry64_xapic by install() */
    .word {kernel_cs}
    .balign 8
ap_trampoline_gdt:
    .quad 0
    .quad {gdt_code32}
    .quad {gdt_code64}
ap_trampoline_gdt_end:
ap_trampoline_gdtr:
    .word ap_trampoline_gdt_end - ap_trampoline_gdt - 1
    .long {trampoline_addr} + (ap_trampoline_gdt - ap_trampoline_start)
    .global ap_trampoline_end
ap_trampoline_end:

    /* ---------------------------------------------------------------------------------- */
    /* The floor trampoline: stamp and present flag by APIC ID, in real mode. Copied to   */
    /* {trampoline_addr} instead of the full one for floor bringup.                       */
    /* ---------------------------------------------------------------------------------- */
    .global ap_floor_start
ap_floor_start:
    rdtsc                               /* the AP's first instruction */
    mov %eax, %esi
    mov %edx, %edi
    mov ${leaf_ext_topology}, %eax
    xor %ecx, %ecx
    cpuid                               /* EDX = x2APIC ID */
    cmp ${apic_id_limit}, %edx
    jae 1f
    cmp %cs:(ap_floor_lost_apic_id - ap_floor_start), %edx
    je 1f
    mov ${floor_segment}, %ax
    mov %ax, %ds
    mov %esi, {floor_stamps}(,%edx,8)
    mov %edi, {floor_stamps} + 4(,%edx,8)
    movb $1, {floor_present}(%edx)
1:  cli
    hlt
    jmp 1b
    .balign 4
    .global ap_floor_lost_apic_id
ap_floor_lost_apic_id:
    .long {no_lost_apic_id}             /* patched by install() */
    .global ap_floor_end
ap_floor_end:

    /* ---------------------------------------------------------------------------------- */
    /* The 64-bit entry, CPL 0, no stack. EDI:ESI = Trampoline stamp, EDX = 0.            */
    /* ---------------------------------------------------------------------------------- */
    .section .text.ap_entry, "ax", @progbits
    .code64
    .global ap_entry64_x2apic
ap_entry64_x2apic:
    mov ${ia32_apic_base}, %ecx
    rdmsr                               /* firmware may hand APs over in x2APIC mode */
    test ${x2apic_enable}, %eax
    jnz 1f                              /* already: skip a write that costs KVM a map rebuild */
    mov ${apic_base_x2apic}, %eax       /* enabled, x2APIC mode */
    xor %edx, %edx
    wrmsr
1:  mov ${x2apic_id_msr}, %ecx
    rdmsr                               /* EAX = x2APIC ID, EDX = 0 */
    mov %eax, %ebp                      /* EBP = APIC ID */
    mov ${x2apic_svr_msr}, %ecx
    mov ${svr_enabled}, %eax
    wrmsr                               /* software enable */
ap_entry64_common:
    cmp ${apic_id_limit}, %ebp
    jae ap_park
    movzwl {slot_by_apic_id}(,%rbp,2), %ebx
    cmp ${no_slot}, %ebx
    je ap_park                          /* not an AP to start: park before stamping */
    imul ${record_size}, %ebx, %eax
    mov %esi, {records} + {tramp_stamp} + 4(%rax)
    mov %edi, {records} + {tramp_stamp}(%rax)   /* called in */
    shl ${header_shift}, %ebx           /* RBX = offset of this AP's PerCpu header */
    lgdt {per_cpu} + {off_gdtr}(%rbx)
    movb ${tss_available}, {per_cpu} + {off_tss_access}(%rbx)
    ltr {per_cpu} + {off_tss_selector}(%rbx)
    lidt idt_pointer(%rip)
    lea {per_cpu} + {off_iret_frame}(%rbx), %rsp
    iretq                               /* to ap_user_entry, CPL 3, on the user stack */

    .global ap_entry64_xapic
ap_entry64_xapic:
    mov ${ia32_apic_base}, %ecx
    mov ${apic_base_xapic}, %eax        /* enabled, xAPIC mode at the default base */
    wrmsr
    mov ${lapic_base}, %eax
    mov {apic_id_reg}(%rax), %ebp
    shr ${xapic_id_shift}, %ebp         /* EBP = APIC ID */
    movl ${svr_enabled}, {apic_svr_reg}(%rax)
    jmp ap_entry64_common

ap_park:                                /* CPL 0: no slot, nothing to do */
    cli
    hlt
    jmp ap_park

    .global ap_user_entry
ap_user_entry:                          /* CPL 3, RBX = header offset, EBP = APIC ID */
    shr ${header_shift}, %ebx
    mov %ebx, %edi                      /* slot */
    mov %ebp, %esi                      /* APIC ID */
    xor %ebp, %ebp
    call {ap_main}
    ud2

    .text
"#,
    trampoline_addr = const TRAMPOLINE_ADDR,
    ap_cr4 = const AP_CR4,
    ap_cr0 = const AP_CR0,
    ia32_efer = const msr::IA32_EFER,
    efer_lme = const efer::LME,
    kernel_cs = const KERNEL_CS,
    gdt_code32 = const GDT_CODE32,
    gdt_code64 = const GDT_CODE64,
    leaf_ext_topology = const cpuid::LEAF_EXT_TOPOLOGY,
    apic_id_limit = const APIC_ID_LIMIT,
    floor_segment = const FLOOR_SEGMENT,
    floor_stamps = const AP_FLOOR_STAMPS_OFFSET,
    floor_present = const AP_FLOOR_PRESENT_OFFSET,
    no_lost_apic_id = const NO_LOST_APIC_ID,
    ia32_apic_base = const msr::IA32_APIC_BASE,
    apic_base_x2apic = const apic::ap_apic_base(true),
    x2apic_enable = const apic::base::X2APIC_ENABLE,
    apic_base_xapic = const apic::ap_apic_base(false),
    x2apic_id_msr = const X2APIC_ID_MSR,
    x2apic_svr_msr = const X2APIC_SVR_MSR,
    svr_enabled = const SVR_ENABLED,
    lapic_base = const firmware::layout::LAPIC_BASE,
    apic_id_reg = const Register::Id as u32,
    apic_svr_reg = const Register::SpuriousVector as u32,
    xapic_id_shift = const XAPIC_ID_SHIFT,
    slot_by_apic_id = sym cpus::SLOT_BY_APIC_ID,
    no_slot = const NO_SLOT,
    record_size = const CPU_RECORD_SIZE,
    records = sym cpus::RECORDS,
    tramp_stamp = const cpus::stamp_offset(ApPhase::Trampoline),
    header_shift = const HEADER_SHIFT,
    per_cpu = sym percpu::PER_CPU,
    off_gdtr = const percpu::offset::GDTR,
    tss_available = const TSS_ACCESS_AVAILABLE,
    off_tss_access = const percpu::offset::TSS_ACCESS,
    off_tss_selector = const percpu::offset::TSS_SELECTOR,
    off_iret_frame = const percpu::offset::IRET_FRAME,
    ap_main = sym crate::ap::ap_main,
    options(att_syntax),
);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_entry64: u8;
    static ap_trampoline_end: u8;
    static ap_floor_start: u8;
    static ap_floor_lost_apic_id: u8;
    static ap_floor_end: u8;
    static ap_entry64_x2apic: u8;
    static ap_entry64_xapic: u8;
    static ap_user_entry: u8;
}

/// Which trampoline to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trampoline {
    /// Real mode to long mode and Rust, enabling the local APIC in x2APIC mode when `x2apic`
    /// (as the BSP runs it) and in xAPIC mode otherwise.
    Full { x2apic: bool },
    /// Stamp and present flag only; the AP with `lost_apic_id` (if any) parks at once.
    Floor { lost_apic_id: Option<u32> },
    /// The full trampoline's real-mode part, jumping to `entry64` (64-bit, CPL 0, below 4 GiB)
    /// instead of an AP's entry: the BSP's way back from S3 (see [`crate::resume`]), with the
    /// TSC stamp of its first instruction in EDI (low half) and ESI (high half).
    Resume { entry64: u64 },
}

/// The address of the CPL-3 code that an AP's IRETQ frame enters (see [`percpu::prepare`]).
pub(crate) fn user_entry() -> u64 {
    (&raw const ap_user_entry) as u64
}

/// Copies `which` to [`TRAMPOLINE_ADDR`] and patches it. Must be called by the BSP before it
/// sends any STARTUP IPI, and not again while an AP may be running from the page.
pub(crate) fn install(which: Trampoline) {
    let (start, end, patch_at, patch) = match which {
        Trampoline::Full { x2apic } => {
            let entry = if x2apic {
                &raw const ap_entry64_x2apic
            } else {
                &raw const ap_entry64_xapic
            };
            let entry = u32::try_from(entry as u64).expect("the kernel is below 4 GiB");
            (
                &raw const ap_trampoline_start,
                &raw const ap_trampoline_end,
                &raw const ap_trampoline_entry64,
                entry,
            )
        }
        Trampoline::Resume { entry64 } => (
            &raw const ap_trampoline_start,
            &raw const ap_trampoline_end,
            &raw const ap_trampoline_entry64,
            u32::try_from(entry64).expect("the kernel is below 4 GiB"),
        ),
        Trampoline::Floor { lost_apic_id } => (
            &raw const ap_floor_start,
            &raw const ap_floor_end,
            &raw const ap_floor_lost_apic_id,
            lost_apic_id.unwrap_or(NO_LOST_APIC_ID),
        ),
    };
    let len = end as usize - start as usize;
    let patch_offset = patch_at as usize - start as usize;
    assert!(
        len <= TRAMPOLINE_MAX && patch_offset + 4 <= len,
        "the trampoline does not fit its page"
    );
    let page = TRAMPOLINE_ADDR as *mut u8;
    // SAFETY: the trampoline page is RAM reserved for this use (firmware::layout), identity-
    // mapped and outside the kernel image; no AP runs from it now (the caller's contract). The
    // source is the `len` bytes between two labels of the kernel's read-only data.
    unsafe {
        core::ptr::copy_nonoverlapping(start, page, len);
        page.add(patch_offset).cast::<u32>().write_unaligned(patch);
    }
}
