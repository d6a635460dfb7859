//! The burst's figures: JSON fields and the summary printed on stdout.

use std::time::Duration;

use serde::Serialize;

/// Per-ioctl latency in microseconds (nearest-rank percentiles), null without ioctls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencyUs {
    /// 50th percentile.
    pub median: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Slowest.
    pub max: Option<f64>,
}

impl LatencyUs {
    /// Summarises `latencies`.
    pub fn of(latencies: &[Duration]) -> Self {
        let mut us: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        us.sort_by(f64::total_cmp);
        let round = |v: f64| (v * 10.0).round() / 10.0;
        Self {
            median: percentile(&us, 50).map(round),
            p99: percentile(&us, 99).map(round),
            max: us.last().copied().map(round),
        }
    }
}

/// The nearest-rank `p`th percentile of sorted `values`.
pub fn percentile(values: &[f64], p: u32) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let rank = (u64::from(p) * values.len() as u64).div_ceil(100).max(1) as usize;
    values.get(rank - 1).copied()
}

/// The JSON report of `vmm memslot-burst` (stable fields; later ones may be added).
#[derive(Debug, Clone, Serialize)]
pub struct BurstReport {
    /// Outcome, as in the boot report: `ok`, `guest-failure`, ...
    pub status: &'static str,
    /// The process exit status.
    pub exit_code: u8,
    /// The error line, or null.
    pub error: Option<String>,
    /// Changes applied (each one add or one remove of a small region).
    pub changes: u32,
    /// Completed add/delete pairs among them.
    pub pairs: u64,
    /// vCPUs running guest code during the burst.
    pub vcpus: u32,
    /// `naive` or `batched`.
    pub mode: &'static str,
    /// Transactions committed (0 in naive mode).
    pub transactions: u32,
    /// KVM_SET_USER_MEMORY_REGION calls issued during the burst.
    pub ioctls: u64,
    /// The fewest ioctls that apply the burst with these transaction boundaries (in naive
    /// mode, where every change is published at once, that is `changes`).
    pub minimal_ioctls: u64,
    /// Wall-clock time of the burst, from the first change to the last ioctl.
    pub wall_us: u64,
    /// Latency of each ioctl.
    pub ioctl_us: LatencyUs,
    /// Slots holding burst regions at the end.
    pub burst_slots: u32,
    /// Loop iterations the vCPUs completed during the burst (each writes, reads back and
    /// checks its counter and the pattern).
    pub guest_loops: u64,
}

fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

fn latency(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1} us"))
}

/// The summary printed after a burst.
pub fn render(r: &BurstReport) -> String {
    let mode = match r.mode {
        "naive" => "naive (one ioctl per change)".to_string(),
        _ => format!(
            "batched ({} transaction{})",
            r.transactions,
            if r.transactions == 1 { "" } else { "s" }
        ),
    };
    let guest = match &r.error {
        None => format!(
            "{} vCPUs ran {} loops during the burst, every read correct",
            r.vcpus, r.guest_loops
        ),
        Some(e) => e.clone(),
    };
    format!(
        "memslot-burst: {changes} changes ({pairs} add/delete pairs of 4 KiB regions), {vcpus} vCPUs running\n\
         \x20 mode           {mode}\n\
         \x20 ioctls         {ioctls} (minimal diff: {minimal})\n\
         \x20 wall           {wall}\n\
         \x20 ioctl latency  median {median}, p99 {p99}, max {max}\n\
         \x20 burst slots    {slots} at the end\n\
         \x20 guest          {guest}\n",
        changes = r.changes,
        pairs = r.pairs,
        vcpus = r.vcpus,
        ioctls = r.ioctls,
        minimal = r.minimal_ioctls,
        wall = ms(r.wall_us),
        median = latency(r.ioctl_us.median),
        p99 = latency(r.ioctl_us.p99),
        max = latency(r.ioctl_us.max),
        slots = r.burst_slots,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50), Some(50.0));
        assert_eq!(percentile(&v, 99), Some(99.0));
        assert_eq!(percentile(&[7.0], 99), Some(7.0));
        assert_eq!(percentile(&[], 50), None);
        let l = LatencyUs::of(&[Duration::from_micros(30), Duration::from_micros(10)]);
        assert_eq!(
            (l.median, l.p99, l.max),
            (Some(10.0), Some(30.0), Some(30.0))
        );
        assert_eq!(LatencyUs::of(&[]).median, None);
    }
}
