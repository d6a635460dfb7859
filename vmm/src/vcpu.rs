//! vCPU threads: each creates and configures its own vCPU (CPUID, MSRs, FPU, and for the BSP
//! the entry state) in parallel with the others, waits until all exist, then runs until the VM
//! stops.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Once;
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;
use std::time::Instant;

use kvm_bindings::CpuId;
use kvm_ioctls::{VcpuExit, VcpuFd};
use seccompiler::BpfProgram;
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

use crate::cpuid::{self, CpuidParams};
use crate::devices::{DeviceEvent, Devices};
use crate::loader::Entry;
use crate::regs::{self, RegsError};
use crate::seccomp::{self, SeccompError};

/// KVM_SYSTEM_EVENT_SHUTDOWN (Documentation/virt/kvm/api.rst, KVM_EXIT_SYSTEM_EVENT).
const KVM_SYSTEM_EVENT_SHUTDOWN: u32 = 1;
/// KVM_SYSTEM_EVENT_RESET.
const KVM_SYSTEM_EVENT_RESET: u32 = 2;

/// Why a vCPU could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// KVM_CREATE_VCPU failed.
    #[error("cannot create vCPU {0}")]
    Create(u32, #[source] kvm_ioctls::Error),
    /// The CPUID could not be patched.
    #[error("cannot build the CPUID of vCPU {0}")]
    Cpuid(u32, #[source] cpuid::CpuidError),
    /// KVM_SET_CPUID2 failed.
    #[error("cannot set the CPUID of vCPU {0}")]
    SetCpuid(u32, #[source] kvm_ioctls::Error),
    /// Register setup failed.
    #[error("cannot set up the registers of vCPU {0}")]
    Regs(u32, #[source] RegsError),
    /// The thread could not be started.
    #[error("cannot start the thread of vCPU {0}")]
    Spawn(u32, #[source] std::io::Error),
    /// The vCPU threads' seccomp filter could not be built.
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// The thread could not install the seccomp filter.
    #[error("cannot confine the thread of vCPU {0}")]
    Confine(u32, #[source] SeccompError),
}

/// Test only (`--test-skew-tsc`): move one vCPU's TSC ahead of the others' before it first
/// runs, so that the guest's TSC check has something to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TscSkew {
    /// The vCPU (its index, also its APIC ID).
    pub vcpu: u32,
    /// Cycles ahead of the others.
    pub cycles: u64,
}

/// Decides how `--test-skew-tsc` is carried out on this KVM, before the boot: when KVM keeps a
/// VMM's TSC writes (probed on a throwaway VM), the vCPU's thread writes IA32_TSC and the skew is
/// returned for [`VmShared::with_tsc_skew`]; when it does not (kvm_pvm: guests read the host's
/// TSC, every offset stays 0), the guest adds the skew to that CPU's readings in its TSC check
/// (`sipi.test_tsc_skew` in `options`), with a warning unless `quiet`. A KVM device that cannot
/// be opened is left for the boot to report.
pub fn plan_tsc_skew(
    skew: Option<TscSkew>,
    kvm_device: &std::path::Path,
    options: &mut firmware::cmdline::GuestOptions,
    quiet: bool,
) -> Result<Option<TscSkew>, RegsError> {
    let Some(skew) = skew else {
        return Ok(None);
    };
    let Ok(host) = crate::kvm::KvmHost::open(kvm_device) else {
        return Ok(Some(skew));
    };
    if regs::kvm_keeps_tsc_writes(&host.kvm)? {
        return Ok(Some(skew));
    }
    if !quiet {
        eprintln!(
            "warning: this KVM ignores TSC writes (kvm_pvm: guests read the host's TSC), so the guest adds the --test-skew-tsc skew to vCPU {}'s readings in its TSC check instead",
            skew.vcpu
        );
    }
    options.test_tsc_skew = Some(firmware::cmdline::TestTscSkew {
        apic_id: skew.vcpu,
        cycles: skew.cycles,
    });
    Ok(None)
}

/// How the VM ended, as seen by the vCPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The guest ended the VM through a device: sipi's exit port, isa-debug-exit, a reset
    /// line or ACPI S5.
    Stop { vcpu: u32, event: DeviceEvent },
    /// Triple fault (KVM_EXIT_SHUTDOWN).
    TripleFault { vcpu: u32, rip: u64 },
    /// KVM could not emulate an instruction or hit an internal error.
    InternalError { vcpu: u32, suberror: u32, rip: u64 },
    /// VM entry failed.
    FailEntry { vcpu: u32, reason: u64 },
    /// The guest asked for a power-off or reset through a KVM system event.
    SystemEvent { vcpu: u32, kind: u32 },
    /// KVM_RUN failed or returned an exit sipi does not handle.
    VcpuFailed { vcpu: u32, message: String },
}

/// State shared by the vCPU threads and the main thread.
pub struct VmShared {
    /// Set once the VM must stop; every vCPU thread checks it before each KVM_RUN.
    pub stop: AtomicBool,
    /// Written when `outcome` is set, to wake the main thread's event loop.
    pub exit_evt: EventFd,
    /// The first terminal event.
    pub outcome: Mutex<Option<Outcome>>,
    /// The devices.
    pub devices: Devices,
    /// When the BSP first entered KVM_RUN.
    pub first_run: OnceLock<Instant>,
    /// TSC frequency KVM reports for the BSP (0 if unknown).
    pub tsc_khz: AtomicU32,
    /// Test only: the vCPU whose TSC to skew, see [`TscSkew`].
    pub tsc_skew: Option<TscSkew>,
}

impl VmShared {
    /// New shared state.
    pub fn new(devices: Devices) -> std::io::Result<Self> {
        Ok(Self {
            stop: AtomicBool::new(false),
            exit_evt: EventFd::new(libc::EFD_NONBLOCK)?,
            outcome: Mutex::new(None),
            devices,
            first_run: OnceLock::new(),
            tsc_khz: AtomicU32::new(0),
            tsc_skew: None,
        })
    }

    /// The same, with one vCPU's TSC skewed (test only).
    pub fn with_tsc_skew(self, tsc_skew: Option<TscSkew>) -> Self {
        Self { tsc_skew, ..self }
    }

    /// Records a terminal event (the first one wins) and stops the VM.
    pub fn finish(&self, outcome: Outcome) {
        if let Ok(mut o) = self.outcome.lock() {
            if o.is_none() {
                *o = Some(outcome);
            }
        }
        self.stop.store(true, Ordering::Release);
        // If the eventfd counter is saturated the main thread is already awake.
        let _ = self.exit_evt.write(1);
    }
}

/// What one vCPU thread needs.
pub struct VcpuSpec {
    /// vCPU index, also its APIC ID.
    pub index: u32,
    /// Total vCPUs.
    pub count: u32,
    /// The BSP's entry (None for APs).
    pub entry: Option<Entry>,
    /// The vCPU, created by the main thread (KVM_CREATE_VCPU serialises on the VM's lock, so
    /// creating in parallel only adds contention); everything else is configured here.
    pub vcpu: VcpuFd,
    /// KVM's supported CPUID, patched per vCPU.
    pub cpuid: Arc<CpuId>,
    /// Shared VM state.
    pub shared: Arc<VmShared>,
    /// Every vCPU thread and the main thread meet here once all vCPUs are configured.
    pub configured: Arc<Barrier>,
    /// ... and here when the main thread lets them run.
    pub start: Arc<Barrier>,
    /// Setup errors, collected for the main thread.
    pub errors: Arc<Mutex<Vec<VcpuError>>>,
    /// The seccomp filter the thread installs once its vCPU is configured (None:
    /// `SIPI_NO_SECCOMP=1`).
    pub seccomp: Option<&'static BpfProgram>,
}

/// Configures the vCPU.
fn setup(spec: &VcpuSpec) -> Result<(), VcpuError> {
    let i = spec.index;
    let vcpu = &spec.vcpu;
    // Read once, from the BSP's vCPU, before any vCPU thread started (vcpu_set.rs).
    let tsc_khz = Some(spec.shared.tsc_khz.load(Ordering::Relaxed)).filter(|k| *k > 0);
    let mut cpuid = (*spec.cpuid).clone();
    cpuid::patch(
        &mut cpuid,
        &CpuidParams {
            apic_id: i,
            vcpu_count: spec.count,
            tsc_khz,
        },
    )
    .map_err(|e| VcpuError::Cpuid(i, e))?;
    vcpu.set_cpuid2(&cpuid)
        .map_err(|e| VcpuError::SetCpuid(i, e))?;
    let start = regs::StartState {
        bsp: spec.entry.is_some(),
        x2apic: spec.count > crate::vm::MAX_XAPIC_VCPUS,
    };
    regs::setup_common(vcpu, start).map_err(|e| VcpuError::Regs(i, e))?;
    if let Some(entry) = spec.entry {
        regs::setup_bsp(vcpu, entry).map_err(|e| VcpuError::Regs(i, e))?;
    }
    Ok(())
}

/// The body of a vCPU thread. Returns the vCPU, so that the caller closes it (and unmaps its
/// kvm_run area) once every vCPU thread has exited: an munmap while hundreds of threads share
/// the address space makes the kernel interrupt every CPU running one of them to flush its
/// TLB, one munmap at a time, where the same munmaps from a lone thread need no such flush
/// (with the cached stacks of vcpu_set.rs, this took the teardown phase at 256 vCPUs from
/// 16.5 to 13.0 ms here).
pub fn thread_main(mut spec: VcpuSpec) -> VcpuFd {
    // The seccomp filter goes on as soon as the vCPU needs no more setup ioctls, before the
    // barrier: the kernel's work to install it then overlaps the creation of the other vCPUs
    // instead of delaying the guest's boot (see [`seccomp`]). A vCPU with a TSC write still
    // to make after the barrier installs it after that write.
    let ready = setup(&spec).and_then(|()| match tsc_skew(&spec) {
        Some(_) => Ok(()),
        None => confine(&spec).map_err(|e| VcpuError::Confine(spec.index, e)),
    });
    let ok = match ready {
        Ok(()) => true,
        Err(e) => {
            if let Ok(mut errors) = spec.errors.lock() {
                errors.push(e);
            }
            false
        }
    };
    spec.configured.wait();
    // After the barrier every vCPU exists: KVM gives a vCPU created after a TSC write that
    // write's TSC offset, so the skew is written only now, before any vCPU runs.
    let ok = ok && skew_tsc(&spec);
    spec.start.wait();
    if ok && !spec.shared.stop.load(Ordering::Acquire) {
        run(
            &mut spec.vcpu,
            spec.index,
            spec.entry.is_some(),
            &spec.shared,
        );
    }
    spec.vcpu
}

/// The `--test-skew-tsc` of this vCPU, if it has one.
fn tsc_skew(spec: &VcpuSpec) -> Option<TscSkew> {
    spec.shared.tsc_skew.filter(|s| s.vcpu == spec.index)
}

/// Applies `--test-skew-tsc` if it names this vCPU, then installs the seccomp filter, which
/// setup left out for this write; on failure ends the VM and returns false.
fn skew_tsc(spec: &VcpuSpec) -> bool {
    let Some(skew) = tsc_skew(spec) else {
        return true;
    };
    let result = regs::skew_tsc(&spec.vcpu, skew.cycles)
        .map_err(|e| crate::error_line(&e))
        .and_then(|()| confine(spec).map_err(|e| crate::error_line(&e)));
    match result {
        Ok(()) => true,
        Err(message) => {
            spec.shared.finish(Outcome::VcpuFailed {
                vcpu: spec.index,
                message,
            });
            false
        }
    }
}

/// Installs the seccomp filter on this thread (none with `SIPI_NO_SECCOMP=1`): from here on
/// it may only wait at the barriers and run its vCPU. The kick signal's handler is registered
/// first, since the filter forbids rt_sigaction.
fn confine(spec: &VcpuSpec) -> Result<(), SeccompError> {
    kick_signal();
    spec.seccomp.map_or(Ok(()), seccomp::install)
}

thread_local! {
    /// The `immediate_exit` byte of the kvm_run area of the vCPU this thread is running, or
    /// null. The kick handler sets it so that a kick arriving just before KVM_RUN still makes
    /// KVM_RUN return at once (the race Documentation/virt/kvm/api.rst describes for
    /// `immediate_exit`).
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
}

/// The kick signal's handler: makes the interrupted or next KVM_RUN return with EINTR.
extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let byte = IMMEDIATE_EXIT.with(Cell::get);
    if !byte.is_null() {
        // SAFETY: the pointer was set by `run` on this thread to the live kvm_run mapping of
        // the vCPU it is running, and is cleared before that vCPU can be dropped.
        unsafe { byte.write_volatile(1) };
    }
}

/// The real-time signal that kicks vCPU threads out of KVM_RUN (registered once).
fn kick_signal() -> libc::c_int {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // Registering a valid real-time signal does not fail; if it did, the first kick would
        // end the process, which every boot test would show at once.
        let _ = register_signal_handler(SIGRTMIN(), kick_handler);
    });
    SIGRTMIN()
}

