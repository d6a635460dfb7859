//! The TSC synchronisation check (`sipi.tsc_sync`), run between an AP's per-CPU init and its
//! online mark: do every CPU's time-stamp counters agree? Every phase stamp in the boot report
//! compares TSC values of different CPUs, so the check also says whether the report's timings
//! can be trusted. KVM keeps the TSCs of one VM in sync; a CPU whose TSC was written on its own
//! (the VMM's `--test-skew-tsc`) is out of sync.
//!
//! Both strategies run a warp test: CPUs read the TSC in a loop and publish the last value read
//! in shared memory; a reading older than a value already published (by any CPU, itself
//! included) is a *warp*, and the amount it went backwards is the warp's size. A CPU found out
//! of sync gets `CPU_FLAG_TSC_OUT_OF_SYNC` and its largest warp in its record. Before its test,
//! every CPU reads its IA32_TSC_ADJUST when CPUID.(EAX=7,ECX=0):EBX[1] says it exists, as
//! Linux does before deciding (`tsc_store_and_check_tsc_adjust`); the value is reported, not
//! acted on. Everything runs at CPL 3, where atomics and RDTSC run natively; waiting CPUs halt
//! in [`supervisor::wait_while`] instead of spinning, because hundreds of vCPUs share two host
//! cores here and a spinning vCPU takes a core from the ones doing the work.
//!
//! # serial: one AP at a time against the BSP (Linux's `check_tsc_sync_target`)
//!
//! An AP that has finished its per-CPU init asks for its turn ([`state::WAITING`]); it spins
//! [`SPIN_BEFORE_SLEEP_US`] while the BSP is free, then sleeps ([`state::SLEEPING`]). The BSP,
//! in its bringup wait loop, serves the waiting AP with the lowest slot (Linux's
//! `bringup_nonboot_cpus` goes in CPU order too): it publishes its own TSC, grants the turn
//! (waking a sleeping AP with a [`vector::WAKE`] IPI), and both run `check_tsc_warp`: take a
//! spinlock, read the last published value, read the TSC, publish it, unlock; count a reading
//! older than the one published before it. Each side runs for [`SERIAL_WINDOW_US`] of its own
//! TSC (at least [`MIN_ITERATIONS`], at most [`MAX_ITERATIONS`]). After the AP is done, the BSP
//! takes one more reading. Every warp of a turn is blamed on its AP, as Linux does.
//!
//! Budget: 2 ms a turn, the window Linux gives each AP that has a sibling online in its package
//! (20 ms for the first of a package), plus the handshake: the check grows linearly with the
//! number of APs (docs/benchmarks.md, "TSC check", has the measured cost per AP).
//!
//! # parallel: one warp test of every CPU at once
//!
//! An AP that has finished its per-CPU init marks itself arrived and sleeps until the BSP opens
//! the test, which it does once every AP being started has arrived (or been given up on): it
//! reads its TSC (`base`), publishes it, sets the go flag and wakes every AP with one broadcast
//! [`vector::WAKE`] IPI. Every CPU, the BSP included, then loops: read the shared last value,
//! read the TSC, and if the TSC is newer replace the shared value with one atomic
//! compare-exchange (no lock: a failed exchange means someone published something newer, which
//! the next iteration reads); an older reading is a warp. The shared value packs the reading
//! (relative to `base`) with the publisher's slot, so each warp names the two CPUs it is between.
//!
//! A CPU stops at the end of the global window (`base` + [`PARALLEL_WINDOW_US`], in the BSP's
//! time) or after [`PARALLEL_WINDOW_US`] of its own TSC, whichever comes first, and never before
//! [`MIN_ITERATIONS`]: the test ends whatever a CPU's TSC says (one far behind would otherwise
//! spin until it caught up with the BSP's `end`), and costs one window however many CPUs there
//! are, all spinning on one cache line. On this host, two cores run the vCPUs, so most CPUs
//! are woken only after the window has closed and take their few readings then: each still
//! compares its first reading with `base` and every reading with the newest value anyone
//! published, and the BSP, once all are done, compares each CPU's last reading with its own TSC.
//! Those two checks are causal (the other CPU's value was published before the reading it is
//! compared with), so a CPU behind or ahead of the BSP by more than the time between the two is
//! caught however the host schedules the vCPUs.
//!
//! Blame: a warp between the BSP and another CPU is that CPU's (the BSP is the reference, as
//! in Linux), and a CPU that warps against itself is out of sync; a warp between two APs goes
//! to the one of them already found out of sync that way, else to the one that warps against
//! more CPUs (a CPU ahead of the others shows up in every other CPU's warps), to both when they
//! are even.

