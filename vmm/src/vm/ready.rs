//! Which vCPUs are ready to be kicked, for a BSP that runs while the VM's thread is still
//! creating the others (`--bsp-start early`), and sipi's vCPU-readiness port that tells it
//! ([`VCPUS_READY_PORT`], docs/devices.md): the guest writes the APIC ID it wants to kick, and
//! the read that follows blocks until that vCPU is ready, then returns the bound below which
//! every APIC ID is ready. vCPUs are created in APIC ID order, so the ready ones that matter
//! are a prefix in vCPU index order; a vCPU thread marks its vCPU ready once it is configured.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use firmware::layout::VCPUS_ALL_READY;

use crate::arch::x86_64::topology::Topology;

/// What the port has seen, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReadyStats {
    /// Writes to the port, each naming the vCPU the guest wants to kick.
    pub asks: u32,
    /// Reads of the port.
    pub queries: u32,
    /// Reads that had to wait for a vCPU to become ready.
    pub waits: u32,
    /// Time the asking vCPU spent blocked in those reads.
    pub waited: Duration,
    /// When the last vCPU became ready.
    pub all_ready_at: Option<Instant>,
}

#[derive(Debug)]
struct State {
    /// Ready flags by vCPU index.
    ready: Vec<bool>,
    /// vCPUs 0..prefix are all ready.
    prefix: u32,
    /// The APIC ID the guest last asked about (None: no pending question).
    asked: Option<u32>,
    stats: ReadyStats,
}

/// The ready vCPUs of one VM and the guest's questions about them.
#[derive(Debug)]
pub(super) struct Readiness {
    topology: Topology,
    state: Mutex<State>,
    /// Readers of the port wait here for more ready vCPUs (or the stop).
    changed: Condvar,
}

impl Readiness {
    /// No vCPU of `topology` ready yet.
    pub(super) fn new(topology: Topology) -> Self {
        Self {
            topology,
            state: Mutex::new(State {
                ready: vec![false; topology.vcpus() as usize],
                prefix: 0,
                asked: None,
                stats: ReadyStats::default(),
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The bound the port returns: every APIC ID below it is ready.
    fn bound(&self, s: &State) -> u32 {
        match s.prefix < self.topology.vcpus() {
            true => self.topology.apic_id(s.prefix),
            false => VCPUS_ALL_READY,
        }
    }

    /// vCPU `vcpu` is configured and may be kicked.
    pub(super) fn mark(&self, vcpu: u32) {
        let mut s = self.lock();
        let Some(flag) = s.ready.get_mut(vcpu as usize) else {
            return;
        };
        *flag = true;
        let before = s.prefix;
        while s.ready.get(s.prefix as usize) == Some(&true) {
            s.prefix += 1;
        }
        if s.prefix as usize == s.ready.len() && before != s.prefix {
            s.stats.all_ready_at = Some(Instant::now());
        }
        if s.prefix != before {
            drop(s);
            self.changed.notify_all();
        }
    }

    /// The guest's write: it wants to kick the vCPU with APIC ID `apic_id`
    /// ([`VCPUS_ALL_READY`]: every vCPU).
    pub(super) fn ask(&self, apic_id: u32) {
        let mut s = self.lock();
        s.asked = Some(apic_id);
        s.stats.asks = s.stats.asks.saturating_add(1);
    }

    /// The guest's read: blocks until the vCPU last asked about is ready (or `stopping` says
    /// the VM is stopping), then returns the bound.
    pub(super) fn answer(&self, stopping: impl Fn() -> bool) -> u32 {
        let mut s = self.lock();
        s.stats.queries = s.stats.queries.saturating_add(1);
        let Some(asked) = s.asked.take() else {
            return self.bound(&s);
        };
        let covered =
            |bound: u32| bound == VCPUS_ALL_READY || (asked != VCPUS_ALL_READY && asked < bound);
        if covered(self.bound(&s)) {
            return self.bound(&s);
        }
        let start = Instant::now();
        while !covered(self.bound(&s)) && !stopping() {
            s = self
                .changed
                .wait(s)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        s.stats.waits = s.stats.waits.saturating_add(1);
        s.stats.waited += start.elapsed();
        self.bound(&s)
    }

    /// Wakes every blocked reader (the VM is stopping).
    pub(super) fn wake_all(&self) {
        drop(self.lock());
        self.changed.notify_all();
    }

    /// What the port has seen.
    pub(super) fn stats(&self) -> ReadyStats {
        self.lock().stats
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn readiness(vcpus: u32) -> Readiness {
        Readiness::new(Topology::new(vcpus))
    }

    #[test]
    fn the_bound_covers_the_ready_prefix_only() {
        let r = readiness(4);
        assert_eq!(r.answer(|| false), 0);
        r.mark(1);
        // vCPU 0 is not ready: vCPU 1 may not be kicked either.
        assert_eq!(r.answer(|| false), 0);
        r.mark(0);
        assert_eq!(r.answer(|| false), 2);
        r.mark(3);
        r.mark(2);
        assert_eq!(r.answer(|| false), VCPUS_ALL_READY);
        assert!(r.stats().all_ready_at.is_some());
        assert_eq!(r.stats().waits, 0);
    }

    #[test]
    fn a_question_blocks_until_its_vcpu_is_ready() {
        let r = Arc::new(readiness(3));
        r.mark(0);
        r.ask(2);
        let reader = {
            let r = Arc::clone(&r);
            std::thread::spawn(move || r.answer(|| false))
        };
        r.mark(1);
        r.mark(2);
        assert_eq!(reader.join().expect("the reader"), VCPUS_ALL_READY);
        assert_eq!(r.stats().queries, 1);
    }

    #[test]
    fn a_stopping_vm_releases_the_reader() {
        let r = Arc::new(readiness(2));
        r.ask(VCPUS_ALL_READY);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (r, stop) = (Arc::clone(&r), Arc::clone(&stop));
            std::thread::spawn(move || r.answer(|| stop.load(std::sync::atomic::Ordering::Acquire)))
        };
        stop.store(true, std::sync::atomic::Ordering::Release);
        r.wake_all();
        // Nothing was ready: the bound says so.
        assert_eq!(reader.join().expect("the reader"), 0);
    }
}
