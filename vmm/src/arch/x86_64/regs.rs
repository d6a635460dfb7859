//! Architectural vCPU state at hand-over: the BSP's entry state (PVH, multiboot or long
//! mode), the MSRs and FPU state every vCPU starts with, and the boot structures the entry
//! state points at (GDT, identity page tables).

use firmware::layout::BOOT_GDT_SIZE;
use firmware::multiboot::MULTIBOOT_BOOTLOADER_MAGIC;
use kvm_bindings::{kvm_fpu, kvm_msr_entry, kvm_regs, kvm_sregs, Msrs};
use kvm_ioctls::VcpuFd;
use vm_memory::GuestMemoryMmap;

use super::gdt::{self, segment, GDT_CODE32, GDT_CODE64, GDT_DATA, GDT_FLAGS, GDT_TSS, TSS_LIMIT};
use super::paging;
use crate::loader::{BootLayout, Entry};

/// CR0.PE: protected mode (Intel SDM Vol. 3A, 2.5).
const X86_CR0_PE: u64 = 1 << 0;
/// CR0.ET: extension type, hard-wired to 1 on modern CPUs.
pub(super) const X86_CR0_ET: u64 = 1 << 4;
/// CR0.PG: paging.
const X86_CR0_PG: u64 = 1 << 31;
/// CR4.PAE: physical address extension.
const X86_CR4_PAE: u64 = 1 << 5;
/// IA32_EFER.LME: long mode enable (Intel SDM Vol. 3A, 2.2.1).
const EFER_LME: u64 = 1 << 8;
/// IA32_EFER.LMA: long mode active.
const EFER_LMA: u64 = 1 << 10;
/// RFLAGS bit 1 is reserved and always 1 (Intel SDM Vol. 1, 3.4.3).
pub(super) const RFLAGS_RESERVED: u64 = 1 << 1;

/// IA32_MISC_ENABLE (Intel SDM Vol. 4, Table 2-2).
const MSR_IA32_MISC_ENABLE: u32 = 0x1A0;
/// IA32_MISC_ENABLE.FAST_STRINGS.
const MSR_IA32_MISC_ENABLE_FAST_STRING: u64 = 1 << 0;
/// IA32_MTRR_DEF_TYPE (Intel SDM Vol. 3A, 12.11.2.1).
const MSR_MTRR_DEF_TYPE: u32 = 0x2FF;
/// IA32_MTRR_DEF_TYPE.E (MTRRs enabled) with default type write-back (6).
const MTRR_ENABLE_WRITEBACK: u64 = (1 << 11) | 6;
/// The x87 control word after FNINIT (Intel SDM Vol. 1, 8.1.5).
const FPU_FCW_DEFAULT: u16 = 0x37F;
/// MXCSR after reset: all exceptions masked (Intel SDM Vol. 1, 10.2.3).
const MXCSR_DEFAULT: u32 = 0x1F80;

