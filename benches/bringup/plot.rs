//! bringup.svg: bringup time against vCPU count per strategy; tsc_sync.svg: the TSC check's
//! cost against vCPU count per check strategy; teardown.svg: serial vs parallel teardown and
//! one reboot-cycles round against vCPU count; peers.svg: the whole-process time of sipi and
//! its peers against vCPU count, with min-max bars. All log-log (plotters).

use std::path::Path;

use plotters::prelude::*;

use crate::peer_stats::PeerCell;
use crate::peers::Row;
use crate::qemu::QemuCell;
use crate::runner::Strategy;
use crate::stats::Cell;

/// One colour per strategy (in `Strategy::ALL` order), then QEMU's.
const COLORS: [RGBColor; 8] = [
    BLACK,
    RED,
    MAGENTA,
    BLUE,
    GREEN,
    RGBColor(255, 140, 0),
    RGBColor(128, 0, 128),
    CYAN,
];
const QEMU_COLOR: RGBColor = COLORS[7];
/// One colour per peer row (in `Row::ALL` order).
const PEER_COLORS: [RGBColor; 7] = [
    BLACK,
    RGBColor(128, 128, 128),
    BLUE,
    RED,
    MAGENTA,
    GREEN,
    RGBColor(255, 140, 0),
];

/// A named line of (vCPUs, microseconds) points.
struct Series {
    name: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
    /// Draw the points as circles too.
    marks: bool,
    /// Min-max bars: (vCPUs, min, max).
    ranges: Vec<(f64, f64, f64)>,
}

/// The colour of `s`.
fn color(s: Strategy) -> RGBColor {
    let i = Strategy::ALL.iter().position(|x| *x == s).unwrap_or(0);
    COLORS[i % (COLORS.len() - 1)]
}

/// Draws `series` into `path` as a log-log chart of microseconds against vCPUs.
fn chart(path: &Path, caption: &str, y_desc: &str, series: &[Series]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    let points = || {
        series.iter().flat_map(|s| {
            s.points
                .iter()
                .copied()
                .chain(s.ranges.iter().flat_map(|r| [(r.0, r.1), (r.0, r.2)]))
        })
    };
    let max_n = points().map(|p| p.0).fold(2.0f64, f64::max);
    let (lo, hi) = points().fold((f64::MAX, 1.0f64), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let lo = if lo == f64::MAX {
        1.0
    } else {
        (lo / 2.0).max(0.1)
    };
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (1.0f64..max_n * 1.5).log_scale(),
            (lo..hi * 2.0).log_scale(),
        )
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("vCPUs")
        .y_desc(y_desc)
        .draw()
        .map_err(|e| err(&e))?;
    for s in series.iter().filter(|s| !s.points.is_empty()) {
        let color = s.color;
        chart
            .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        if s.marks {
            chart
                .draw_series(s.points.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(|e| err(&e))?;
        }
        chart
            .draw_series(
                s.ranges
                    .iter()
                    .map(|&(x, lo, hi)| PathElement::new(vec![(x, lo), (x, hi)], color)),
            )
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

/// The points of `strategy`: (vCPUs, `value` of the cell) where the value is positive.
fn points(rows: &[Cell], strategy: Strategy, value: fn(&Cell) -> f64) -> Vec<(f64, f64)> {
    rows.iter()
        .filter(|c| c.strategy == strategy && value(c) > 0.0)
        .map(|c| (f64::from(c.vcpus), value(c)))
        .collect()
}

/// bringup.svg: every strategy's bringup time (the TSC check included where there is one),
/// and QEMU's.
pub fn svg(path: &Path, rows: &[Cell], qemu: &[QemuCell]) -> Result<(), String> {
    let mut series: Vec<Series> = Strategy::ALL
        .iter()
        .filter(|s| !Strategy::SCENARIOS.contains(s))
        .map(|s| Series {
            name: s.name().into(),
            color: color(*s),
            points: points(rows, *s, |c| c.bringup_us),
            marks: true,
            ranges: Vec::new(),
        })
        .collect();
    series.push(Series {
        name: "QEMU (parallel)".into(),
        color: QEMU_COLOR,
        points: qemu
            .iter()
            .filter(|c| c.bringup_us > 0.0)
            .map(|c| (f64::from(c.vcpus), c.bringup_us))
            .collect(),
        marks: false,
        ranges: Vec::new(),
    });
    chart(
        path,
        "sipi: AP bringup time vs vCPUs (median)",
        "bringup (us)",
        &series,
    )
}

/// tsc_sync.svg: what each TSC check costs (`tsc_sync.us`, median) against vCPU count.
pub fn tsc_sync_svg(path: &Path, rows: &[Cell]) -> Result<(), String> {
    let series: Vec<Series> = Strategy::TSC_CHECKS
        .iter()
        .map(|s| Series {
            name: s.name().into(),
            color: color(*s),
            points: points(rows, *s, |c| c.tsc_sync_us),
            marks: true,
            ranges: Vec::new(),
        })
        .collect();
    chart(
        path,
        "sipi: TSC synchronisation check vs vCPUs (median)",
        "TSC check (us)",
        &series,
    )
}

/// teardown.svg: the teardown's cost (`scenario.teardown_us`, median) of each teardown
/// strategy, and one reboot-cycles round (bringup plus teardown), against vCPU count.
pub fn teardown_svg(path: &Path, rows: &[Cell]) -> Result<(), String> {
    let series = vec![
        Series {
            name: "teardown serial".into(),
            color: color(Strategy::TeardownSerial),
            points: points(rows, Strategy::TeardownSerial, |c| c.teardown_us),
            marks: true,
            ranges: Vec::new(),
        },
        Series {
            name: "teardown parallel".into(),
            color: color(Strategy::TeardownParallel),
            points: points(rows, Strategy::TeardownParallel, |c| c.teardown_us),
            marks: true,
            ranges: Vec::new(),
        },
        Series {
            name: "reboot-cycles round (up + down, parallel)".into(),
            color: color(Strategy::RebootCycles),
            points: points(rows, Strategy::RebootCycles, |c| c.round_us),
            marks: true,
            ranges: Vec::new(),
        },
    ];
    chart(
        path,
        "sipi: CPU teardown and reboot-cycle rounds vs vCPUs (median)",
        "time (us)",
        &series,
    )
}

/// peers.svg: whole-process time (median, with min-max bars) of each peer row against vCPUs.
pub fn peers_svg(path: &Path, cells: &[PeerCell]) -> Result<(), String> {
    let ms = |us: f64| us / 1000.0;
    let series: Vec<Series> = Row::ALL
        .iter()
        .zip(PEER_COLORS)
        .map(|(row, color)| {
            let mine = || {
                cells
                    .iter()
                    .filter(move |c| c.row == *row && c.wall_us > 0.0)
            };
            Series {
                name: row.name().into(),
                color,
                points: mine()
                    .map(|c| (f64::from(c.vcpus), ms(c.wall_us)))
                    .collect(),
                marks: true,
                ranges: mine()
                    .map(|c| (f64::from(c.vcpus), ms(c.wall_us_min), ms(c.wall_us_max)))
                    .collect(),
            }
        })
        .collect();
    chart(
        path,
        "Starting a VM: whole process vs vCPUs (median, min-max)",
        "whole process (ms)",
        &series,
    )
}
