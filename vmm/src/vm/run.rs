//! Step 2 of a boot: the devices, the vCPU threads (created while guest RAM is registered with
//! KVM), the wait for the guest to end the VM, `--timeout` or a signal, and the teardown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use firmware::cmdline::GuestOptions;
use vm_memory::GuestMemoryMmap;

use super::clock::{us, PhaseClock};
use super::counters::{BootCounters, Point};
use super::create::CreatedVm;
use super::remains::Remains;
use super::shared::VmShared;
use super::suspend::{until, Sleeper};
use super::VmError;
use crate::config::{BspStart, VmConfig};
use crate::devices::timeline::{Timeline, TimelineSource};
use crate::devices::{DeviceConfig, Devices, Doorbell};
use crate::event_loop::{ShutdownSignals, Wake};
use crate::fds;
use crate::memory;
use crate::report::kvm_stats::KvmStats;
use crate::report::timeline::{BootTimeline, TimelineEntry};
use crate::report::{BspStartReport, VmmPhasesUs};
use crate::vcpu::{BootVcpus, Outcome, VcpuSet};

/// File descriptors per vCPU: the vCPU's and its statistics file's.
const FDS_PER_VCPU: usize = 2;

/// File descriptors beyond those of the vCPUs the process may hold during a boot (stdio, KVM, the VM,
/// event fds, signalfd, timerfd, console and JSON files).
const FD_HEADROOM: usize = 64;

/// How a VM that ran ended.
pub(super) struct Ran {
    /// What woke the VM's thread.
    pub wake: Wake,
    /// The first terminal event the vCPUs saw.
    pub outcome: Option<Outcome>,
    /// The first ring of the report doorbell.
    pub doorbell: Option<Doorbell>,
    /// Doorbell rings after the first.
    pub extra_rings: u32,
    /// The TSC frequency KVM gave the vCPUs (0: unknown).
    pub tsc_khz: u32,
    /// Guest RAM, to read the report from.
    pub mem: GuestMemoryMmap,
    /// The kernel is sipi's own guest, which must report before it exits.
    pub sipi_guest: bool,
    /// The options the guest was given.
    pub guest: GuestOptions,
    /// KVM's counters of the VM and its vCPUs.
    pub kvm_stats: KvmStats,
    /// The guest's boot timer and debug-port events.
    pub timeline: BootTimeline,
    /// Each vCPU's exits to the VMM before the report doorbell.
    pub window_exits: Vec<u32>,
    /// ACPI S3 suspends the guest made.
    pub suspends: u32,
    /// When the BSP started and what overlapped.
    pub bsp_start: BspStartReport,
    /// The vCPU threads, the memory slots and the VM, torn down when dropped.
    pub remains: Remains,
}

