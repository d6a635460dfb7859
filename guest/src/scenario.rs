//! What the guest does after bringup (`sipi.scenario`): taking the APs offline again
//! (`teardown`), and rounds of bringing them all up and taking them all down
//! (`reboot-cycles`, kexec-like).
//!
//! # Taking an AP offline
//!
//! An AP that has come online in a scenario other than `boot` does not halt for good: it sleeps
//! in [`supervisor::wait_while`] on its own request word until the BSP sets it and wakes it
//! with a [`vector::WAKE`] IPI. It then stamps `ack`, leaves the online set (its record's state
//! becomes [`CpuState::Offline`]), stamps `parked` as its last store and halts with interrupts
//! masked. The BSP, once it sees the `parked` stamp, stamps `init` and sends the AP INIT, which
//! puts it in KVM's wait-for-SIPI state: from there it comes online again through the same
//! STARTUP IPI and trampoline as at boot ([`crate::bringup::again`]; its TSS descriptor is made
//! available again before LTR, its stacks start from their tops).
//!
//! - **serial** (Linux before parallel kexec): ask one AP, wait until it has parked, INIT it,
//!   then the next.
//! - **parallel**: set every AP's request, wake them all with one broadcast IPI, wait at one
//!   sync point until every AP has parked, then INIT them all in one batched supervisor call.
//!
//! The BSP waits for `parked` with a deadline like bringup's ([`crate::bringup`]): restarted on
//! every AP that parks, doubled (and the wake-up sent again) when it passes with no progress,
//! given up after [`MAX_NUDGES`]. An AP that never parks is INITed anyway (INIT resets it
//! whatever it was doing) and counted in the report's status.
//!
//! The teardown stamps of every AP go to a [`TeardownRecord`] per slot, in the report's wire
//! layout; the report carries those of the last teardown.

use core::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use firmware::cmdline::{GuestOptions, Scenario, Teardown};
use firmware::report::{CpuState, Round, TeardownRecord};

use crate::apic::{Destination, Ipi, LocalApic};
use crate::batch::{self, Batch};
use crate::bringup::{self, DEADLINE_BASE_US, DEADLINE_PER_AP_US, DEADLINE_PER_CPU_US};
use crate::cpu;
use crate::cpus::{self, CAPACITY};
use crate::global::Global;
use crate::idt::vector;
use crate::supervisor;
use crate::tsc::Tsc;

/// Times the BSP wakes APs that have not parked again (each time twice as patient) before it
/// gives up on them.
const MAX_NUDGES: u32 = 3;

/// The scenario (set by the BSP before any AP runs, read by every AP once online).
static SCENARIO: AtomicU8 = AtomicU8::new(Scenario::Boot as u8);
/// Per slot: non-zero when the BSP asks that AP to go offline.
static REQUEST: [AtomicU32; CAPACITY] = [const { AtomicU32::new(0) }; CAPACITY];
/// Per slot: the AP's stamps in the last teardown.
static TEARDOWN: Global<[TeardownRecord; CAPACITY]> = Global::new(
    [TeardownRecord {
        apic_id: 0,
        flags: 0,
        request: 0,
        ack: 0,
        parked: 0,
        init: 0,
    }; CAPACITY],
);
/// The slots of the APs the scenario takes down and brings up (BSP only).
static ONLINE: Global<[u16; CAPACITY]> = Global::new([0; CAPACITY]);
/// The rounds of the scenario (BSP only).
static ROUNDS: Global<[Round; firmware::report::MAX_ROUNDS as usize]> = Global::new(
    [Round {
        up_cycles: 0,
        down_cycles: 0,
    }; firmware::report::MAX_ROUNDS as usize],
);

/// Records the scenario for the APs (BSP only, before bringup).
pub fn set(scenario: Scenario) {
    SCENARIO.store(scenario as u8, Ordering::Release);
}

/// True if online APs wait to be taken offline rather than halting for good.
pub fn keeps_aps() -> bool {
    SCENARIO.load(Ordering::Acquire) != Scenario::Boot as u8
}

/// A pointer to the teardown record of `slot`.
fn record(slot: usize) -> *mut TeardownRecord {
    assert!(slot < CAPACITY, "slot {slot} has no teardown record");
    // SAFETY: slot < CAPACITY: inside the array; only a raw pointer is made.
    unsafe { &raw mut (*TEARDOWN.get())[slot] }
}