use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64, Ordering};

use firmware::cmdline::{TestTscSkew, TscSync};
use firmware::report::{
    CPU_FLAG_TSC_ADJUST, CPU_FLAG_TSC_CHECKED, CPU_FLAG_TSC_OUT_OF_SYNC, CPU_FLAG_TSC_TEST_SKEW,
    TscSyncSummary,
};

use crate::apic::{Destination, Ipi, LocalApic};
use crate::cpu::{self, msr};
use crate::cpus::{self, CAPACITY};
use crate::idt::vector;
use crate::supervisor;
use crate::tsc::Tsc;

/// The serial strategy's window per AP: Linux's `loop_timeout` for a CPU with a sibling online.
const SERIAL_WINDOW_US: u64 = 2_000;
/// The parallel strategy's one window for every CPU: as long as one serial turn.
const PARALLEL_WINDOW_US: u64 = 2_000;
/// Readings every CPU takes however late it runs (Linux checks its deadline every 8).
const MIN_ITERATIONS: u32 = 8;
/// Readings after which a CPU stops whatever its TSC says (Linux's bound: a TSC that does not
/// advance must not hang the test).
const MAX_ITERATIONS: u32 = 10_000_000;
/// How long an AP waiting for its serial turn spins while the BSP is free before it sleeps.
const SPIN_BEFORE_SLEEP_US: u64 = 50;

/// States of a CPU's part in the check ([`SyncCpu::state`]).
mod state {
    /// Not in the check (yet).
    pub(super) const IDLE: u32 = 0;
    /// serial: wants its turn and spins; parallel: arrived, waiting for the test to open.
    pub(super) const WAITING: u32 = 1;
    /// serial: wants its turn and sleeps until the BSP grants it.
    pub(super) const SLEEPING: u32 = 2;
    /// serial: the BSP granted the turn.
    pub(super) const GRANTED: u32 = 3;
    /// serial: the AP took the turn; the pair test runs.
    pub(super) const RUNNING: u32 = 4;
    /// Done: the CPU's results are written.
    pub(super) const DONE: u32 = 5;
}

/// Warps a CPU remembers in the parallel test, each against a different publisher.
const EDGES: usize = 4;
/// Bits of the parallel test's shared value that hold the publisher's slot.
const SLOT_BITS: u32 = 12;
const _: () = assert!(CAPACITY <= 1 << SLOT_BITS);
/// The range of a reading relative to `base` in the shared value (clamped: far beyond any warp
/// that matters, ~10 days at 2.5 GHz).
const REL_MAX: i128 = (1 << (63 - SLOT_BITS)) - 1;
const REL_MIN: i128 = -(1 << (63 - SLOT_BITS));

/// One warp seen by a CPU in the parallel test: against whom, and by how many cycles at most.
struct Edge {
    publisher: AtomicU32,
    warp: AtomicU64,
}

/// One CPU's part in the check, on a cache line of its own. The CPU writes its fields before
/// it stores [`state::DONE`] (Release); the BSP reads them after it loads DONE (Acquire), and
/// alone writes `blame` and `degree`.
#[repr(C, align(64))]
struct SyncCpu {
    state: AtomicU32,
    /// 1 if `adjust` holds IA32_TSC_ADJUST.
    adjust_read: AtomicU32,
    adjust: AtomicU64,
    /// The first and last readings of the parallel test.
    first: AtomicU64,
    last: AtomicU64,
    /// Warps this CPU saw, and the largest (serial).
    warps: AtomicU32,
    /// Edges used in `edges` (parallel).
    edge_count: AtomicU32,
    max_warp: AtomicU64,
    /// The largest warp blamed on this CPU (BSP only).
    blame: AtomicU64,
    /// Distinct CPUs this one warped against, counted by the BSP (parallel).
    degree: AtomicU32,
    edges: [Edge; EDGES],
}

