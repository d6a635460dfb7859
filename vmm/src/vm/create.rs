//! Step 1 of a boot: open KVM, create the VM with its in-kernel devices and capabilities, map
//! guest memory, load the kernel, and write the ACPI tables, the boot hand-off and the boot
//! structures. Nothing runs yet.

use std::borrow::Cow;
use std::time::Instant;

use firmware::cmdline::{GuestOptions, TestTscSkew};
use firmware::layout::KVM_TSS_ADDR;
use firmware::report::MAX_CPUS;
use kvm_bindings::{
    kvm_enable_cap, kvm_pit_config, KVM_CAP_X2APIC_API, KVM_PIT_SPEAKER_DUMMY,
    KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK, KVM_X2APIC_API_USE_32BIT_IDS,
};
use kvm_ioctls::VmFd;
use vm_memory::GuestMemoryMmap;

use super::clock::{us, PhaseClock};
use super::VmError;
use crate::arch::x86_64::acpi::AcpiTables;
use crate::arch::x86_64::{bios_state, boot_info, irq_routing, regs, tsc};
use crate::config::{BspStart, KernelSource, TscSkew, VmConfig};
use crate::kvm::KvmHost;
use crate::loader::{self, placement, BootLayout, Entry};
use crate::memory;
use crate::report::VmmPhasesUs;

/// A VM ready to get its vCPUs.
pub(super) struct CreatedVm {
    /// The KVM it was created on.
    pub host: KvmHost,
    /// The VM.
    pub vm: VmFd,
    /// Guest RAM, mapped but not yet registered with KVM.
    pub mem: GuestMemoryMmap,
    /// How the BSP enters the kernel.
    pub entry: Entry,
    /// Where the boot structures are.
    pub layout: BootLayout,
    /// The kernel is sipi's own guest, which must report before it exits.
    pub sipi_guest: bool,
    /// The options the guest was given on its command line.
    pub guest: GuestOptions,
    /// Test only: the TSC skew the VMM itself applies (when KVM keeps TSC writes).
    pub tsc_skew: Option<TscSkew>,
    /// Host time spent mapping guest memory, in microseconds (part of the memory phase).
    pub mmap_us: u64,
    /// Where the FACS is, whose waking vector a resume from S3 starts at.
    pub facs_addr: u64,
    /// When the BSP runs: early only for sipi's own guest, which knows the vCPU-readiness
    /// port (and was told so on its command line), and without a test-only TSC write, which
    /// needs every vCPU to exist first.
    pub bsp_start: BspStart,
}

/// Creates the VM of `cfg`, timing its phases into `phases`.
pub(super) fn create(
    cfg: &VmConfig,
    clock: &mut PhaseClock,
    phases: &mut VmmPhasesUs,
) -> Result<CreatedVm, VmError> {
    let host = KvmHost::open(&cfg.kvm_device)?;
    let vcpus = cfg.topology.vcpus();
    let max = host.max_vcpus.min(MAX_CPUS);
    if vcpus > max {
        return Err(VmError::TooManyVcpus {
            requested: vcpus,
            max,
        });
    }
    if cfg.topology.x2apic() && !host.x2apic_api {
        return Err(VmError::NoX2ApicApi(vcpus));
    }
    phases.open_kvm = clock.lap();

    // Read first: whether the kernel is sipi's own guest decides which devices KVM creates.
    let image = match &cfg.kernel {
        KernelSource::Embedded => Cow::Borrowed(crate::EMBEDDED_GUEST),
        KernelSource::Path(p) => Cow::Owned(loader::read_image(p, cfg.memory)?),
    };
    // sipi's own guest must report before it exits, whether it came embedded or as a copy in
    // a file (`--kernel target/guest.elf`); another kernel has no report to send.
    let sipi_guest = *image == *crate::EMBEDDED_GUEST;
    let read_us = clock.lap();

    let vm = create_vm(&host, cfg, !sipi_guest)?;
    phases.create_vm = clock.lap();

    let t_mem = Instant::now();
    let mem = memory::create(cfg.memory, host.phys_addr_bits())?;
    let mmap_us = us(t_mem.elapsed());
    log::debug!(
        "guest memory: {} bytes, RAM {:x?}, mapped in {mmap_us} µs",
        cfg.memory,
        placement::ram_spans(&mem)
    );
    clock.lap();

    let kernel = loader::load(&image, &mem)?;
    let entry = kernel.entry(cfg.entry)?;
    log::debug!("kernel: entry {entry:x?}, segments {:x?}", kernel.segments);
    drop(image);
    let modules = loader::modules::read(&cfg.modules, cfg.memory)?;
    let needs: Vec<_> = modules.iter().map(|m| m.need()).collect();
    let ram = placement::ram_spans(&mem);
    let plan = placement::plan(&kernel.segments, &ram, entry, sipi_guest, &needs)?;
    phases.load_kernel = read_us + clock.lap();

    let (mut guest, tsc_skew) = plan_tsc_skew(&host, cfg)?;
    let bsp_start = match (cfg.bsp_start, sipi_guest && tsc_skew.is_none()) {
        (BspStart::Early, true) => BspStart::Early,
        _ => BspStart::AllReady,
    };
    guest.early_start = bsp_start == BspStart::Early;
    let tables = AcpiTables::build(cfg.topology)?;
    tables.write_to(&mem)?;
    log::debug!(
        "ACPI tables for {vcpus} vCPUs written; the FACS is at {:#x}",
        tables.facs_addr()
    );
    let kernel_name = match &cfg.kernel {
        KernelSource::Path(p) => Some(p.to_string_lossy()),
        KernelSource::Embedded => None,
    };
    let handoff = boot_info::Handoff {
        cmdline: &cfg.cmdline(&guest),
        entry,
        kernel_name: kernel_name.as_deref(),
    };
    boot_info::write(&mem, &handoff, &plan, &modules)?;
    drop(modules);
    regs::write_boot_structures(&mem, entry, &plan.layout)?;
    // QEMU boots multiboot kernels through its BIOS: leave them what the BIOS leaves.
    if let Entry::Multiboot(_) = entry {
        bios_state::leave(&vm, &mem)?;
    }
    phases.acpi = clock.lap();
    Ok(CreatedVm {
        host,
        vm,
        mem,
        entry,
        layout: plan.layout,
        sipi_guest,
        guest,
        tsc_skew,
        mmap_us,
        facs_addr: tables.facs_addr(),
        bsp_start,
    })
}

