//! The harness's own command line.

use std::path::PathBuf;

use crate::runner::Strategy;

/// vCPU counts by default: powers of two up to 256.
const DEFAULT_COUNTS: [u32; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];
/// Added by `--large`.
const LARGE_COUNTS: [u32; 2] = [512, 1024];
/// vCPU counts of the peer table by default (each peer runs those it allows).
const DEFAULT_PEER_COUNTS: [u32; 5] = [1, 32, 128, 256, 1024];
/// Boots per cell by default.
const DEFAULT_RUNS: u32 = 5;

/// Parsed options.
#[derive(Debug, Clone)]
pub struct BenchArgs {
    pub counts: Vec<u32>,
    pub runs: u32,
    pub strategies: Vec<Strategy>,
    pub no_qemu: bool,
    pub out: PathBuf,
    pub guest_elf: PathBuf,
    /// vCPU counts of the peer table.
    pub peer_counts: Vec<u32>,
    /// Skip the peer table.
    pub no_peers: bool,
    /// The minimal PVH kernel every VMM boots in the peer table.
    pub minimal_kernel: PathBuf,
}

fn list<T>(v: &str, what: &str, f: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| f(s).ok_or(format!("invalid {what} {s:?}")))
        .collect()
}

impl BenchArgs {
    /// Parses the arguments (cargo bench adds `--bench`, which is ignored).
    pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Self, String> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut a = BenchArgs {
            counts: DEFAULT_COUNTS.to_vec(),
            runs: DEFAULT_RUNS,
            strategies: Strategy::ALL.to_vec(),
            no_qemu: false,
            out: root.join("target/bench"),
            guest_elf: root.join("target/guest.elf"),
            peer_counts: DEFAULT_PEER_COUNTS.to_vec(),
            no_peers: false,
            minimal_kernel: root.join("target/kernels/pvh_exit_now.elf"),
        };
        let mut large = false;
        while let Some(arg) = it.next() {
            let mut value = || it.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--bench" => {}
                "--counts" => {
                    a.counts = list(&value()?, "count", |s| s.parse().ok().filter(|n| *n > 0))?
                }
                "--runs" => {
                    a.runs = value()?
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or("invalid --runs")?
                }
                "--strategies" => a.strategies = list(&value()?, "strategy", Strategy::from_name)?,
                "--large" => large = true,
                "--no-qemu" => a.no_qemu = true,
                "--peer-counts" => {
                    a.peer_counts = list(&value()?, "peer count", |s| {
                        s.parse().ok().filter(|n| *n > 0)
                    })?
                }
                "--no-peers" => a.no_peers = true,
                "--out" => a.out = PathBuf::from(value()?),
                "--guest" => a.guest_elf = PathBuf::from(value()?),
                other => return Err(format!("unknown option {other}")),
            }
        }
        if large {
            for n in LARGE_COUNTS {
                if !a.counts.contains(&n) {
                    a.counts.push(n);
                }
            }
        }
        if a.counts.is_empty() || a.strategies.is_empty() {
            return Err("nothing to run: empty --counts or --strategies".into());
        }
        if a.peer_counts.is_empty() && !a.no_peers {
            return Err("nothing to run in the peer table: empty --peer-counts".into());
        }
        Ok(a)
    }
}
