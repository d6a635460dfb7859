//! The exits to the VMM inside the guest's timed windows, counted per vCPU: every port I/O
//! and MMIO exit a vCPU makes from its first KVM_RUN until the guest's first report doorbell
//! (the doorbell's own exit included). sipi's guest promises none but the doorbell: it writes
//! only to memory until then ([`crate::report::measurement`] checks the counts). One relaxed
//! atomic add per exit, on a counter of the exiting vCPU's own.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Per-vCPU counts of the exits before the report doorbell.
#[derive(Debug)]
pub(super) struct WindowExits {
    /// By vCPU index.
    exits: Box<[AtomicU32]>,
    /// Set at the first report doorbell: later exits are outside the window.
    closed: AtomicBool,
}

impl WindowExits {
    /// Counters for `vcpus` vCPUs, the window open.
    pub(super) fn new(vcpus: u32) -> Self {
        Self {
            exits: (0..vcpus).map(|_| AtomicU32::new(0)).collect(),
            closed: AtomicBool::new(false),
        }
    }

    /// vCPU `vcpu` exited to the VMM.
    pub(super) fn exit(&self, vcpu: u32) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        if let Some(c) = self.exits.get(vcpu as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The guest rang its report doorbell: the window is over.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// The counts, by vCPU index.
    pub(super) fn counts(&self) -> Vec<u32> {
        self.exits
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_count_until_the_window_closes() {
        let w = WindowExits::new(3);
        w.exit(2);
        w.exit(0);
        w.exit(2);
        w.exit(7);
        w.close();
        w.exit(1);
        assert_eq!(w.counts(), [1, 0, 2]);
    }
}
