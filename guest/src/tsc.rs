//! Time from the TSC: conversions from microseconds to cycles, busy-waits and deadlines. The
//! frequency comes from the hypervisor's CPUID leaf 0x40000010; without it a high assumed
//! frequency makes every wait at least as long as asked (too long rather than too short).

use crate::cpu;

/// The TSC frequency assumed when the hypervisor does not report one: higher than any x86
/// CPU's, so that waits computed from it are never shorter than asked.
const FALLBACK_TSC_KHZ: u32 = 6_000_000;

/// The TSC's frequency.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tsc {
    khz: u64,
}

impl Tsc {
    /// A TSC of `khz` kHz (0: unknown, see [`FALLBACK_TSC_KHZ`]).
    pub(crate) fn new(khz: u32) -> Self {
        Self {
            khz: u64::from(Self::khz_or_fallback(khz)),
        }
    }

    /// `khz`, or [`FALLBACK_TSC_KHZ`] if it is 0 (unknown).
    fn khz_or_fallback(khz: u32) -> u32 {
        if khz == 0 { FALLBACK_TSC_KHZ } else { khz }
    }

    /// Cycles in `us` microseconds (saturating).
    pub(crate) fn cycles(self, us: u64) -> u64 {
        us.saturating_mul(self.khz) / 1000
    }

    /// The TSC value `us` microseconds from now (saturating).
    pub(crate) fn deadline(self, us: u64) -> u64 {
        cpu::rdtsc().saturating_add(self.cycles(us))
    }

    /// Spins for `us` microseconds.
    pub(crate) fn delay(self, us: u64) {
        if us == 0 {
            return;
        }
        let end = self.deadline(us);
        while cpu::rdtsc() < end {
            core::hint::spin_loop();
        }
    }
}
