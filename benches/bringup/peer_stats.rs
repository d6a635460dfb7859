//! The peer table's figures: per row and vCPU count, the median and min-max over runs, and
//! the ratios against sipi paired run by run (run k of sipi over run k of the row).

use crate::peers::{PeerSample, Row};
use crate::stats::{median, min_max};

/// The boots of one row at one vCPU count: `runs[k]` is run k (None if that boot failed).
#[derive(Debug, Clone)]
pub struct PeerSeries {
    pub row: Row,
    pub vcpus: u32,
    pub runs: Vec<Option<PeerSample>>,
}

/// One row of the peer table.
#[derive(Debug, Clone)]
pub struct PeerCell {
    pub row: Row,
    pub vcpus: u32,
    /// Boots that ended the expected way.
    pub runs: usize,
    /// Whole process, microseconds: median, min, max.
    pub wall_us: f64,
    pub wall_us_min: f64,
    pub wall_us_max: f64,
    /// Peak RSS (KiB), median.
    pub max_rss_kb: f64,
    /// The guest's bringup (microseconds), median; NaN for rows without one.
    pub guest_bringup_us: f64,
    /// Median over runs k of sipi's every-AP-online time in run k over this row's in run k.
    pub vs_sipi_bringup: f64,
    /// The same with sipi's idle start.
    pub vs_sipi_idle: f64,
}

/// The median over the runs both have of `num[k] / den[k]` (whole-process times); NaN without
/// a common run.
pub fn paired_ratio(num: &[Option<PeerSample>], den: &[Option<PeerSample>]) -> f64 {
    let ratios: Vec<f64> = num
        .iter()
        .zip(den)
        .filter_map(|(a, b)| Some(a.as_ref()?.wall_us / b.as_ref()?.wall_us))
        .collect();
    median(&ratios)
}

/// Summarises every series that has at least one good boot, in the order given.
pub fn cells(series: &[PeerSeries]) -> Vec<PeerCell> {
    let runs_of = |row: Row, n: u32| {
        series
            .iter()
            .find(|s| s.row == row && s.vcpus == n)
            .map(|s| s.runs.as_slice())
    };
    series
        .iter()
        .filter_map(|s| {
            let ok: Vec<&PeerSample> = s.runs.iter().flatten().collect();
            if ok.is_empty() {
                return None;
            }
            let walls: Vec<f64> = ok.iter().map(|x| x.wall_us).collect();
            let (lo, hi) = min_max(&walls);
            let vs = |row| runs_of(row, s.vcpus).map_or(f64::NAN, |r| paired_ratio(r, &s.runs));
            Some(PeerCell {
                row: s.row,
                vcpus: s.vcpus,
                runs: ok.len(),
                wall_us: median(&walls),
                wall_us_min: lo,
                wall_us_max: hi,
                max_rss_kb: median(&ok.iter().map(|x| x.max_rss_kb).collect::<Vec<_>>()),
                guest_bringup_us: median(
                    &ok.iter().map(|x| x.guest_bringup_us).collect::<Vec<_>>(),
                ),
                vs_sipi_bringup: vs(Row::SipiBringup),
                vs_sipi_idle: vs(Row::SipiIdle),
            })
        })
        .collect()
}
