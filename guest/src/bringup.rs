//! AP bringup, run by the BSP: which APs to start, how to kick them (`sipi.bringup`,
//! `sipi.kick`, `sipi.init_delay_us`), how long to wait for them, when to kick again, and what
//! to report.
//!
//! - **serial** (Linux before 6.5): for each AP, stamp Kick, INIT, wait `init_delay_us`,
//!   STARTUP, STARTUP, then wait until it is online before the next.
//! - **parallel** (Linux 6.5+): kick every AP without waiting, per AP (`per-cpu`) or with the
//!   all-excluding-self shorthand once (`broadcast`), then wait for all. Each AP finds its own
//!   slot by its APIC ID (see [`crate::trampoline`]), so the BSP hands nothing to APs one at a
//!   time.
//! - **floor**: broadcast INIT/STARTUP to the floor trampoline, which only stamps its first
//!   instruction and sets a present flag in real mode: the lower bound for the others.
//! - **none**: the APs stay listed, not started.
//!
//! With a TSC check (`sipi.tsc_sync`, see [`crate::tsc_sync`]; not with floor bringup, whose
//! APs never run the kernel), each AP takes part between its per-CPU init and its online mark.
//! **serial**: while the BSP waits for APs to come online, each round it runs the turn of the
//! first AP (in MADT order) that asks for one. **parallel**: the BSP first waits until every AP
//! has arrived at the test (the same deadlines and retries), opens it, then waits for those APs
//! to come online, waking them again whenever a deadline passes.
//!
//! APs started: those the MADT marks enabled (online-capable ones are left for a later hot-add,
//! as ACPI intends), other than the BSP, whose APIC ID the slot map covers and the BSP's APIC
//! mode can address, with room for their stacks. Any other enabled AP is reported missing
//! without a kick.
//!
//! # Deadline and retries
//!
//! An AP "calls in" when its Trampoline stamp appears (floor: its present flag). While APs are
//! outstanding the BSP keeps one deadline, restarted whenever any AP calls in or comes online: a
//! base, plus a term per outstanding AP, plus a term per CPU in the VM (the figures are in
//! [`crate::deadline`], shared with teardown and hotplug-torture; what they are sized from:
//! docs/host.md, "Bringup deadlines"). On this project's hosts APs share two cores: with hundreds
//! in flight one may wait a long time for its first instruction while the others progress, hence
//! the term per AP in flight, and progress postpones the deadline. And the VMM releases every vCPU
//! thread at once, so the first APs kicked compete with the others' first KVM_RUN, which delays
//! them in proportion to the vCPU count: hence the term per CPU. The base is twice the longest gap
//! without progress seen on a quiet host with no AP lost. Other work on the host's two cores can
//! stall the VM for longer: a re-kick it causes only re-INITs an AP that had not called in yet
//! (counted in `retries`), and only eight deadlines of no progress at all make an AP missing.
//!
//! When the deadline passes with no progress, every AP that has not called in is kicked again
//! (INIT, STARTUP, STARTUP; one batch for all of them), at most [`MAX_RETRIES`] times each, counted
//! in its record's `retries`, and the next deadline is twice as patient as the last. An AP that has
//! called in is never sent INIT again. When no AP is left to kick again, the BSP waits one last,
//! most patient deadline (8x) and then gives up: every AP not online is reported missing with the
//! last phase it reached, and the report's status is the number of missing CPUs. A lost AP costs 15
//! deadlines (what that comes to: docs/host.md, "Bringup deadlines").
//!
//! Kicks do get lost on KVM: with more than 256 vCPUs whose higher APIC IDs are still in xAPIC
//! mode (not yet started), KVM's physical APIC map may give APIC ID `n` < 256 to the vCPU whose
//! 8-bit xAPIC ID aliases it (`n + 256k`), depending on the order the VMM created the vCPUs in;
//! the INIT/SIPI meant for `n` then starts the other vCPU, and `n` waits for a re-kick (see
//! guest/README.md).
//!
//! Nothing is printed in here: the whole of [`run`] is the timed bringup window.

use firmware::cmdline::{Bringup, GuestOptions, Kick, TscSync};
use firmware::layout::{
    AP_FLOOR_PRESENT_OFFSET, AP_FLOOR_STAMPS_OFFSET, AP_FLOOR_TABLE_ADDR, VCPUS_ALL_READY,
};
use firmware::report::{ApPhase, CPU_FLAG_BSP, CpuState, TscSyncSummary};

