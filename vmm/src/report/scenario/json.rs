//! The scenario block's JSON object and its lines of the human summary.

use std::collections::BTreeMap;

use firmware::cmdline::{Scenario, Teardown};
use firmware::report::decode::BootReport;
use firmware::report::{Violation, ViolationKind};
use serde::Serialize;

use super::VIOLATIONS_SHOWN;
use crate::report::stamps::cycles_to_us;
use crate::report::stats::{self, PhaseStats};

/// One round of a scenario in the JSON report.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RoundJson {
    /// Bringing every AP up, BSP cycles (suspend-resume: from the resume's first instruction
    /// after round 1).
    pub up_cycles: u64,
    /// Taking every AP down, BSP cycles (suspend-resume: the suspend that ends the round to
    /// the next resume; 0 in the last round).
    pub down_cycles: u64,
}

/// The scenario in the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioJson {
    /// boot / teardown / reboot-cycles / hotplug-torture / suspend-resume.
    pub name: &'static str,
    /// serial / parallel (null for boot, hotplug-torture and suspend-resume).
    pub teardown: Option<&'static str>,
    /// Rounds completed (bring up, take down).
    pub rounds: u32,
    /// CPU offline and online operations.
    pub ops: u32,
    /// Invariant violations found.
    pub violations: u32,
    /// APs that parked in the last teardown.
    pub parked: u32,
    /// The last teardown, start to every AP parked and INITed, BSP cycles.
    pub teardown_cycles: u64,
    /// The same in microseconds (null without a TSC frequency).
    pub teardown_us: Option<f64>,
    /// Per teardown phase (keyed by the stamp that ends it, plus `request_to_init`): cycles
    /// from the AP's previous stamp, as in `phases`.
    pub teardown_phases: BTreeMap<&'static str, PhaseStats>,
    /// Every round.
    pub round_cycles: Vec<RoundJson>,
    /// Across rounds: `up` and `down` cycles.
    pub round_stats: BTreeMap<&'static str, PhaseStats>,
    /// Hotplug-torture: most operations in flight at once, after the guest's clamp (0 for
    /// other scenarios).
    pub concurrency: u32,
    /// Hotplug-torture: the seed of the guest's random choices (null for other scenarios).
    pub seed: Option<u64>,
    /// Hotplug-torture: the first operation's start to the last one's end, BSP cycles.
    pub duration_cycles: u64,
    /// The same in microseconds (null without a TSC frequency).
    pub duration_us: Option<f64>,
    /// Hotplug-torture: operations per second over `duration_cycles` (null without
    /// operations, a duration or a TSC frequency).
    pub ops_per_sec: Option<f64>,
    /// Hotplug-torture: per-operation latency in cycles (all 0 for other scenarios).
    pub latency_cycles: Latency<u64>,
    /// The same in microseconds (null without a TSC frequency).
    pub latency_us: Option<Latency<f64>>,
    /// Hotplug-torture: the first violations (at most 64; `violations` counts all of them).
    pub violation_list: Vec<ViolationJson>,
}

/// Per-operation latency percentiles (nearest rank, as the guest computes them).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency<T> {
    /// Median.
    pub p50: T,
    /// 99th percentile.
    pub p99: T,
    /// The slowest operation.
    pub max: T,
}

/// One invariant violation in the JSON report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ViolationJson {
    /// The operation that took the CPU offline (numbered from 1 in the order started; 0 if
    /// none is to blame).
    pub op: u32,
    /// The APIC ID of the CPU the invariant was broken on (null for `work-lost`).
    pub cpu: Option<u32>,
    /// The APIC ID of the CPU whose reader found it.
    pub reader_cpu: u32,
    /// `handed-to-offline`, `ran-on-offline` or `work-lost`.
    pub kind: &'static str,
    /// The reader's TSC when it found it.
    pub tsc: u64,
}

impl ViolationJson {
    /// A checked report's violation (its kind was checked by the decoder).
    pub(in crate::report) fn new(v: &Violation) -> Self {
        let kind = ViolationKind::from_u32(v.kind);
        Self {
            op: v.op,
            cpu: (kind != Some(ViolationKind::WorkLost)).then_some(v.apic_id),
            reader_cpu: v.reader_apic_id,
            kind: kind.map_or("invalid", ViolationKind::name),
            tsc: v.tsc,
        }
    }