/// KVM_CREATE_VM with the TSS address, the in-kernel irqchip, the PIT if `with_pit`, the
/// interrupt routing the MADT describes, and the x2APIC API when the topology needs it.
///
/// sipi's own guest never uses the PIT (it times with the TSC and the local APIC), so it gets
/// none: KVM's PIT costs a kernel thread at creation and, at the VM's destruction, an SRCU
/// grace period (unregistering its reinjection notifiers right after another grace period,
/// about 15 ms on this project's hosts: docs/benchmarks.md). Every other kernel gets it.
fn create_vm(host: &KvmHost, cfg: &VmConfig, with_pit: bool) -> Result<VmFd, VmError> {
    let vm = host
        .kvm
        .create_vm()
        .map_err(|e| VmError::VmIoctl("create the VM", e))?;
    vm.set_tss_address(KVM_TSS_ADDR as usize)
        .map_err(|e| VmError::VmIoctl("set the TSS address", e))?;
    vm.create_irq_chip()
        .map_err(|e| VmError::VmIoctl("create the in-kernel irqchip", e))?;
    if with_pit {
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        vm.create_pit2(pit)
            .map_err(|e| VmError::VmIoctl("create the in-kernel PIT", e))?;
    }
    // IRQ 0 on IOAPIC pin 2, as the MADT says.
    irq_routing::install(&vm)?;
    if cfg.topology.x2apic() {
        let mut cap = kvm_enable_cap {
            cap: KVM_CAP_X2APIC_API,
            ..Default::default()
        };
        cap.args[0] =
            u64::from(KVM_X2APIC_API_USE_32BIT_IDS | KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK);
        vm.enable_cap(&cap)
            .map_err(|e| VmError::VmIoctl("enable the x2APIC API", e))?;
    }
    Ok(vm)
}

/// Decides how `--test-skew-tsc` is carried out on this KVM: when KVM keeps a VMM's TSC
/// writes (probed on a throwaway VM of the same KVM), the vCPU's thread writes IA32_TSC and the
/// skew is returned; when it does not (kvm_pvm: guests read the host's TSC, every offset stays
/// 0), the guest adds the skew to that CPU's readings in its TSC check (`sipi.test_tsc_skew`
/// in the returned options), with a warning unless quiet.
fn plan_tsc_skew(
    host: &KvmHost,
    cfg: &VmConfig,
) -> Result<(GuestOptions, Option<TscSkew>), VmError> {
    let mut guest = cfg.guest;
    let Some(skew) = cfg.hooks.tsc_skew else {
        return Ok((guest, None));
    };
    if tsc::kvm_keeps_tsc_writes(&host.kvm)? {
        return Ok((guest, Some(skew)));
    }
    if !cfg.quiet {
        log::warn!(
            "this KVM ignores TSC writes (kvm_pvm: guests read the host's TSC), so the guest adds the --test-skew-tsc skew to vCPU {}'s readings in its TSC check instead",
            skew.vcpu
        );
    }
    guest.test_tsc_skew = Some(TestTscSkew {
        apic_id: cfg.topology.apic_id(skew.vcpu),
        cycles: skew.cycles,
    });
    Ok((guest, None))
}