/// Why register setup failed.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    /// A KVM register ioctl failed.
    #[error("cannot set vCPU {what}")]
    Set {
        what: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    /// Writing the GDT or page tables into guest memory failed.
    #[error("cannot write boot structures into guest memory")]
    Memory(#[source] vm_memory::GuestMemoryError),
    /// KVM did not accept an MSR.
    #[error("KVM refused to set MSR {0:#x}")]
    MsrRejected(u32),
    /// The MSR list could not be built.
    #[error("cannot build the MSR list")]
    MsrList,
}

/// Writes the boot GDT and, for a long-mode entry, the identity page tables, where `layout`
/// says. Done once, before any vCPU runs.
pub(crate) fn write_boot_structures(
    mem: &GuestMemoryMmap,
    entry: Entry,
    layout: &BootLayout,
) -> Result<(), RegsError> {
    gdt::write(mem, layout.gdt).map_err(RegsError::Memory)?;
    if let Entry::Long(_) = entry {
        paging::write_identity_map(mem, layout).map_err(RegsError::Memory)?;
    }
    Ok(())
}

/// Puts the BSP in the entry state: PVH or multiboot (32-bit protected mode, paging off, flat
/// segments, interrupts off) or long mode on the VMM's identity map. RBX (and RSI) hold the
/// start_info address; for multiboot, EAX holds the boot loader magic and EBX the multiboot
/// information (Multiboot Specification 0.6.96, 3.2 "Machine state"). `layout` says where the
/// GDT, the page tables and the hand-off are.
pub(crate) fn setup_bsp(vcpu: &VcpuFd, entry: Entry, layout: &BootLayout) -> Result<(), RegsError> {
    let set = |what| move |source| RegsError::Set { what, source };
    let mut sregs: kvm_sregs = vcpu.get_sregs().map_err(set("special registers"))?;
    let data = segment(GDT_DATA, GDT_FLAGS[3], 0, 0xFFFF_FFFF);
    let (code, rip) = match entry {
        Entry::Pvh(addr) | Entry::Multiboot(addr) => {
            sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
            sregs.cr4 = 0;
            sregs.efer = 0;
            (
                segment(GDT_CODE32, GDT_FLAGS[2], 0, 0xFFFF_FFFF),
                u64::from(addr),
            )
        }
        Entry::Long(addr) => {
            sregs.cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
            sregs.cr3 = layout.pml4;
            sregs.cr4 = X86_CR4_PAE;
            sregs.efer = EFER_LME | EFER_LMA;
            (segment(GDT_CODE64, GDT_FLAGS[1], 0, 0xFFFF_FFFF), addr)
        }
    };
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = segment(GDT_TSS, GDT_FLAGS[4], 0, TSS_LIMIT);
    sregs.gdt.base = layout.gdt;
    sregs.gdt.limit = (BOOT_GDT_SIZE - 1) as u16;
    vcpu.set_sregs(&sregs).map_err(set("special registers"))?;
    let regs = match entry {
        Entry::Multiboot(_) => kvm_regs {
            rflags: RFLAGS_RESERVED,
            rip,
            rax: u64::from(MULTIBOOT_BOOTLOADER_MAGIC),
            rbx: layout.handoff(entry),
            ..Default::default()
        },
        Entry::Pvh(_) | Entry::Long(_) => kvm_regs {
            rflags: RFLAGS_RESERVED,
            rip,
            rbx: layout.handoff(entry),
            rsi: layout.handoff(entry),
            ..Default::default()
        },
    };
    vcpu.set_regs(&regs).map_err(set("registers"))
}

/// IA32_APIC_BASE (Intel SDM Vol. 3A, 11.4.4).
pub(super) const MSR_IA32_APIC_BASE: u32 = 0x1B;
/// IA32_APIC_BASE.BSP: this is the bootstrap processor.
pub(super) const APIC_BASE_BSP: u64 = 1 << 8;
/// IA32_APIC_BASE.EXTD: x2APIC mode.
pub(super) const APIC_BASE_EXTD: u64 = 1 << 10;
/// IA32_APIC_BASE.EN: the local APIC is enabled.
pub(super) const APIC_BASE_EN: u64 = 1 << 11;

/// How a vCPU starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StartState {
    /// It is the bootstrap processor.
    pub bsp: bool,
    /// Hand it over with its local APIC in x2APIC mode, as firmware must when APIC IDs exceed
    /// 254 (Intel x2APIC Specification, 2.2: xAPIC IDs cannot address them; an AP left in
    /// xAPIC mode has an 8-bit ID that aliases others). x2APIC mode survives INIT, so an AP's
    /// trampoline does not have to switch modes (each switch makes KVM rebuild its APIC map).
    /// The vCPU's CPUID must already advertise x2APIC.
    pub x2apic: bool,
}

/// Puts `vcpu`'s local APIC into KVM's map of APIC IDs, which KVM's fast path delivers
/// interrupts through (an IPI to an APIC ID the map lacks reaches nobody). KVM recalculates
/// the map when it creates a vCPU, but before the vCPU is visible to that calculation, and
/// then only when some APIC's ID, mode or enable bit changes. So the last vCPU created, or any
/// vCPU kicked before the next is created (the BSP runs while vCPUs are still being created,
/// `--bsp-start early`), can be missing from it until another APIC changes, and its INIT and
/// STARTUP are lost, each retry too if nothing else changes. Writing back its own LAPIC state
/// (KVM_SET_LAPIC) recalculates the map with it. In x2APIC mode the IA32_APIC_BASE write of
/// [`setup_common`] has that effect already.
fn publish_apic(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let state = vcpu.get_lapic().map_err(|source| RegsError::Set {
        what: "local APIC (reading it)",
        source,
    })?;
    vcpu.set_lapic(&state).map_err(|source| RegsError::Set {
        what: "local APIC",
        source,
    })
}

