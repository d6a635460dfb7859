//! One boot, end to end: KVM, VM, memory, kernel, ACPI, vCPU threads, event loop, teardown,
//! and the outcome with its report.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use firmware::report::decode::Report;
use firmware::report::MAX_CPUS;
use kvm_bindings::{kvm_enable_cap, kvm_pit_config, KVM_CAP_X2APIC_API, KVM_PIT_SPEAKER_DUMMY};

use crate::acpi::{AcpiError, AcpiTables};
use crate::boot_info::{self, BootInfoError};
use crate::cli::EntryMode;
use crate::devices::{DeviceConfig, Devices};
use crate::event_loop::{self, EventLoopError, ShutdownSignals};
use crate::exit::{self, Ending, Status};
use crate::fds;
use crate::kvm::{KvmError, KvmHost};
use crate::loader::{self, LoaderError};
use crate::memory::{self, MemoryError};
use crate::regs::{self, RegsError};
use crate::report::{self, JsonReport, VmmPhasesUs};
use crate::vcpu::{TscSkew, VcpuError, VmShared};
use crate::vcpu_set::VcpuSet;

/// Where KVM puts the three-page TSS it needs for real-mode emulation on Intel (below the
/// IOAPIC, inside the MMIO hole; the address Firecracker and QEMU use).
pub(crate) const KVM_TSS_ADDRESS: usize = 0xFFFB_D000;
/// KVM_X2APIC_API_USE_32BIT_IDS (Documentation/virt/kvm/api.rst, 7.18).
const KVM_X2APIC_API_USE_32BIT_IDS: u64 = 1 << 0;
/// KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK.
const KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK: u64 = 1 << 1;
/// File descriptors beyond one per vCPU the process may hold during a boot (stdio, KVM, the VM,
/// event fds, signalfd, timerfd, console and JSON files).
const FD_HEADROOM: usize = 64;
/// The largest vCPU count that xAPIC IDs can address (0xFF is the broadcast ID).
pub const MAX_XAPIC_VCPUS: u32 = 255;

/// The kernel to boot.
#[derive(Debug, Clone)]
pub enum KernelSource {
    /// The guest built into this binary.
    Embedded,
    /// A file.
    Path(PathBuf),
}

/// Everything one boot needs.
pub struct BootConfig {
    /// vCPUs.
    pub vcpus: u32,
    /// Guest memory in bytes.
    pub memory: u64,
    /// The kernel.
    pub kernel: KernelSource,
    /// The whole kernel command line.
    pub cmdline: String,
    /// Wall-clock limit.
    pub timeout: Option<Duration>,
    /// BSP entry mode.
    pub entry: EntryMode,
    /// The KVM device.
    pub kvm_device: PathBuf,
    /// Where guest console output goes.
    pub console: Box<dyn std::io::Write + Send>,
    /// Suppress warnings about unknown device accesses.
    pub quiet: bool,
    /// Test only: one vCPU's TSC to skew (`--test-skew-tsc`).
    pub tsc_skew: Option<TscSkew>,
}

