//! `sipi.scenario=hotplug-torture`: random CPUs go offline and come online again, up to
//! `sipi.concurrency` operations in flight, while the online CPUs run reader work whose
//! invariants are checked all along (Linux's rcutorture TREE03 does the same to its hotplug
//! code: background/rcu-concurrent-cpu-online-2021.txt).
//!
//! # Reader work
//!
//! A fixed number of work items ([`tokens`]) circulate among the online APs. An AP holding
//! one runs a read-side critical section ([`reader`]): it reads the readers' online mask,
//! picks a random online CPU, does some work (a few microseconds, now and then a long delay as
//! rcutorture's readers do), and hands the item to the CPU it picked through that CPU's inbox.
//! An AP with an empty inbox sleeps until an item or a request to go offline arrives. Each AP's
//! reader counter is odd inside a critical section and even outside, which is all a grace
//! period needs to see.
//!
//! # Going offline and online
//!
//! The BSP ([`controller`]) takes an AP offline by clearing its bit in the online mask, waiting
//! for a grace period (every critical section that was running when the bit went is over:
//! each AP's counter was even or has moved since), and only then asking the AP to go offline.
//! The AP closes its inbox, hands the items still in it to other online CPUs, marks itself
//! offline and halts; the BSP INITs it into wait-for-SIPI. Bringing it online again is the
//! boot's path: STARTUP IPI, trampoline, the AP's Rust entry, which sets its mask bit.
//!
//! # Invariants
//!
//! - No item is ever handed to a closed (offline) inbox: a reader's hand-over is an atomic
//!   compare-and-swap that refuses a closed inbox and reports it as
//!   [`ViolationKind::HandedToOffline`] with the CPU and the operation that took it offline
//!   (then hands the item to another online CPU, so no work is lost).
//! - No critical section runs on a CPU whose record says offline
//!   ([`ViolationKind::RanOnOffline`]).
//! - At the end, once every reader is stopped and a last grace period has passed, the items in
//!   the inboxes add up to the number handed out ([`ViolationKind::WorkLost`]).
//!
//! The grace period is what keeps the first invariant: without it (`sipi.test_skip_barrier`)
//! a reader that read the mask before the bit went can hand its item to the AP after the AP
//! closed its inbox, and the check reports it.

mod controller;
mod reader;

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use firmware::cmdline::GuestOptions;
use firmware::report::{MAX_VIOLATIONS, Violation, ViolationKind};

use crate::cpus::{self, CAPACITY};
use crate::global::Global;
use crate::rng::Rng;

pub(crate) use controller::run;
pub(crate) use reader::ap;

/// Inbox bits 29:0: the items waiting.
const COUNT_MASK: u32 = (1 << 30) - 1;
/// Inbox bit 30: the BSP asks the AP to go offline.
const REQUEST: u32 = 1 << 30;
/// Inbox bit 31: the AP has gone offline; nothing may be handed to it.
const CLOSED: u32 = 1 << 31;

/// Most items in circulation: enough to keep several CPUs in critical sections at once, few
/// enough that the BSP keeps a share of the host's CPUs for its operations.
const MAX_TOKENS: usize = 8;

