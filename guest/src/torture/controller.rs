//! The BSP's side of hotplug-torture: starts random offline and online operations, up to the
//! concurrency asked for, drives each through its steps without blocking on any (grace
//! periods are shared by every offline operation waiting when one starts), times them, and
//! audits the reader work at the end (see the module documentation of [`super`]).
//!
//! Deadlines are bringup's ([`crate::deadline`]): an AP that does not call in after its STARTUP
//! is kicked again, at most [`MAX_RETRIES`] times, with twice the patience each time; an AP
//! that does not go offline when asked is woken again [`MAX_NUDGES`] times, then INITed anyway.
//! Either way it is given up on: counted as failed and left out of the rest of the run.

use core::sync::atomic::Ordering;

use firmware::cmdline::GuestOptions;
use firmware::report::{ApPhase, CpuState, Violation, ViolationKind};

use super::{
    CLOSED, COUNT_MASK, INBOX, OFFLINE_OP, READERS, REQUEST, STOP, mask_clear, mask_test, tokens,
    violation, violations,
};
use crate::apic::{Destination, Ipi, LocalApic};
use crate::batch::{self, Batch};
use crate::cpu;
use crate::cpus::{self, CAPACITY};
use crate::deadline::{self, MAX_NUDGES, MAX_RETRIES};
use crate::global::Global;
use crate::idt::vector;
use crate::rng::Rng;
use crate::tsc::Tsc;

/// Most operations one run performs (`sipi.ops` is clamped to it): each one's latency is kept.
pub(super) const MAX_OPS: usize = 1_000_000;
/// Random picks per operation started before the BSP moves on to the ones in flight.
const PICK_TRIES: u32 = 4;
/// Extra doublings of patience for an AP that called in after its STARTUP but is not online
/// yet (it is slow, not lost: another INIT would only start it over).
const EXTRA_PATIENCE: u32 = 3;

/// Where an AP of the torture is, as the BSP sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Online, in the mask, no operation on it.
    Online,
    /// Out of the mask; waits for a grace period to start.
    Draining,
    /// Out of the mask since before the running grace period began.
    Covered,
    /// Asked to go offline; the BSP waits for its record to say so.
    Requested,
    /// Parked in wait-for-SIPI.
    Offline,
    /// Kicked; the BSP waits for its mask bit.
    Starting,
    /// Given up on.
    Failed,
}

/// One AP's operation in flight.
#[derive(Debug, Clone, Copy)]
struct Slot {
    phase: Phase,
    /// The operation's number (from 1, in the order started).
    op: u32,
    /// The TSC when it started.
    start: u64,
    /// When the BSP acts again if nothing has happened.
    deadline: u64,
    /// Re-kicks or nudges so far.
    tries: u32,
}

const IDLE: Slot = Slot {
    phase: Phase::Online,
    op: 0,
    start: 0,
    deadline: 0,
    tries: 0,
};

/// Per slot: the BSP's view (BSP only).
static SLOTS: Global<[Slot; CAPACITY]> = Global::new([IDLE; CAPACITY]);
/// Per slot: the reader counter when the running grace period began; 0 once it has passed.
static SNAPSHOT: Global<[u32; CAPACITY]> = Global::new([0; CAPACITY]);
/// The slots taking part (BSP only).
static POOL: Global<[u16; CAPACITY]> = Global::new([0; CAPACITY]);
/// Every completed operation's latency in TSC cycles (BSP only).
static LATENCY: Global<[u64; MAX_OPS]> = Global::new([0; MAX_OPS]);
/// The slots of one batch of kicks, and of one batch of INITs (BSP only).
static KICKS: Global<[u16; CAPACITY]> = Global::new([0; CAPACITY]);
static PARKS: Global<[u16; CAPACITY]> = Global::new([0; CAPACITY]);

/// What the torture did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Outcome {
    /// Operations completed.
    pub(crate) ops: u32,
    /// APs given up on (each ended an operation).
    pub(crate) failed: u32,
    /// Operations in flight at most, as used.
    pub(crate) concurrency: u32,
    /// Violations found.
    pub(crate) violations: u32,
    /// The first violations.
    pub(crate) logged: &'static [Violation],
    /// TSC cycles from the first operation to the end of the last.
    pub(crate) duration: u64,
    /// Median, 99th percentile and largest operation latency in TSC cycles.
    pub(crate) p50: u64,
    pub(crate) p99: u64,
    pub(crate) max: u64,
}

