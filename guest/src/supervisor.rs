//! Supervisor calls: the privileged operations the kernel's CPL-3 code asks CPL 0 for (see
//! [`crate::boot`] for why the Rust code runs at CPL 3).
//!
//! A call is `UD2` followed by the 4-byte [`MARKER`], with the function in RAX and the arguments
//! in RDI and RSI (and RDX, R10 where a [`Function`] says so); the result comes back in RAX, and
//! RCX, RDX and R11 are clobbered, plus the registers a [`Function`] lists. The #UD entry (CPL
//! 0, with the other exception entries in [`crate::idt`]) recognises the marker after a `UD2`
//! executed at CPL 3, carries the function out and returns after the marker with IRETQ; any
//! other #UD is reported as a fault. A fault inside a call (RDMSR of a missing MSR, say) is
//! reported like any other exception.
//!
//! This module is the calls' contract and their CPL-3 side: [`MARKER`], the [`Function`]
//! numbers and the wrappers. It depends on no other module of the kernel, so that every module
//! may make supervisor calls.
//!
//! Why not `INT n` or `SYSCALL`: kvm_pvm turns an `INT n` at CPL 3 into #UD and runs the SYSCALL
//! target at CPL 3, while it delivers exceptions from CPL 3 to the IDT at CPL 0 as the
//! architecture says. On hardware virtualisation all three work; the #UD path costs the same.
//!
//! Cost on kvm_pvm: a call is the exception, ~15 emulated instructions of the #UD entry and IRETQ
//! (guest/README.md, "Running on kvm_pvm", has what that costs), so a loop over many items belongs
//! inside one call, as in [`kick_x2apic`]. [`Function::Halt`] is dispatched first: every AP ends
//! with it.

use core::arch::asm;
use core::sync::atomic::AtomicU32;

/// Bytes after the `UD2` of a supervisor call ("SUPV" little endian), never executed.
pub(crate) const MARKER: u32 = u32::from_le_bytes(*b"SUPV");

/// Supervisor-call functions, in RAX.
#[derive(Debug, Clone, Copy)]
#[repr(u64)]
pub(crate) enum Function {
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
    /// interrupt (the wake-up IPI, [`crate::idt::vector::WAKE`]), then CLI and check again.
    /// Returns with IF=0.
    WaitWhile = 4,
    /// Parks APs in wait-for-SIPI: RDI = their x2APIC IDs (`u32` each), RSI = a `u64` per AP
    /// for the TSC just before its INIT, RDX = how many. For each AP in order: RDTSC, then INIT
    /// through the ICR MSR. RDI, RSI, R8 and R9 are clobbered too.
    InitX2Apic = 5,
}

/// Reads a model-specific register.
///
/// # Safety
///
/// `msr` must exist on this CPU (RDMSR of an unknown MSR raises #GP, a fatal exception) and
/// reading it must have no side effect the caller has not accounted for.
pub(crate) unsafe fn rdmsr(msr: u32) -> u64 {
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
pub(crate) unsafe fn wrmsr(msr: u32, value: u64) {
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
pub(crate) unsafe fn kick_x2apic(apic_ids: &[u32], stamps: &mut [u64], shorthand: u32) {
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
pub(crate) unsafe fn init_x2apic(apic_ids: &[u32], stamps: &mut [u64]) {
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
/// the HLT, so that a wake-up IPI ([`crate::idt::vector::WAKE`]) from the CPU that changes
/// `word` wakes it. Returns once `word` differs from `value` (it may have changed back since).
/// Costs one supervisor call plus the handling of each wake-up (docs/host.md, "Costs per
/// operation"); the vCPU thread sleeps in KVM meanwhile.
///
/// The CPU changing `word` must send the wake-up after its store (see
/// [`crate::apic::LocalApic::send`] with [`crate::apic::Ipi::Fixed`]); a wake-up without a change
/// only costs a check.
pub(crate) fn wait_while(word: &AtomicU32, value: u32) {
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
pub(crate) fn halt() -> ! {
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