use crate::apic::{Destination, Ipi, LocalApic, Mode};
use crate::batch::{self, Batch};
use crate::bootinfo::BootInfo;
use crate::cpu;
use crate::cpus::{self, APIC_ID_LIMIT, CAPACITY};
use crate::deadline::{self, MAX_RETRIES};
use crate::global::Global;
use crate::percpu;
use crate::ready;
use crate::trampoline::{self, Trampoline};
use crate::tsc::Tsc;
use crate::tsc_sync;

/// The deadline's multiplier before the BSP gives up: the most patient of the retry rounds.
const FINAL_PATIENCE: u64 = 1 << MAX_RETRIES;

/// What bringup achieved, for the summary line and the report's status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// CPUs online, the BSP included.
    pub(crate) online: u32,
    /// CPUs that should have come online and did not.
    pub(crate) missing: u32,
    /// CPUs listed but not started (online-capable only, or bringup `none`).
    pub(crate) listed: u32,
    /// The TSC check that ran (none with floor bringup, whose APs never run the kernel).
    pub(crate) tsc_sync: TscSync,
    /// Its result.
    pub(crate) tsc: TscSyncSummary,
    /// The slots of the APs that were started, in MADT order.
    pub(crate) started: &'static [u16],
}

/// The slots of the APs being started, in MADT order (BSP only).
static STARTING: Global<[u16; CAPACITY]> = Global::new([0; CAPACITY]);
/// The slots of the APs that arrived at the parallel TSC test (BSP only).
static ARRIVED: Global<[u16; CAPACITY]> = Global::new([0; CAPACITY]);

/// Brings the APs up as `options` say, with the BSP's enabled local APIC `apic`, runs the TSC
/// check between their per-CPU init and online (`sipi.tsc_sync`, see [`crate::tsc_sync`]), and
/// settles every record's state and last phase. `bsp_slot` is the BSP's record.
pub(crate) fn run(
    options: &GuestOptions,
    apic: LocalApic,
    tsc: Tsc,
    handoff: &BootInfo,
    bsp_slot: usize,
) -> Outcome {
    let floor = options.bringup == Bringup::Floor;
    let lost = match options.lose_apic_id {
        0 => None,
        id => Some(id),
    };
    let sync = if floor {
        TscSync::None
    } else {
        options.tsc_sync
    };
    tsc_sync::prepare(sync, tsc, bsp_slot, options.test_tsc_skew);
    if options.early_start {
        ready::expect_early_start();
    }
    let plan = Plan {
        apic,
        tsc,
        init_delay_us: u64::from(options.init_delay_us),
        probe: if floor { Probe::Floor } else { Probe::Full },
        sync,
    };
    let mut started: &'static [u16] = &[];
    if options.bringup != Bringup::None {
        let starting = plan.choose(handoff, lost);
        started = starting;
        if !starting.is_empty() {
            // With the parallel TSC test, the APs first gather, then all go online together.
            let goal = if sync == TscSync::Parallel {
                Goal::Arrived
            } else {
                Goal::Online
            };
            if floor {
                for slot in starting {
                    clear_floor_entry(cpus::apic_id(usize::from(*slot)));
                }
                trampoline::install(Trampoline::Floor { lost_apic_id: lost });
                ready::wait_for(VCPUS_ALL_READY);
                plan.broadcast(starting);
            } else {
                trampoline::install(Trampoline::Full {
                    x2apic: apic.mode() == Mode::X2Apic,
                });
                match (options.bringup, options.kick) {
                    (Bringup::Serial, _) => {
                        for slot in starting.chunks(1) {
                            ready::wait_for(cpus::apic_id(usize::from(slot[0])));
                            plan.kick_each(slot, true);
                            plan.wait(slot, goal);
                        }
                    }
                    (_, Kick::PerCpu) => plan.kick_when_ready(starting),
                    (_, Kick::Broadcast) => {
                        ready::wait_for(VCPUS_ALL_READY);
                        plan.broadcast(starting);
                    }
                }
            }
            if options.bringup != Bringup::Serial {
                plan.wait(starting, goal);
            }
            if sync == TscSync::Parallel {
                let arrived = arrived(starting);
                tsc_sync::open(apic);
                plan.wait(arrived, Goal::Online);
            }
            plan.settle(starting);
        }
    }
    let tsc_result = tsc_sync::finish(started);
    Outcome {
        tsc_sync: sync,
        tsc: tsc_result,
        started,
        ..count()
    }
}

