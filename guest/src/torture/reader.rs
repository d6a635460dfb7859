//! The APs' side of hotplug-torture: reader work in read-side critical sections, and going
//! offline when the BSP asks (see the module documentation of [`super`]).

use core::sync::atomic::Ordering;

use firmware::report::{CpuState, ViolationKind};

use super::{
    CLOSED, COUNT_MASK, INBOX, OFFLINE_OP, READERS, REQUEST, SEED, STOP, TSC_KHZ, mask_pick,
    mask_set, violation,
};
use crate::apic::{Destination, Ipi, LocalApic};
use crate::cpus;
use crate::idt::vector;
use crate::rng::Rng;
use crate::supervisor;
use crate::tsc::Tsc;

/// Longest ordinary reader work, in microseconds (the work is uniform up to it).
const SHORT_WORK_MAX_US: u64 = 50;
/// One critical section in this many is a long one (rcutorture's readers delay now and then
/// for much longer than usual, to stretch grace periods and widen every race with them).
const LONG_WORK_ONE_IN: u64 = 16;
/// A long critical section's work, in microseconds.
const LONG_WORK_US: u64 = 2_000;
/// Hand-over attempts before an item is given up as lost (only a mask that stays empty, which
/// the BSP never allows, gets there).
const MAX_HANDOVER_TRIES: u32 = 1 << 16;

/// What one AP needs in its critical sections.
struct Reader {
    slot: usize,
    apic: LocalApic,
    tsc: Tsc,
    rng: Rng,
}

/// The AP's torture loop, once it is online: joins the online mask, then takes items from its
/// inbox and runs a critical section for each, sleeping while the inbox is empty, until the BSP
/// asks it to go offline. Never returns.
pub(crate) fn ap(slot: usize) -> ! {
    let mut r = Reader {
        slot,
        apic: LocalApic::current(),
        tsc: Tsc::new(TSC_KHZ.load(Ordering::Relaxed)),
        // A new stream each time the AP comes online: its reader counter has moved on since.
        rng: Rng::new(
            SEED.load(Ordering::Relaxed),
            slot as u64 | u64::from(READERS[slot].load(Ordering::Relaxed)) << 32,
        ),
    };
    mask_set(slot);
    let inbox = &INBOX[slot];
    loop {
        enter(slot);
        let w = inbox.load(Ordering::SeqCst);
        if w & REQUEST != 0 {
            r.go_offline();
        }
        if w & COUNT_MASK == 0 || STOP.load(Ordering::SeqCst) != 0 {
            leave(slot);
            supervisor::wait_while(inbox, w);
            continue;
        }
        if inbox
            .compare_exchange(w, w - 1, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            r.section();
        }
        leave(slot);
    }
}

/// Enters a read-side critical section on `slot` (the counter becomes odd). A full barrier:
/// the mask is read after the BSP can see the counter.
fn enter(slot: usize) {
    READERS[slot].fetch_add(1, Ordering::SeqCst);
}

/// Leaves the critical section (the counter becomes even), after every access in it.
fn leave(slot: usize) {
    READERS[slot].fetch_add(1, Ordering::SeqCst);
}

impl Reader {
    /// One critical section with one item: check that this CPU is online, pick an online CPU,
    /// work, hand the item over.
    fn section(&mut self) {
        if cpus::state(self.slot) != CpuState::Online as u8 {
            violation(
                ViolationKind::RanOnOffline,
                Some(self.slot),
                cpus::apic_id(self.slot),
                OFFLINE_OP[self.slot].load(Ordering::SeqCst),
            );
        }
        let target = mask_pick(&mut self.rng).unwrap_or(self.slot);
        let us = if self.rng.below(LONG_WORK_ONE_IN) == 0 {
            LONG_WORK_US
        } else {
            self.rng.below(SHORT_WORK_MAX_US + 1)
        };
        self.tsc.delay(us);
        self.hand_over(target);
    }

    /// Puts one item into `target`'s inbox, waking it if the inbox was empty. A closed inbox
    /// is a violation: the item goes to another online CPU instead.
    fn hand_over(&mut self, mut target: usize) {
        let mut reported = false;
        for _ in 0..MAX_HANDOVER_TRIES {
            let inbox = &INBOX[target];
            let w = inbox.load(Ordering::SeqCst);
            if w & CLOSED != 0 {
                if !reported {
                    reported = true;
                    violation(
                        ViolationKind::HandedToOffline,
                        Some(target),
                        cpus::apic_id(self.slot),
                        OFFLINE_OP[target].load(Ordering::SeqCst),
                    );
                }
                target = mask_pick(&mut self.rng).unwrap_or(self.slot);
                continue;
            }
            if inbox
                .compare_exchange(w, w + 1, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                if w & COUNT_MASK == 0 && target != self.slot {
                    self.apic.send(
                        Ipi::Fixed(vector::WAKE as u8),
                        Destination::ApicId(cpus::apic_id(target)),
                    );
                }
                return;
            }
        }
        violation(ViolationKind::WorkLost, None, cpus::apic_id(self.slot), 0);
    }

    /// Goes offline, inside the critical section the caller entered: closes the inbox, hands
    /// the items still in it to online CPUs, leaves the section, marks the record offline (the
    /// last store: the BSP INITs the AP once it sees it) and halts.
    fn go_offline(&mut self) -> ! {
        let w = INBOX[self.slot].swap(CLOSED, Ordering::SeqCst);
        for _ in 0..(w & COUNT_MASK) {
            let target = mask_pick(&mut self.rng).unwrap_or(self.slot);
            self.hand_over(target);
        }
        leave(self.slot);
        cpus::set_state(self.slot, CpuState::Offline);
        supervisor::halt()
    }
}