/// Runs the torture of `options` with the APs of `started` that are online.
pub(crate) fn run(options: &GuestOptions, apic: LocalApic, tsc: Tsc, started: &[u16]) -> Outcome {
    // SAFETY: only the BSP uses POOL, SLOTS, SNAPSHOT, LATENCY and the batch arrays, and only
    // in this run (once per boot).
    let (pool_buf, slots, snapshot, latency) = unsafe {
        (
            &mut *POOL.get(),
            &mut *SLOTS.get(),
            &mut *SNAPSHOT.get(),
            &mut *LATENCY.get(),
        )
    };
    let mut n = 0;
    for slot in started {
        if cpus::state(usize::from(*slot)) == CpuState::Online as u8 {
            pool_buf[n] = *slot;
            n += 1;
        }
    }
    let pool = &pool_buf[..n];
    if pool.len() < 2 {
        // One AP must stay online as the readers' target: nothing can be taken offline.
        return Outcome::default();
    }
    let mut c = Controller {
        apic,
        tsc,
        pool,
        slots,
        snapshot,
        latency,
        rng: Rng::new(options.seed, u64::MAX),
        skip_barrier: options.test_skip_barrier,
        concurrency: options.concurrency.clamp(1, (pool.len() - 1) as u32),
        wanted: options.ops.min(MAX_OPS as u32),
        tokens: 0,
        started: 0,
        done: 0,
        failed: 0,
        inflight: 0,
        online: 0,
        offline: 0,
        grace_period: false,
    };
    c.join();
    c.hand_out_tokens();
    let start = cpu::rdtsc();
    c.drive();
    let end = cpu::rdtsc();
    c.audit();
    let (total, logged) = violations();
    let (p50, p99, max) = c.percentiles();
    Outcome {
        ops: c.done,
        failed: c.failed,
        concurrency: c.concurrency,
        violations: total,
        logged,
        duration: end - start,
        p50,
        p99,
        max,
    }
}

/// The BSP's state over the run.
struct Controller<'a> {
    apic: LocalApic,
    tsc: Tsc,
    pool: &'a [u16],
    slots: &'a mut [Slot; CAPACITY],
    snapshot: &'a mut [u32; CAPACITY],
    latency: &'a mut [u64; MAX_OPS],
    rng: Rng,
    skip_barrier: bool,
    concurrency: u32,
    wanted: u32,
    /// Reader work items handed out.
    tokens: usize,
    started: u32,
    done: u32,
    failed: u32,
    inflight: u32,
    /// APs in [`Phase::Online`].
    online: usize,
    /// APs in [`Phase::Offline`].
    offline: usize,
    /// A grace period is running.
    grace_period: bool,
}

