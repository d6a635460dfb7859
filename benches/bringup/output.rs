//! The bringup tables (stdout and bringup.md), the QEMU pc footnote, the CSV, and the files
//! on disk.

use std::fmt::Write as _;
use std::path::Path;

use crate::qemu::QemuCell;
use crate::runner::Strategy;
use crate::stats::{bringup_of, teardown_of, Cell};

/// AP phases in table order (keys of the vmm JSON `phases`).
const AP_PHASES: [&str; 6] = [
    "trampoline",
    "long_mode",
    "percpu_init",
    "tsc_sync",
    "online",
    "kick_to_online",
];
/// VMM phases in table order (keys of the vmm JSON `vmm_phases_us`).
const VMM_PHASES: [&str; 11] = [
    "open_kvm",
    "create_vm",
    "memory",
    "load_kernel",
    "acpi",
    "create_vcpus",
    "first_run",
    "report",
    "exit",
    "teardown",
    "total",
];

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.0}")
    } else {
        "-".into()
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

/// The bringup tables as markdown (the QEMU pc footnote is [`qemu_footnote`]).
pub fn markdown(rows: &[Cell], runs: u32) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## AP bringup (median of {runs} runs; bringup = BSP's BringupStart to AllOnline)\n"
    );
    let _ = writeln!(
        s,
        "| vCPUs | strategy | bringup us (min-max) | {} (median cycles) | AP exits | AP emulated insns | vs serial | vs floor | wall ms | peak RSS MiB |",
        AP_PHASES.join(" | ")
    );
    let _ = writeln!(s, "|{}", "---|".repeat(10 + AP_PHASES.len() - 1));
    for c in rows {
        let phases: Vec<String> = AP_PHASES
            .iter()
            .map(|p| c.phases.get(*p).map_or("-".into(), |v| num(*v)))
            .collect();
        let me = Some(c.bringup_us);
        let _ = writeln!(
            s,
            "| {} | {} | {} ({}-{}) | {} | {} | {} | {} | {} | {:.1} | {:.1} |",
            c.vcpus,
            c.strategy.name(),
            num(c.bringup_us),
            num(c.bringup_us_min),
            num(c.bringup_us_max),
            phases.join(" | "),
            num(c.ap_exits),
            num(c.ap_insn_emulation),
            ratio(me, bringup_of(rows, c.vcpus, Strategy::Serial)),
            ratio(me, bringup_of(rows, c.vcpus, Strategy::Floor)),
            c.wall_us / 1000.0,
            c.max_rss_kb / 1024.0,
        );
    }
    tsc_sync_table(&mut s, rows, runs);
    scenario_table(&mut s, rows, runs);
    let _ = writeln!(s, "\n## VMM phases (median us)\n");
    let _ = writeln!(s, "| vCPUs | strategy | {} |", VMM_PHASES.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(2 + VMM_PHASES.len()));
    for c in rows {
        let v: Vec<String> = VMM_PHASES
            .iter()
            .map(|p| c.vmm_phases.get(*p).map_or("-".into(), |x| num(*x)))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            c.vcpus,
            c.strategy.name(),
            v.join(" | ")
        );
    }
    s
}

/// The footnote: the same guest.elf under QEMU's pc machine with SeaBIOS, against sipi's
/// parallel bringup (the peer table compares against QEMU's faster microvm machine).
pub fn qemu_footnote(rows: &[Cell], qemu: &[QemuCell], qemu_note: Option<&str>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n## Footnote: QEMU's pc machine with SeaBIOS (same guest.elf through its PVH entry)\n"
    );
    if let Some(note) = qemu_note {
        let _ = writeln!(s, "{note}");
    }
    if !qemu.is_empty() {
        let _ = writeln!(s, "| vCPUs | QEMU wall ms | guest bringup under QEMU us | sipi parallel wall ms | QEMU / sipi wall |");
        let _ = writeln!(s, "|---|---|---|---|---|");
        for q in qemu {
            let sipi = rows
                .iter()
                .find(|c| c.vcpus == q.vcpus && c.strategy == Strategy::Parallel)
                .map(|c| c.wall_us);
            let count = if q.qemu_vcpus == q.vcpus {
                q.vcpus.to_string()
            } else {
                format!("{} (QEMU {}, its pc machine's most)", q.vcpus, q.qemu_vcpus)
            };
            let _ = writeln!(
                s,
                "| {} | {:.1} | {} | {} | {} |",
                count,
                q.wall_us / 1000.0,
                num(q.bringup_us),
                sipi.map_or("-".into(), |w| format!("{:.1}", w / 1000.0)),
                ratio(Some(q.wall_us), sipi),
            );
        }
    }
    s
}

