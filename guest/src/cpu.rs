//! Thin wrappers over the unprivileged x86-64 instructions the kernel uses at CPL 3 (CPUID, the
//! TSC, port I/O with IOPL 3), and the architectural numbers, named as in the Intel SDM. The
//! privileged ones are supervisor calls: see [`crate::supervisor`].

use core::arch::asm;
use core::arch::x86_64::{__cpuid_count, CpuidResult};

/// CR0 bits (Intel SDM Vol. 3A, 2.5 "Control Registers").
pub(crate) mod cr0 {
    /// Protection Enable.
    pub(crate) const PE: u64 = 1 << 0;
    /// Monitor Coprocessor: WAIT/FWAIT honour TS.
    pub(crate) const MP: u64 = 1 << 1;
    /// Emulation: x87/SSE instructions raise #NM (SSE instructions raise #UD) when set.
    pub(crate) const EM: u64 = 1 << 2;
    /// Task Switched: the next x87/SSE instruction raises #NM when set.
    pub(crate) const TS: u64 = 1 << 3;
    /// Extension Type: hard-wired to 1 (387 coprocessor instructions supported).
    pub(crate) const ET: u64 = 1 << 4;
    /// Paging.
    pub(crate) const PG: u64 = 1 << 31;
}

/// CR4 bits (Intel SDM Vol. 3A, 2.5).
pub(crate) mod cr4 {
    /// Physical Address Extension (required for IA-32e paging).
    pub(crate) const PAE: u64 = 1 << 5;
    /// OS supports FXSAVE/FXRSTOR: enables the SSE instructions.
    pub(crate) const OSFXSR: u64 = 1 << 9;
    /// OS handles unmasked SIMD floating-point exceptions (#XM).
    pub(crate) const OSXMMEXCPT: u64 = 1 << 10;
}

/// RFLAGS bits (Intel SDM Vol. 1, 3.4.3, Figure 3-8).
pub(crate) mod rflags {
    /// Bit 1 is reserved and always 1.
    pub(crate) const RESERVED_1: u64 = 1 << 1;
    /// I/O privilege level 3: IN/OUT (and CLI/STI) allowed at CPL 3.
    pub(crate) const IOPL_3: u64 = 3 << 12;
}

/// Model-specific registers (Intel SDM Vol. 4, Table 2-2).
pub(crate) mod msr {
    /// IA32_TSC_ADJUST: the offset software added to this CPU's TSC (Intel SDM Vol. 3B, 18.17.3).
    pub(crate) const IA32_TSC_ADJUST: u32 = 0x3B;
    /// IA32_APIC_BASE: local APIC base address and mode.
    pub(crate) const IA32_APIC_BASE: u32 = 0x1B;
    /// IA32_EFER: extended feature enables.
    pub(crate) const IA32_EFER: u32 = 0xC000_0080;
}

/// IA32_EFER bits (Intel SDM Vol. 3A, 2.2.1 "Extended Feature Enable Register").
pub(crate) mod efer {
    /// IA-32e Mode Enable.
    pub(crate) const LME: u64 = 1 << 8;
}

/// CPUID leaves and feature bits (Intel SDM Vol. 2A, CPUID; the hypervisor leaves as KVM,
/// VMware and Cloud Hypervisor define them).
pub(crate) mod cpuid {
    /// Basic leaf 1: version and feature information.
    pub(crate) const LEAF_FEATURES: u32 = 0x1;
    /// Leaf 1 ECX: the local APIC supports x2APIC mode.
    pub(crate) const FEATURES_ECX_X2APIC: u32 = 1 << 21;
    /// Leaf 1 ECX: running under a hypervisor (reserved as 0 on real hardware).
    pub(crate) const FEATURES_ECX_HYPERVISOR: u32 = 1 << 31;
    /// Basic leaf 7, subleaf 0: structured extended feature flags.
    pub(crate) const LEAF_EXT_FEATURES: u32 = 0x7;
    /// Leaf 7 EBX: the IA32_TSC_ADJUST MSR exists.
    pub(crate) const EXT_FEATURES_EBX_TSC_ADJUST: u32 = 1 << 1;
    /// Basic leaf 0xB: extended topology; EDX is the x2APIC ID of this logical processor.
    pub(crate) const LEAF_EXT_TOPOLOGY: u32 = 0xB;
    /// Hypervisor leaf 0x40000000: EAX is the highest hypervisor leaf.
    pub(crate) const LEAF_HYPERVISOR_BASE: u32 = 0x4000_0000;
    /// Hypervisor leaf 0x40000010: EAX is the TSC frequency in kHz.
    pub(crate) const LEAF_HYPERVISOR_TIMING: u32 = 0x4000_0010;
}

