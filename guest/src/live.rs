//! The live-state block ([`firmware::report::live`]): published by the BSP as soon as the CPU
//! table exists, so that a VMM that ends the VM before the report (a timeout) can read the CPU
//! records and BSP stamps as they stand. Also home of the BSP's stamps, which must therefore
//! live in a static, and of the test-only hang (`sipi.test_hang`).

use core::sync::atomic::{AtomicU8, Ordering};

use firmware::layout::LIVE_STATE_ADDR;
use firmware::report::live::{self, LIVE_OPS_OFFSET, LIVE_ROUNDS_OFFSET, LIVE_STATE_SIZE};
use firmware::report::{BspPhase, STAMP_SLOTS};

use crate::cpus;
use crate::global::Global;

/// The BSP's TSC stamps, one slot per [`BspPhase`] (written only by the BSP).
static BSP_STAMPS: Global<[u64; STAMP_SLOTS]> = Global::new([0; STAMP_SLOTS]);
/// Test only: 1 + the [`BspPhase`] after whose stamp the BSP spins forever; 0 for none.
static HANG: AtomicU8 = AtomicU8::new(0);

/// Records `tsc` for `phase` (BSP only); spins forever there if `sipi.test_hang` names it.
pub(crate) fn set(phase: BspPhase, tsc: u64) {
    // SAFETY: only the BSP writes the stamps; the VMM reads them only once the VM is stopped.
    unsafe { (&raw mut (*BSP_STAMPS.get())[phase as usize]).write_volatile(tsc) };
    if HANG.load(Ordering::Relaxed) == phase as u8 + 1 {
        // A BSP that spins (test only): the VMM's timeout must end the VM.
        loop {
            core::hint::spin_loop();
        }
    }
}

/// Records the current TSC for `phase` (see [`set`]).
pub(crate) fn stamp(phase: BspPhase) {
    set(phase, crate::cpu::rdtsc());
}

/// A copy of the BSP's stamps (BSP only).
pub(crate) fn stamps() -> [u64; STAMP_SLOTS] {
    // SAFETY: only the BSP writes them, and the caller is the BSP.
    unsafe { BSP_STAMPS.get().read_volatile() }
}

/// Arms the test-only hang after `phase` (BSP only, once the options are known).
pub(crate) fn hang_after(phase: Option<BspPhase>) {
    HANG.store(phase.map_or(0, |p| p as u8 + 1), Ordering::Relaxed);
}

/// The live-state block in guest memory.
fn block() -> *mut u8 {
    LIVE_STATE_ADDR as *mut u8
}

/// Publishes the block: the CPU table (of `cpus::count()` records) and the BSP stamps. BSP
/// only, once, after the CPU table is registered.
pub(crate) fn publish() {
    let state = live::LiveState {
        records_addr: cpus::RECORDS.get() as u64,
        cpu_count: cpus::count() as u32,
        bsp_stamps_addr: BSP_STAMPS.get() as u64,
        ops_done: 0,
        rounds_done: 0,
    };
    let mut buf = [0u8; LIVE_STATE_SIZE];
    live::encode(&mut buf, &state).unwrap_or_else(|| panic!("the live state does not encode"));
    for (i, b) in buf.iter().enumerate() {
        // SAFETY: the block is reserved low RAM (firmware::layout::LIVE_STATE_ADDR), identity
        // mapped; only the BSP writes it, and the VMM reads it only once the VM is stopped.
        unsafe { block().add(i).write_volatile(*b) };
    }
}

/// Updates the scenario's progress in the block (BSP only).
pub(crate) fn progress(ops_done: u32, rounds_done: u32) {
    // SAFETY: aligned u32 fields inside the block (see `publish`).
    unsafe {
        (block().add(LIVE_OPS_OFFSET) as *mut u32).write_volatile(ops_done);
        (block().add(LIVE_ROUNDS_OFFSET) as *mut u32).write_volatile(rounds_done);
    }
}
