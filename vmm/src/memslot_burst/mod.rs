//! `vmm memslot-burst`: reproduces, on the user's own kernel, a burst of small memory-region
//! changes applied while vCPUs run guest code, one ioctl per change (`--naive`) or through
//! memory-map transactions, and reports ioctl counts and latencies.
//!
//! # What is measured
//!
//! - The VM: 1 MiB of RAM (one slot, set up through the memory map) holding a 16-bit loop that
//!   every vCPU runs: write a counter, read it back, check a pattern ([`guest`]). A wrong value
//!   or an access that finds no slot stops the run with a guest failure.
//! - The burst: `changes` changes, each one add or one remove of a 4 KiB region: QEMU's pattern
//!   of a small region added then deleted again, 16 regions in flight ([`workload`]).
//! - Naive: one KVM_SET_USER_MEMORY_REGION per change, `changes` ioctls ([`naive`]).
//! - Batched: the changes go through transactions of `changes_per_transaction` changes, by
//!   default one transaction for the whole burst ([`batched`]). The burst models a phase in
//!   which no vCPU looks at the regions being changed (QEMU's ACPI storm: regions that exist
//!   only between two guest accesses), which is exactly what a transaction is for; committing
//!   more often only publishes intermediate states nobody reads, and the benchmark shows what
//!   that costs. Each commit issues only the net diff: a region added and removed in one
//!   transaction costs nothing, and the 16 live regions at the end (contiguous in guest and
//!   host addresses) become one slot (two when they straddle the end of the window).
//! - `wall_us` runs from the first change to the end of the last ioctl; `ioctl_us` times each
//!   ioctl. After the burst the VMM waits until every vCPU has run its loop again, then stops
//!   them and reports what they saw.

mod batched;
mod burst_vm;
mod error;
pub mod guest;
mod naive;
mod report;
mod vcpus;
pub mod workload;

use std::path::PathBuf;
use std::time::Instant;

pub use burst_vm::{BurstMap, BurstVm, PROGRESS_TIMEOUT};
pub use error::BurstError;
pub use naive::NaiveSlots;
pub use report::{percentile, render, BurstReport, LatencyUs};
pub use vcpus::GuestFailure;

use crate::status::Status;
use workload::BURST_WINDOW_BASE;

/// How the changes reach KVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One ioctl per change.
    Naive,
    /// Through memory-map transactions.
    Batched,
}

impl Mode {
    /// The name in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Naive => "naive",
            Self::Batched => "batched",
        }
    }
}

/// One burst.
#[derive(Debug, Clone)]
pub struct BurstConfig {
    /// Changes to apply.
    pub changes: u32,
    /// vCPUs running the guest loop (0 allowed).
    pub vcpus: u32,
    /// Naive or batched.
    pub mode: Mode,
    /// Batched mode: commit after this many changes; None: one transaction for the burst.
    pub changes_per_transaction: Option<u32>,
    /// The KVM device.
    pub kvm_device: PathBuf,
    /// Confine the vCPU threads with the vCPU seccomp filter (off with `SIPI_NO_SECCOMP=1`).
    pub seccomp: bool,
}

/// Sets up the VM, applies the burst, checks the vCPUs, and reports.
pub fn run(cfg: &BurstConfig) -> Result<BurstReport, BurstError> {
    let n = u64::from(cfg.changes);
    let per_transaction = cfg.changes_per_transaction.map_or(n, u64::from).max(1);
    let mut vm = BurstVm::new(&cfg.kvm_device, cfg.vcpus, cfg.seccomp)?;
    let before = vm.counters();
    let (wall, transactions, burst_slots, stats) = match cfg.mode {
        Mode::Naive => {
            let mut slots = NaiveSlots::new(&vm);
            let t0 = Instant::now();
            let result = slots.apply(&mut vm, n);
            let wall = t0.elapsed();
            let live = slots.live() as u32;
            // The clean-up deletes are not part of the burst.
            let stats = vm.map.sink().stats().clone();
            slots.clear(&mut vm);
            result?;
            (wall, 0, live, stats)
        }
        Mode::Batched => {
            let pool = std::sync::Arc::clone(vm.pool());
            let t0 = Instant::now();
            let transactions = batched::apply(&mut vm.map, &pool, n, per_transaction)?;
            let wall = t0.elapsed();
            let slots = vm.map.slots();
            let burst = slots.iter().filter(|s| s.range.start >= BURST_WINDOW_BASE);
            let stats = vm.map.sink().stats().clone();
            (wall, transactions, burst.count() as u32, stats)
        }
    };
    let after = vm.counters();
    let guest_loops = after
        .iter()
        .zip(&before)
        .map(|(a, b)| u64::from(a.wrapping_sub(*b)))
        .sum();
    vm.wait_for_progress(&after, PROGRESS_TIMEOUT)?;
    let failures = vm.stop();
    let (status, error) = match failures.first() {
        None => (Status::Ok, None),
        Some(f) => {
            let more = match failures.len() {
                1 => String::new(),
                k => format!(" (and {} more failures)", k - 1),
            };
            (Status::GuestFailure, Some(format!("{f}{more}")))
        }
    };
    let minimal = match cfg.mode {
        Mode::Naive => n,
        Mode::Batched => workload::minimal_ioctls(n, per_transaction),
    };
    Ok(BurstReport {
        status: status.name(),
        exit_code: status.code(),
        error,
        changes: cfg.changes,
        pairs: workload::pairs(n),
        vcpus: cfg.vcpus,
        mode: cfg.mode.name(),
        transactions,
        ioctls: stats.count(),
        minimal_ioctls: minimal,
        wall_us: wall.as_micros().try_into().unwrap_or(u64::MAX),
        ioctl_us: LatencyUs::of(&stats.latencies()),
        burst_slots,
        guest_loops,
    })
}
