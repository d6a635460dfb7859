//! `make bench`: serial vs parallel AP bringup across vCPU counts, against the floor; and the
//! peer table: sipi's whole process, bringing every AP online and starting idle, against QEMU
//! microvm, Cloud Hypervisor and Firecracker starting an idle VM of the same size.
//!
//! Every cell (vCPU count x strategy) boots the real `vmm` K times; runs are interleaved (run 1
//! of every cell and peer row, then run 2, ...) so that drift on a shared machine hits every
//! strategy and VMM alike. Output: markdown tables on stdout (bringup per strategy, the TSC
//! checks, VMM phases, the peer table, and QEMU's pc machine as a footnote), and
//! target/bench/bringup.{csv,md,svg}, tsc_sync.svg, teardown.svg and peers.{md,csv,svg}.
//!
//! Options (after `--`, or via `make bench BENCH_ARGS=...`): `--counts 1,4,16`, `--runs K`,
//! `--large` (adds 512 and 1024), `--strategies floor,serial,...`, `--no-qemu`, `--out DIR`,
//! `--peer-counts 1,32,...`, `--no-peers`. Cloud Hypervisor and Firecracker run when
//! SIPI_PEER_CLOUD_HYPERVISOR and SIPI_PEER_FIRECRACKER name their binaries.

mod args;
mod guest_console;
mod output;
mod peer_binaries;
mod peer_run;
mod peer_stats;
mod peer_table;
mod peers;
mod plot;
mod process;
mod qemu;
mod runner;
mod stats;

use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use args::BenchArgs;
use peer_run::PeerRun;
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
    let mut peer_run = if args.no_peers {
        None
    } else {
        match PeerRun::plan(&args, std::path::Path::new(vmm), qemu.as_deref()) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let peer_boots = peer_run.as_ref().map_or(0, PeerRun::boots_per_round);
    let total = (cells.len() + qemu_counts.len() + peer_boots) as u64 * u64::from(args.runs);
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
        if let Some(p) = &mut peer_run {
            p.round(
                |what| {
                    bar.set_message(format!("run {}: {what}", run + 1));
                    bar.inc(1);
                },
                &mut failures,
            );
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
    let md = output::markdown(&rows, args.runs);
    let footnote = output::qemu_footnote(&rows, &qemu_rows, qemu_note);
    let peer_cells = peer_run.as_ref().map(PeerRun::cells);
    let peer_md = match (&peer_run, &peer_cells) {
        (Some(p), Some(c)) => peer_table::markdown(c, args.runs, &p.notes),
        _ => "## Peers\n\nNot run (--no-peers).\n".to_string(),
    };
    print!("{md}\n{peer_md}{footnote}");
    for f in &failures {
        eprintln!("warning: {f}");
    }
    let written = output::write_all(&args.out, &rows, &qemu_rows, &format!("{md}{footnote}"))
        .and_then(|()| match &peer_cells {
            Some(c) => output::write_file(&args.out, "peers.md", &format!("{peer_md}{footnote}"))
                .and_then(|()| output::write_file(&args.out, "peers.csv", &peer_table::csv(c)))
                .and_then(|()| plot::peers_svg(&args.out.join("peers.svg"), c)),
            None => Ok(()),
        });
    if let Err(e) = written {
        eprintln!("error: {e}");
        return ExitCode::from(3);
    }
    eprintln!(
        "wrote {}/bringup.{{md,csv,svg}}, tsc_sync.svg, teardown.svg{}",
        args.out.display(),
        if peer_cells.is_some() {
            " and peers.{md,csv,svg}"
        } else {
            ""
        }
    );
    let peers_empty = peer_cells.as_ref().is_some_and(Vec::is_empty);
    // Any failed boot fails the run: a benchmark that silently drops cells would mislead.
    if rows.is_empty() || peers_empty || !failures.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
