//! The stopwatch of a boot's VMM phases: consecutive laps in microseconds.

use std::time::{Duration, Instant};

/// Microseconds in `d`, saturated.
pub(super) fn us(d: Duration) -> u64 {
    d.as_micros().try_into().unwrap_or(u64::MAX)
}

/// Laps since the boot began.
#[derive(Debug)]
pub(super) struct PhaseClock {
    start: Instant,
    last: Instant,
}

impl PhaseClock {
    /// Starts the clock.
    pub(super) fn start() -> Self {
        let now = Instant::now();
        Self {
            start: now,
            last: now,
        }
    }

    /// Microseconds since the previous lap (or the start), starting a new lap.
    pub(super) fn lap(&mut self) -> u64 {
        let now = Instant::now();
        let d = us(now - self.last);
        self.last = now;
        d
    }

    /// Microseconds since the start.
    pub(super) fn total(&self) -> u64 {
        us(self.start.elapsed())
    }

    /// Microseconds from the start to `at` (0 for an earlier instant).
    pub(super) fn since_start(&self, at: Instant) -> u64 {
        us(at.saturating_duration_since(self.start))
    }
}
