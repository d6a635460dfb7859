//! sipi's paravirtual report doorbell (firmware::layout::REPORT_PORT). The exit port needs no
//! state: see [`super::Devices::pio_out`].

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The first doorbell ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Doorbell {
    /// vCPU that rang.
    pub vcpu: u32,
    /// Guest-physical address of the report.
    pub addr: u32,
    /// When the VMM saw it.
    pub at: Instant,
}

/// The report doorbell: the first ring is kept, later rings are counted and ignored.
#[derive(Debug, Default)]
pub struct ReportPort {
    first: Mutex<Option<Doorbell>>,
    extra: AtomicU32,
}

impl ReportPort {
    /// Records a ring.
    pub fn ring(&self, vcpu: u32, addr: u32) {
        let at = Instant::now();
        if let Ok(mut first) = self.first.lock() {
            if first.is_none() {
                *first = Some(Doorbell { vcpu, addr, at });
                return;
            }
        }
        self.extra.fetch_add(1, Ordering::Relaxed);
    }

    /// The first ring, if any.
    pub fn first(&self) -> Option<Doorbell> {
        self.first.lock().ok().and_then(|f| *f)
    }

    /// Rings after the first.
    pub fn extra_rings(&self) -> u32 {
        self.extra.load(Ordering::Relaxed)
    }
}