    /// The violation as a phrase for the error line and the summary.
    pub(in crate::report) fn describe(&self) -> String {
        let after = match self.op {
            0 => "it went offline".to_string(),
            op => format!("op {op} took it offline"),
        };
        let cpu = self
            .cpu
            .map_or_else(|| "no CPU".to_string(), |c| format!("APIC ID {c}"));
        let reader = self.reader_cpu;
        if self.kind == ViolationKind::HandedToOffline.name() {
            format!("the reader on APIC ID {reader} handed work to {cpu} after {after}")
        } else if self.kind == ViolationKind::RanOnOffline.name() {
            format!("reader work ran on {cpu} after {after} (found by APIC ID {reader})")
        } else {
            let op = match self.op {
                0 => String::new(),
                op => format!(", op {op}"),
            };
            format!("reader work was lost or duplicated (found by APIC ID {reader}{op})")
        }
    }
}

/// The scenario part of the JSON report.
pub(crate) fn scenario_json(b: &BootReport<'_>, tsc_khz: u32) -> ScenarioJson {
    let sc = &b.scenario;
    let scenario = Scenario::from_u8(sc.scenario).unwrap_or(Scenario::Boot);
    let rounds: Vec<RoundJson> = b
        .rounds()
        .map(|r| RoundJson {
            up_cycles: r.up_cycles,
            down_cycles: r.down_cycles,
        })
        .collect();
    let mut round_stats = BTreeMap::new();
    if let Some(s) = stats::stats(rounds.iter().map(|r| r.up_cycles).collect()) {
        round_stats.insert("up", s);
    }
    // Suspend-resume's last round does not suspend: its "down" is no measurement.
    let downs = match scenario {
        Scenario::SuspendResume => rounds.len().saturating_sub(1),
        _ => rounds.len(),
    };
    if let Some(s) = stats::stats(rounds[..downs].iter().map(|r| r.down_cycles).collect()) {
        round_stats.insert("down", s);
    }
    let teardown_cycles = sc.teardown_end.saturating_sub(sc.teardown_start);
    let torture = scenario == Scenario::HotplugTorture;
    let latency_cycles = Latency {
        p50: sc.latency_p50,
        p99: sc.latency_p99,
        max: sc.latency_max,
    };
    let us = |c| cycles_to_us(c, tsc_khz);
    ScenarioJson {
        name: scenario.name(),
        teardown: (!matches!(
            scenario,
            Scenario::Boot | Scenario::HotplugTorture | Scenario::SuspendResume
        ))
        .then(|| Teardown::from_u8(sc.teardown).map_or("invalid", Teardown::name)),
        rounds: sc.rounds,
        ops: sc.ops,
        violations: sc.violations,
        parked: b.teardown().filter(|t| t.parked != 0).count() as u32,
        teardown_cycles,
        teardown_us: cycles_to_us(teardown_cycles, tsc_khz),
        teardown_phases: stats::teardown_stats(b),
        round_cycles: rounds,
        round_stats,
        concurrency: sc.concurrency,
        seed: torture.then_some(sc.seed),
        duration_cycles: sc.duration_cycles,
        duration_us: us(sc.duration_cycles),
        ops_per_sec: (sc.ops > 0 && sc.duration_cycles > 0 && tsc_khz > 0)
            .then(|| f64::from(sc.ops) * f64::from(tsc_khz) * 1000.0 / sc.duration_cycles as f64),
        latency_cycles,
        latency_us: (tsc_khz > 0).then(|| Latency {
            p50: us(sc.latency_p50).unwrap_or(0.0),
            p99: us(sc.latency_p99).unwrap_or(0.0),
            max: us(sc.latency_max).unwrap_or(0.0),
        }),
        violation_list: b.violations().map(|v| ViolationJson::new(&v)).collect(),
    }
}