impl SyncCpu {
    const fn new() -> Self {
        SyncCpu {
            state: AtomicU32::new(state::IDLE),
            adjust_read: AtomicU32::new(0),
            adjust: AtomicU64::new(0),
            first: AtomicU64::new(0),
            last: AtomicU64::new(0),
            warps: AtomicU32::new(0),
            edge_count: AtomicU32::new(0),
            max_warp: AtomicU64::new(0),
            blame: AtomicU64::new(0),
            degree: AtomicU32::new(0),
            edges: [const {
                Edge {
                    publisher: AtomicU32::new(0),
                    warp: AtomicU64::new(0),
                }
            }; EDGES],
        }
    }
}

/// Every CPU's part, by slot.
static CPUS: [SyncCpu; CAPACITY] = [const { SyncCpu::new() }; CAPACITY];

/// A value on a cache line of its own.
#[repr(C, align(64))]
struct Line<T>(T);

/// The strategy ([`TscSync`] as u8), set by the BSP before it kicks any AP.
static STRATEGY: AtomicU8 = AtomicU8::new(TscSync::None as u8);
/// Whether CPUID reports IA32_TSC_ADJUST (set with STRATEGY).
static ADJUST_PRESENT: AtomicBool = AtomicBool::new(false);
/// The window in cycles, and the serial spin before sleeping (set with STRATEGY).
static WINDOW: AtomicU64 = AtomicU64::new(0);
static SPIN: AtomicU64 = AtomicU64::new(0);
/// The BSP's slot (set with STRATEGY).
static BSP_SLOT: AtomicU32 = AtomicU32::new(0);
/// Test only (`sipi.test_tsc_skew`): the slot whose readings are skewed (none: [`NO_SLOT`]),
/// and by how much (set with STRATEGY).
static SKEW_SLOT: AtomicU32 = AtomicU32::new(NO_SLOT);
static SKEW_CYCLES: AtomicU64 = AtomicU64::new(0);
const NO_SLOT: u32 = u32::MAX;

/// serial: the spinlock and the last published reading (Linux's `sync_lock` and `last_tsc`).
static PAIR_LOCK: Line<AtomicBool> = Line(AtomicBool::new(false));
static PAIR_LAST: Line<AtomicU64> = Line(AtomicU64::new(0));
/// serial: the BSP is running a turn (waiting APs sleep at once).
static BSP_BUSY: Line<AtomicBool> = Line(AtomicBool::new(false));

/// parallel: the shared last reading, packed with its publisher's slot (see [`pack`]).
static LAST: Line<AtomicI64> = Line(AtomicI64::new(0));
/// parallel: 1 once the BSP opened the test; the APs sleep on it.
static GO: Line<AtomicU32> = Line(AtomicU32::new(0));
/// parallel: the BSP's reading when it opened the test, and the end of the global window.
static BASE: AtomicU64 = AtomicU64::new(0);
static END: AtomicU64 = AtomicU64::new(0);

/// parallel: the BSP's TSC (without any test skew) when it opened the test.
static OPENED: AtomicU64 = AtomicU64::new(0);
/// Cycles the BSP spent on the check, and warps counted (BSP only).
static CYCLES: AtomicU64 = AtomicU64::new(0);
static WARPS: AtomicU32 = AtomicU32::new(0);

/// The strategy the APs run (none until [`prepare`]).
pub(crate) fn strategy() -> TscSync {
    TscSync::from_u8(STRATEGY.load(Ordering::Relaxed)).unwrap_or(TscSync::None)
}

/// True if CPUID reported IA32_TSC_ADJUST to [`prepare`].
pub(crate) fn adjust_present() -> bool {
    ADJUST_PRESENT.load(Ordering::Relaxed)
}