/// Reads the time-stamp counter.
#[inline(always)]
pub(crate) fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the TSC into EDX:EAX; CR4.TSD is clear, so CPL 3 may use it.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Reads the time-stamp counter once every earlier instruction has completed locally (LFENCE;
/// RDTSC, as Linux's `rdtsc_ordered`): RDTSC alone may run before an earlier load, which would
/// make a TSC read after seeing another CPU's value look older than it is.
#[inline(always)]
pub(crate) fn rdtsc_ordered() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: LFENCE only orders this CPU's instructions (SSE2, part of x86-64); RDTSC only
    // reads the TSC into EDX:EAX, allowed at CPL 3 (CR4.TSD is clear).
    unsafe {
        asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// True if CPUID says the IA32_TSC_ADJUST MSR exists (CPUID.(EAX=7,ECX=0):EBX[1]).
pub(crate) fn has_tsc_adjust() -> bool {
    max_basic_leaf() >= cpuid::LEAF_EXT_FEATURES
        && cpuid(cpuid::LEAF_EXT_FEATURES, 0).ebx & cpuid::EXT_FEATURES_EBX_TSC_ADJUST != 0
}

/// Executes CPUID for `leaf` and `subleaf`.
pub(crate) fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    __cpuid_count(leaf, subleaf)
}

/// The highest basic CPUID leaf.
pub(crate) fn max_basic_leaf() -> u32 {
    cpuid(0, 0).eax
}

/// True if CPUID says the local APIC supports x2APIC mode.
pub(crate) fn has_x2apic() -> bool {
    cpuid(cpuid::LEAF_FEATURES, 0).ecx & cpuid::FEATURES_ECX_X2APIC != 0
}

/// The initial APIC ID of this CPU as CPUID reports it: the 32-bit x2APIC ID from leaf 0xB
/// when that leaf exists, else the 8-bit ID in leaf 1 EBX[31:24]. Needs no APIC access, so it
/// works in any state, including in an exception handler before the APIC is set up.
pub(crate) fn initial_apic_id() -> u32 {
    if max_basic_leaf() >= cpuid::LEAF_EXT_TOPOLOGY {
        cpuid(cpuid::LEAF_EXT_TOPOLOGY, 0).edx
    } else {
        cpuid(cpuid::LEAF_FEATURES, 0).ebx >> 24
    }
}

/// The TSC frequency in kHz the hypervisor advertises in CPUID leaf 0x40000010, or 0 when
/// there is no hypervisor or the leaf is beyond the hypervisor's highest leaf.
pub(crate) fn tsc_khz() -> u32 {
    if cpuid(cpuid::LEAF_FEATURES, 0).ecx & cpuid::FEATURES_ECX_HYPERVISOR == 0 {
        // On bare metal, leaves above the basic range return the highest basic leaf's data.
        return 0;
    }
    if cpuid(cpuid::LEAF_HYPERVISOR_BASE, 0).eax < cpuid::LEAF_HYPERVISOR_TIMING {
        return 0;
    }
    cpuid(cpuid::LEAF_HYPERVISOR_TIMING, 0).eax
}

/// Reads a byte from an I/O port.
///
/// # Safety
///
/// Reading `port` must have no side effect the caller has not accounted for.
pub(crate) unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: the caller guarantees that reading the port is harmless.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Writes a byte to an I/O port.
///
/// # Safety
///
/// Writing `value` to `port` must be a valid device operation for the caller.
pub(crate) unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller guarantees that the write is a valid device operation.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Writes `bytes` to an I/O port with one `rep outsb`, which a VMM receives as one exit.
///
/// # Safety
///
/// Writing each of `bytes` to `port`, in order, must be a valid device operation for the caller.
pub(crate) unsafe fn outsb(port: u16, bytes: &[u8]) {
    // SAFETY: REP OUTSB reads RCX bytes forwards from RSI (the slice, valid for its length; DF
    // is clear as the ABI requires) and writes them to port DX; the caller guarantees that the
    // writes are valid device operations.
    unsafe {
        asm!(
            "rep outsb",
            in("dx") port,
            inout("rsi") bytes.as_ptr() => _,
            inout("rcx") bytes.len() => _,
            options(nostack, preserves_flags, readonly),
        )
    };
}

/// Reads a 32-bit value from an I/O port (one `in eax, dx`).
///
/// # Safety
///
/// Reading `port` must be a valid device operation for the caller.
pub(crate) unsafe fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: the caller guarantees that the read is a valid device operation.
    unsafe {
        asm!("in eax, dx", in("dx") port, out("eax") value, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Writes a 32-bit value to an I/O port (one `out dx, eax`).
///
/// # Safety
///
/// Writing `value` to `port` must be a valid device operation for the caller.
pub(crate) unsafe fn outl(port: u16, value: u32) {
    // SAFETY: the caller guarantees that the write is a valid device operation.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    };
}