/// Runs the VM `created` until it ends, timing its phases into `phases`.
pub(super) fn run(
    created: CreatedVm,
    cfg: &mut VmConfig,
    clock: &mut PhaseClock,
    phases: &mut VmmPhasesUs,
) -> Result<Ran, VmError> {
    let CreatedVm {
        host,
        vm,
        mem,
        entry,
        layout,
        sipi_guest,
        guest,
        tsc_skew,
        mmap_us,
        facs_addr,
        bsp_start,
    } = created;
    // Shared with the devices, whose pc-testdev sets interrupt lines from the vCPU threads.
    let vm = Arc::new(vm);
    let signals = Arc::new(ShutdownSignals::block()?);
    let device_config = DeviceConfig {
        vcpus: cfg.topology.vcpus(),
        memory: cfg.memory,
        quiet: cfg.quiet,
    };
    let console = std::mem::replace(&mut cfg.console, Box::new(std::io::sink()));
    let mut counters = BootCounters::new(&vm, cfg);
    // One fd per vCPU (and its kvm_run mapping), and one for its statistics file, are about to
    // be created while threads exist. When the open-file limit has no room for the statistics
    // files, the boot goes on without the per-vCPU counters.
    let vcpu_fds = cfg.topology.vcpus() as usize;
    if let Err(e) = fds::reserve(&vm, vcpu_fds * FDS_PER_VCPU + FD_HEADROOM) {
        fds::reserve(&vm, vcpu_fds + FD_HEADROOM)?;
        counters.without_vcpus(crate::error_line(&e));
    }
    let shared = Arc::new(
        VmShared::new(
            Devices::new(console, &device_config)
                .with_memory(mem.clone())
                .with_irq_lines(vm.clone()),
            counters,
            cfg.topology,
        )
        .map_err(VmError::ExitEvent)?,
    );
    shared
        .devices
        .notify_rtc_alarm_changes(shared.exit_evt.try_clone().map_err(VmError::ExitEvent)?);
    // Built here, on the VM's thread, once per process; shared by every vCPU thread.
    let seccomp = match cfg.seccomp {
        true => Some(crate::seccomp::vcpu_filter().map_err(crate::vcpu::VcpuError::from)?),
        false => None,
    };
    let boot = BootVcpus {
        topology: cfg.topology,
        entry,
        layout,
        cpuid: host.supported_cpuid.clone(),
        tsc_khz: None,
        tsc_skew,
        seccomp,
    };
    // Registering guest RAM with KVM runs under a different KVM lock than vCPU creation: do
    // both at once. Dropping the map deletes the slots, so it goes into the remains with the
    // vCPU threads. With an early start, the vCPUs created so far are released (the BSP runs)
    // as soon as the memory is registered, and the rest start as they are configured.
    let memory_ready = AtomicBool::new(false);
    // The VM's counters before any vCPU runs, then the release; returns when it was.
    let release = |set: &VcpuSet| {
        shared.counters.vm(Point::Setup);
        let at = Instant::now();
        set.release();
        at
    };
    let mut released = None;
    let (vcpus, registered) = std::thread::scope(|s| {
        let registering = s.spawn(|| {
            let t = Instant::now();
            let map = memory::register(Arc::clone(&vm), &host, &mem);
            memory_ready.store(map.is_ok(), Ordering::Release);
            (map, us(t.elapsed()))
        });
        let mut release_early = |set: &VcpuSet| {
            if bsp_start == BspStart::Early
                && released.is_none()
                && memory_ready.load(Ordering::Acquire)
            {
                released = Some(release(set));
            }
        };
        let vcpus = VcpuSet::spawn(&vm, boot, &shared, &mut release_early);
        let registered = registering.join();
        release_early(&vcpus);
        (vcpus, registered)
    });
    let memory_map = match registered {
        Ok((Ok(map), register_us)) => {
            phases.memory = mmap_us + register_us;
            map
        }
        Ok((Err(e), _)) => {
            shared.request_stop();
            vcpus.abort();
            return Err(e.into());
        }
        Err(_) => {
            shared.request_stop();
            vcpus.abort();
            return Err(VmError::MemoryThread);
        }
    };
    // Released vCPUs may be running when another fails: the VM stops before they are stopped.
    let vcpus = vcpus.wait_configured(|| shared.request_stop())?;
    let tsc_khz = vcpus.tsc_khz().unwrap_or(0);
    phases.create_vcpus = clock.lap();
    let released = released.unwrap_or_else(|| release(&vcpus));

    let deadline = cfg.timeout.map(|t| released + t);
    let sleeper = Sleeper {
        shared: &shared,
        vcpus: &vcpus,
        vm: &vm,
        mem: &mem,
        facs_addr,
        wake_after: cfg.wake_after,
        quiet: cfg.quiet,
    };
    let wake = wait(&sleeper, deadline, &signals);
    // The VM has ended: nothing more is taken from its vCPUs. They are not stopped here: a
    // vCPU thread that is not already out of its run loop (the guest's idle APs, blocked in
    // KVM_RUN) is left there, and the remains either stop and join them (`vm::boot`) or leave
    // them to the kernel at process exit (`vmm`), which ends them without a return to user
    // space.
    let t_stop = Instant::now();
    shared.request_stop();
    shared.devices.flush();
    shared.counters.exit();
    let first_run = shared.first_run();
    phases.first_run = first_run.map_or(0, |t| us(t.saturating_duration_since(released)));
    let doorbell = shared.devices.report.first();
    phases.report = match (first_run, doorbell) {
        (Some(run), Some(d)) => Some(us(d.at.saturating_duration_since(run))),
        _ => None,
    };
    phases.exit = doorbell.map(|d| us(t_stop.saturating_duration_since(d.at)));
    let ready = shared.readiness();
    let bsp_start = BspStartReport {
        mode: bsp_start.name(),
        overlap_us: match (bsp_start, first_run, ready.all_ready_at) {
            (BspStart::Early, Some(run), Some(all)) => us(all.saturating_duration_since(run)),
            _ => 0,
        },
        ready_asks: ready.asks,
        ready_queries: ready.queries,
        ready_waits: ready.waits,
        ready_wait_us: us(ready.waited),
    };
    phases.teardown = us(t_stop.elapsed());
    phases.total = clock.total();
    Ok(Ran {
        wake: wake?,
        outcome: shared.outcome(),
        doorbell,
        extra_rings: shared.devices.report.extra_rings(),
        tsc_khz,
        mem,
        sipi_guest,
        guest,
        kvm_stats: shared.counters.report(),
        timeline: timeline(shared.devices.timeline(), clock),
        window_exits: shared.window.counts(),
        suspends: shared.suspends(),
        bsp_start,
        remains: Remains::new(vcpus, memory_map),
    })
}

/// The boot's timeline as the report has it, timed from the start of `clock`.
fn timeline(t: &Timeline, clock: &PhaseClock) -> BootTimeline {
    let events = t
        .events()
        .iter()
        .map(|e| {
            let t_us = clock.since_start(e.at);
            match e.source {
                TimelineSource::BootTimer => {
                    TimelineEntry::boot_timer(t_us, e.cpu_us, e.vcpu, e.code)
                }
                TimelineSource::DebugPort => TimelineEntry::debug_port(t_us, e.vcpu, e.code),
            }
        })
        .collect();
    BootTimeline {
        events,
        dropped: t.dropped(),
    }
}

/// Waits until the VM ends, `deadline` passes or a shutdown signal arrives, raising the RTC's
/// alarm interrupt when the guest enabled it and carrying out each ACPI S3 suspend and resume
/// the guest asks for on the way.
fn wait(
    sleeper: &Sleeper<'_>,
    deadline: Option<Instant>,
    signals: &Arc<ShutdownSignals>,
) -> Result<Wake, VmError> {
    loop {
        let alarm = sleeper.shared.devices.rtc_next_alarm();
        let next = match (deadline, alarm) {
            (Some(d), Some(a)) => Some(d.min(a)),
            (d, a) => d.or(a),
        };
        match until(sleeper.shared, next, signals)? {
            Wake::Timeout if deadline.is_some_and(|d| Instant::now() >= d) => {
                return Ok(Wake::Timeout)
            }
            // The RTC alarm's time.
            Wake::Timeout => {
                if alarm.is_some_and(|a| Instant::now() >= a) {
                    sleeper.rtc_alarm()?;
                }
            }
            Wake::VmExit if sleeper.shared.outcome().is_none() => {
                if sleeper.shared.suspending() {
                    if let Some(end) = sleeper.sleep(deadline, signals)? {
                        return Ok(end);
                    }
                }
                // Otherwise the guest reprogrammed the RTC alarm: look again.
            }
            end => return Ok(end),
        }
    }
}