/// Brings the APs of `slots`, parked in wait-for-SIPI after a teardown, online again through
/// the same kicks, trampoline, deadlines and retries as at boot (`options`' strategy and kick
/// style; no TSC check), and settles their records. Returns the outcome over every record.
pub(crate) fn again(options: &GuestOptions, apic: LocalApic, tsc: Tsc, slots: &[u16]) -> Outcome {
    for slot in slots {
        cpus::reset_for_online(usize::from(*slot));
    }
    let plan = Plan {
        apic,
        tsc,
        init_delay_us: u64::from(options.init_delay_us),
        probe: Probe::Full,
        sync: TscSync::None,
    };
    match (options.bringup, options.kick) {
        (Bringup::Serial, _) => {
            for slot in slots.chunks(1) {
                plan.kick_each(slot, true);
                plan.wait(slot, Goal::Online);
            }
        }
        (_, Kick::PerCpu) => {
            plan.kick_each(slots, true);
            plan.wait(slots, Goal::Online);
        }
        (_, Kick::Broadcast) => {
            plan.broadcast(slots);
            plan.wait(slots, Goal::Online);
        }
    }
    plan.settle(slots);
    count()
}

/// The APs of `slots` that arrived at the parallel TSC test, into [`ARRIVED`] (BSP only).
fn arrived(slots: &[u16]) -> &'static [u16] {
    // SAFETY: only the BSP uses ARRIVED, and only here and in the wait that follows.
    let arrived = unsafe { &mut *ARRIVED.get() };
    let mut n = 0;
    for slot in slots {
        if tsc_sync::arrived(usize::from(*slot)) {
            arrived[n] = *slot;
            n += 1;
        }
    }
    &arrived[..n]
}

/// What [`Plan::wait`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    /// Every AP online (with the serial TSC check, the BSP runs each AP's turn meanwhile).
    Online,
    /// Every AP at the parallel TSC test (or online).
    Arrived,
}

/// How the BSP sees an AP's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// The record: Trampoline stamp (called in), state (online).
    Full,
    /// The floor table's present flag (called in and online at once).
    Floor,
}

impl Probe {
    /// (called in, online) for the AP of `slot`.
    fn check(self, slot: usize) -> (bool, bool) {
        match self {
            Self::Full => {
                let online = cpus::state(slot) == CpuState::Online as u8;
                (
                    online || cpus::stamp(slot, ApPhase::Trampoline) != 0,
                    online,
                )
            }
            Self::Floor => {
                let present = floor_present(cpus::apic_id(slot));
                (present, present)
            }
        }
    }
}

/// One bringup's settings and the steps that use them.
struct Plan {
    apic: LocalApic,
    tsc: Tsc,
    init_delay_us: u64,
    probe: Probe,
    sync: TscSync,
}

