//! Taking APs offline again (`sipi.teardown`), used by the `teardown` and `reboot-cycles`
//! scenarios ([`crate::scenario`]): the request words and teardown records that the BSP and
//! the APs share, the AP's side ([`ap`]) and the BSP's side ([`run`]).
//!
//! # Taking an AP offline
//!
//! An AP that has come online in such a scenario does not halt for good: it sleeps in
//! [`supervisor::wait_while`] on its own request word until the BSP sets it and wakes it with a
//! [`vector::WAKE`] IPI. It then stamps `ack`, leaves the online set (its record's state becomes
//! [`CpuState::Offline`]), stamps `parked` as its last store and halts with interrupts masked.
//! The BSP, once it sees the `parked` stamp, stamps `init` and sends the AP INIT, which puts it
//! in KVM's wait-for-SIPI state: from there it comes online again through the same STARTUP IPI
//! and trampoline as at boot ([`crate::bringup::again`]; its TSS descriptor is made available
//! again before LTR, its stacks start from their tops).
//!
//! - **serial** (Linux before parallel kexec): ask one AP, wait until it has parked, INIT it,
//!   then the next.
//! - **parallel**: set every AP's request, wake them all with one broadcast IPI, wait at one
//!   sync point until every AP has parked, then INIT them all in one batched supervisor call.
//!
//! The BSP waits for `parked` with a deadline like bringup's ([`crate::deadline`]): restarted on
//! every AP that parks, doubled (and the wake-up sent again) when it passes with no progress,
//! given up after [`MAX_NUDGES`]. An AP that never parks is INITed anyway (INIT resets it
//! whatever it was doing) and counted in the report's status.
//!
//! The teardown stamps of every AP go to a [`TeardownRecord`] per slot, in the report's wire
//! layout; the report carries those of the last teardown.

use core::sync::atomic::{AtomicU32, Ordering};

use firmware::cmdline::Teardown;
use firmware::report::{CpuState, TeardownRecord};

use crate::apic::{Destination, Ipi, LocalApic};
use crate::batch::{self, Batch};
use crate::cpu;
use crate::cpus::{self, CAPACITY};
use crate::deadline::{self, MAX_NUDGES};
use crate::global::Global;
use crate::idt::vector;
use crate::supervisor;
use crate::tsc::Tsc;

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

/// A pointer to the teardown record of `slot`.
fn record(slot: usize) -> *mut TeardownRecord {
    assert!(slot < CAPACITY, "slot {slot} has no teardown record");
    // SAFETY: slot < CAPACITY: inside the array; only a raw pointer is made.
    unsafe { &raw mut (*TEARDOWN.get())[slot] }
}

/// The AP's side, once it is online: sleeps until asked to go offline, then leaves the online
/// set, stamps `parked` and halts until the BSP's INIT. Never returns.
pub(crate) fn ap(slot: usize) -> ! {
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
pub(crate) struct Down {
    /// BSP TSC at the start.
    pub(crate) start: u64,
    /// BSP TSC once every AP was parked and INITed.
    pub(crate) end: u64,
    /// APs that never parked (INITed anyway).
    pub(crate) failed: u32,
}

/// The BSP's side: takes the APs of `slots` offline as `mode` says (see the module
/// documentation).
pub(crate) fn run(apic: LocalApic, tsc: Tsc, mode: Teardown, slots: &[u16]) -> Down {
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
        let outstanding = slots.len() - done;
        let budget = tsc.cycles(deadline::budget_us(outstanding)) * patience;
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

/// A copy of the teardown record of `slot`.
pub(crate) fn snapshot(slot: usize) -> TeardownRecord {
    // SAFETY: inside the array; the AP is parked, nothing writes the record any more.
    unsafe { record(slot).read_volatile() }
}