/// The AP's side of the scenario, once it is online (see [`keeps_aps`]). Never returns.
pub fn ap(slot: usize) -> ! {
    if SCENARIO.load(Ordering::Acquire) == Scenario::HotplugTorture as u8 {
        crate::torture::ap(slot)
    }
    ap_wait_offline(slot)
}

/// The AP's side, once it is online: sleeps until asked to go offline, then leaves the online
/// set, stamps `parked` and halts until the BSP's INIT. Never returns.
fn ap_wait_offline(slot: usize) -> ! {
    let r = record(slot);
    while REQUEST[slot].load(Ordering::Acquire) == 0 {
        supervisor::wait_while(&REQUEST[slot], 0);
    }
    // SAFETY: `ack` and `parked` of this AP's own record are written only by this AP, with
    // volatile stores the BSP watches; the BSP reset them before setting the request.
    unsafe { (&raw mut (*r).ack).write_volatile(cpu::rdtsc()) };
    cpus::set_state(slot, CpuState::Offline);
    // SAFETY: as above. The last store before the halt (x86 keeps stores in order: a BSP that
    // sees it sees the state too).
    unsafe { (&raw mut (*r).parked).write_volatile(cpu::rdtsc()) };
    supervisor::halt()
}

/// The `parked` stamp of `slot`.
fn parked(slot: usize) -> bool {
    // SAFETY: an aligned u64 inside the record, written by the AP with a volatile store.
    unsafe { (&raw const (*record(slot)).parked).read_volatile() != 0 }
}

/// What one teardown did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Down {
    /// BSP TSC at the start.
    pub start: u64,
    /// BSP TSC once every AP was parked and INITed.
    pub end: u64,
    /// APs that never parked (INITed anyway).
    pub failed: u32,
}

/// The BSP's side: takes the APs of `slots` offline as `mode` says (see the module
/// documentation).
pub fn teardown(apic: LocalApic, tsc: Tsc, mode: Teardown, slots: &[u16]) -> Down {
    let start = cpu::rdtsc();
    for slot in slots.iter().map(|s| usize::from(*s)) {
        // SAFETY: the AP of `slot` is online and asleep (or on its way there): it writes its
        // record only after its request is set, below.
        unsafe {
            record(slot).write_volatile(TeardownRecord {
                apic_id: cpus::apic_id(slot),
                ..TeardownRecord::default()
            })
        };
    }
    let mut failed = 0;
    if slots.is_empty() {
        // No AP to take down: no wake-up broadcast, no INIT batch.
        return Down {
            start,
            end: cpu::rdtsc(),
            failed,
        };
    }
    match mode {
        Teardown::Serial => {
            for slot in slots.chunks(1) {
                request(slot[0]);
                apic.send(
                    Ipi::Fixed(vector::WAKE as u8),
                    Destination::ApicId(cpus::apic_id(usize::from(slot[0]))),
                );
                failed += wait_parked(apic, tsc, slot);
                park(apic, slot);
            }
        }
        Teardown::Parallel => {
            for slot in slots {
                request(*slot);
            }
            apic.send(
                Ipi::Fixed(vector::WAKE as u8),
                Destination::AllExcludingSelf,
            );
            failed = wait_parked(apic, tsc, slots);
            park(apic, slots);
        }
    }
    Down {
        start,
        end: cpu::rdtsc(),
        failed,
    }
}

/// Stamps `request` for the AP of `slot` and sets its request word.
fn request(slot: u16) {
    let slot = usize::from(slot);
    // SAFETY: `request` is written only by the BSP (the caller), before the AP sees its request.
    unsafe { (&raw mut (*record(slot)).request).write_volatile(cpu::rdtsc()) };
    REQUEST[slot].store(1, Ordering::Release);
}

