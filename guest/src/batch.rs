//! IPIs to a list of APs named by their slots, sent in one batch (one supervisor call in
//! x2APIC mode, see [`LocalApic::kick`] and [`LocalApic::park`]): the BSP's kicks at bringup
//! and in hotplug-torture, and its INITs that park APs at teardown.

use crate::apic::LocalApic;
use crate::cpus::{self, CAPACITY};
use crate::global::Global;

/// What a batch sends to each AP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Batch {
    /// INIT, STARTUP, STARTUP: start the AP.
    Kick,
    /// INIT: park the AP in wait-for-SIPI.
    Init,
}

/// The batch's APIC IDs and the TSC before each INIT (BSP only).
static IDS: Global<[u32; CAPACITY]> = Global::new([0; CAPACITY]);
static STAMPS: Global<[u64; CAPACITY]> = Global::new([0; CAPACITY]);

/// Sends `batch` to the APs of `slots`, in order, then calls `each` with every slot and the
/// TSC read just before its INIT. BSP only.
pub(crate) fn send(apic: LocalApic, batch: Batch, slots: &[u16], mut each: impl FnMut(usize, u64)) {
    if slots.is_empty() {
        return;
    }
    // SAFETY: only the BSP uses the scratch arrays, and only inside this call (`each` cannot
    // reach them).
    let (ids, stamps) = unsafe { (&mut *IDS.get(), &mut *STAMPS.get()) };
    let (ids, stamps) = (&mut ids[..slots.len()], &mut stamps[..slots.len()]);
    for (id, slot) in ids.iter_mut().zip(slots) {
        *id = cpus::apic_id(usize::from(*slot));
    }
    match batch {
        Batch::Kick => apic.kick(ids, stamps),
        Batch::Init => apic.park(ids, stamps),
    }
    for (slot, tsc) in slots.iter().zip(stamps.iter()) {
        each(usize::from(*slot), *tsc);
    }
}