/// Sets the check up (BSP only, before it kicks any AP): the strategy, the windows in cycles of
/// `tsc`, the test skew if any, and the BSP's own IA32_TSC_ADJUST.
pub(crate) fn prepare(strategy: TscSync, tsc: Tsc, bsp_slot: usize, skew: Option<TestTscSkew>) {
    if strategy == TscSync::None {
        return;
    }
    let start = cpu::rdtsc();
    let window = match strategy {
        TscSync::Parallel => PARALLEL_WINDOW_US,
        _ => SERIAL_WINDOW_US,
    };
    ADJUST_PRESENT.store(cpu::has_tsc_adjust(), Ordering::Relaxed);
    WINDOW.store(tsc.cycles(window), Ordering::Relaxed);
    SPIN.store(tsc.cycles(SPIN_BEFORE_SLEEP_US), Ordering::Relaxed);
    BSP_SLOT.store(bsp_slot as u32, Ordering::Relaxed);
    if let Some(skew) = skew
        && let Some(slot) = (0..cpus::count()).find(|s| cpus::apic_id(*s) == skew.apic_id)
    {
        SKEW_SLOT.store(slot as u32, Ordering::Relaxed);
        SKEW_CYCLES.store(skew.cycles, Ordering::Relaxed);
    }
    read_adjust(&CPUS[bsp_slot]);
    // Last: APs kicked after this store see the settings (the kick orders them anyway).
    STRATEGY.store(strategy as u8, Ordering::Release);
    add_cycles(start);
}

/// Records this CPU's IA32_TSC_ADJUST in `me`, if CPUID says it exists.
fn read_adjust(me: &SyncCpu) {
    if !adjust_present() {
        return;
    }
    // SAFETY: CPUID.(EAX=7,ECX=0):EBX[1] reports the MSR, so RDMSR does not fault; reading it
    // has no side effect.
    let value = unsafe { supervisor::rdmsr(msr::IA32_TSC_ADJUST) };
    me.adjust.store(value, Ordering::Relaxed);
    me.adjust_read.store(1, Ordering::Relaxed);
}

/// A reading of the TSC for the check by the CPU in `slot`: ordered after every earlier load,
/// plus the test skew if it names this CPU.
fn read(slot: usize) -> u64 {
    let skew = if SKEW_SLOT.load(Ordering::Relaxed) == slot as u32 {
        SKEW_CYCLES.load(Ordering::Relaxed)
    } else {
        0
    };
    cpu::rdtsc_ordered().wrapping_add(skew)
}

/// Adds the cycles from `since` to now to the check's cost.
fn add_cycles(since: u64) {
    CYCLES.fetch_add(cpu::rdtsc().saturating_sub(since), Ordering::Relaxed);
}

/// An AP's part (called by the AP of `slot` after its per-CPU init, when [`strategy`] is not
/// none): reads its IA32_TSC_ADJUST, waits for its turn or for the others, runs its test and
/// publishes its results. Returns when its part is done.
pub(crate) fn ap(slot: usize) {
    let me = &CPUS[slot];
    read_adjust(me);
    match strategy() {
        TscSync::Serial => ap_serial(slot, me),
        TscSync::Parallel => ap_parallel(slot, me),
        TscSync::None => {}
    }
}

/// True once the AP of `slot` has arrived at the check (parallel: it waits for the test).
pub(crate) fn arrived(slot: usize) -> bool {
    CPUS[slot].state.load(Ordering::Acquire) != state::IDLE
}

/// True if the AP of `slot` waits for its serial turn.
pub(crate) fn wants_turn(slot: usize) -> bool {
    matches!(
        CPUS[slot].state.load(Ordering::Acquire),
        state::WAITING | state::SLEEPING
    )
}

// ---------------------------------------------------------------------------------------------
// serial
// ---------------------------------------------------------------------------------------------

/// Warps counted by one side of a serial turn.
#[derive(Debug, Clone, Copy, Default)]
struct Warps {
    count: u32,
    max: u64,
}