/// Waits until every AP of `slots` has parked, waking the others again at each deadline that
/// passes with no progress; returns how many never parked.
fn wait_parked(apic: LocalApic, tsc: Tsc, slots: &[u16]) -> u32 {
    let mut last = usize::MAX;
    let mut deadline = 0;
    let mut nudges = 0;
    let mut patience = 1;
    loop {
        let done = slots.iter().filter(|s| parked(usize::from(**s))).count();
        if done == slots.len() {
            return 0;
        }
        let outstanding = (slots.len() - done) as u64;
        let budget = tsc.cycles(
            DEADLINE_BASE_US
                + DEADLINE_PER_AP_US * outstanding
                + DEADLINE_PER_CPU_US * cpus::count() as u64,
        ) * patience;
        let now = cpu::rdtsc();
        if done != last {
            last = done;
            deadline = now.saturating_add(budget);
        } else if now >= deadline {
            if nudges == MAX_NUDGES {
                return outstanding as u32;
            }
            nudges += 1;
            patience *= 2;
            for slot in slots.iter().filter(|s| !parked(usize::from(**s))) {
                apic.send(
                    Ipi::Fixed(vector::WAKE as u8),
                    Destination::ApicId(cpus::apic_id(usize::from(*slot))),
                );
            }
            deadline = cpu::rdtsc().saturating_add(budget * 2);
        }
        core::hint::spin_loop();
    }
}

/// INITs the APs of `slots` in one batch (parking them in wait-for-SIPI), stamps `init`, and
/// clears their requests for the next time they come online.
fn park(apic: LocalApic, slots: &[u16]) {
    batch::send(apic, Batch::Init, slots, |slot, tsc| {
        // SAFETY: `init` is written only by the BSP (the caller); the AP is reset now.
        unsafe { (&raw mut (*record(slot)).init).write_volatile(tsc) };
        REQUEST[slot].store(0, Ordering::Release);
    });
}

/// What the whole scenario did, for the report.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    /// Rounds completed.
    pub rounds: u32,
    /// Offline and online transitions.
    pub ops: u32,
    /// The last teardown.
    pub last: Down,
    /// APs that failed to park, or to come online again, over every round.
    pub failed: u32,
    /// APs taken down in the last teardown: the slots of the teardown records to report.
    pub slots: &'static [u16],
}

/// Runs the scenario of `options` after bringup: of `started`, the slots that came online take
/// part.
/// `up_cycles` is the boot bringup's BSP time (round 1's "up"). `stamp_bringup` is called with
/// the BSP's BringupStart and AllOnline stamps of each later bringup.
pub fn run(
    options: &GuestOptions,
    apic: LocalApic,
    tsc: Tsc,
    started: &[u16],
    up_cycles: u64,
    mut stamp_bringup: impl FnMut(u64, u64),
) -> Outcome {
    let rounds_wanted = match options.scenario {
        Scenario::Boot => return Outcome::default(),
        Scenario::Teardown => 1,
        Scenario::RebootCycles => options.cycles.clamp(1, firmware::report::MAX_ROUNDS),
        // Run by crate::torture instead.
        Scenario::HotplugTorture => return Outcome::default(),
    };
    // SAFETY: only the BSP uses ROUNDS, and only here and in `rounds`.
    let rounds = unsafe { &mut *ROUNDS.get() };
    // SAFETY: only the BSP uses ONLINE, and only here.
    let buf = unsafe { &mut *ONLINE.get() };
    let mut n = 0;
    for slot in started {
        if cpus::state(usize::from(*slot)) == CpuState::Online as u8 {
            buf[n] = *slot;
            n += 1;
        }
    }
    let online: &'static [u16] = &buf[..n];
    let mut o = Outcome {
        slots: online,
        ..Outcome::default()
    };
    let mut up = up_cycles;
    for round in 0..rounds_wanted {
        if round > 0 {
            let begin = cpu::rdtsc();
            let again = bringup::again(options, apic, tsc, online);
            let end = cpu::rdtsc();
            stamp_bringup(begin, end);
            up = end - begin;
            o.failed += again.missing;
            o.ops += online.len() as u32;
        }
        let down = teardown(apic, tsc, options.teardown, online);
        o.failed += down.failed;
        o.ops += online.len() as u32;
        rounds[round as usize] = Round {
            up_cycles: up,
            down_cycles: down.end - down.start,
        };
        o.last = down;
        o.rounds = round + 1;
        crate::live::progress(o.ops, o.rounds);
    }
    o
}

/// The rounds recorded by [`run`].
pub fn rounds(n: u32) -> &'static [Round] {
    // SAFETY: only the BSP uses ROUNDS; `run` is over.
    unsafe { &(&(*ROUNDS.get()))[..n as usize] }
}

/// A copy of the teardown record of `slot`.
pub fn teardown_record(slot: usize) -> TeardownRecord {
    // SAFETY: inside the array; the AP is parked, nothing writes the record any more.
    unsafe { record(slot).read_volatile() }
}