/// The TSC check's table: what each check costs against vCPU count, per AP, and what it adds
/// to the same bringup without a check.
fn tsc_sync_table(s: &mut String, rows: &[Cell], runs: u32) {
    let checks: Vec<&Cell> = rows
        .iter()
        .filter(|c| Strategy::TSC_CHECKS.contains(&c.strategy))
        .collect();
    if checks.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n## TSC synchronisation check (median of {runs} runs; check = `tsc_sync.us`, the BSP's time on it)\n"
    );
    let _ = writeln!(
        s,
        "| vCPUs | strategy | check us (min-max) | check us per AP | bringup us | bringup us without check | vs serial check | max warp cycles |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for c in checks {
        let aps = c.vcpus.saturating_sub(1);
        let per_ap = if aps > 0 {
            num(c.tsc_sync_us / f64::from(aps))
        } else {
            "-".into()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} ({}-{}) | {per_ap} | {} | {} | {} | {} |",
            c.vcpus,
            c.strategy.name(),
            num(c.tsc_sync_us),
            num(c.tsc_sync_us_min),
            num(c.tsc_sync_us_max),
            num(c.bringup_us),
            bringup_of(rows, c.vcpus, Strategy::Parallel).map_or("-".into(), num),
            ratio(
                Some(c.tsc_sync_us),
                tsc_sync_of(rows, c.vcpus, Strategy::TscSerial)
            ),
            num(c.tsc_max_warp),
        );
    }
}

/// The scenarios' table: serial vs parallel teardown and reboot-cycle rounds against vCPU count.
fn scenario_table(s: &mut String, rows: &[Cell], runs: u32) {
    let cells: Vec<&Cell> = rows
        .iter()
        .filter(|c| Strategy::SCENARIOS.contains(&c.strategy))
        .collect();
    if cells.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n## Teardown and reboot cycles (median of {runs} runs; teardown = `scenario.teardown_us`, round = one bringup plus one teardown)\n"
    );
    let _ = writeln!(
        s,
        "| vCPUs | scenario | teardown us (min-max) | teardown us per AP | serial / parallel | round us |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for c in cells {
        let aps = c.vcpus.saturating_sub(1);
        let per_ap = if aps > 0 {
            num(c.teardown_us / f64::from(aps))
        } else {
            "-".into()
        };
        let round = if c.strategy == Strategy::RebootCycles {
            num(c.round_us)
        } else {
            "-".into()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} ({}-{}) | {per_ap} | {} | {round} |",
            c.vcpus,
            c.strategy.name(),
            num(c.teardown_us),
            num(c.teardown_us_min),
            num(c.teardown_us_max),
            ratio(
                teardown_of(rows, c.vcpus, Strategy::TeardownSerial),
                Some(c.teardown_us)
            ),
        );
    }
}

/// The TSC check's median cost of `strategy` at `vcpus`, if measured.
fn tsc_sync_of(rows: &[Cell], vcpus: u32, strategy: Strategy) -> Option<f64> {
    rows.iter()
        .find(|c| c.vcpus == vcpus && c.strategy == strategy)
        .map(|c| c.tsc_sync_us)
}

/// The CSV (one row per cell, every measured field).
pub fn csv(rows: &[Cell]) -> String {
    let mut s = String::from("vcpus,strategy,runs,bringup_us_median,bringup_us_min,bringup_us_max,bringup_cycles_median,wall_us_median,peak_rss_kib,tsc_sync_us_median,tsc_sync_us_min,tsc_sync_us_max,tsc_max_warp_cycles,teardown_us_median,teardown_us_min,teardown_us_max,round_us_median");
    for p in AP_PHASES {
        let _ = write!(s, ",ap_{p}_cycles");
    }
    for p in VMM_PHASES {
        let _ = write!(s, ",vmm_{p}_us");
    }
    s.push_str(",ap_kvm_exits_median,ap_kvm_insn_emulation_median\n");
    for c in rows {
        let _ = write!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            c.vcpus,
            c.strategy.name(),
            c.runs,
            num(c.bringup_us),
            num(c.bringup_us_min),
            num(c.bringup_us_max),
            num(c.bringup_cycles),
            num(c.wall_us),
            num(c.max_rss_kb),
            num(c.tsc_sync_us),
            num(c.tsc_sync_us_min),
            num(c.tsc_sync_us_max),
            num(c.tsc_max_warp),
            num(c.teardown_us),
            num(c.teardown_us_min),
            num(c.teardown_us_max),
            num(c.round_us)
        );
        for p in AP_PHASES {
            let _ = write!(s, ",{}", c.phases.get(p).map_or(String::new(), |v| num(*v)));
        }
        for p in VMM_PHASES {
            let _ = write!(
                s,
                ",{}",
                c.vmm_phases.get(p).map_or(String::new(), |v| num(*v))
            );
        }
        let _ = writeln!(s, ",{},{}", num(c.ap_exits), num(c.ap_insn_emulation));
    }
    s
}

/// Writes `text` to `dir`/`name`, creating `dir`.
pub fn write_file(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))
}

/// Writes bringup.md, bringup.csv, bringup.svg, tsc_sync.svg and teardown.svg into `dir`.
pub fn write_all(dir: &Path, rows: &[Cell], qemu: &[QemuCell], md: &str) -> Result<(), String> {
    let write = |name: &str, text: &str| write_file(dir, name, text);
    write("bringup.md", md)?;
    write("bringup.csv", &csv(rows))?;
    crate::plot::svg(&dir.join("bringup.svg"), rows, qemu)?;
    crate::plot::tsc_sync_svg(&dir.join("tsc_sync.svg"), rows)?;
    crate::plot::teardown_svg(&dir.join("teardown.svg"), rows)
}