impl Plan {
    /// Picks the APs to start and prepares them (per-CPU headers, slot map), marks the enabled
    /// APs that cannot be started missing, and returns the slots to start.
    fn choose(&self, handoff: &BootInfo, lost: Option<u32>) -> &'static [u16] {
        let floor = self.probe == Probe::Floor;
        let count = cpus::count();
        let stacks = if floor {
            None
        } else {
            Some(percpu::place_stacks(handoff.memory_map(), count))
        };
        // The floor trampoline reads its APIC ID from CPUID leaf 0xB (asked once, lazily: a
        // CPUID at CPL 3 is a VM exit).
        let mut has_leaf_b = None;
        // SAFETY: only the BSP uses STARTING, and only from here on in this bringup.
        let starting = unsafe { &mut *STARTING.get() };
        let mut n = 0;
        for slot in 0..count {
            let r = cpus::snapshot(slot);
            if r.flags & CPU_FLAG_BSP != 0 || !cpus::enabled(slot) {
                continue;
            }
            let startable = r.apic_id < APIC_ID_LIMIT
                && self.apic.can_address(r.apic_id)
                && stacks.is_none_or(|s| s.covers(slot))
                && (!floor
                    || *has_leaf_b.get_or_insert_with(|| {
                        cpu::max_basic_leaf() >= cpu::cpuid::LEAF_EXT_TOPOLOGY
                    }));
            if !startable {
                cpus::set_state(slot, CpuState::Missing);
                continue;
            }
            if let Some(stacks) = &stacks {
                percpu::prepare(slot, stacks, trampoline::user_entry());
                if lost != Some(r.apic_id) {
                    cpus::publish_slot(r.apic_id, slot);
                }
            }
            starting[n] = slot as u16;
            n += 1;
        }
        &starting[..n]
    }

    /// Kicks the APs of `slots` one by one: INIT, STARTUP, STARTUP each; with
    /// `sipi.init_delay_us`, a TSC busy-wait between INIT and the STARTUPs. `stamp` records the
    /// TSC before each INIT as the AP's Kick stamp (the first kick; not the retries).
    fn kick_each(&self, slots: &[u16], stamp: bool) {
        if self.init_delay_us == 0 {
            // One batch: one supervisor call in x2APIC mode.
            batch::send(self.apic, Batch::Kick, slots, |slot, tsc| {
                if stamp {
                    cpus::set_stamp(slot, ApPhase::Kick, tsc);
                }
            });
            return;
        }
        for slot in slots.iter().map(|s| usize::from(*s)) {
            let dest = Destination::ApicId(cpus::apic_id(slot));
            if stamp {
                cpus::set_stamp(slot, ApPhase::Kick, cpu::rdtsc());
            }
            self.apic.send(Ipi::Init, dest);
            self.tsc.delay(self.init_delay_us);
            self.apic.send(Ipi::Startup, dest);
            self.apic.send(Ipi::Startup, dest);
        }
    }

    /// Kicks the APs of `slots` (in APIC ID order) as their vCPUs become ready: each batch is
    /// every AP the VMM has readied since the last, so with every vCPU ready at once it is one
    /// batch, as [`Plan::kick_each`] alone would send.
    fn kick_when_ready(&self, slots: &[u16]) {
        let mut rest = slots;
        while let Some(first) = rest.first() {
            ready::wait_for(cpus::apic_id(usize::from(*first)));
            let n = rest
                .iter()
                .take_while(|s| ready::known_ready(cpus::apic_id(usize::from(**s))))
                .count()
                .max(1);
            let (now, later) = rest.split_at(n);
            self.kick_each(now, true);
            rest = later;
        }
    }

    /// Kicks every AP at once with the all-excluding-self shorthand: INIT, the delay, STARTUP,
    /// STARTUP. Every AP in `slots` gets the same Kick stamp, taken just before the INIT.
    fn broadcast(&self, slots: &[u16]) {
        let kick = if self.init_delay_us == 0 {
            self.apic.kick_all_but_self()
        } else {
            let kick = cpu::rdtsc();
            self.apic.send(Ipi::Init, Destination::AllExcludingSelf);
            self.tsc.delay(self.init_delay_us);
            self.apic.send(Ipi::Startup, Destination::AllExcludingSelf);
            self.apic.send(Ipi::Startup, Destination::AllExcludingSelf);
            kick
        };
        for slot in slots {
            cpus::set_stamp(usize::from(*slot), ApPhase::Kick, kick);
        }
    }

    /// Waits until every AP of `slots` has reached `goal`, kicking again the ones that do not
    /// call in, and returns when all have or the BSP gives up (see the module documentation).
    /// With the serial TSC check and goal [`Goal::Online`], runs the turn of the first AP that
    /// waits for one on every round; with the parallel one, wakes the test's APs again when a
    /// deadline passes.
    fn wait(&self, slots: &[u16], goal: Goal) {
        let serve = goal == Goal::Online && self.sync == TscSync::Serial;
        let mut last = None;
        let mut deadline = 0;
        let mut patience = 1;
        loop {
            let (mut called_in, mut ready) = (0, 0);
            let mut turn = None;
            for slot in slots.iter().map(|s| usize::from(*s)) {
                let (c, online) = self.probe.check(slot);
                called_in += usize::from(c);
                ready += usize::from(online || (goal == Goal::Arrived && tsc_sync::arrived(slot)));
                if serve && !online && turn.is_none() && tsc_sync::wants_turn(slot) {
                    turn = Some(slot);
                }
            }
            if ready == slots.len() {
                return;
            }
            if let Some(slot) = turn {
                tsc_sync::serial_turn(slot, self.apic, self.budget(1));
            }
            let now = cpu::rdtsc();
            let outstanding = slots.len() - ready;
            if last != Some((called_in, ready)) {
                last = Some((called_in, ready));
                deadline = now.saturating_add(self.budget(outstanding) * patience);
            } else if now >= deadline {
                if goal == Goal::Online {
                    tsc_sync::nudge(self.apic);
                }
                if self.kick_stragglers(slots) > 0 {
                    patience = (patience * 2).min(FINAL_PATIENCE);
                } else if patience < FINAL_PATIENCE {
                    patience = FINAL_PATIENCE;
                } else {
                    return;
                }
                deadline = cpu::rdtsc().saturating_add(self.budget(outstanding) * patience);
            }
            core::hint::spin_loop();
        }
    }

    /// The deadline, in TSC cycles, for `outstanding` APs at the least patience.
    fn budget(&self, outstanding: usize) -> u64 {
        self.tsc
            .cycles(deadline::budget_us(outstanding) + self.init_delay_us)
    }

    /// Kicks again, in one batch, every AP of `slots` that has not called in and has retries
    /// left; returns how many.
    fn kick_stragglers(&self, slots: &[u16]) -> usize {
        // SAFETY: only the BSP uses STRAGGLERS, and only here.
        let stragglers = unsafe { &mut *STRAGGLERS.get() };
        let mut n = 0;
        for slot in slots {
            let s = usize::from(*slot);
            if !self.probe.check(s).0 && cpus::retries(s) < MAX_RETRIES {
                cpus::add_retry(s);
                stragglers[n] = *slot;
                n += 1;
            }
        }
        self.kick_each(&stragglers[..n], false);
        n
    }

    /// After the wait: APs not online are missing; floor APs get their stamps from the floor
    /// table.
    fn settle(&self, slots: &[u16]) {
        for slot in slots.iter().map(|s| usize::from(*s)) {
            let id = cpus::apic_id(slot);
            if self.probe == Probe::Floor && floor_present(id) {
                // The floor AP stamps only its first instruction; it is online from there.
                let tsc = floor_stamp(id);
                cpus::set_stamp(slot, ApPhase::Trampoline, tsc);
                cpus::set_stamp(slot, ApPhase::Online, tsc);
                cpus::set_state(slot, CpuState::Online);
            } else if cpus::state(slot) != CpuState::Online as u8 {
                cpus::set_state(slot, CpuState::Missing);
            }
        }
    }
}