/// Why the VM could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// KVM is unusable.
    #[error(transparent)]
    Kvm(#[from] KvmError),
    /// More vCPUs than KVM allows.
    #[error("--vcpus {requested} is above KVM's maximum of {max}")]
    TooManyVcpus { requested: u32, max: u32 },
    /// x2APIC API needed but missing.
    #[error("{0} vCPUs need KVM_CAP_X2APIC_API, which this KVM lacks")]
    NoX2ApicApi(u32),
    /// A VM-level ioctl failed.
    #[error("cannot {0}")]
    VmIoctl(&'static str, #[source] kvm_ioctls::Error),
    /// Memory setup failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The kernel is unusable.
    #[error(transparent)]
    Loader(#[from] LoaderError),
    /// Boot information could not be written.
    #[error(transparent)]
    BootInfo(#[from] BootInfoError),
    /// ACPI tables could not be built.
    #[error(transparent)]
    Acpi(#[from] AcpiError),
    /// Boot structures could not be written.
    #[error(transparent)]
    Regs(#[from] RegsError),
    /// A vCPU could not be set up.
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    /// The event loop failed.
    #[error(transparent)]
    EventLoop(#[from] EventLoopError),
    /// The memory registration thread panicked.
    #[error("the guest memory registration thread failed")]
    MemoryThread,
    /// The fd table could not be grown.
    #[error(transparent)]
    Fds(#[from] crate::fds::FdError),
    /// The interrupt routing could not be installed.
    #[error(transparent)]
    IrqRouting(#[from] crate::irq_routing::IrqRoutingError),
    /// An event fd could not be created.
    #[error("cannot create the VM's exit event")]
    ExitEvent(#[source] std::io::Error),
}

impl VmError {
    /// The exit status this error maps to.
    pub fn status(&self) -> Status {
        match self {
            Self::TooManyVcpus { .. } | Self::Loader(_) | Self::BootInfo(_) => Status::Usage,
            Self::Memory(
                MemoryError::MoreThanHost { .. } | MemoryError::BeyondAddressWidth { .. },
            ) => Status::Usage,
            _ => Status::Host,
        }
    }
}

/// The result of a boot that ran.
pub struct BootResult {
    /// The exit status.
    pub status: Status,
    /// The one-line error, without the "error: " prefix.
    pub error: Option<String>,
    /// The JSON report.
    pub json: JsonReport,
}

fn us(d: Duration) -> u64 {
    d.as_micros().try_into().unwrap_or(u64::MAX)
}

/// Boots one VM and waits for it to end.
pub fn boot(cfg: BootConfig) -> Result<BootResult, VmError> {
    let t0 = Instant::now();
    let mut phases = VmmPhasesUs::default();
    let mut mark = {
        let mut last = t0;
        move || {
            let now = Instant::now();
            let d = us(now - last);
            last = now;
            d
        }
    };

    let host = KvmHost::open(&cfg.kvm_device)?;
    let max = host.max_vcpus.min(MAX_CPUS);
    if cfg.vcpus > max {
        return Err(VmError::TooManyVcpus {
            requested: cfg.vcpus,
            max,
        });
    }
    if cfg.vcpus > MAX_XAPIC_VCPUS && !host.x2apic_api {
        return Err(VmError::NoX2ApicApi(cfg.vcpus));
    }
    phases.open_kvm = mark();

    let vm = host
        .kvm
        .create_vm()
        .map_err(|e| VmError::VmIoctl("create the VM", e))?;
    vm.set_tss_address(KVM_TSS_ADDRESS)
        .map_err(|e| VmError::VmIoctl("set the TSS address", e))?;
    vm.create_irq_chip()
        .map_err(|e| VmError::VmIoctl("create the in-kernel irqchip", e))?;
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit)
        .map_err(|e| VmError::VmIoctl("create the in-kernel PIT", e))?;
    // The PIT on IOAPIC pin 2, as the MADT says.
    crate::irq_routing::install(&vm)?;
    if cfg.vcpus > MAX_XAPIC_VCPUS {
        let mut cap = kvm_enable_cap {
            cap: KVM_CAP_X2APIC_API,
            ..Default::default()
        };
        cap.args[0] = KVM_X2APIC_API_USE_32BIT_IDS | KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK;
        vm.enable_cap(&cap)
            .map_err(|e| VmError::VmIoctl("enable the x2APIC API", e))?;
    }
    phases.create_vm = mark();

    let t_mem = Instant::now();
    let mem = memory::create(cfg.memory, host.phys_addr_bits())?;
    let mmap_us = us(t_mem.elapsed());
    mark();

    let image = match &cfg.kernel {
        KernelSource::Embedded => std::borrow::Cow::Borrowed(crate::EMBEDDED_GUEST),
        KernelSource::Path(p) => std::borrow::Cow::Owned(loader::read_image(p, cfg.memory)?),
    };
    let kernel = loader::load(&image, &mem)?;
    let entry = kernel.entry(cfg.entry)?;
    // sipi's own guest must report before it exits; another kernel has no report to send.
    let sipi_guest = *image == *crate::EMBEDDED_GUEST;
    drop(image);
    phases.load_kernel = mark();

    let acpi = AcpiTables::build(cfg.vcpus)?;
    acpi.write_to(&mem)?;
    let kernel_name = match &cfg.kernel {
        KernelSource::Path(p) => Some(p.to_string_lossy()),
        KernelSource::Embedded => None,
    };
    boot_info::write(&mem, &cfg.cmdline, entry, kernel_name.as_deref())?;
    regs::write_boot_structures(&mem, entry)?;
    phases.acpi = mark();

    let signals = Arc::new(ShutdownSignals::block()?);
    let device_config = DeviceConfig {
        vcpus: cfg.vcpus,
        memory: cfg.memory,
        quiet: cfg.quiet,
    };
    let shared = Arc::new(
        VmShared::new(Devices::new(cfg.console, &device_config).with_memory(mem.clone()))
            .map_err(VmError::ExitEvent)?
            .with_tsc_skew(cfg.tsc_skew),
    );
    let cpuid = Arc::new(host.supported_cpuid.clone());
    // One fd per vCPU (and its kvm_run mapping) is about to be created while threads exist.
    fds::reserve(&vm, cfg.vcpus as usize + FD_HEADROOM)?;
    // Registering guest RAM with KVM costs a few ms here whatever its size, under a different
    // KVM lock than vCPU creation: do both at once. Dropping the map deletes the slots, so it
    // lives until the vCPU threads are joined.
    let (vcpus, registered) = std::thread::scope(|s| {
        let registering = s.spawn(|| {
            let t = Instant::now();
            (memory::register(&vm, &host, &mem), us(t.elapsed()))
        });
        let vcpus = VcpuSet::spawn(&vm, cfg.vcpus, entry, &cpuid, &shared);
        (vcpus, registering.join())
    });
    let _memory_map = match registered {
        Ok((Ok(map), register_us)) => {
            phases.memory = mmap_us + register_us;
            map
        }
        Ok((Err(e), _)) => {
            vcpus.abort();
            return Err(e.into());
        }
        Err(_) => {
            vcpus.abort();
            return Err(VmError::MemoryThread);
        }
    };
    let vcpus = vcpus.wait_configured()?;
    phases.create_vcpus = mark();
    let released = Instant::now();
    vcpus.release();

    let wake = event_loop::wait(&shared.exit_evt, cfg.timeout, &signals);
    let t_stop = Instant::now();
    vcpus.stop();
    shared.devices.flush();
    phases.first_run = shared
        .first_run
        .get()
        .map_or(0, |t| us(t.saturating_duration_since(released)));
    let doorbell = shared.devices.report.first();
    phases.report = match (shared.first_run.get(), doorbell) {
        (Some(run), Some(d)) => Some(us(d.at.saturating_duration_since(*run))),
        _ => None,
    };
    phases.exit = doorbell.map(|d| us(t_stop.saturating_duration_since(d.at)));
    phases.teardown = us(t_stop.elapsed());
    phases.total = us(t0.elapsed());
    let wake = wake?;

    let outcome = shared.outcome.lock().ok().and_then(|o| o.clone());
    let tsc_khz = shared.tsc_khz.load(Ordering::Relaxed);
    let mut json = JsonReport {
        status: "",
        exit_code: 0,
        error: None,
        vcpus: cfg.vcpus,
        online: 0,
        tsc_khz,
        vmm_phases_us: phases,
        guest_status: None,
        exit_via: None,
        reached: None,
        boot: None,
        stats: None,
    };
    let (buf, read_error) = match doorbell.map(|d| report::read(&mem, d.addr)) {
        Some(Ok(buf)) => (Some(buf), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    // What the guest was asked to do, read from its command line as the guest reads it.
    let requested = firmware::cmdline::GuestOptions::parse(&cfg.cmdline).ok();
    let decoded = match (&buf, read_error) {
        (Some(buf), _) => Some(report::decode_for(buf, cfg.vcpus, requested.as_ref())),
        (None, Some(e)) => Some(Err(e)),
        (None, None) => None,
    };
    let verdict = exit::verdict(&Ending {
        wake,
        outcome: outcome.as_ref(),
        report: decoded.as_ref(),
        timeout: cfg.timeout,
        extra_rings: shared.devices.report.extra_rings(),
        sipi_guest,
    });
    json.guest_status = verdict.guest_status;
    json.exit_via = verdict.exit_via;
    if let Some(Ok(Report::Boot(b))) = &decoded {
        let stats = crate::phases::bringup_stats(b);
        json.online = report::online(b);
        json.boot = Some(report::boot_json(b, &stats, tsc_khz));
        json.stats = Some(stats);
    }
    let mut error = verdict.error;
    if buf.is_none() {
        // No report: say what the guest had reached, if it published its live state.
        json.reached = crate::live::read(&mem, cfg.vcpus).ok();
        json.online = json.reached.as_ref().map_or(0, |r| r.online);
        if let (Some(r), Some(e)) = (&json.reached, error.as_mut()) {
            e.push_str("; ");
            e.push_str(&r.summary());
        }
    }
    json.status = verdict.status.name();
    json.exit_code = verdict.status.code();
    json.error = error.clone();
    Ok(BootResult {
        status: verdict.status,
        error,
        json,
    })
}