/// How long a vCPU thread may take to leave KVM_RUN after a kick before it is kicked again.
const REKICK_AFTER: Duration = Duration::from_millis(1);

/// Stops every vCPU thread (the caller has set `stop`), joins them all and returns what each
/// returned (a panicked thread's result is missing).
pub fn stop_threads<T>(threads: Vec<JoinHandle<T>>) -> Vec<T> {
    let kick = kick_signal();
    for t in &threads {
        let _ = t.kill(kick);
    }
    let mut results = Vec::with_capacity(threads.len());
    for t in threads {
        // A kick cannot be lost (immediate_exit), but keep kicking a thread that is slow to go
        // rather than risk waiting forever.
        let mut waited = Duration::ZERO;
        while !t.is_finished() {
            std::thread::sleep(Duration::from_micros(50));
            waited += Duration::from_micros(50);
            if waited >= REKICK_AFTER {
                let _ = t.kill(kick);
                waited = Duration::ZERO;
            }
        }
        results.extend(t.join().ok());
    }
    results
}

/// Runs the vCPU until the VM stops.
fn run(vcpu: &mut VcpuFd, i: u32, is_bsp: bool, shared: &VmShared) {
    kick_signal();
    let immediate_exit: *mut u8 = &mut vcpu.get_kvm_run().immediate_exit;
    IMMEDIATE_EXIT.with(|c| c.set(immediate_exit));
    if is_bsp {
        let _ = shared.first_run.set(Instant::now());
    }
    while !shared.stop.load(Ordering::Acquire) {
        let outcome = match vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) => shared
                .devices
                .pio_out(i, port, data)
                .map(|event| Outcome::Stop { vcpu: i, event }),
            Ok(VcpuExit::IoIn(port, data)) => {
                shared.devices.pio_in(port, data);
                None
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                shared.devices.mmio_read(addr, data);
                None
            }
            Ok(VcpuExit::MmioWrite(addr, _)) => {
                shared.devices.mmio_write(addr);
                None
            }
            Ok(VcpuExit::Shutdown) => Some(Outcome::TripleFault {
                vcpu: i,
                rip: rip(vcpu),
            }),
            Ok(VcpuExit::InternalError) => {
                // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so `internal` is the
                // union member KVM filled in.
                let suberror = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.internal.suberror };
                Some(Outcome::InternalError {
                    vcpu: i,
                    suberror,
                    rip: rip(vcpu),
                })
            }
            Ok(VcpuExit::FailEntry(reason, _)) => Some(Outcome::FailEntry { vcpu: i, reason }),
            Ok(VcpuExit::SystemEvent(kind, _))
                if kind == KVM_SYSTEM_EVENT_SHUTDOWN || kind == KVM_SYSTEM_EVENT_RESET =>
            {
                Some(Outcome::SystemEvent { vcpu: i, kind })
            }
            Ok(VcpuExit::Hlt) => None, // Only without an in-kernel LAPIC; sipi always has one.
            Ok(VcpuExit::Intr) => None,
            Ok(other) => Some(Outcome::VcpuFailed {
                vcpu: i,
                message: format!("unexpected VM exit {other:?}"),
            }),
            // An AP waiting for SIPI returns EAGAIN when woken; EINTR is a kick from the VMM.
            Err(e) if e.errno() == libc::EAGAIN || e.errno() == libc::EINTR => None,
            Err(e) => Some(Outcome::VcpuFailed {
                vcpu: i,
                message: format!("KVM_RUN failed: {e}"),
            }),
        };
        if let Some(o) = outcome {
            shared.finish(o);
        }
    }
    IMMEDIATE_EXIT.with(|c| c.set(std::ptr::null_mut()));
}

/// The vCPU's RIP, or 0 if it cannot be read.
fn rip(vcpu: &VcpuFd) -> u64 {
    vcpu.get_regs().map(|r| r.rip).unwrap_or(0)
}