impl Controller<'_> {
    /// The deadline budget for one AP, in cycles, at the least patience.
    fn budget(&self) -> u64 {
        self.tsc.cycles(deadline::budget_us(1))
    }

    /// Waits until every AP of the pool has joined the mask after bringup (they set their bit
    /// just after marking themselves online); gives up on the ones that do not.
    fn join(&mut self) {
        let deadline = cpu::rdtsc().saturating_add(self.budget());
        for s in self.pool.iter().map(|s| usize::from(*s)) {
            while !mask_test(s) && cpu::rdtsc() < deadline {
                core::hint::spin_loop();
            }
            if mask_test(s) {
                self.slots[s] = IDLE;
                self.online += 1;
            } else {
                self.slots[s].phase = Phase::Failed;
                self.failed += 1;
            }
        }
    }

    /// Puts the reader work items into the inboxes of the first online APs and wakes them.
    fn hand_out_tokens(&mut self) {
        self.tokens = tokens(self.online);
        let online = self
            .pool
            .iter()
            .map(|s| usize::from(*s))
            .filter(|s| self.slots[*s].phase == Phase::Online);
        for s in online.take(self.tokens) {
            INBOX[s].fetch_add(1, Ordering::SeqCst);
            self.wake(s);
        }
    }

    /// Sends the wake-up IPI to the AP of `slot`.
    fn wake(&self, slot: usize) {
        self.apic.send(
            Ipi::Fixed(vector::WAKE as u8),
            Destination::ApicId(cpus::apic_id(slot)),
        );
    }

    /// Runs operations until the number wanted is done (or none is possible any more).
    fn drive(&mut self) {
        loop {
            self.start_ops();
            self.advance_grace_period();
            self.poll();
            let possible = self.online > 1 || self.offline > 0;
            if self.inflight == 0 && (self.started == self.wanted || !possible) {
                return;
            }
            core::hint::spin_loop();
        }
    }

    /// A random AP on which an operation can start now, if one of a few picks finds one.
    fn pick(&mut self) -> Option<usize> {
        for _ in 0..PICK_TRIES {
            let s = usize::from(self.pool[self.rng.below(self.pool.len() as u64) as usize]);
            match self.slots[s].phase {
                // One AP always stays in the mask: the readers need a target.
                Phase::Online if self.online > 1 => return Some(s),
                Phase::Offline => return Some(s),
                _ => {}
            }
        }
        None
    }

    /// Starts operations while fewer than the concurrency are in flight: an online AP leaves
    /// the mask (the grace period and the request follow), an offline one is kicked.
    fn start_ops(&mut self) {
        // SAFETY: only the BSP uses KICKS, and only here and in `poll`.
        let kicks = unsafe { &mut *KICKS.get() };
        let mut n = 0;
        let budget = self.budget();
        while self.inflight < self.concurrency && self.started < self.wanted {
            let Some(s) = self.pick() else { break };
            self.started += 1;
            self.inflight += 1;
            let now = cpu::rdtsc();
            let slot = &mut self.slots[s];
            slot.op = self.started;
            slot.start = now;
            slot.tries = 0;
            if slot.phase == Phase::Online {
                self.online -= 1;
                OFFLINE_OP[s].store(self.started, Ordering::SeqCst);
                slot.phase = Phase::Draining;
                mask_clear(s);
            } else {
                self.offline -= 1;
                slot.phase = Phase::Starting;
                slot.deadline = now.saturating_add(budget);
                INBOX[s].store(0, Ordering::SeqCst);
                cpus::reset_for_online(s);
                kicks[n] = s as u16;
                n += 1;
            }
        }
        batch::send(self.apic, Batch::Kick, &kicks[..n], |s, tsc| {
            cpus::set_stamp(s, ApPhase::Kick, tsc);
        });
    }

    /// Moves the grace-period machine on: without the barrier (test only), every AP out of the
    /// mask is asked at once; otherwise a finished grace period releases the APs it covers,
    /// and a new one starts for the APs that left the mask since.
    fn advance_grace_period(&mut self) {
        if self.skip_barrier {
            self.request_all(Phase::Draining);
            return;
        }
        if self.grace_period && self.grace_period_over() {
            self.grace_period = false;
            self.request_all(Phase::Covered);
        }
        if !self.grace_period && self.any(Phase::Draining) {
            for s in self.pool.iter().map(|s| usize::from(*s)) {
                if self.slots[s].phase == Phase::Draining {
                    self.slots[s].phase = Phase::Covered;
                }
                // After the mask bits were cleared (SeqCst read-modify-writes): a section that
                // starts after this read sees them cleared.
                let count = READERS[s].load(Ordering::SeqCst);
                self.snapshot[s] = if count % 2 == 1 { count } else { 0 };
            }
            self.grace_period = true;
        }
    }

    /// True if some AP of the pool is in `phase`.
    fn any(&self, phase: Phase) -> bool {
        self.pool
            .iter()
            .any(|s| self.slots[usize::from(*s)].phase == phase)
    }

    /// True once every critical section that was running when the grace period began is over
    /// (APs given up on aside).
    fn grace_period_over(&mut self) -> bool {
        let mut over = true;
        for s in self.pool.iter().map(|s| usize::from(*s)) {
            let snap = self.snapshot[s];
            if snap == 0 {
                continue;
            }
            if READERS[s].load(Ordering::SeqCst) != snap || self.slots[s].phase == Phase::Failed {
                self.snapshot[s] = 0;
            } else {
                over = false;
            }
        }
        over
    }

    /// Asks every AP in `phase` to go offline.
    fn request_all(&mut self, phase: Phase) {
        let budget = self.budget();
        for s in self.pool.iter().map(|s| usize::from(*s)) {
            if self.slots[s].phase == phase {
                INBOX[s].fetch_or(REQUEST, Ordering::SeqCst);
                self.wake(s);
                let slot = &mut self.slots[s];
                slot.phase = Phase::Requested;
                slot.deadline = cpu::rdtsc().saturating_add(budget);
            }
        }
    }

    /// Checks the APs asked to go offline and the APs kicked: INITs the ones that went offline
    /// (in one batch), completes the ones that came online, and acts on passed deadlines.
    fn poll(&mut self) {
        let now = cpu::rdtsc();
        let budget = self.budget();
        let (mut parked, mut rekicks) = (0, 0);
        // SAFETY: only the BSP uses KICKS and PARKS, and only here and in `start_ops`.
        let (kicks, parks) = unsafe { (&mut *KICKS.get(), &mut *PARKS.get()) };
        for i in 0..self.pool.len() {
            let s = usize::from(self.pool[i]);
            let slot = self.slots[s];
            match slot.phase {
                Phase::Requested => {
                    let gone = cpus::state(s) == CpuState::Offline as u8;
                    if gone || (now >= slot.deadline && slot.tries == MAX_NUDGES) {
                        parks[parked] = s as u16;
                        parked += 1;
                    } else if now >= slot.deadline {
                        self.wake(s);
                        let slot = &mut self.slots[s];
                        slot.tries += 1;
                        slot.deadline = now.saturating_add(budget << slot.tries);
                    }
                }
                Phase::Starting if mask_test(s) => {
                    self.complete(s, now);
                    self.slots[s].phase = Phase::Online;
                    self.online += 1;
                }
                Phase::Starting if now >= slot.deadline => {
                    let called_in = cpus::stamp(s, ApPhase::Trampoline) != 0;
                    if !called_in && slot.tries < u32::from(MAX_RETRIES) {
                        cpus::add_retry(s);
                        kicks[rekicks] = s as u16;
                        rekicks += 1;
                    } else if slot.tries >= u32::from(MAX_RETRIES) + EXTRA_PATIENCE {
                        self.give_up(s);
                        continue;
                    }
                    let slot = &mut self.slots[s];
                    slot.tries += 1;
                    slot.deadline = now.saturating_add(budget << slot.tries);
                }
                _ => {}
            }
        }
        batch::send(self.apic, Batch::Init, &parks[..parked], |_, _| {});
        for s in parks[..parked].iter().map(|s| usize::from(*s)) {
            if cpus::state(s) == CpuState::Offline as u8 {
                self.complete(s, cpu::rdtsc());
                self.slots[s].phase = Phase::Offline;
                self.offline += 1;
            } else {
                // Never went offline: reset by the INIT anyway, and given up on.
                self.give_up(s);
            }
        }
        batch::send(self.apic, Batch::Kick, &kicks[..rekicks], |_, _| {});
    }

    /// Records the latency of the operation on `slot`, finished at `now`.
    fn complete(&mut self, slot: usize, now: u64) {
        if let Some(l) = self.latency.get_mut(self.done as usize) {
            *l = now.saturating_sub(self.slots[slot].start);
        }
        self.done += 1;
        self.inflight -= 1;
        crate::live::progress(self.done, 0);
    }

    /// Gives up on the AP of `slot`, ending its operation: INITs it (if it was still running,
    /// it stops), marks its record missing and leaves it out from now on.
    fn give_up(&mut self, slot: usize) {
        self.apic.park(&[cpus::apic_id(slot)], &mut [0]);
        cpus::set_state(slot, CpuState::Missing);
        self.slots[slot].phase = Phase::Failed;
        self.failed += 1;
        self.inflight -= 1;
    }

    /// Stops the readers, waits for a last grace period and checks that every work item handed
    /// out is in an inbox.
    fn audit(&mut self) {
        STOP.store(1, Ordering::SeqCst);
        for s in self.pool.iter().map(|s| usize::from(*s)) {
            let count = READERS[s].load(Ordering::SeqCst);
            self.snapshot[s] = if count % 2 == 1 { count } else { 0 };
        }
        let deadline = cpu::rdtsc().saturating_add(self.budget() << MAX_NUDGES);
        while !self.grace_period_over() {
            if cpu::rdtsc() >= deadline {
                // A reader that never leaves its critical section: its items cannot be
                // counted, and the AP is as good as lost.
                self.failed += 1;
                return;
            }
            core::hint::spin_loop();
        }
        let mut items = 0u64;
        for s in self.pool.iter().map(|s| usize::from(*s)) {
            let w = INBOX[s].load(Ordering::SeqCst);
            if w & CLOSED == 0 {
                items += u64::from(w & COUNT_MASK);
            }
        }
        // An AP given up on may have taken items with it: that is its failure, counted already.
        if self.failed == 0 && items != self.tokens as u64 {
            violation(ViolationKind::WorkLost, None, self.apic.id(), self.done);
        }
    }

    /// The median, 99th percentile and largest latency (nearest rank), 0 without operations.
    fn percentiles(&mut self) -> (u64, u64, u64) {
        let n = (self.done as usize).min(MAX_OPS);
        if n == 0 {
            return (0, 0, 0);
        }
        let l = &mut self.latency[..n];
        l.sort_unstable();
        let rank = |p: usize| l[(n * p).div_ceil(100).max(1) - 1];
        (rank(50), rank(99), l[n - 1])
    }
}
