//! Architectural vCPU state: the boot GDT, segment registers, control registers, identity page
//! tables, MSRs and FPU, for the BSP's entry and for every vCPU's reset state.

use firmware::layout::{
    BOOT_GDT_ADDR, BOOT_GDT_ENTRIES, LARGE_PAGE_SIZE, MULTIBOOT_INFO_ADDR, PAGE_SIZE, PDPT_ADDR,
    PD_ADDR, PD_COUNT, PML4_ADDR, START_INFO_ADDR,
};
use firmware::multiboot::MULTIBOOT_BOOTLOADER_MAGIC;
use kvm_bindings::{kvm_fpu, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, Msrs};
use kvm_ioctls::{Kvm, VcpuFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::loader::Entry;

/// CR0.PE: protected mode (Intel SDM Vol. 3A, 2.5).
const X86_CR0_PE: u64 = 1 << 0;
/// CR0.ET: extension type, hard-wired to 1 on modern CPUs.
const X86_CR0_ET: u64 = 1 << 4;
/// CR0.PG: paging.
const X86_CR0_PG: u64 = 1 << 31;
/// CR4.PAE: physical address extension.
const X86_CR4_PAE: u64 = 1 << 5;
/// IA32_EFER.LME: long mode enable (Intel SDM Vol. 3A, 2.2.1).
const EFER_LME: u64 = 1 << 8;
/// IA32_EFER.LMA: long mode active.
const EFER_LMA: u64 = 1 << 10;
/// RFLAGS bit 1 is reserved and always 1 (Intel SDM Vol. 1, 3.4.3).
const RFLAGS_RESERVED: u64 = 1 << 1;

/// Page-table entry flags (Intel SDM Vol. 3A, 4.5, Tables 4-15 to 4-20).
const PTE_PRESENT: u64 = 1 << 0;
/// Writable.
const PTE_WRITABLE: u64 = 1 << 1;
/// Page size: this PDE maps a 2 MiB page.
const PTE_PAGE_SIZE: u64 = 1 << 7;

/// IA32_TIME_STAMP_COUNTER, the TSC (Intel SDM Vol. 4, Table 2-2).
const MSR_IA32_TSC: u32 = 0x10;
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

/// Boot GDT selectors (index * 8).
const GDT_CODE64: u16 = 1 << 3;
/// 32-bit code.
const GDT_CODE32: u16 = 2 << 3;
/// Data.
const GDT_DATA: u16 = 3 << 3;
/// TSS.
const GDT_TSS: u16 = 4 << 3;

/// Access/flags words of the boot GDT descriptors, in the "flags << 12 | access" form
/// Firecracker's gdt.rs uses: 64-bit code (L=1), 32-bit code (D=1, G=1), data, 32-bit busy TSS.
const GDT_FLAGS: [u16; BOOT_GDT_ENTRIES] = [0, 0xA09B, 0xC09B, 0xC093, 0x808B];

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
    /// A KVM register read failed.
    #[error("cannot read vCPU {what}")]
    Get {
        what: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    /// The throwaway VM of the TSC-write probe could not be created.
    #[error("cannot create a VM to probe KVM's TSC writes")]
    Probe(#[source] kvm_ioctls::Error),
    /// KVM did not keep a TSC write (it takes writes close to the other vCPUs' TSC for a
    /// resynchronisation).
    #[error(
        "KVM did not keep the TSC skew: the TSC read {before} before writing {written}, and {after} after"
    )]
    TscSkewLost {
        before: u64,
        written: u64,
        after: u64,
    },
}

/// Encodes a GDT descriptor (Intel SDM Vol. 3A, 3.4.5).
fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let (flags, base, limit) = (u64::from(flags), u64::from(base), u64::from(limit));
    ((base & 0xFF00_0000) << 32)
        | ((flags & 0xF0FF) << 40)
        | ((limit & 0x000F_0000) << 32)
        | ((base & 0x00FF_FFFF) << 16)
        | (limit & 0x0000_FFFF)
}

/// The hidden segment state KVM loads for descriptor `flags` at `selector`: access byte in
/// bits 0-7 (type, S, DPL, P), flags nibble in bits 12-15 (AVL, L, D/B, G).
fn segment(selector: u16, flags: u16, base: u32, limit: u32) -> kvm_segment {
    let bit = |n: u16| ((flags >> n) & 1) as u8;
    kvm_segment {
        base: u64::from(base),
        limit,
        selector,
        type_: (flags & 0xF) as u8,
        s: bit(4),
        dpl: ((flags >> 5) & 3) as u8,
        present: bit(7),
        avl: bit(12),
        l: bit(13),
        db: bit(14),
        g: bit(15),
        unusable: u8::from(bit(7) == 0),
        padding: 0,
    }
}

