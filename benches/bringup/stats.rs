//! Per-cell summaries of the samples.

use std::collections::BTreeMap;

use crate::runner::{Sample, Strategy};

/// Median of `v` (mean of the middle two for even lengths); NaN if empty.
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Min and max; NaN if empty.
pub fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::NAN, f64::NAN), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// One vCPU count x strategy.
#[derive(Debug, Clone)]
pub struct Cell {
    pub vcpus: u32,
    pub strategy: Strategy,
    pub runs: usize,
    pub bringup_us: f64,
    pub bringup_us_min: f64,
    pub bringup_us_max: f64,
    pub bringup_cycles: f64,
    /// Median over runs of each AP phase's median, cycles.
    pub phases: BTreeMap<String, f64>,
    /// Median over runs of each VMM phase, microseconds.
    pub vmm_phases: BTreeMap<String, f64>,
    pub wall_us: f64,
    pub max_rss_kb: f64,
    /// The TSC check's cost (median, min, max over runs; 0 without a check), microseconds.
    pub tsc_sync_us: f64,
    pub tsc_sync_us_min: f64,
    pub tsc_sync_us_max: f64,
    /// The largest TSC warp any run found (cycles).
    pub tsc_max_warp: f64,
    /// The teardown (median, min, max over runs; 0 without a scenario), microseconds.
    pub teardown_us: f64,
    pub teardown_us_min: f64,
    pub teardown_us_max: f64,
    /// One reboot-cycles round, up plus down (median over runs of each run's median).
    pub round_us: f64,
    /// KVM's exits and emulated instructions per AP during bringup (median over runs of the
    /// APs' median; NaN without APs or counters).
    pub ap_exits: f64,
    pub ap_insn_emulation: f64,
}

fn median_of(samples: &[Sample], f: impl Fn(&Sample) -> f64) -> f64 {
    median(&samples.iter().map(f).collect::<Vec<_>>())
}

fn medians_of(
    samples: &[Sample],
    f: impl Fn(&Sample) -> &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    let keys: std::collections::BTreeSet<&String> =
        samples.iter().flat_map(|s| f(s).keys()).collect();
    keys.into_iter()
        .map(|k| {
            (
                k.clone(),
                median(
                    &samples
                        .iter()
                        .filter_map(|s| f(s).get(k).copied())
                        .collect::<Vec<_>>(),
                ),
            )
        })
        .collect()
}

impl Cell {
    /// Summarises a cell; None without samples.
    pub fn from_samples(vcpus: u32, strategy: Strategy, s: &[Sample]) -> Option<Self> {
        if s.is_empty() {
            return None;
        }
        let (lo, hi) = min_max(&s.iter().map(|x| x.bringup_us).collect::<Vec<_>>());
        let (tsc_lo, tsc_hi) = min_max(&s.iter().map(|x| x.tsc_sync_us).collect::<Vec<_>>());
        let (td_lo, td_hi) = min_max(&s.iter().map(|x| x.teardown_us).collect::<Vec<_>>());
        Some(Cell {
            vcpus,
            strategy,
            runs: s.len(),
            bringup_us: median_of(s, |x| x.bringup_us),
            bringup_us_min: lo,
            bringup_us_max: hi,
            bringup_cycles: median_of(s, |x| x.bringup_cycles),
            phases: medians_of(s, |x| &x.phases),
            vmm_phases: medians_of(s, |x| &x.vmm_phases),
            wall_us: median_of(s, |x| x.wall_us),
            max_rss_kb: median_of(s, |x| x.max_rss_kb),
            tsc_sync_us: median_of(s, |x| x.tsc_sync_us),
            tsc_sync_us_min: tsc_lo,
            tsc_sync_us_max: tsc_hi,
            tsc_max_warp: s.iter().map(|x| x.tsc_max_warp).fold(0.0, f64::max),
            teardown_us: median_of(s, |x| x.teardown_us),
            teardown_us_min: td_lo,
            teardown_us_max: td_hi,
            round_us: median_of(s, |x| x.round_us),
            ap_exits: median_of(s, |x| x.ap_exits),
            ap_insn_emulation: median_of(s, |x| x.ap_insn_emulation),
        })
    }
}

/// The teardown median of `strategy` at `vcpus`, if measured.
pub fn teardown_of(rows: &[Cell], vcpus: u32, strategy: Strategy) -> Option<f64> {
    rows.iter()
        .find(|c| c.vcpus == vcpus && c.strategy == strategy)
        .map(|c| c.teardown_us)
}

/// The bringup median of `strategy` at `vcpus`, if measured.
pub fn bringup_of(rows: &[Cell], vcpus: u32, strategy: Strategy) -> Option<f64> {
    rows.iter()
        .find(|c| c.vcpus == vcpus && c.strategy == strategy)
        .map(|c| c.bringup_us)
}
