//! KVM's counters of one boot, snapshotted where the VMM controls the moment and off the
//! guest's timed windows: each vCPU's thread opens its vCPU's statistics file before its setup
//! and seccomp filter, reads it once set up (before the gate that releases every vCPU) and
//! again when it leaves its run loop; the VM's file is read by the VM's thread before the
//! release and after the vCPU threads are joined. At the guest's first report doorbell (its
//! timed work is over) the thread that handles the ring reads the VM's and every vCPU's
//! counters: reading another vCPU's file does not stop it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use kvm_ioctls::{VcpuFd, VmFd};

use crate::config::VmConfig;
use crate::kvm_stats::{StatsError, StatsFile};
use crate::report::kvm_stats::{FileSnapshots, KvmStats, Snapshots};

/// The reason `--test-no-kvm-stats` gives.
const NO_STATS_HOOK: &str =
    "--test-no-kvm-stats: the VMM opened no statistics file, as on a host without them";

/// Where a snapshot is taken.
#[derive(Debug, Clone, Copy)]
pub(super) enum Point {
    /// Every vCPU set up, none run yet.
    Setup,
    /// The guest's first report doorbell.
    Doorbell,
    /// The VM's end.
    Exit,
}

/// One statistics file, its read buffer and its snapshots.
#[derive(Debug, Default)]
struct Slot {
    file: Option<StatsFile>,
    buf: Vec<u8>,
    snapshots: Snapshots,
}

impl Slot {
    fn take(&mut self, at: Point) -> Result<(), StatsError> {
        let Some(f) = &self.file else {
            return Ok(());
        };
        let values = f.snapshot(&mut self.buf)?;
        let s = &mut self.snapshots;
        match at {
            Point::Setup => s.setup = Some(values),
            Point::Doorbell => s.doorbell = Some(values),
            Point::Exit => s.exit = Some(values),
        }
        Ok(())
    }

    fn view(&self) -> Option<FileSnapshots<'_>> {
        self.file.as_ref().map(|f| FileSnapshots {
            layout: f.layout(),
            snapshots: &self.snapshots,
        })
    }
}

/// The counters of a boot's VM and vCPUs.
#[derive(Debug)]
pub(super) struct BootCounters {
    vm: Mutex<Slot>,
    vcpus: Vec<Mutex<Slot>>,
    /// The first thing that went wrong: the reason the report gives.
    problem: Mutex<Option<String>>,
    /// The host has no statistics: nothing is opened or read.
    unavailable: bool,
    /// No vCPU statistics files are opened (no room for their fds).
    no_vcpus: bool,
    doorbell_taken: AtomicBool,
}

fn lock(m: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl BootCounters {
    /// Opens the VM's statistics file; on a host without them (or with `--test-no-kvm-stats`),
    /// says so once on stderr unless quiet, and reads nothing for the rest of the boot.
    pub(super) fn new(vm: &VmFd, cfg: &VmConfig) -> Self {
        let vcpus = cfg.topology.vcpus();
        let opened = match cfg.hooks.no_kvm_stats {
            true => Err(NO_STATS_HOOK.to_string()),
            false => StatsFile::open(vm).map_err(|e| crate::error_line(&e)),
        };
        let (file, problem) = match opened {
            Ok(f) => (Some(f), None),
            Err(e) => (None, Some(e)),
        };
        if let (Some(p), false) = (&problem, cfg.quiet) {
            log::warn!("KVM's own counters are unavailable, so this boot reports none: {p}");
        }
        Self {
            unavailable: file.is_none(),
            no_vcpus: false,
            vm: Mutex::new(Slot {
                file,
                ..Slot::default()
            }),
            vcpus: (0..vcpus).map(|_| Mutex::new(Slot::default())).collect(),
            problem: Mutex::new(problem),
            doorbell_taken: AtomicBool::new(false),
        }
    }

    fn note(&self, what: String) {
        let mut p = self.problem.lock().unwrap_or_else(|e| e.into_inner());
        p.get_or_insert(what);
    }

    /// Opens no vCPU's statistics file, for `why`.
    pub(super) fn without_vcpus(&mut self, why: String) {
        self.no_vcpus = true;
        self.note(format!("no per-vCPU counters: {why}"));
    }

    /// On vCPU `index`'s thread, before its seccomp filter: opens its statistics file.
    pub(super) fn open_vcpu(&self, index: u32, fd: &VcpuFd) {
        let open = !self.unavailable && !self.no_vcpus;
        let Some(slot) = self.vcpus.get(index as usize).filter(|_| open) else {
            return;
        };
        match StatsFile::open(fd) {
            Ok(f) => lock(slot).file = Some(f),
            Err(e) => self.note(format!("vCPU {index}: {}", crate::error_line(&e))),
        }
    }

    /// Snapshots vCPU `index`'s counters (on its own thread, or at the doorbell).
    pub(super) fn vcpu(&self, index: u32, at: Point) {
        if let Some(slot) = self.vcpus.get(index as usize) {
            if let Err(e) = lock(slot).take(at) {
                self.note(format!("vCPU {index}: {}", crate::error_line(&e)));
            }
        }
    }

    /// Snapshots the VM's counters.
    pub(super) fn vm(&self, at: Point) {
        if let Err(e) = lock(&self.vm).take(at) {
            self.note(format!("VM: {}", crate::error_line(&e)));
        }
    }

    /// The guest rang the report doorbell: the first time, snapshots the VM and every vCPU.
    pub(super) fn doorbell(&self) {
        if self.unavailable || self.doorbell_taken.swap(true, Ordering::AcqRel) {
            return;
        }
        self.vm(Point::Doorbell);
        for i in 0..self.vcpus.len() as u32 {
            self.vcpu(i, Point::Doorbell);
        }
    }

    /// The VM ended: snapshots the VM and every vCPU, from the VM's thread, while the vCPU
    /// threads are left where they are (a vCPU thread that leaves its run loop later takes its
    /// own snapshot again, which changes nothing once the report is built).
    pub(super) fn exit(&self) {
        if self.unavailable {
            return;
        }
        self.vm(Point::Exit);
        for i in 0..self.vcpus.len() as u32 {
            self.vcpu(i, Point::Exit);
        }
    }

    /// The counters of the boot, once every snapshot is taken.
    pub(super) fn report(&self) -> KvmStats {
        let problem = self.problem.lock().map(|p| p.clone()).unwrap_or(None);
        if self.unavailable {
            return KvmStats::unavailable(problem.unwrap_or_default());
        }
        let vm = lock(&self.vm);
        let vcpus: Vec<MutexGuard<'_, Slot>> = self.vcpus.iter().map(lock).collect();
        let views: Vec<Option<FileSnapshots<'_>>> = vcpus.iter().map(|s| s.view()).collect();
        KvmStats::build(vm.view(), &views, problem)
    }
}
