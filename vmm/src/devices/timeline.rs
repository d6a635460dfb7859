//! The boot timeline: the events a guest marks through the conventions other VMMs define
//! (Firecracker's boot timer, Cloud Hypervisor's debug port), each with the host time it was
//! seen, the vCPU that made it and, for the boot timer, the process's CPU time.
//!
//! Bounded: the first [`TIMELINE_CAP`] events are kept and the rest only counted, so a guest
//! that writes millions of them (Linux writes port 0x80 as an I/O delay) costs a fixed amount
//! of memory. Once full, recording is one atomic add, with no lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Events kept per boot; later ones are counted in [`Timeline::dropped`].
pub const TIMELINE_CAP: usize = 1024;

/// Which convention an event came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimelineSource {
    /// Firecracker's boot timer (the magic byte at its MMIO address).
    BootTimer,
    /// Cloud Hypervisor's debug port (a byte written to port 0x80).
    DebugPort,
}

/// One recorded event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineEvent {
    /// When the VMM saw it.
    pub at: Instant,
    /// The process's CPU time then, in microseconds (boot timer events only).
    pub cpu_us: Option<u64>,
    /// The vCPU that made it.
    pub vcpu: u32,
    /// The convention.
    pub source: TimelineSource,
    /// The byte written.
    pub code: u8,
}

/// The events of one boot, shared by every vCPU thread.
#[derive(Debug, Default)]
pub struct Timeline {
    /// The kept events, in the order they were recorded (so with nondecreasing times).
    events: Mutex<Vec<TimelineEvent>>,
    /// Set once `events` holds [`TIMELINE_CAP`]: later events skip the lock.
    full: AtomicBool,
    /// Events seen after the cap.
    dropped: AtomicU64,
}

impl Timeline {
    /// Records an event by `vcpu`, stamped now.
    pub(crate) fn record(&self, vcpu: u32, source: TimelineSource, code: u8) {
        if self.full.load(Ordering::Relaxed) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let cpu_us = match source {
            TimelineSource::BootTimer => process_cpu_us(),
            TimelineSource::DebugPort => None,
        };
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if events.len() >= TIMELINE_CAP {
            self.full.store(true, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Stamped under the lock, so that the kept order is the order of the times.
        events.push(TimelineEvent {
            at: Instant::now(),
            cpu_us,
            vcpu,
            source,
            code,
        });
        if events.len() >= TIMELINE_CAP {
            self.full.store(true, Ordering::Relaxed);
        }
    }

    /// The kept events, in order.
    pub fn events(&self) -> Vec<TimelineEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Events not kept because the timeline was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The CPU time the process has used so far, in microseconds (Firecracker's boot timer reports
/// it beside the wall time).
fn process_cpu_us() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    Some(secs.saturating_mul(1_000_000).saturating_add(nanos / 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_kept_in_order_with_their_vcpu_and_code() {
        let t = Timeline::default();
        t.record(0, TimelineSource::DebugPort, 0x01);
        t.record(3, TimelineSource::BootTimer, 123);
        let e = t.events();
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].vcpu, e[0].source, e[0].code),
            (0, TimelineSource::DebugPort, 1)
        );
        assert_eq!(e[0].cpu_us, None);
        assert_eq!(
            (e[1].vcpu, e[1].source, e[1].code),
            (3, TimelineSource::BootTimer, 123)
        );
        assert!(e[1].cpu_us.is_some(), "the boot timer carries CPU time");
        assert!(e[0].at <= e[1].at);
        assert_eq!(t.dropped(), 0);
    }

    #[test]
    fn the_timeline_keeps_the_first_events_and_counts_the_rest() {
        let t = Timeline::default();
        let n = TIMELINE_CAP as u64 * 3 + 7;
        for i in 0..n {
            t.record(0, TimelineSource::DebugPort, i as u8);
        }
        let e = t.events();
        assert_eq!(e.len(), TIMELINE_CAP);
        assert_eq!(t.dropped(), n - TIMELINE_CAP as u64);
        assert!(e.iter().enumerate().all(|(i, e)| e.code == i as u8));
        assert!(e.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(t.events.lock().unwrap().capacity() <= 2 * TIMELINE_CAP);
    }

    #[test]
    fn many_threads_never_exceed_the_cap() {
        let t = Timeline::default();
        std::thread::scope(|s| {
            for v in 0..4 {
                let t = &t;
                s.spawn(move || {
                    for _ in 0..1000 {
                        t.record(v, TimelineSource::DebugPort, 0x40);
                    }
                });
            }
        });
        assert_eq!(t.events().len(), TIMELINE_CAP);
        assert_eq!(t.dropped(), 4000 - TIMELINE_CAP as u64);
    }
}
