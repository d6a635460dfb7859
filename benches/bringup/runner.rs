//! Running `vmm` once and reading its JSON report, whole-process wall time and peak RSS.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;

use crate::process::wait_with_rusage;

/// What the harness compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Broadcast INIT/SIPI, APs only stamp (the lower bound).
    Floor,
    /// One AP at a time.
    Serial,
    /// One AP at a time with Linux's legacy 10 ms INIT delay (small counts only).
    SerialLegacy,
    /// Kick every AP with its own INIT/SIPI, then wait.
    Parallel,
    /// Kick every AP with the all-excluding-self shorthand, then wait.
    Broadcast,
    /// Parallel per-CPU kick, then the serial TSC check: each AP against the BSP in turn.
    TscSerial,
    /// Parallel per-CPU kick, then the parallel TSC check: one warp test of every CPU.
    TscParallel,
    /// Parallel bringup, then every AP taken offline one at a time (`--scenario teardown`).
    TeardownSerial,
    /// Parallel bringup, then every AP taken offline at once.
    TeardownParallel,
    /// Three rounds of parallel bringup and parallel teardown (`--cycles 3`).
    RebootCycles,
}

/// The legacy INIT delay is only run up to this many vCPUs (it costs 10 ms per AP).
const LEGACY_MAX_VCPUS: u32 = 8;

impl Strategy {
    /// Every strategy, in table order.
    pub const ALL: [Strategy; 10] = [
        Self::Floor,
        Self::Serial,
        Self::SerialLegacy,
        Self::Parallel,
        Self::Broadcast,
        Self::TscSerial,
        Self::TscParallel,
        Self::TeardownSerial,
        Self::TeardownParallel,
        Self::RebootCycles,
    ];

    /// The strategies that run a scenario after bringup (the scenario table and teardown.svg).
    pub const SCENARIOS: [Strategy; 3] = [
        Self::TeardownSerial,
        Self::TeardownParallel,
        Self::RebootCycles,
    ];

    /// The strategies that run a TSC check (the second table and tsc_sync.svg).
    pub const TSC_CHECKS: [Strategy; 2] = [Self::TscSerial, Self::TscParallel];

    /// Name in tables, CSV and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Floor => "floor",
            Self::Serial => "serial",
            Self::SerialLegacy => "serial-10ms",
            Self::Parallel => "parallel",
            Self::Broadcast => "broadcast",
            Self::TscSerial => "parallel+tsc-serial",
            Self::TscParallel => "parallel+tsc-parallel",
            Self::TeardownSerial => "teardown-serial",
            Self::TeardownParallel => "teardown-parallel",
            Self::RebootCycles => "reboot-cycles",
        }
    }

    /// Parses a name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.name() == s)
    }

    /// Whether this strategy runs at `vcpus`.
    pub fn applies_to(self, vcpus: u32) -> bool {
        self != Self::SerialLegacy || vcpus <= LEGACY_MAX_VCPUS
    }

    /// The vmm options selecting it.
    pub fn vmm_args(self) -> &'static [&'static str] {
        match self {
            Self::Floor => &["--bringup", "floor"],
            Self::Serial => &["--bringup", "serial"],
            Self::SerialLegacy => &["--bringup", "serial", "--init-delay-us", "10000"],
            Self::Parallel => &["--bringup", "parallel", "--kick", "per-cpu"],
            Self::Broadcast => &["--bringup", "parallel", "--kick", "broadcast"],
            Self::TscSerial => &[
                "--bringup",
                "parallel",
                "--kick",
                "per-cpu",
                "--tsc-sync",
                "serial",
            ],
            Self::TscParallel => &[
                "--bringup",
                "parallel",
                "--kick",
                "per-cpu",
                "--tsc-sync",
                "parallel",
            ],
            Self::TeardownSerial => &["--scenario", "teardown", "--teardown", "serial"],
            Self::TeardownParallel => &["--scenario", "teardown", "--teardown", "parallel"],
            Self::RebootCycles => &[
                "--scenario",
                "reboot-cycles",
                "--teardown",
                "parallel",
                "--cycles",
                "3",
            ],
        }
    }
}

