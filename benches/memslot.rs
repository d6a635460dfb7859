//! `make bench` (memslot part): bursts of small memory-region changes applied while vCPUs run
//! guest code, one ioctl per change (naive) vs memory-map transactions (batched).
//!
//! For every burst size and vCPU count it runs both modes (in a fresh VM each) and reports
//! wall time, ioctl count (and the minimal diff the batched count must equal), per-ioctl
//! latency (median, p99), and the naive/batched wall-time ratio. The target: batched at least
//! 100x faster than naive for 6000 changes with running vCPUs, with an ioctl count equal to the
//! minimal diff. Output: a markdown table on stdout, and target/bench/memslot.{md,json}.
//!
//! Options (after `--`, or via `make bench BENCH_ARGS=...`): `--changes 1000,6000,20000`,
//! `--vcpus 0,2,8,64`, `--repeat K` (median of K runs per cell, interleaved),
//! `--per-transaction N` (commit every N changes instead of once per burst), `--out DIR`.
//! Exits 1 if a burst fails or a batched ioctl count differs from the minimal diff.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use vmm::memslot_burst::{self, BurstConfig, BurstReport, Mode};

/// The burst size the target is stated for.
const TARGET_CHANGES: u32 = 6000;
/// The speed-up the target asks for.
const TARGET_RATIO: f64 = 100.0;

/// Options.
#[derive(Debug, Parser)]
#[command(name = "memslot-bench")]
struct Args {
    /// Burst sizes (changes).
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 6000, 20000])]
    changes: Vec<u32>,
    /// Running vCPU counts.
    #[arg(long, value_delimiter = ',', default_values_t = [0, 2, 8, 64])]
    vcpus: Vec<u32>,
    /// Runs per cell (the median is reported).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Commit every N changes (default: one transaction per burst).
    #[arg(long)]
    per_transaction: Option<u32>,
    /// Output directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One cell: a burst size, a vCPU count, and the runs of both modes.
struct Cell {
    changes: u32,
    vcpus: u32,
    naive: Vec<BurstReport>,
    batched: Vec<BurstReport>,
}

/// The run with the median wall time.
fn median(runs: &[BurstReport]) -> Option<&BurstReport> {
    let mut v: Vec<&BurstReport> = runs.iter().collect();
    v.sort_by_key(|r| r.wall_us);
    v.get(v.len().saturating_sub(1) / 2).copied()
}

fn us(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

fn ms(wall_us: u64) -> String {
    format!("{:.2}", wall_us as f64 / 1000.0)
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("bench")
    });
    let mut cells: Vec<Cell> = args
        .vcpus
        .iter()
        .flat_map(|&vcpus| {
            args.changes.iter().map(move |&changes| Cell {
                changes,
                vcpus,
                naive: Vec::new(),
                batched: Vec::new(),
            })
        })
        .collect();
    let mut failures = Vec::new();
    for run in 0..args.repeat {
        for cell in &mut cells {
            for mode in [Mode::Naive, Mode::Batched] {
                eprint!(
                    "\rrun {}/{}: {} changes, {} vCPUs, {:7}  ",
                    run + 1,
                    args.repeat,
                    cell.changes,
                    cell.vcpus,
                    mode.name()
                );
                let cfg = BurstConfig {
                    changes: cell.changes,
                    vcpus: cell.vcpus,
                    mode,
                    changes_per_transaction: args.per_transaction,
                    kvm_device: "/dev/kvm".into(),
                    seccomp: !vmm::seccomp::disabled(),
                };
                match memslot_burst::run(&cfg) {
                    Ok(r) if r.error.is_none() => match mode {
                        Mode::Naive => cell.naive.push(r),
                        Mode::Batched => cell.batched.push(r),
                    },
                    Ok(r) => failures.push(format!(
                        "{} changes, {} vCPUs, {}: {}",
                        cell.changes,
                        cell.vcpus,
                        mode.name(),
                        r.error.unwrap_or_default()
                    )),
                    Err(e) => failures.push(format!(
                        "{} changes, {} vCPUs, {}: {}",
                        cell.changes,
                        cell.vcpus,
                        mode.name(),
                        vmm::error_line(&e)
                    )),
                }
            }
        }
    }
    eprintln!();

    let mut md = String::new();
    md.push_str(&format!(
        "memslot bursts: naive (one ioctl per change) vs batched ({}), median of {} run(s)\n\n",
        match args.per_transaction {
            None => "one transaction per burst".to_string(),
            Some(n) => format!("a transaction every {n} changes"),
        },
        args.repeat
    ));
    md.push_str("| changes | vCPUs | naive ioctls | naive wall ms | naive ioctl us median / p99 | batched tx | batched ioctls (minimal) | batched wall ms | batched ioctl us median / p99 | ratio |\n");
    md.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut mismatches = Vec::new();
    let mut target = Vec::new();
    let mut json = Vec::new();
    for cell in &cells {
        let (Some(n), Some(b)) = (median(&cell.naive), median(&cell.batched)) else {
            continue;
        };
        let ratio = n.wall_us as f64 / b.wall_us.max(1) as f64;
        for r in &cell.batched {
            if r.ioctls != r.minimal_ioctls {
                mismatches.push(format!(
                    "{} changes, {} vCPUs: batched issued {} ioctls, the minimal diff is {}",
                    cell.changes, cell.vcpus, r.ioctls, r.minimal_ioctls
                ));
            }
        }
        if cell.changes == TARGET_CHANGES && cell.vcpus > 0 {
            target.push((cell.vcpus, ratio, b.ioctls == b.minimal_ioctls));
        }
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} / {} | {} | {} ({}) | {} | {} / {} | {:.0}x |\n",
            cell.changes,
            cell.vcpus,
            n.ioctls,
            ms(n.wall_us),
            us(n.ioctl_us.median),
            us(n.ioctl_us.p99),
            b.transactions,
            b.ioctls,
            b.minimal_ioctls,
            ms(b.wall_us),
            us(b.ioctl_us.median),
            us(b.ioctl_us.p99),
            ratio
        ));
        json.push(serde_json::json!({
            "changes": cell.changes,
            "vcpus": cell.vcpus,
            "naive": n,
            "batched": b,
            "ratio": ratio,
        }));
    }
    md.push('\n');
    for (vcpus, ratio, exact) in &target {
        md.push_str(&format!(
            "target ({TARGET_CHANGES} changes, {vcpus} vCPUs): batched {ratio:.0}x faster than naive ({}), ioctls {} the minimal diff\n",
            if *ratio >= TARGET_RATIO { "met" } else { "MISSED" },
            if *exact { "equal to" } else { "NOT equal to" },
        ));
    }
    print!("{md}");
    let written = std::fs::create_dir_all(&out)
        .and_then(|()| std::fs::write(out.join("memslot.md"), &md))
        .and_then(|()| {
            let text = serde_json::to_string_pretty(&json).unwrap_or_default();
            std::fs::write(out.join("memslot.json"), text + "\n")
        });
    if let Err(e) = written {
        eprintln!("warning: cannot write {}: {e}", out.display());
    }
    for f in failures.iter().chain(&mismatches) {
        eprintln!("error: {f}");
    }
    if failures.is_empty() && mismatches.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
