//! bringup.svg: bringup time against vCPU count per strategy, log-log (plotters).

use std::path::Path;

use plotters::prelude::*;

use crate::qemu::QemuCell;
use crate::runner::Strategy;
use crate::stats::Cell;

const COLORS: [RGBColor; 6] = [BLACK, RED, MAGENTA, BLUE, GREEN, CYAN];

/// Draws the plot into `path`.
pub fn svg(path: &Path, rows: &[Cell], qemu: &[QemuCell]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    let points = rows.iter().filter(|c| c.bringup_us > 0.0);
    let max_n = rows.iter().map(|c| c.vcpus).max().unwrap_or(2).max(2) as f64;
    let (lo, hi) = points.clone().fold((f64::MAX, 1.0f64), |(lo, hi), c| {
        (lo.min(c.bringup_us), hi.max(c.bringup_us))
    });
    let lo = if lo == f64::MAX {
        1.0
    } else {
        (lo / 2.0).max(0.1)
    };
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "sipi: AP bringup time vs vCPUs (median)",
            ("sans-serif", 22),
        )
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
        .y_desc("bringup (us)")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, s) in Strategy::ALL.iter().enumerate() {
        let series: Vec<(f64, f64)> = rows
            .iter()
            .filter(|c| c.strategy == *s && c.bringup_us > 0.0)
            .map(|c| (f64::from(c.vcpus), c.bringup_us))
            .collect();
        if series.is_empty() {
            continue;
        }
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(s.name())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                series
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
            .map_err(|e| err(&e))?;
    }
    let q: Vec<(f64, f64)> = qemu
        .iter()
        .filter(|c| c.bringup_us > 0.0)
        .map(|c| (f64::from(c.vcpus), c.bringup_us))
        .collect();
    if !q.is_empty() {
        let color = COLORS[5];
        chart
            .draw_series(LineSeries::new(q, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label("QEMU (parallel)")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
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
