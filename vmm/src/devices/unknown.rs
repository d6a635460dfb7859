//! Logging of accesses no device claims: each port or MMIO page once, at most
//! [`MAX_LOGGED`] of them, so a hostile guest cannot flood the host's stderr.

use std::collections::HashSet;
use std::sync::Mutex;

/// Distinct unknown locations logged before going silent.
const MAX_LOGGED: usize = 16;

/// The log.
pub(crate) struct UnknownAccessLog {
    seen: Mutex<HashSet<(u8, u64)>>,
    quiet: bool,
}

impl UnknownAccessLog {
    /// A log that prints warnings unless `quiet`.
    pub(crate) fn new(quiet: bool) -> Self {
        Self {
            seen: Mutex::new(HashSet::new()),
            quiet,
        }
    }

    fn once(&self, kind: u8, key: u64, message: impl FnOnce() -> String) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.len() > MAX_LOGGED || !seen.insert((kind, key)) {
            return;
        }
        if !self.quiet {
            if seen.len() > MAX_LOGGED {
                log::warn!("more unknown device accesses; no longer logging them");
            } else {
                log::warn!("{} (ignored; logged once)", message());
            }
        }
    }

    /// Distinct locations logged so far, for tests.
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.seen.lock().map_or(0, |s| s.len())
    }

    /// An access to a port no device claims.
    pub(crate) fn port(&self, port: u16, write: bool) {
        let dir = if write { "wrote to" } else { "read from" };
        self.once(u8::from(write), u64::from(port), || {
            format!("the guest {dir} unknown I/O port {port:#x}")
        });
    }

    /// An access of the wrong size to a known port; `takes` says what it takes ("4 bytes").
    pub(crate) fn bad_size(&self, port: u16, size: usize, takes: &'static str) {
        self.once(2, u64::from(port) << 8 | size as u64, || {
            format!(
                "the guest accessed I/O port {port:#x} with a {size}-byte access; it takes {takes}"
            )
        });
    }

    /// A write a device refused, with the reason (logged once per port).
    pub(crate) fn refused(&self, port: u16, why: &dyn std::fmt::Display) {
        self.once(5, u64::from(port), || {
            format!("the guest's write to I/O port {port:#x} was refused: {why}")
        });
    }

    /// An MMIO access no device claims (logged per 4 KiB page).
    pub(crate) fn mmio(&self, addr: u64, write: bool) {
        let dir = if write { "wrote to" } else { "read from" };
        self.once(3 + u8::from(write), addr >> 12, || {
            format!("the guest {dir} unmapped MMIO address {addr:#x}")
        });
    }
}
