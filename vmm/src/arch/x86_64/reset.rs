//! The vCPU state of a resume from ACPI S3 (ACPI 6.5, 16.1.3 "Waking from sleep" and 5.2.10
//! "Firmware ACPI Control Structure"): the platform was reset, so every processor starts as
//! after INIT (Intel SDM Vol. 3A, Table 10-1); the firmware hands the BSP to the OS's waking
//! vector in real mode, CS:IP = (vector >> 4):(vector & 0xF), and leaves the APs waiting for a
//! Startup IPI, as at power-on.

use kvm_bindings::{kvm_mp_state, kvm_regs, kvm_segment, kvm_sregs, KVM_MP_STATE_INIT_RECEIVED};
use kvm_ioctls::VcpuFd;

use super::regs::{
    RegsError, StartState, APIC_BASE_BSP, APIC_BASE_EN, APIC_BASE_EXTD, RFLAGS_RESERVED, X86_CR0_ET,
};

/// CR0.CD: caching disabled (Intel SDM Vol. 3A, 2.5).
const X86_CR0_CD: u64 = 1 << 30;
/// CR0.NW: not write-through.
const X86_CR0_NW: u64 = 1 << 29;
/// CR0 after INIT: CD and NW set, ET set (Intel SDM Vol. 3A, Table 10-1: 60000010H).
const CR0_AFTER_INIT: u64 = X86_CR0_CD | X86_CR0_NW | X86_CR0_ET;
/// Real-mode addresses are segment << 4 + offset (Intel SDM Vol. 3A, 21.1.1).
const REAL_MODE_SEGMENT_SHIFT: u32 = 4;
/// The offset bits of a waking vector: the low 4 (ACPI 6.5, Table 5.14, "Firmware Waking
/// Vector").
const WAKING_IP_MASK: u32 = (1 << REAL_MODE_SEGMENT_SHIFT) - 1;
/// A real-mode segment's limit.
const REAL_MODE_LIMIT: u32 = 0xFFFF;
/// Segment type: code, execute/read, accessed.
const TYPE_CODE: u8 = 0xB;
/// Segment type: data, read/write, accessed.
const TYPE_DATA: u8 = 0x3;
/// System segment type: LDT.
const TYPE_LDT: u8 = 0x2;
/// System segment type: busy 32-bit TSS (what KVM's reset gives TR).
const TYPE_TSS_BUSY: u8 = 0xB;
/// CS after INIT: selector F000H, base FFFF0000H; IP FFF0H (the reset vector).
const RESET_CS_SELECTOR: u16 = 0xF000;
/// The base of CS after INIT.
const RESET_CS_BASE: u64 = 0xFFFF_0000;
/// IP after INIT.
const RESET_IP: u64 = 0xFFF0;

/// A present real-mode segment of this type, selector and base.
fn real_segment(type_: u8, selector: u16, base: u64, code_or_data: bool) -> kvm_segment {
    kvm_segment {
        base,
        limit: REAL_MODE_LIMIT,
        selector,
        type_,
        present: 1,
        s: u8::from(code_or_data),
        ..Default::default()
    }
}

/// Special registers after INIT, with CS at `cs_selector`:`cs_base` and IA32_APIC_BASE as
/// `start` gives the vCPU at boot (x2APIC mode survives INIT, and a topology with APIC IDs
/// above 254 needs it).
fn sregs_after_init(cs_selector: u16, cs_base: u64, start: StartState) -> kvm_sregs {
    let data = real_segment(TYPE_DATA, 0, 0, true);
    let mut apic_base = firmware::layout::LAPIC_BASE | APIC_BASE_EN;
    if start.bsp {
        apic_base |= APIC_BASE_BSP;
    }
    if start.x2apic {
        apic_base |= APIC_BASE_EXTD;
    }
    let mut sregs = kvm_sregs {
        cs: real_segment(TYPE_CODE, cs_selector, cs_base, true),
        ds: data,
        es: data,
        fs: data,
        gs: data,
        ss: data,
        tr: real_segment(TYPE_TSS_BUSY, 0, 0, false),
        ldt: real_segment(TYPE_LDT, 0, 0, false),
        cr0: CR0_AFTER_INIT,
        apic_base,
        ..Default::default()
    };
    sregs.gdt.limit = REAL_MODE_LIMIT as u16;
    sregs.idt.limit = REAL_MODE_LIMIT as u16;
    sregs
}

/// CS selector, CS base and IP of the BSP at `waking_vector`: the ACPI real-mode form
/// (vector >> 4):(vector & 0xF); the base is the vector's own bits, so a vector above 1 MiB
/// (which the OS must not give) still lands where it points.
pub(crate) fn waking_cs_ip(waking_vector: u32) -> (u16, u64, u64) {
    (
        (waking_vector >> REAL_MODE_SEGMENT_SHIFT) as u16,
        u64::from(waking_vector & !WAKING_IP_MASK),
        u64::from(waking_vector & WAKING_IP_MASK),
    )
}

/// Puts a vCPU in its state after a resume from S3: the BSP at `waking_vector` in real mode,
/// an AP in wait-for-SIPI (its registers as after INIT). Called on the vCPU's own thread
/// while the VM is suspended.
pub(crate) fn after_resume(
    vcpu: &VcpuFd,
    start: StartState,
    waking_vector: u32,
) -> Result<(), RegsError> {
    let set = |what| move |source| RegsError::Set { what, source };
    let (selector, base, ip) = if start.bsp {
        waking_cs_ip(waking_vector)
    } else {
        (RESET_CS_SELECTOR, RESET_CS_BASE, RESET_IP)
    };
    vcpu.set_sregs(&sregs_after_init(selector, base, start))
        .map_err(set("special registers"))?;
    let regs = kvm_regs {
        rflags: RFLAGS_RESERVED,
        rip: ip,
        ..Default::default()
    };
    vcpu.set_regs(&regs).map_err(set("registers"))?;
    if !start.bsp {
        let wait_for_sipi = kvm_mp_state {
            mp_state: KVM_MP_STATE_INIT_RECEIVED,
        };
        vcpu.set_mp_state(wait_for_sipi)
            .map_err(set("multiprocessing state"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waking_vector_is_a_real_mode_far_pointer() {
        assert_eq!(waking_cs_ip(0x1000), (0x100, 0x1000, 0));
        assert_eq!(waking_cs_ip(0x9_ABCD), (0x9ABC, 0x9_ABC0, 0xD));
        assert_eq!(
            waking_cs_ip(0x1234_5678),
            (0x4567, 0x1234_5670, 8),
            "the base keeps the vector's high bits"
        );
    }

    #[test]
    fn after_init_the_cpu_is_in_real_mode() {
        let bsp = StartState {
            bsp: true,
            x2apic: false,
        };
        let s = sregs_after_init(0x100, 0x1000, bsp);
        assert_eq!(s.cr0, 0x6000_0010, "real mode, caches off, as after INIT");
        assert_eq!((s.cr4, s.efer, s.cr3), (0, 0, 0));
        assert_eq!(
            (s.cs.selector, s.cs.base, s.cs.limit),
            (0x100, 0x1000, 0xFFFF)
        );
        assert_eq!(s.apic_base, 0xFEE0_0900, "enabled BSP in xAPIC mode");
        let ap = StartState {
            bsp: false,
            x2apic: true,
        };
        let s = sregs_after_init(RESET_CS_SELECTOR, RESET_CS_BASE, ap);
        assert_eq!(s.apic_base, 0xFEE0_0C00, "an AP keeps x2APIC mode");
        assert_eq!(s.ss.type_, TYPE_DATA);
    }
}
