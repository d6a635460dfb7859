//! What the report's TSC stamps mean: their order, their time base, and their duration in
//! microseconds.

use firmware::report::{CpuRecord, CPU_FLAG_TSC_OUT_OF_SYNC};

/// True if the non-zero values of `stamps` never decrease.
pub(crate) fn ordered(stamps: impl Iterator<Item = u64>) -> bool {
    let mut last = 0;
    stamps.filter(|s| *s != 0).all(|s| {
        let ok = s >= last;
        last = s;
        ok
    })
}

/// True if the guest found this CPU's TSC out of sync: its stamps are in another time base than
/// the BSP's.
pub(crate) fn tsc_out_of_sync(r: &CpuRecord) -> bool {
    r.flags & CPU_FLAG_TSC_OUT_OF_SYNC != 0
}

/// Cycles to microseconds.
pub(crate) fn cycles_to_us(cycles: u64, tsc_khz: u32) -> Option<f64> {
    (tsc_khz > 0).then(|| cycles as f64 * 1000.0 / f64::from(tsc_khz))
}
