//! The boot timeline: the events a guest marks through the conventions other VMMs define
//! (Firecracker's boot timer, Cloud Hypervisor's debug port), each with the host time it was
//! seen, the vCPU that made it and, for the boot timer, the process's CPU time.
//!
//! Bounded: the first [`TIMELINE_CAP`] debug-port events and the first [`BOOT_TIMER_CAP`] boot
//! timer events are kept and the rest only counted, so a guest that writes millions of them
//! (Linux writes port 0x80 as an I/O delay) costs a fixed amount of memory, and a flood of one
//! kind does not hide the other. Once a kind is full, recording it is one atomic add, with no
//! lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Debug-port events kept per boot; later ones are counted in [`Timeline::dropped`].
pub const TIMELINE_CAP: usize = 1024;
/// Boot timer events kept per boot (a kernel marks its boot complete once); later ones are
/// counted in [`Timeline::dropped`].
pub const BOOT_TIMER_CAP: usize = 64;

/// Which convention an event came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimelineSource {
    /// Firecracker's boot timer (the magic byte at its MMIO address).
    BootTimer,
    /// Cloud Hypervisor's debug port (a byte written to port 0x80).
    DebugPort,
}

impl TimelineSource {
    /// The index of the source's bound.
    fn index(self) -> usize {
        match self {
            Self::BootTimer => 0,
            Self::DebugPort => 1,
        }
    }

    /// Events of this source kept per boot.
    fn cap(self) -> usize {
        match self {
            Self::BootTimer => BOOT_TIMER_CAP,
            Self::DebugPort => TIMELINE_CAP,
        }
    }
}

/// The kept events and how many of each source they hold.
#[derive(Debug, Default)]
struct Kept {
    events: Vec<TimelineEvent>,
    /// By [`TimelineSource::index`].
    count: [usize; 2],
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
    kept: Mutex<Kept>,
    /// By [`TimelineSource::index`]: set once that source's bound is reached, so that later
    /// events of it skip the lock.
    full: [AtomicBool; 2],
    /// Events seen after the cap.
    dropped: AtomicU64,
}

impl Timeline {
    /// Records an event by `vcpu`, stamped now.
    pub(crate) fn record(&self, vcpu: u32, source: TimelineSource, code: u8) {
        let (i, cap) = (source.index(), source.cap());
        if self.full[i].load(Ordering::Relaxed) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let cpu_us = match source {
            TimelineSource::BootTimer => process_cpu_us(),
            TimelineSource::DebugPort => None,
        };
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.count[i] >= cap {
            self.full[i].store(true, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        kept.count[i] += 1;
        if kept.count[i] >= cap {
            self.full[i].store(true, Ordering::Relaxed);
            log::debug!("timeline: {cap} {source:?} events kept; later ones are only counted");
        }
        if source == TimelineSource::BootTimer {
            log::debug!("boot timer: vCPU {vcpu} marks its boot complete");
        }
        // Stamped under the lock, so that the kept order is the order of the times.
        kept.events.push(TimelineEvent {
            at: Instant::now(),
            cpu_us,
            vcpu,
            source,
            code,
        });
    }

    /// The kept events, in order.
    pub fn events(&self) -> Vec<TimelineEvent> {
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .events
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
        assert!(t.kept.lock().unwrap().events.capacity() <= 2 * TIMELINE_CAP);
        // A flood of one kind leaves room for the other, which has its own bound.
        for _ in 0..BOOT_TIMER_CAP + 3 {
            t.record(1, TimelineSource::BootTimer, 123);
        }
        let e = t.events();
        assert_eq!(e.len(), TIMELINE_CAP + BOOT_TIMER_CAP);
        assert_eq!(e[TIMELINE_CAP].source, TimelineSource::BootTimer);
        assert_eq!(t.dropped(), n - TIMELINE_CAP as u64 + 3);
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
