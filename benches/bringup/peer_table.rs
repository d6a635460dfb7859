//! The peer table: one markdown table (stdout and peers.md) and its CSV (peers.csv).

use std::fmt::Write as _;

use crate::peer_stats::PeerCell;

fn num(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        "-".into()
    }
}

/// The table as markdown, with `notes` (rows not run, and why) after it.
pub fn markdown(cells: &[PeerCell], runs: u32, notes: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Peers: starting a VM, whole process (median of {runs} interleaved runs)\n"
    );
    let _ = writeln!(
        s,
        "\"idle\": the minimal PVH kernel (pvh_exit_now.elf), which ends the VM at once and never starts an AP. \
         \"every AP online\": sipi's bundled guest bringing every AP online (parallel, per-CPU kicks); \
         \"floor\": the same guest with the floor strategy. Whole process: spawn to reap of the VMM process. \
         Ratios are paired: sipi's time in run k over this row's time in run k, the median over k (below 1: sipi is faster).\n"
    );
    let _ = writeln!(
        s,
        "| vCPUs | VMM, workload | whole process ms (min-max) | peak RSS MiB | guest bringup us | sipi every AP online / this | sipi idle / this | runs |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for c in cells {
        let _ = writeln!(
            s,
            "| {} | {} | {} ({}-{}) | {} | {} | {} | {} | {} |",
            c.vcpus,
            c.row.name(),
            num(c.wall_us / 1000.0, 1),
            num(c.wall_us_min / 1000.0, 1),
            num(c.wall_us_max / 1000.0, 1),
            num(c.max_rss_kb / 1024.0, 1),
            num(c.guest_bringup_us, 0),
            num(c.vs_sipi_bringup, 2),
            num(c.vs_sipi_idle, 2),
            c.runs,
        );
    }
    if !notes.is_empty() {
        s.push('\n');
        for n in notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

/// The CSV: one line per row and vCPU count.
pub fn csv(cells: &[PeerCell]) -> String {
    let mut s = String::from(
        "vcpus,row,runs,wall_us_median,wall_us_min,wall_us_max,peak_rss_kib,guest_bringup_us_median,sipi_bringup_over_this,sipi_idle_over_this\n",
    );
    for c in cells {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{}",
            c.vcpus,
            c.row.key(),
            c.runs,
            num(c.wall_us, 0),
            num(c.wall_us_min, 0),
            num(c.wall_us_max, 0),
            num(c.max_rss_kb, 0),
            num(c.guest_bringup_us, 0),
            num(c.vs_sipi_bringup, 3),
            num(c.vs_sipi_idle, 3),
        );
    }
    s
}
