//! sipi's paravirtual report doorbell ([`REPORT_PORT`]) and exit port ([`EXIT_PORT`]). Both
//! take 32-bit writes only and are write-only: a read is an access to nothing.

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use firmware::layout::{EXIT_PORT, REPORT_PORT};

use super::bus::{as_u32, PortDevice};
use super::unknown::UnknownAccessLog;
use super::DeviceEvent;

/// The report doorbell's port.
const REPORT_PORTS: &[RangeInclusive<u16>] = &[REPORT_PORT..=REPORT_PORT];
/// The exit port.
const EXIT_PORTS: &[RangeInclusive<u16>] = &[EXIT_PORT..=EXIT_PORT];

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
    rings: Arc<Rings>,
}

/// What the doorbell saw.
#[derive(Debug, Default)]
struct Rings {
    first: Mutex<Option<Doorbell>>,
    extra: AtomicU32,
}

impl ReportPort {
    /// Another handle to the same doorbell: the port bus rings one, the VMM reads another.
    pub(crate) fn handle(&self) -> Self {
        Self {
            rings: Arc::clone(&self.rings),
        }
    }

    /// Records a ring.
    fn ring(&self, vcpu: u32, addr: u32) {
        let at = Instant::now();
        if let Ok(mut first) = self.rings.first.lock() {
            if first.is_none() {
                *first = Some(Doorbell { vcpu, addr, at });
                return;
            }
        }
        self.rings.extra.fetch_add(1, Ordering::Relaxed);
    }

    /// The first ring, if any.
    pub fn first(&self) -> Option<Doorbell> {
        self.rings.first.lock().ok().and_then(|f| *f)
    }

    /// Rings after the first.
    pub fn extra_rings(&self) -> u32 {
        self.rings.extra.load(Ordering::Relaxed)
    }
}

impl PortDevice for ReportPort {
    fn ports(&self) -> &[RangeInclusive<u16>] {
        REPORT_PORTS
    }

    fn write(
        &self,
        vcpu: u32,
        port: u16,
        data: &[u8],
        log: &UnknownAccessLog,
    ) -> Option<DeviceEvent> {
        match as_u32(data) {
            Some(addr) => self.ring(vcpu, addr),
            None => log.bad_size(port, data.len(), "4 bytes"),
        }
        None
    }
}

/// The exit port: a 32-bit write of a status ends the VM. It has no state.
pub(crate) struct ExitPort;

impl PortDevice for ExitPort {
    fn ports(&self) -> &[RangeInclusive<u16>] {
        EXIT_PORTS
    }

    fn write(
        &self,
        _vcpu: u32,
        port: u16,
        data: &[u8],
        log: &UnknownAccessLog,
    ) -> Option<DeviceEvent> {
        let status = as_u32(data);
        if status.is_none() {
            log.bad_size(port, data.len(), "4 bytes");
        }
        status.map(DeviceEvent::SipiExit)
    }
}