/// The scenario's lines of the human summary (None for boot).
pub(in crate::report) fn render_scenario(s: &ScenarioJson, tsc_khz: u32) -> Option<String> {
    if s.name == Scenario::HotplugTorture.name() {
        return Some(render_torture(s));
    }
    if s.name == Scenario::SuspendResume.name() {
        return Some(render_suspend_resume(s, tsc_khz));
    }
    let teardown = s.teardown?;
    let us =
        |c: u64| cycles_to_us(c, tsc_khz).map_or_else(|| format!("{c}c"), |u| format!("{u:.1}"));
    let mut out = format!(
        "scenario {} ({teardown} teardown): {} rounds, {} ops, {} violations; last teardown {} cycles ({} us), {} APs parked\n",
        s.name,
        s.rounds,
        s.ops,
        s.violations,
        s.teardown_cycles,
        us(s.teardown_cycles),
        s.parked
    );
    if let (Some(up), Some(down)) = (s.round_stats.get("up"), s.round_stats.get("down")) {
        if s.rounds > 1 {
            out.push_str(&format!(
                "rounds (us): up median {} p99 {} max {} | down median {} p99 {} max {}\n",
                us(up.median),
                us(up.p99),
                us(up.max),
                us(down.median),
                us(down.p99),
                us(down.max)
            ));
        }
    }
    let mut keys: Vec<&str> = firmware::report::TEARDOWN_PHASES[1..].to_vec();
    keys.push(stats::REQUEST_TO_INIT);
    if !s.teardown_phases.is_empty() {
        out.push_str("teardown ");
        out.push_str(&stats::render_rows(&s.teardown_phases, &keys, tsc_khz));
    }
    Some(out)
}

/// Suspend-resume's lines of the human summary: the rounds, then each round's bringup (round 1
/// the boot's, later ones from the resume) and the suspend to resume that ends it.
fn render_suspend_resume(s: &ScenarioJson, tsc_khz: u32) -> String {
    let us =
        |c: u64| cycles_to_us(c, tsc_khz).map_or_else(|| format!("{c}c"), |u| format!("{u:.1}"));
    let mut out = format!(
        "scenario suspend-resume: {} rounds ({} suspends), {} APs brought up after resumes\n",
        s.rounds,
        s.rounds.saturating_sub(1),
        s.ops
    );
    for (i, r) in s.round_cycles.iter().enumerate() {
        let from = if i == 0 {
            "bringup"
        } else {
            "resume to all online"
        };
        out.push_str(&format!("  round {}: {from} {} us", i + 1, us(r.up_cycles)));
        if r.down_cycles != 0 {
            out.push_str(&format!(", suspend to resume {} us", us(r.down_cycles)));
        }
        out.push('\n');
    }
    out
}

/// Hotplug-torture's lines of the human summary: the run, its throughput and latency, and the
/// first violations.
fn render_torture(s: &ScenarioJson) -> String {
    let seed = s.seed.map_or_else(|| "-".to_string(), |v| v.to_string());
    let rate = s
        .ops_per_sec
        .map_or_else(|| "- ops/s".to_string(), |r| format!("{r:.0} ops/s"));
    let (duration, latency) = match (s.duration_us, s.latency_us) {
        (Some(d), Some(l)) => (
            format!("{d:.1} us"),
            format!(
                "latency (us) p50 {:.1} p99 {:.1} max {:.1}",
                l.p50, l.p99, l.max
            ),
        ),
        _ => {
            let l = s.latency_cycles;
            (
                format!("{} cycles", s.duration_cycles),
                format!("latency (cycles) p50 {} p99 {} max {}", l.p50, l.p99, l.max),
            )
        }
    };
    let mut out = format!(
        "scenario hotplug-torture (seed {seed}): {} ops, concurrency {}, {rate} over {duration}; {latency}; {} violations\n",
        s.ops, s.concurrency, s.violations
    );
    for v in s.violation_list.iter().take(VIOLATIONS_SHOWN) {
        out.push_str(&format!(
            "  violation {} at TSC {}: {}\n",
            v.kind,
            v.tsc,
            v.describe()
        ));
    }
    let listed = s.violation_list.len().min(VIOLATIONS_SHOWN);
    if (s.violations as usize) > listed {
        out.push_str(&format!(
            "  ... and {} more\n",
            s.violations as usize - listed
        ));
    }
    out
}