impl Warps {
    fn note(&mut self, warp: u64) {
        self.count = self.count.saturating_add(1);
        self.max = self.max.max(warp);
    }
}

/// Takes the serial test's spinlock (Linux's `arch_spin_lock(&sync_lock)`); held for one read
/// and one write, so a waiter only spins long when the holder's vCPU is descheduled.
fn pair_lock() {
    while PAIR_LOCK
        .0
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        while PAIR_LOCK.0.load(Ordering::Relaxed) {
            core::hint::spin_loop();
        }
    }
}

/// Releases the serial test's spinlock.
fn pair_unlock() {
    PAIR_LOCK.0.store(false, Ordering::Release);
}

/// One reading of the serial test by the CPU in `slot` under the lock: publishes it and returns
/// the warp against the last published value, if the reading is older.
fn pair_reading(slot: usize) -> (u64, Option<u64>) {
    pair_lock();
    let prev = PAIR_LAST.0.load(Ordering::Relaxed);
    let now = read(slot);
    PAIR_LAST.0.store(now, Ordering::Relaxed);
    pair_unlock();
    (now, (prev > now).then(|| prev - now))
}

/// Linux's `check_tsc_warp` for the CPU in `slot`: readings for `window` cycles of its TSC.
fn pair_loop(slot: usize, window: u64) -> Warps {
    let start = read(slot);
    let mut warps = Warps::default();
    let mut i = 0u32;
    loop {
        let (now, warp) = pair_reading(slot);
        if let Some(w) = warp {
            warps.note(w);
        }
        i += 1;
        if i >= MAX_ITERATIONS || (i >= MIN_ITERATIONS && now.wrapping_sub(start) >= window) {
            return warps;
        }
    }
}