/// Scratch for [`Plan::kick_stragglers`] (BSP only).
static STRAGGLERS: Global<[u16; CAPACITY]> = Global::new([0; CAPACITY]);

/// Settles every record's last phase and counts the states.
fn count() -> Outcome {
    let mut o = Outcome::default();
    for slot in 0..cpus::count() {
        cpus::settle_last_phase(slot);
        match cpus::state(slot) {
            s if s == CpuState::Online as u8 => o.online += 1,
            s if s == CpuState::Missing as u8 => o.missing += 1,
            s if s == CpuState::Offline as u8 => {}
            _ => o.listed += 1,
        }
    }
    o
}

/// Zeroes the floor-table entries of `apic_id` before its AP is kicked (low RAM may hold
/// anything). Only the entries of APs being started are cleared: every page touched for the
/// first time costs a VM exit here.
fn clear_floor_entry(apic_id: u32) {
    assert!(apic_id < APIC_ID_LIMIT);
    let id = u64::from(apic_id);
    // SAFETY: both entries are inside the floor table (apic_id below its entry count), RAM
    // reserved for this use below 1 MiB (firmware::layout), identity-mapped and outside the
    // kernel image; no AP writes them before the kick that follows.
    unsafe {
        ((AP_FLOOR_TABLE_ADDR + AP_FLOOR_STAMPS_OFFSET + 8 * id) as *mut u64).write_volatile(0);
        ((AP_FLOOR_TABLE_ADDR + AP_FLOOR_PRESENT_OFFSET + id) as *mut u8).write_volatile(0);
    }
}

/// True if the floor AP with `apic_id` has set its present flag.
fn floor_present(apic_id: u32) -> bool {
    assert!(apic_id < APIC_ID_LIMIT);
    let addr = AP_FLOOR_TABLE_ADDR + AP_FLOOR_PRESENT_OFFSET + u64::from(apic_id);
    // SAFETY: inside the floor table (apic_id below its entry count); the AP writes the byte
    // in real mode, so it is read with a volatile load.
    unsafe { (addr as *const u8).read_volatile() != 0 }
}

/// The floor AP's first-instruction TSC (read once its present flag is set).
fn floor_stamp(apic_id: u32) -> u64 {
    assert!(apic_id < APIC_ID_LIMIT);
    let addr = AP_FLOOR_TABLE_ADDR + AP_FLOOR_STAMPS_OFFSET + 8 * u64::from(apic_id);
    // SAFETY: an aligned u64 inside the floor table; the AP wrote it before its present flag
    // (x86 keeps stores in order), so it is complete.
    unsafe { (addr as *const u64).read_volatile() }
}