/// Writes the boot GDT and, for a long-mode entry, the identity page tables (4 GiB with 2 MiB
/// pages: our hosts have no 1 GiB pages). Done once, before any vCPU runs, so no page-table
/// page is written while in use (shadow paging would have to emulate the write).
pub fn write_boot_structures(mem: &GuestMemoryMmap, entry: Entry) -> Result<(), RegsError> {
    let mut gdt = [0u8; BOOT_GDT_ENTRIES * 8];
    for (i, flags) in GDT_FLAGS.iter().enumerate().skip(1) {
        let limit = if i == 4 { 0x67 } else { 0xF_FFFF };
        gdt[i * 8..i * 8 + 8].copy_from_slice(&gdt_entry(*flags, 0, limit).to_le_bytes());
    }
    mem.write_slice(&gdt, GuestAddress(BOOT_GDT_ADDR))
        .map_err(RegsError::Memory)?;
    if let Entry::Long(_) = entry {
        let table = PTE_PRESENT | PTE_WRITABLE;
        mem.write_obj(PDPT_ADDR | table, GuestAddress(PML4_ADDR))
            .map_err(RegsError::Memory)?;
        let mut pdpt = Vec::with_capacity(PAGE_SIZE as usize);
        let mut pds = Vec::with_capacity((PD_COUNT * PAGE_SIZE) as usize);
        for d in 0..PD_COUNT {
            pdpt.extend_from_slice(&((PD_ADDR + d * PAGE_SIZE) | table).to_le_bytes());
            for e in 0..512u64 {
                let addr = (d * 512 + e) * LARGE_PAGE_SIZE;
                pds.extend_from_slice(&(addr | table | PTE_PAGE_SIZE).to_le_bytes());
            }
        }
        mem.write_slice(&pdpt, GuestAddress(PDPT_ADDR))
            .map_err(RegsError::Memory)?;
        mem.write_slice(&pds, GuestAddress(PD_ADDR))
            .map_err(RegsError::Memory)?;
    }
    Ok(())
}

/// Puts the BSP in the entry state: PVH or multiboot (32-bit protected mode, paging off, flat
/// segments, interrupts off) or long mode on the VMM's identity map. RBX (and RSI) hold the
/// start_info address; for multiboot, EAX holds the boot loader magic and EBX the multiboot
/// information (Multiboot Specification 0.6.96, 3.2 "Machine state").
pub fn setup_bsp(vcpu: &VcpuFd, entry: Entry) -> Result<(), RegsError> {
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
            sregs.cr3 = PML4_ADDR;
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
    sregs.tr = segment(GDT_TSS, GDT_FLAGS[4], 0, 0x67);
    sregs.gdt.base = BOOT_GDT_ADDR;
    sregs.gdt.limit = (BOOT_GDT_ENTRIES * 8 - 1) as u16;
    vcpu.set_sregs(&sregs).map_err(set("special registers"))?;
    let regs = match entry {
        Entry::Multiboot(_) => kvm_regs {
            rflags: RFLAGS_RESERVED,
            rip,
            rax: u64::from(MULTIBOOT_BOOTLOADER_MAGIC),
            rbx: MULTIBOOT_INFO_ADDR,
            ..Default::default()
        },
        Entry::Pvh(_) | Entry::Long(_) => kvm_regs {
            rflags: RFLAGS_RESERVED,
            rip,
            rbx: START_INFO_ADDR,
            rsi: START_INFO_ADDR,
            ..Default::default()
        },
    };
    vcpu.set_regs(&regs).map_err(set("registers"))
}

/// IA32_APIC_BASE (Intel SDM Vol. 3A, 11.4.4).
const MSR_IA32_APIC_BASE: u32 = 0x1B;
/// IA32_APIC_BASE.BSP: this is the bootstrap processor.
const APIC_BASE_BSP: u64 = 1 << 8;
/// IA32_APIC_BASE.EXTD: x2APIC mode.
const APIC_BASE_EXTD: u64 = 1 << 10;
/// IA32_APIC_BASE.EN: the local APIC is enabled.
const APIC_BASE_EN: u64 = 1 << 11;

/// How a vCPU starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartState {
    /// It is the bootstrap processor.
    pub bsp: bool,
    /// Hand it over with its local APIC in x2APIC mode, as firmware must when APIC IDs exceed
    /// 254 (Intel x2APIC Specification, 2.2: xAPIC IDs cannot address them; an AP left in
    /// xAPIC mode has an 8-bit ID that aliases others). x2APIC mode survives INIT, so an AP's
    /// trampoline does not have to switch modes (each switch makes KVM rebuild its APIC map).
    /// The vCPU's CPUID must already advertise x2APIC.
    pub x2apic: bool,
}