/// Per slot: the AP's inbox (items, [`REQUEST`], [`CLOSED`]).
static INBOX: [AtomicU32; CAPACITY] = [const { AtomicU32::new(0) }; CAPACITY];
/// Per slot: the AP's reader counter, odd inside a read-side critical section.
static READERS: [AtomicU32; CAPACITY] = [const { AtomicU32::new(0) }; CAPACITY];
/// Per slot: the operation that last took the AP offline (for violation reports).
static OFFLINE_OP: [AtomicU32; CAPACITY] = [const { AtomicU32::new(0) }; CAPACITY];
/// The readers' online mask, one bit per slot.
static MASK: [AtomicU64; CAPACITY / 64] = [const { AtomicU64::new(0) }; CAPACITY / 64];
/// Non-zero once the readers are to stop taking items (the final audit).
static STOP: AtomicU32 = AtomicU32::new(0);
/// The seed of every CPU's generator.
static SEED: AtomicU64 = AtomicU64::new(0);
/// The TSC frequency for the readers' delays.
static TSC_KHZ: AtomicU32 = AtomicU32::new(0);
/// Violations found (all of them; the first [`MAX_VIOLATIONS`] are logged).
static VIOLATIONS: AtomicU32 = AtomicU32::new(0);
/// The first violations, each entry written once by the CPU that claimed its index.
static LOG: Global<[Violation; MAX_VIOLATIONS as usize]> = Global::new(
    [Violation {
        op: 0,
        apic_id: 0,
        reader_apic_id: 0,
        kind: 0,
        tsc: 0,
    }; MAX_VIOLATIONS as usize],
);

/// Records the seed and TSC frequency for the APs (BSP only, before bringup).
pub(crate) fn prepare(options: &GuestOptions, tsc_khz: u32) {
    SEED.store(options.seed, Ordering::Relaxed);
    TSC_KHZ.store(tsc_khz, Ordering::Relaxed);
}

/// The number of items for `aps` APs in the torture.
fn tokens(aps: usize) -> usize {
    (aps / 2).clamp(1, MAX_TOKENS)
}

/// Sets `slot`'s bit in the online mask.
fn mask_set(slot: usize) {
    MASK[slot / 64].fetch_or(1 << (slot % 64), Ordering::SeqCst);
}

/// Clears `slot`'s bit in the online mask.
fn mask_clear(slot: usize) {
    MASK[slot / 64].fetch_and(!(1 << (slot % 64)), Ordering::SeqCst);
}

/// True if `slot`'s bit is set in the online mask.
fn mask_test(slot: usize) -> bool {
    MASK[slot / 64].load(Ordering::SeqCst) & (1 << (slot % 64)) != 0
}

/// A random slot among the bits set in the online mask (one pass, reservoir sampling), or None
/// if it is empty.
fn mask_pick(rng: &mut Rng) -> Option<usize> {
    let words = cpus::count().div_ceil(64).min(MASK.len());
    let mut seen = 0;
    let mut choice = None;
    for (w, word) in MASK[..words].iter().enumerate() {
        let mut bits = word.load(Ordering::SeqCst);
        while bits != 0 {
            let bit = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            seen += 1;
            if rng.below(seen) == 0 {
                choice = Some(w * 64 + bit);
            }
        }
    }
    choice
}

/// Records a violation of `kind` on the CPU of `slot` (None: no one CPU), found by the CPU with
/// APIC ID `reader`, blamed on operation `op`.
fn violation(kind: ViolationKind, slot: Option<usize>, reader: u32, op: u32) {
    let index = VIOLATIONS.fetch_add(1, Ordering::SeqCst) as usize;
    if index >= MAX_VIOLATIONS as usize {
        return;
    }
    let v = Violation {
        op,
        apic_id: slot.map_or(u32::MAX, cpus::apic_id),
        reader_apic_id: reader,
        kind: kind as u32,
        tsc: crate::cpu::rdtsc(),
    };
    // SAFETY: `index` was claimed by this CPU alone (the counter only grows), so no other CPU
    // writes this entry; the BSP reads the log only after the final grace period, when every
    // critical section that could write one is over.
    unsafe { (&raw mut (*LOG.get())[index]).write_volatile(v) };
}

/// The violations found, and the logged ones (BSP only, after the final grace period).
fn violations() -> (u32, &'static [Violation]) {
    let total = VIOLATIONS.load(Ordering::SeqCst);
    let logged = total.min(MAX_VIOLATIONS) as usize;
    // SAFETY: see `violation`: every entry below `logged` was written before the final grace
    // period ended, and none is written after it.
    (total, unsafe { &(&(*LOG.get()))[..logged] })
}