/// One boot's figures.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Whole process, fork to exit.
    pub wall_us: f64,
    /// Peak resident set of the vmm process (KiB).
    pub max_rss_kb: f64,
    /// Guest bringup, BringupStart to AllOnline.
    pub bringup_cycles: f64,
    /// The same in microseconds.
    pub bringup_us: f64,
    /// Median across APs of each AP phase, in cycles.
    pub phases: BTreeMap<String, f64>,
    /// TSC frequency KVM reported.
    pub tsc_khz: f64,
    /// VMM phases, in microseconds.
    pub vmm_phases: BTreeMap<String, f64>,
    /// Microseconds the BSP spent on the TSC check (`tsc_sync.us`; 0 without one).
    pub tsc_sync_us: f64,
    /// The largest TSC warp the check found (cycles).
    pub tsc_max_warp: f64,
    /// The (last) teardown, microseconds (`scenario.teardown_us`; 0 without a scenario).
    pub teardown_us: f64,
    /// Median over rounds of one round (up plus down), microseconds (0 without a scenario).
    pub round_us: f64,
    /// The APs' median of KVM's `exits` during bringup (NaN without APs or counters).
    pub ap_exits: f64,
    /// The APs' median of KVM's `insn_emulation` during bringup (NaN without APs or counters).
    pub ap_insn_emulation: f64,
}

fn numbers(v: &Value, field: Option<&str>) -> BTreeMap<String, f64> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, x)| {
                    field
                        .map_or(Some(x), |f| x.get(f))
                        .and_then(Value::as_f64)
                        .map(|f| (k.clone(), f))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Boots `vmm --vcpus n` with strategy `s` once.
pub fn run_vmm(vmm: &str, n: u32, s: Strategy) -> Result<Sample, String> {
    let dir = std::env::temp_dir().join(format!("sipi-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let json = dir.join("r.json");
    let _ = std::fs::remove_file(&json);
    let start = Instant::now();
    let child = Command::new(vmm)
        .args([
            "--vcpus",
            &n.to_string(),
            "--quiet",
            "--console",
            "/dev/null",
            "--json",
        ])
        .arg(&json)
        .args(s.vmm_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {vmm}: {e}"))?;
    let pid = libc::pid_t::try_from(child.id()).map_err(|e| e.to_string())?;
    let (code, rss) = wait_with_rusage(pid)?;
    let wall_us = start.elapsed().as_secs_f64() * 1e6;
    let text = std::fs::read_to_string(&json).map_err(|e| format!("exit {code}, no JSON: {e}"))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let checked = v["tsc_sync"]["strategy"]
        .as_str()
        .is_some_and(|s| s != "none");
    let scenario = Strategy::SCENARIOS.contains(&s);
    // After a scenario only the BSP is online; every AP must have parked.
    let (online, parked) = if scenario { (1, n - 1) } else { (n, 0) };
    if code != 0
        || v["online"].as_u64() != Some(u64::from(online))
        || v["scenario"]["parked"].as_u64().unwrap_or(0) != u64::from(parked)
    {
        return Err(format!(
            "exit {code}, online {}, error {}",
            v["online"], v["error"]
        ));
    }
    Ok(Sample {
        wall_us,
        max_rss_kb: rss,
        bringup_cycles: v["bringup_cycles"].as_f64().unwrap_or(0.0),
        bringup_us: v["bringup_us"].as_f64().unwrap_or(0.0),
        tsc_khz: v["tsc_khz"].as_f64().unwrap_or(0.0),
        phases: numbers(&v["phases"], Some("median")),
        vmm_phases: numbers(&v["vmm_phases_us"], None),
        tsc_sync_us: if checked {
            v["tsc_sync"]["us"].as_f64().unwrap_or(0.0)
        } else {
            0.0
        },
        tsc_max_warp: v["tsc_sync"]["max_warp_cycles"].as_f64().unwrap_or(0.0),
        teardown_us: v["scenario"]["teardown_us"].as_f64().unwrap_or(0.0),
        round_us: round_us(&v),
        ap_exits: ap_median(&v, "exits"),
        ap_insn_emulation: ap_median(&v, "insn_emulation"),
    })
}

/// The APs' median of KVM's counter `name` over bringup, from the report's
/// `kvm_stats.summary.setup_to_doorbell.aps` (docs/json.md); NaN without APs or counters.
fn ap_median(v: &Value, name: &str) -> f64 {
    v["kvm_stats"]["summary"]["setup_to_doorbell"]["aps"][name]["median"]
        .as_f64()
        .unwrap_or(f64::NAN)
}

/// The median round (up plus down cycles) of a scenario's report, in microseconds.
fn round_us(v: &Value) -> f64 {
    let khz = v["tsc_khz"].as_f64().unwrap_or(0.0);
    let rounds: Vec<f64> = v["scenario"]["round_cycles"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    r["up_cycles"].as_f64().unwrap_or(0.0)
                        + r["down_cycles"].as_f64().unwrap_or(0.0)
                })
                .collect()
        })
        .unwrap_or_default();
    if khz > 0.0 && !rounds.is_empty() {
        crate::stats::median(&rounds) * 1000.0 / khz
    } else {
        0.0
    }
}
