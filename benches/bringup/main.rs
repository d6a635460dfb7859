//! `make bench`: serial vs parallel AP bringup across vCPU counts, against the floor (and
//! against QEMU when it is installed).
//!
//! Every cell (vCPU count x strategy) boots the real `vmm` K times; runs are interleaved (run 1
//! of every cell, then run 2, ...) so that drift on a shared machine hits every strategy alike.
//! Output: markdown tables on stdout (bringup per strategy, the TSC checks, VMM phases), and
//! target/bench/bringup.{csv,md,svg} and tsc_sync.svg.
//!
//! Options (after `--`, or via `make bench BENCH_ARGS=...`): `--counts 1,4,16`, `--runs K`,
//! `--large` (adds 512 and 1024), `--strategies floor,serial,...`, `--no-qemu`, `--out DIR`.

mod args;
mod output;
mod plot;
mod qemu;
mod runner;
mod stats;

use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use args::BenchArgs;
use runner::{Sample, Strategy};

fn main() -> ExitCode {
    let args = match BenchArgs::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let vmm = env!("CARGO_BIN_EXE_vmm");
    let cells: Vec<(u32, Strategy)> = args
        .counts
        .iter()
        .flat_map(|&n| {
            args.strategies
                .iter()
                .filter(move |s| s.applies_to(n))
                .map(move |&s| (n, s))
        })
        .collect();
    let qemu = (!args.no_qemu).then(qemu::find).flatten();
    // (sipi's count, QEMU's count)
    let qemu_counts: Vec<(u32, u32)> = match &qemu {
        Some(_) => args
            .counts
            .iter()
            .filter_map(|n| qemu::peer_count(*n).map(|q| (*n, q)))
            .collect(),
        None => Vec::new(),
    };
    let total = (cells.len() + qemu_counts.len()) as u64 * u64::from(args.runs);
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} [{elapsed_precise}, eta {eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); cells.len()];
    let mut qemu_samples: Vec<Vec<qemu::QemuSample>> = vec![Vec::new(); qemu_counts.len()];
    let mut failures = Vec::new();
    for run in 0..args.runs {
        for (i, (n, s)) in cells.iter().enumerate() {
            bar.set_message(format!("run {}: {n} vCPUs {}", run + 1, s.name()));
            match runner::run_vmm(vmm, *n, *s) {
                Ok(sample) => samples[i].push(sample),
                Err(e) => failures.push(format!("{n} vCPUs {}: {e}", s.name())),
            }
            bar.inc(1);
        }
        if let Some(q) = &qemu {
            for (i, (_, n)) in qemu_counts.iter().enumerate() {
                bar.set_message(format!("run {}: QEMU {n} vCPUs", run + 1));
                let tsc_khz = samples
                    .iter()
                    .flatten()
                    .map(|s| s.tsc_khz)
                    .find(|k| *k > 0.0);
                match qemu::run(q, &args.guest_elf, *n, tsc_khz) {
                    Ok(sample) => qemu_samples[i].push(sample),
                    Err(e) => failures.push(format!("QEMU {n} vCPUs: {e}")),
                }
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    let rows: Vec<stats::Cell> = cells
        .iter()
        .zip(&samples)
        .filter_map(|((n, s), v)| stats::Cell::from_samples(*n, *s, v))
        .collect();
    let qemu_rows: Vec<qemu::QemuCell> = qemu_counts
        .iter()
        .zip(&qemu_samples)
        .filter_map(|((n, q), v)| qemu::QemuCell::from_samples(*n, *q, v))
        .collect();
    let qemu_note = match (&qemu, args.no_qemu) {
        (_, true) => Some("Not run (--no-qemu)."),
        (None, false) => {
            Some("qemu-system-x86_64 is not installed (`make peers` installs it): no QEMU figures.")
        }
        (Some(_), false) => None,
    };
    let md = output::markdown(&rows, &qemu_rows, args.runs, qemu_note);
    print!("{md}");
    for f in &failures {
        eprintln!("warning: {f}");
    }
    if let Err(e) = output::write_all(&args.out, &rows, &qemu_rows, &md) {
        eprintln!("error: {e}");
        return ExitCode::from(3);
    }
    eprintln!(
        "wrote {}/bringup.{{md,csv,svg}}, tsc_sync.svg and teardown.svg",
        args.out.display()
    );
    // Any failed boot fails the run: a benchmark that silently drops cells would mislead.
    if rows.is_empty() || !failures.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
