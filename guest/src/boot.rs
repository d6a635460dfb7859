//! The kernel's entry points, the BSP's GDT and TSS (laid out as [`crate::gdt`] says), its
//! static boot page tables, the PVH ELF note and the BSP stacks, all in assembly because they
//! run before any Rust code may.
//!
//! # Entry-state contracts
//!
//! **`pvh_start`, the PVH entry** (named by the `XEN_ELFNOTE_PHYS32_ENTRY` note; the x86/HVM
//! direct boot ABI): 32-bit protected mode, paging off, CS a flat 32-bit code segment and
//! DS/ES/SS flat 32-bit data segments (any selectors: the GDT is reloaded before a segment
//! register is), EBX the guest-physical address of `hvm_start_info`, interrupts off (IF=0).
//! Nothing else is assumed: no stack, no particular GDT, IDT or TSS, A20 on, EFLAGS.DF either
//! way.
//!
//! **`_start64`, the ELF entry** (`e_entry`, for VMMs that start a kernel in long mode): 64-bit
//! mode at CPL 0 with paging on, CS a 64-bit code segment, an identity map covering at least
//! the kernel image, RBX the guest-physical address of `hvm_start_info` (below 4 GiB),
//! interrupts off, CR4.PCIDE=0. No stack and no particular GDT, IDT or TSS is assumed.
//!
//! Both entries read the TSC with their first instruction (`BspPhase::Entry`), then load the
//! kernel's own GDT and page tables (an identity map of the first 4 GiB with 2 MiB pages),
//! reload every segment register, switch to the BSP's kernel stack, enable SSE (CR0.EM=0,
//! CR0.TS=0, CR0.MP=1, CR4.OSFXSR, CR4.OSXMMEXCPT; the prebuilt `core` uses SSE), load the TSS
//! and the IDT, and drop to CPL 3 (IOPL 3, IF=0) on the 16-byte-aligned BSP stack to call
//! [`crate::bsp_main`] with the `hvm_start_info` address and the entry TSC.
//!
//! # Why the Rust code runs at CPL 3
//!
//! On our hosts KVM is `kvm_pvm`, which cannot run a guest's CPL-0 code natively: it interprets it
//! with KVM's instruction emulator (slowly: guest/README.md, "Running on kvm_pvm"), which knows
//! only part of the instruction set. The SSE code that the compiler and the prebuilt `core` emit
//! (`xorps`, `pxor`, `movd`, `pinsrw`, ...) stops it with "KVM internal error, emulation failure".
//! CPL-3 code runs natively there, so every line of Rust runs at CPL 3. IOPL 3 and the TSS's I/O
//! bitmap keep port I/O available, RDTSC and CPUID work at any CPL (kvm_pvm traps CPUID and returns
//! the guest's values); the few privileged operations left (MSRs, HLT) are supervisor calls (see
//! [`crate::supervisor`]). Exceptions enter CPL 0 on the TSS's RSP0 stack, and the exception stub
//! returns to CPL 3 to run the Rust handler (see [`crate::idt`]). On a KVM with hardware
//! virtualisation the same code runs the same way, at full speed. Interrupts stay masked, except
//! inside [`crate::supervisor::wait_while`], the one place a CPU sleeps until another wakes it with
//! an IPI.
//!
//! # Memory that must not be written
//!
//! The page tables are complete at assembly time and live in `.page_tables`, whose pages hold
//! nothing else (see linker.ld): under shadow paging every write to a page in use as a page
//! table is trapped and emulated. The Accessed and Dirty bits are preset in every entry, and
//! the Accessed bit in every code and data descriptor, so that the CPU never writes them either.
//! Every page is user-accessible: the kernel runs at CPL 3 and protects nothing from itself.

use core::arch::global_asm;

use crate::cpu::{cr0, cr4, efer, msr};
use crate::gdt::{
    GDT_CODE32, GDT_CODE64, GDT_DATA, GDT_TSS_LOW, GDT_USER_CODE64, GDT_USER_DATA, IO_BITMAP_BYTES,
    KERNEL_CS, KERNEL_DS, TSS_ACCESS_AVAILABLE, TSS_SELECTOR, TSS_SIZE, USER_CS, USER_DS,
    USER_RFLAGS,
};
use firmware::layout::{IDENTITY_MAP_SIZE, LARGE_PAGE_SIZE, MMIO_HOLE_START, PAGE_SIZE, PD_COUNT};
use firmware::pvh::{XEN_ELFNOTE_NAME, XEN_ELFNOTE_PHYS32_ENTRY};