/// Sets the MSRs every vCPU starts with (and IA32_APIC_BASE for x2APIC mode) in one
/// KVM_SET_MSRS (in xAPIC mode, then [`publish_apic`]), and the BSP's FPU state: each such
/// ioctl is costly (docs/host.md, "Costs per operation") and there are hundreds of vCPUs. The APs keep the FPU state KVM gives a new
/// vCPU, which is FNINIT's (FCW 0x37F) with MXCSR 0x1F80, the values set on the BSP: INIT
/// leaves x87 and SSE state alone (Intel SDM Vol. 3A, Table 10-1), so that is the state an AP
/// starts with.
pub(crate) fn setup_common(vcpu: &VcpuFd, start: StartState) -> Result<(), RegsError> {
    let set = |what| move |source| RegsError::Set { what, source };
    let base = firmware::layout::LAPIC_BASE | APIC_BASE_EN | APIC_BASE_EXTD;
    let entries = [
        kvm_msr_entry {
            index: MSR_IA32_MISC_ENABLE,
            data: MSR_IA32_MISC_ENABLE_FAST_STRING,
            ..Default::default()
        },
        kvm_msr_entry {
            index: MSR_MTRR_DEF_TYPE,
            data: MTRR_ENABLE_WRITEBACK,
            ..Default::default()
        },
        kvm_msr_entry {
            index: MSR_IA32_APIC_BASE,
            data: if start.bsp {
                base | APIC_BASE_BSP
            } else {
                base
            },
            ..Default::default()
        },
    ];
    let n = if start.x2apic { 3 } else { 2 };
    let msrs = Msrs::from_entries(&entries[..n]).map_err(|_| RegsError::MsrList)?;
    match vcpu.set_msrs(&msrs).map_err(set("MSRs"))? {
        written if written == n => {}
        // KVM stops at the first MSR it refuses.
        written => return Err(RegsError::MsrRejected(entries[written.min(n - 1)].index)),
    }
    if !start.x2apic {
        publish_apic(vcpu)?;
    }
    if !start.bsp {
        return Ok(());
    }
    let fpu = kvm_fpu {
        fcw: FPU_FCW_DEFAULT,
        mxcsr: MXCSR_DEFAULT,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(set("FPU"))
}

#[cfg(test)]
mod tests {
    use kvm_bindings::kvm_msi;

    use super::*;

    /// An MSI's address for physical destination `apic_id` (Intel SDM Vol. 3A, 11.11.1).
    const MSI_ADDRESS_BASE: u32 = 0xFEE0_0000;
    const MSI_DEST_ID_SHIFT: u32 = 12;
    /// An MSI's data for an INIT (delivery mode 101b, edge).
    const MSI_DELIVERY_INIT: u32 = 0b101 << 8;

    /// INITs `apic_id` through an MSI, as a guest's IPI would be routed; returns how many
    /// local APICs took it.
    fn init_via_msi(vm: &kvm_ioctls::VmFd, apic_id: u32) -> i32 {
        let msi = kvm_msi {
            address_lo: MSI_ADDRESS_BASE | (apic_id << MSI_DEST_ID_SHIFT),
            data: MSI_DELIVERY_INIT,
            ..Default::default()
        };
        vm.signal_msi(msi).expect("KVM_SIGNAL_MSI")
    }

    #[test]
    fn the_last_vcpu_created_gets_its_init_once_published() {
        let Some(kvm) = crate::kvm::kvm_for_test() else {
            return;
        };
        let vm = kvm.create_vm().expect("KVM_CREATE_VM");
        vm.create_irq_chip().expect("KVM_CREATE_IRQCHIP");
        let _bsp = vm.create_vcpu(0).expect("vCPU 0");
        let last = vm.create_vcpu(1).expect("vCPU 1");
        // What sipi must not rely on: KVM's map left out the vCPU it created last.
        assert_eq!(
            init_via_msi(&vm, 1),
            0,
            "KVM's APIC map has the last vCPU without being asked; publish_apic may be unneeded"
        );
        publish_apic(&last).expect("KVM_SET_LAPIC");
        assert_eq!(init_via_msi(&vm, 1), 1, "the INIT reaches the last vCPU");
    }
}