/// The AP's side of a serial turn: ask, wait (spin while the BSP is free, then sleep), run.
fn ap_serial(slot: usize, me: &SyncCpu) {
    me.state.store(state::WAITING, Ordering::Release);
    let spin_until = cpu::rdtsc().saturating_add(SPIN.load(Ordering::Relaxed));
    loop {
        match me.state.load(Ordering::Acquire) {
            state::GRANTED => {
                if me
                    .state
                    .compare_exchange(
                        state::GRANTED,
                        state::RUNNING,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok()
                {
                    break;
                }
            }
            state::WAITING if BSP_BUSY.0.load(Ordering::Relaxed) || cpu::rdtsc() >= spin_until => {
                if me
                    .state
                    .compare_exchange(
                        state::WAITING,
                        state::SLEEPING,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok()
                {
                    supervisor::wait_while(&me.state, state::SLEEPING);
                }
            }
            state::SLEEPING => supervisor::wait_while(&me.state, state::SLEEPING),
            _ => core::hint::spin_loop(),
        }
    }
    let warps = pair_loop(slot, WINDOW.load(Ordering::Relaxed));
    me.warps.store(warps.count, Ordering::Relaxed);
    me.max_warp.store(warps.max, Ordering::Relaxed);
    me.state.store(state::DONE, Ordering::Release);
}

/// The BSP's side of the serial turn of the AP in `slot` (which [`wants_turn`]): publish, grant,
/// wait up to `join_timeout` cycles for the AP to take the turn, run the test, wait for the AP,
/// take one last reading, and blame every warp on the AP. Returns false if the AP did not take
/// its turn in time (the turn is withdrawn; the AP waits for the next one).
pub(crate) fn serial_turn(slot: usize, apic: LocalApic, join_timeout: u64) -> bool {
    let start = cpu::rdtsc();
    let ap = &CPUS[slot];
    let bsp = BSP_SLOT.load(Ordering::Relaxed) as usize;
    BSP_BUSY.0.store(true, Ordering::Relaxed);
    // The BSP's reading first: the AP's first reading is compared with it.
    let _ = pair_reading(bsp);
    let cas = |from, to| {
        ap.state
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    };
    let granted = if cas(state::WAITING, state::GRANTED) {
        true
    } else if cas(state::SLEEPING, state::GRANTED) {
        apic.send(
            Ipi::Fixed(vector::WAKE as u8),
            Destination::ApicId(cpus::apic_id(slot)),
        );
        true
    } else {
        false
    };
    let joined = granted && {
        let deadline = start.saturating_add(join_timeout);
        loop {
            // The AP may have run its whole window while this vCPU was descheduled.
            if matches!(
                ap.state.load(Ordering::Acquire),
                state::RUNNING | state::DONE
            ) {
                break true;
            }
            // Withdraw the turn unless the AP took it meanwhile.
            if cpu::rdtsc() >= deadline && cas(state::GRANTED, state::SLEEPING) {
                break false;
            }
            core::hint::spin_loop();
        }
    };
    if joined {
        let mut warps = pair_loop(bsp, WINDOW.load(Ordering::Relaxed));
        // The AP's loop ends by its own TSC or after MAX_ITERATIONS readings.
        while ap.state.load(Ordering::Acquire) != state::DONE {
            core::hint::spin_loop();
        }
        // One reading after the AP's last: catches an AP whose TSC is ahead.
        if let (_, Some(w)) = pair_reading(bsp) {
            warps.note(w);
        }
        let ap_max = ap.max_warp.load(Ordering::Relaxed);
        let count = warps.count.saturating_add(ap.warps.load(Ordering::Relaxed));
        WARPS.fetch_add(count, Ordering::Relaxed);
        blame(slot, warps.max.max(ap_max));
    }
    BSP_BUSY.0.store(false, Ordering::Relaxed);
    add_cycles(start);
    joined
}

/// Blames a warp of `warp` cycles (0: none) on the CPU in `slot`.
fn blame(slot: usize, warp: u64) {
    CPUS[slot].blame.fetch_max(warp, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------------
// parallel
// ---------------------------------------------------------------------------------------------

/// The shared value of a reading `now` by the CPU in `slot`: the reading relative to `base`
/// (clamped), shifted left, with the slot in the low bits. Values compare as readings first.
fn pack(now: u64, base: u64, slot: usize) -> i64 {
    let rel = (i128::from(now) - i128::from(base)).clamp(REL_MIN, REL_MAX) as i64;
    (rel << SLOT_BITS) | slot as i64
}

/// The reading (relative to `base`) and the publisher's slot of a shared value.
fn unpack(value: i64) -> (i64, usize) {
    (
        value >> SLOT_BITS,
        (value & ((1 << SLOT_BITS) - 1)) as usize,
    )
}

/// Up to [`EDGES`] warps of one CPU, one per publisher, the largest kept.
#[derive(Default)]
struct Edges {
    list: [(u32, u64); EDGES],
    len: usize,
    count: u32,
}

impl Edges {
    fn add(&mut self, publisher: usize, warp: u64) {
        self.count = self.count.saturating_add(1);
        let publisher = publisher as u32;
        let list = &mut self.list[..self.len];
        if let Some(e) = list.iter_mut().find(|e| e.0 == publisher) {
            e.1 = e.1.max(warp);
        } else if self.len < EDGES {
            self.list[self.len] = (publisher, warp);
            self.len += 1;
        } else if let Some(e) = list.iter_mut().min_by_key(|e| e.1).filter(|e| e.1 < warp) {
            *e = (publisher, warp);
        }
    }

    fn store(&self, me: &SyncCpu) {
        for (e, (publisher, warp)) in me.edges.iter().zip(&self.list[..self.len]) {
            e.publisher.store(*publisher, Ordering::Relaxed);
            e.warp.store(*warp, Ordering::Relaxed);
        }
        me.edge_count.store(self.len as u32, Ordering::Relaxed);
        me.warps.store(self.count, Ordering::Relaxed);
    }
}

/// One CPU's readings in the parallel test, from `base` (the BSP's opening reading) to the end
/// of the window; stores its first and last readings and its warps in `me`.
fn global_loop(slot: usize, me: &SyncCpu) {
    let base = BASE.load(Ordering::Relaxed);
    let end = END.load(Ordering::Relaxed);
    let window = WINDOW.load(Ordering::Relaxed);
    let mut edges = Edges::default();
    let start = read(slot);
    // The BSP read `base` before it opened the test, and this CPU read `start` after it saw
    // the test open: an older `start` is a warp against the BSP.
    if start < base {
        edges.add(BSP_SLOT.load(Ordering::Relaxed) as usize, base - start);
    }
    let mut i = 0u32;
    let last = loop {
        let prev = LAST.0.load(Ordering::Acquire);
        let now = read(slot);
        let (prev_rel, publisher) = unpack(prev);
        let mine = pack(now, base, slot);
        let (now_rel, _) = unpack(mine);
        if now_rel < prev_rel {
            edges.add(publisher, (prev_rel - now_rel) as u64);
        } else if mine > prev {
            // A failure means another CPU published a newer value: the next reading sees it.
            let _ = LAST
                .0
                .compare_exchange(prev, mine, Ordering::AcqRel, Ordering::Relaxed);
        }
        i += 1;
        let over = now >= end || now.wrapping_sub(start) >= window;
        if i >= MAX_ITERATIONS || (i >= MIN_ITERATIONS && over) {
            break now;
        }
    };
    me.first.store(start, Ordering::Relaxed);
    me.last.store(last, Ordering::Relaxed);
    edges.store(me);
}

/// The AP's side of the parallel test: arrive, sleep until the test opens, run.
fn ap_parallel(slot: usize, me: &SyncCpu) {
    me.state.store(state::WAITING, Ordering::Release);
    if GO.0.load(Ordering::Acquire) == 0 {
        supervisor::wait_while(&GO.0, 0);
    }
    // Orders the reads of BASE and END after GO (the supervisor call's load is not an Acquire
    // in Rust's model; on x86 the order holds anyway).
    let _ = GO.0.load(Ordering::Acquire);
    global_loop(slot, me);
    me.state.store(state::DONE, Ordering::Release);
}

/// Opens the parallel test (BSP only, once every AP being started has arrived or been given up
/// on): publishes the BSP's reading, wakes every AP with one broadcast IPI, and takes part.
pub(crate) fn open(apic: LocalApic) {
    let bsp = BSP_SLOT.load(Ordering::Relaxed) as usize;
    OPENED.store(cpu::rdtsc(), Ordering::Relaxed);
    let base = read(bsp);
    BASE.store(base, Ordering::Relaxed);
    END.store(
        base.saturating_add(WINDOW.load(Ordering::Relaxed)),
        Ordering::Relaxed,
    );
    LAST.0.store(pack(base, base, bsp), Ordering::Relaxed);
    GO.0.store(1, Ordering::Release);
    wake_all(apic);
    global_loop(bsp, &CPUS[bsp]);
    // Cycles of the parallel test run from here to the end of `finish`.
}

/// Wakes every AP that may still sleep in the parallel test (BSP only, after [`open`]): one
/// broadcast IPI; APs not in the test ignore it (their interrupts stay masked).
pub(crate) fn nudge(apic: LocalApic) {
    if strategy() == TscSync::Parallel && GO.0.load(Ordering::Acquire) != 0 {
        wake_all(apic);
    }
}

/// One broadcast of the wake-up IPI to every CPU but this one.
fn wake_all(apic: LocalApic) {
    apic.send(
        Ipi::Fixed(vector::WAKE as u8),
        Destination::AllExcludingSelf,
    );
}

/// Final checks and blame of the parallel test over the APs in `slots` and the BSP.
///
/// First the warps that involve the BSP, the reference: each AP's last reading against the
/// BSP's TSC read after it (an AP ahead), warps with the BSP on either side, and a CPU's warps
/// against itself; those CPUs are convicted. Then a warp between two APs goes to the endpoint(s)
/// already convicted, and when neither is, to the one that warps against more CPUs (both when
/// they are even).
fn finish_parallel(slots: &[u16], bsp: usize) {
    let mut warps = 0u32;
    let done = |s: usize| CPUS[s].state.load(Ordering::Acquire) == state::DONE;
    for s in slots.iter().map(|s| usize::from(*s)).filter(|s| done(*s)) {
        let now = read(bsp);
        let last = CPUS[s].last.load(Ordering::Relaxed);
        if last > now {
            warps = warps.saturating_add(1);
            blame(s, last - now);
        }
    }
    let participants = || {
        slots
            .iter()
            .map(|s| usize::from(*s))
            .filter(move |s| done(*s))
            .chain([bsp])
    };
    let edges = |s: usize| {
        let me = &CPUS[s];
        let n = (me.edge_count.load(Ordering::Relaxed) as usize).min(EDGES);
        me.edges[..n].iter().map(move |e| {
            let publisher = (e.publisher.load(Ordering::Relaxed) as usize).min(CAPACITY - 1);
            (s, publisher, e.warp.load(Ordering::Relaxed))
        })
    };
    let between_aps = |o: usize, p: usize| o != p && o != bsp && p != bsp;
    for s in participants() {
        warps = warps.saturating_add(CPUS[s].warps.load(Ordering::Relaxed));
        for (observer, publisher, warp) in edges(s) {
            if between_aps(observer, publisher) {
                CPUS[observer].degree.fetch_add(1, Ordering::Relaxed);
                CPUS[publisher].degree.fetch_add(1, Ordering::Relaxed);
            } else if observer == bsp {
                blame(publisher, warp);
            } else {
                blame(observer, warp);
            }
        }
    }
    let convicted = |s: usize| CPUS[s].blame.load(Ordering::Relaxed) > 0;
    let degree = |s: usize| CPUS[s].degree.load(Ordering::Relaxed);
    for s in participants() {
        for (observer, publisher, warp) in edges(s).filter(|e| between_aps(e.0, e.1)) {
            let (o, p) = match (convicted(observer), convicted(publisher)) {
                (false, false) => (
                    degree(observer) >= degree(publisher),
                    degree(publisher) >= degree(observer),
                ),
                known => known,
            };
            if o {
                blame(observer, warp);
            }
            if p {
                blame(publisher, warp);
            }
        }
    }
    WARPS.fetch_add(warps, Ordering::Relaxed);
}

/// Ends the check (BSP only, after bringup): the parallel test's final checks and blame, then
/// every record's TSC fields for the APs in `slots` and the BSP. Returns the summary (all 0
/// when no check ran).
pub(crate) fn finish(slots: &[u16]) -> TscSyncSummary {
    let strategy = strategy();
    if strategy == TscSync::None {
        return TscSyncSummary::default();
    }
    let bsp = BSP_SLOT.load(Ordering::Relaxed) as usize;
    if strategy == TscSync::Parallel && GO.0.load(Ordering::Acquire) != 0 {
        finish_parallel(slots, bsp);
        add_cycles(OPENED.load(Ordering::Relaxed));
    }
    let mut max_warp = 0;
    for s in slots.iter().map(|s| usize::from(*s)).chain([bsp]) {
        let me = &CPUS[s];
        let checked = s == bsp || me.state.load(Ordering::Acquire) == state::DONE;
        let warp = me.blame.load(Ordering::Relaxed);
        max_warp = max_warp.max(warp);
        let mut flags = 0;
        if checked {
            flags |= CPU_FLAG_TSC_CHECKED;
        }
        if warp > 0 {
            flags |= CPU_FLAG_TSC_OUT_OF_SYNC;
        }
        if SKEW_SLOT.load(Ordering::Relaxed) == s as u32 {
            flags |= CPU_FLAG_TSC_TEST_SKEW;
        }
        let adjust = if me.adjust_read.load(Ordering::Relaxed) != 0 {
            flags |= CPU_FLAG_TSC_ADJUST;
            me.adjust.load(Ordering::Relaxed)
        } else {
            0
        };
        cpus::set_tsc_result(s, flags, warp, adjust);
    }
    TscSyncSummary {
        cycles: CYCLES.load(Ordering::Relaxed),
        max_warp,
        warps: WARPS.load(Ordering::Relaxed),
    }
}