/// Paging-structure entry bits (Intel SDM Vol. 3A, 4.5, Tables 4-15 to 4-19).
mod pte {
    /// Present.
    pub(super) const PRESENT: u64 = 1 << 0;
    /// Read/write: writes allowed.
    pub(super) const WRITABLE: u64 = 1 << 1;
    /// User/supervisor: CPL-3 accesses allowed.
    pub(super) const USER: u64 = 1 << 2;
    /// Page-level write-through.
    pub(super) const PWT: u64 = 1 << 3;
    /// Page-level cache disable.
    pub(super) const PCD: u64 = 1 << 4;
    /// Accessed (set by the CPU on first use unless already set).
    pub(super) const ACCESSED: u64 = 1 << 5;
    /// Dirty (set by the CPU on first write to a page unless already set).
    pub(super) const DIRTY: u64 = 1 << 6;
    /// Page size: a page-directory entry maps a 2 MiB page.
    pub(super) const PAGE_SIZE: u64 = 1 << 7;
}

/// Flags of a PML4 or PDPT entry that points to the next table.
const TABLE_FLAGS: u64 = pte::PRESENT | pte::WRITABLE | pte::USER | pte::ACCESSED;
/// Flags of a page-directory entry that maps a 2 MiB page of RAM (write-back).
const LARGE_PAGE_FLAGS: u64 =
    pte::PRESENT | pte::WRITABLE | pte::USER | pte::ACCESSED | pte::DIRTY | pte::PAGE_SIZE;
/// Extra flags of the 2 MiB pages in the MMIO hole (local APIC, IOAPIC): uncacheable.
const MMIO_PAGE_FLAGS: u64 = pte::PCD | pte::PWT;

/// The boot page tables map the same 4 GiB as the VMM's long-mode identity map: one PML4 entry,
/// [`PD_COUNT`] PDPT entries, each pointing to a page directory of 512 2 MiB pages. No 1 GiB
/// pages: the KVM on our hosts lacks pdpe1gb and triple-faults on them.
const _: () = assert!(PD_COUNT * 512 * LARGE_PAGE_SIZE == IDENTITY_MAP_SIZE && PD_COUNT <= 512);

/// Size of the BSP's stack, on which the Rust code runs at CPL 3.
const BSP_STACK_SIZE: usize = 64 * 1024;
/// Size of the BSP's kernel stack (TSS RSP0): entry code, exception and supervisor-call stubs,
/// and the Rust exception handler.
const BSP_KERNEL_STACK_SIZE: usize = 16 * 1024;

/// The PVH note's owner name must be "Xen" (3 bytes plus the NUL).
const _: () = assert!(XEN_ELFNOTE_NAME.len() == 3);

