//! The peer comparison's plan and runs: which rows run at which vCPU counts (those whose
//! binary is there, each up to its own limit), in a fixed order, one interleaved round at a
//! time, and the notes that say what did not run.

use std::path::Path;

use crate::args::BenchArgs;
use crate::peer_binaries::{self, Binaries, CLOUD_HYPERVISOR_VAR, FIRECRACKER_VAR};
use crate::peer_stats::{self, PeerCell, PeerSeries};
use crate::peers::{self, Row};

/// The planned peer table and the boots so far.
#[derive(Debug)]
pub struct PeerRun {
    pub bins: Binaries,
    /// Count-major (every row at one count, then the next count): sipi and its peers at a count
    /// run next to each other, so a pair shares the machine's state.
    pub series: Vec<PeerSeries>,
    /// What was not run, and why.
    pub notes: Vec<String>,
}

impl PeerRun {
    /// Plans the table. Errors: a peer variable that names no executable file, or a missing
    /// guest or minimal kernel.
    pub fn plan(args: &BenchArgs, vmm: &Path, qemu: Option<&Path>) -> Result<Self, String> {
        let bins = Binaries {
            vmm: vmm.to_path_buf(),
            guest: args.guest_elf.clone(),
            minimal_kernel: args.minimal_kernel.clone(),
            qemu: qemu.map(Path::to_path_buf),
            cloud_hypervisor: peer_binaries::from_env(CLOUD_HYPERVISOR_VAR)?,
            firecracker: peer_binaries::from_env(FIRECRACKER_VAR)?,
        };
        peer_binaries::check_inputs(&bins)?;
        let mut notes = Vec::new();
        if args.no_qemu {
            notes.push("QEMU microvm: not run (--no-qemu).".to_string());
        } else if bins.qemu.is_none() {
            notes.push(
                "QEMU microvm: qemu-system-x86_64 is not installed (`make peers` installs it)."
                    .to_string(),
            );
        }
        for (name, var, bin) in [
            (
                "Cloud Hypervisor",
                CLOUD_HYPERVISOR_VAR,
                &bins.cloud_hypervisor,
            ),
            ("Firecracker", FIRECRACKER_VAR, &bins.firecracker),
        ] {
            if bin.is_none() {
                notes.push(format!(
                    "{name}: not run (set {var} to its binary; docs/benchmarks.md, \"Peers\")."
                ));
            }
        }
        for row in Row::ALL {
            let skipped: Vec<String> = args
                .peer_counts
                .iter()
                .filter(|n| !row.applies_to(**n))
                .map(u32::to_string)
                .collect();
            if let (Some(max), Some(_), false) =
                (row.max_vcpus(), row.binary(&bins), skipped.is_empty())
            {
                notes.push(format!(
                    "{}: at most {max} vCPUs, not run at {}.",
                    row.name(),
                    skipped.join(", ")
                ));
            }
        }
        let series = args
            .peer_counts
            .iter()
            .flat_map(|&n| {
                Row::ALL
                    .into_iter()
                    .filter(move |r| r.applies_to(n))
                    .map(move |row| (row, n))
            })
            .filter(|(row, _)| row.binary(&bins).is_some())
            .map(|(row, vcpus)| PeerSeries {
                row,
                vcpus,
                runs: Vec::new(),
            })
            .collect();
        Ok(PeerRun {
            bins,
            series,
            notes,
        })
    }

    /// Boots in one round.
    pub fn boots_per_round(&self) -> usize {
        self.series.len()
    }

    /// Runs one round: every series once, in order. `before` is told each boot first; each
    /// failed boot adds a message to `failures`.
    pub fn round(&mut self, mut before: impl FnMut(&str), failures: &mut Vec<String>) {
        // The TSC frequency KVM reports to sipi, to read QEMU's guest cycles in microseconds.
        let mut tsc_khz = self
            .series
            .iter()
            .flat_map(|s| s.runs.iter().flatten())
            .map(|x| x.tsc_khz)
            .find(|k| *k > 0.0);
        for s in &mut self.series {
            let what = format!("{} at {} vCPUs", s.row.name(), s.vcpus);
            before(&what);
            match peers::run(s.row, &self.bins, s.vcpus, tsc_khz) {
                Ok(sample) => {
                    if sample.tsc_khz > 0.0 {
                        tsc_khz = Some(sample.tsc_khz);
                    }
                    s.runs.push(Some(sample));
                }
                Err(e) => {
                    failures.push(format!("{what}: {e}"));
                    s.runs.push(None);
                }
            }
        }
    }

    /// The table's cells.
    pub fn cells(&self) -> Vec<PeerCell> {
        peer_stats::cells(&self.series)
    }
}