/// Sets the MSRs every vCPU starts with (and IA32_APIC_BASE for x2APIC mode) in one
/// KVM_SET_MSRS, and the BSP's FPU state: an ioctl costs tens of microseconds here and there
/// are hundreds of vCPUs. The APs keep the FPU state KVM gives a new vCPU, which is FNINIT's
/// (FCW 0x37F) with MXCSR 0x1F80, the values set on the BSP: INIT leaves x87 and SSE state
/// alone (Intel SDM Vol. 3A, Table 10-1), so that is the state an AP starts with.
pub fn setup_common(vcpu: &VcpuFd, start: StartState) -> Result<(), RegsError> {
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

/// Reads the vCPU's TSC (IA32_TSC through KVM_GET_MSRS).
fn read_tsc(vcpu: &VcpuFd) -> Result<u64, RegsError> {
    let mut msrs = Msrs::from_entries(&[kvm_msr_entry {
        index: MSR_IA32_TSC,
        ..Default::default()
    }])
    .map_err(|_| RegsError::MsrList)?;
    let read = vcpu.get_msrs(&mut msrs).map_err(|source| RegsError::Get {
        what: "TSC",
        source,
    })?;
    match msrs.as_slice() {
        [e] if read == 1 => Ok(e.data),
        _ => Err(RegsError::MsrList),
    }
}

/// Writes the vCPU's TSC (IA32_TSC through KVM_SET_MSRS).
fn write_tsc(vcpu: &VcpuFd, value: u64) -> Result<(), RegsError> {
    let msrs = Msrs::from_entries(&[kvm_msr_entry {
        index: MSR_IA32_TSC,
        data: value,
        ..Default::default()
    }])
    .map_err(|_| RegsError::MsrList)?;
    vcpu.set_msrs(&msrs)
        .map_err(|source| RegsError::Set {
            what: "TSC",
            source,
        })
        .map(|_| ())
}

/// How far the probe moves its vCPU's TSC: 2^40 cycles, minutes at any TSC frequency, far beyond
/// the one second within which KVM takes a TSC write for a resynchronisation.
const TSC_PROBE_SKEW: u64 = 1 << 40;

/// True if this KVM keeps a VMM's TSC write: probed on a throwaway VM with one vCPU. kvm_pvm
/// does not (its guests read the host's TSC: every vCPU's TSC offset stays 0).
pub fn kvm_keeps_tsc_writes(kvm: &Kvm) -> Result<bool, RegsError> {
    let vm = kvm.create_vm().map_err(RegsError::Probe)?;
    let vcpu = vm.create_vcpu(0).map_err(RegsError::Probe)?;
    let before = read_tsc(&vcpu)?;
    write_tsc(&vcpu, before.saturating_add(TSC_PROBE_SKEW))?;
    Ok(read_tsc(&vcpu)? >= before.saturating_add(TSC_PROBE_SKEW))
}

/// Test only: moves the vCPU's TSC `cycles` ahead of where it is (IA32_TSC through
/// KVM_SET_MSRS; KVM adjusts this vCPU's TSC offset, the others keep theirs), then reads it back
/// to check that KVM kept the write. Call it after every vCPU of the VM is created (KVM gives
/// later vCPUs the offset of the last write) and before this one runs.
pub fn skew_tsc(vcpu: &VcpuFd, cycles: u64) -> Result<(), RegsError> {
    let before = read_tsc(vcpu)?;
    let written = before.saturating_add(cycles);
    write_tsc(vcpu, written)?;
    let after = read_tsc(vcpu)?;
    // The TSC runs on between the write and the read, but by far less than the skew.
    if after < written || after - written >= cycles {
        return Err(RegsError::TscSkewLost {
            before,
            written,
            after,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_entries_match_the_sdm_layout() {
        // Known encodings (as in Firecracker and Linux's boot GDT).
        assert_eq!(gdt_entry(0xA09B, 0, 0xF_FFFF), 0x00AF_9B00_0000_FFFF);
        assert_eq!(gdt_entry(0xC093, 0, 0xF_FFFF), 0x00CF_9300_0000_FFFF);
        assert_eq!(gdt_entry(0x808B, 0, 0x67), 0x0080_8B00_0000_0067);
    }

    #[test]
    fn segments_decode_descriptor_flags() {
        let cs = segment(GDT_CODE64, 0xA09B, 0, 0xFFFF_FFFF);
        assert_eq!(
            (cs.type_, cs.present, cs.s, cs.l, cs.db, cs.g),
            (0xB, 1, 1, 1, 0, 1)
        );
        let cs32 = segment(GDT_CODE32, 0xC09B, 0, 0xFFFF_FFFF);
        assert_eq!((cs32.l, cs32.db), (0, 1));
        let tss = segment(GDT_TSS, 0x808B, 0, 0x67);
        assert_eq!((tss.type_, tss.s, tss.unusable), (0xB, 0, 0));
    }

    #[test]
    fn identity_map_uses_2mib_pages_and_covers_4gib() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        write_boot_structures(&mem, Entry::Long(0x10_0000)).unwrap();
        let pml4: u64 = mem.read_obj(GuestAddress(PML4_ADDR)).unwrap();
        assert_eq!(pml4, PDPT_ADDR | 3);
        let pdpt3: u64 = mem.read_obj(GuestAddress(PDPT_ADDR + 24)).unwrap();
        assert_eq!(pdpt3, (PD_ADDR + 3 * PAGE_SIZE) | 3);
        let last: u64 = mem
            .read_obj(GuestAddress(PD_ADDR + PD_COUNT * PAGE_SIZE - 8))
            .unwrap();
        assert_eq!(last, ((4u64 << 30) - LARGE_PAGE_SIZE) | 0x83);
    }
}