global_asm!(
    r#"
    /* ---------------------------------------------------------------------------------- */
    /* The PVH entry: 32-bit protected mode, paging off, EBX = hvm_start_info.            */
    /* ---------------------------------------------------------------------------------- */
    .section .text.entry, "ax", @progbits
    .code32
    .global pvh_start
    .type pvh_start, @function
pvh_start:
    rdtsc                               /* BspPhase::Entry, in EDX:EAX */
    mov %eax, %esi                      /* ESI = entry TSC, low half */
    mov %edx, %edi                      /* EDI = entry TSC, high half */
    cld
    lgdt boot_gdt_pointer
    mov ${kernel_ds}, %eax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs

    /* Enter IA-32e mode (Intel SDM Vol. 3A, 10.8.5): PAE, CR3, EFER.LME, then paging. */
    mov %cr4, %eax
    or ${cr4_pae}, %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov ${ia32_efer}, %ecx
    rdmsr
    or ${efer_lme}, %eax
    wrmsr
    mov %cr0, %eax
    or ${cr0_pg_pe}, %eax
    mov %eax, %cr0
    ljmp ${kernel_cs}, $pvh_long_mode

    .code64
pvh_long_mode:
    /* The upper halves of the general registers are undefined after leaving 32-bit mode. */
    mov %esi, %esi
    mov %edi, %edi
    mov %ebx, %ebx
    jmp long_mode_common
    .size pvh_start, . - pvh_start

    /* ---------------------------------------------------------------------------------- */
    /* The 64-bit entry (e_entry): long mode, paging on, RBX = hvm_start_info.            */
    /* ---------------------------------------------------------------------------------- */
    .global _start64
    .type _start64, @function
_start64:
    rdtsc                               /* BspPhase::Entry, in EDX:EAX */
    mov %eax, %esi                      /* RSI = entry TSC, low half (zero-extended) */
    mov %edx, %edi                      /* RDI = entry TSC, high half (zero-extended) */
    cld
    lgdt boot_gdt_pointer(%rip)
    lea boot_pml4(%rip), %rax
    mov %rax, %cr3
    lea bsp_kernel_stack_top(%rip), %rsp
    pushq ${kernel_cs}                  /* reload CS from our GDT with a far return */
    lea long_mode_common(%rip), %rax
    pushq %rax
    lretq
    .size _start64, . - _start64

    /* Both entries: RBX = hvm_start_info, EDI:ESI = entry TSC, our GDT and CR3 loaded. */
long_mode_common:
    mov ${kernel_ds}, %eax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %eax, %eax
    mov %ax, %fs
    mov %ax, %gs
    lea bsp_kernel_stack_top(%rip), %rsp

    /* Enable SSE (Intel SDM Vol. 3A, 14.1.3): the prebuilt core uses it. */
    mov %cr0, %rax
    and ${cr0_keep}, %rax               /* EM=0: no x87 emulation; TS=0: no #NM */
    or ${cr0_mp}, %rax
    mov %rax, %cr0
    mov %cr4, %rax
    or ${cr4_sse}, %rax
    mov %rax, %cr4

    /* The TSS descriptor's base is split over four fields: patch it in, then load TR. */
    lea bsp_tss(%rip), %rax
    lea boot_gdt_tss(%rip), %rcx
    movb ${tss_access}, 5(%rcx)         /* available, not busy, in case of a second boot */
    mov %ax, 2(%rcx)                    /* base 15:0 */
    shr $16, %rax
    mov %al, 4(%rcx)                    /* base 23:16 */
    mov %ah, 7(%rcx)                    /* base 31:24 */
    shr $16, %rax
    mov %eax, 8(%rcx)                   /* base 63:32 */
    mov ${tss_selector}, %eax
    ltr %ax
    lidt idt_pointer(%rip)

    shl $32, %rdi
    or %rdi, %rsi                       /* RSI = entry TSC */
    mov %rbx, %rdi                      /* RDI = hvm_start_info address */

    /* Drop to CPL 3 with IRETQ: SS, RSP, RFLAGS, CS, RIP. */
    pushq ${user_ds}
    lea bsp_stack_top(%rip), %rax
    pushq %rax
    pushq ${user_rflags}
    pushq ${user_cs}
    lea bsp_user_entry(%rip), %rax
    pushq %rax
    iretq

bsp_user_entry:                         /* CPL 3, on the 16-byte-aligned BSP stack */
    xor %ebp, %ebp
    call {bsp_main}
    ud2

    /* ---------------------------------------------------------------------------------- */
    /* The GDT: null, flat 32-bit code, 64-bit code, data, user data, user code, TSS.     */
    /* Written at boot (TSS base, busy bit), so not read-only.                            */
    /* ---------------------------------------------------------------------------------- */
    .section .data.boot_gdt, "aw", @progbits
    .balign 16
boot_gdt:
    .quad 0
    .quad {gdt_code32}
    .quad {gdt_code64}
    .quad {gdt_data}
    .quad {gdt_user_data}
    .quad {gdt_user_code64}
boot_gdt_tss:
    .quad {gdt_tss_low}
    .quad 0
boot_gdt_end:
    .balign 8
    .global boot_gdt_pointer
boot_gdt_pointer:                       /* LGDT reads 6 bytes in 32-bit mode, 10 in 64-bit */
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

    /* The BSP's TSS (Intel SDM Vol. 3A, 8.7): RSP0 and the I/O permission bitmap. */
    .balign 16
bsp_tss:
    .long 0                             /* reserved */
    .quad bsp_kernel_stack_top          /* RSP0 */
    .quad 0, 0                          /* RSP1, RSP2 */
    .quad 0                             /* reserved */
    .quad 0, 0, 0, 0, 0, 0, 0           /* IST1-IST7 */
    .quad 0                             /* reserved */
    .word 0                             /* reserved */
    .word {tss_size}                    /* I/O map base: right after the TSS */
    .fill {io_bitmap_bytes}, 1, 0       /* every port below IO_BITMAP_PORTS allowed */
    .byte 0xFF                          /* end of the bitmap */

    /* ---------------------------------------------------------------------------------- */
    /* The PVH entry note (Xen elfnote.h): name "Xen", type PHYS32_ENTRY, 4-byte address. */
    /* ---------------------------------------------------------------------------------- */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                             /* n_namesz: "Xen" and its NUL */
    .long 4                             /* n_descsz */
    .long {xen_elfnote_phys32_entry}    /* n_type */
    .byte {xen0}, {xen1}, {xen2}, 0     /* name */
    .long pvh_start                     /* desc: physical address of the 32-bit entry */

    /* ---------------------------------------------------------------------------------- */
    /* Boot page tables: identity map of the first 4 GiB with 2 MiB pages.                */
    /* ---------------------------------------------------------------------------------- */
    .section .page_tables, "a", @progbits
    .balign {page_size}
    .global boot_pml4
boot_pml4:
    .quad boot_pdpt + {table_flags}
    .fill 511, 8, 0
boot_pdpt:
    .set pd_index, 0
    .rept {pd_count}
    .quad boot_pd + pd_index * {page_size} + {table_flags}
    .set pd_index, pd_index + 1
    .endr
    .fill 512 - {pd_count}, 8, 0
boot_pd:
    .set large_page, 0
    .rept 512 * {pd_count}
    .if large_page * {large_page_size} >= {mmio_hole_start}
    .quad (large_page * {large_page_size}) | {large_page_flags} | {mmio_page_flags}
    .else
    .quad (large_page * {large_page_size}) | {large_page_flags}
    .endif
    .set large_page, large_page + 1
    .endr

    /* ---------------------------------------------------------------------------------- */
    /* The BSP's stacks.                                                                  */
    /* ---------------------------------------------------------------------------------- */
    .section .bss.boot_stacks, "aw", @nobits
    .balign {page_size}
    .skip {bsp_stack_size}
bsp_stack_top:
    .skip {bsp_kernel_stack_size}
bsp_kernel_stack_top:

    .text
"#,
    kernel_ds = const KERNEL_DS,
    kernel_cs = const KERNEL_CS,
    user_ds = const USER_DS,
    user_cs = const USER_CS,
    user_rflags = const USER_RFLAGS,
    tss_selector = const TSS_SELECTOR,
    tss_size = const TSS_SIZE,
    io_bitmap_bytes = const IO_BITMAP_BYTES,
    tss_access = const TSS_ACCESS_AVAILABLE,
    cr4_pae = const cr4::PAE,
    ia32_efer = const msr::IA32_EFER,
    efer_lme = const efer::LME,
    cr0_pg_pe = const cr0::PG | cr0::PE,
    cr0_keep = const !(cr0::EM | cr0::TS) as i64,
    cr0_mp = const cr0::MP,
    cr4_sse = const cr4::OSFXSR | cr4::OSXMMEXCPT,
    bsp_main = sym crate::bsp_main,
    gdt_code32 = const GDT_CODE32,
    gdt_code64 = const GDT_CODE64,
    gdt_data = const GDT_DATA,
    gdt_user_data = const GDT_USER_DATA,
    gdt_user_code64 = const GDT_USER_CODE64,
    gdt_tss_low = const GDT_TSS_LOW,
    xen_elfnote_phys32_entry = const XEN_ELFNOTE_PHYS32_ENTRY,
    xen0 = const XEN_ELFNOTE_NAME[0],
    xen1 = const XEN_ELFNOTE_NAME[1],
    xen2 = const XEN_ELFNOTE_NAME[2],
    table_flags = const TABLE_FLAGS,
    pd_count = const PD_COUNT,
    page_size = const PAGE_SIZE,
    large_page_size = const LARGE_PAGE_SIZE,
    mmio_hole_start = const MMIO_HOLE_START,
    large_page_flags = const LARGE_PAGE_FLAGS,
    mmio_page_flags = const MMIO_PAGE_FLAGS,
    bsp_stack_size = const BSP_STACK_SIZE,
    bsp_kernel_stack_size = const BSP_KERNEL_STACK_SIZE,
    options(att_syntax),
);
