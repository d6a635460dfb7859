//! The scenario block of a boot report (what the guest did after bringup): its checks against
//! the rest of the report and against what was asked for, its JSON and its summary lines, and
//! hotplug-torture's verdict on the invariant violations it found.

use std::collections::BTreeMap;

use firmware::cmdline::{GuestOptions, Scenario, Teardown};
use firmware::report::decode::BootReport;
use firmware::report::{
    BspPhase, CpuRecord, CpuState, ScenarioSummary, Violation, ViolationKind, CPU_FLAG_BSP,
    MAX_VIOLATIONS,
};
use serde::Serialize;

use super::{cycles_to_us, ordered, ReportCheckError};
use crate::phases::PhaseStats;

/// Violations listed in the human summary.
const VIOLATIONS_SHOWN: usize = 5;

/// Hotplug-torture's own results in the scenario block (all 0 for other scenarios).
fn torture_results(sc: &ScenarioSummary) -> [u64; 6] {
    [
        u64::from(sc.concurrency),
        sc.seed,
        sc.duration_cycles,
        sc.latency_p50,
        sc.latency_p99,
        sc.latency_max,
    ]
}

/// Checks the scenario block against itself and the CPU records: counts, the teardown window
/// inside the BSP's stamps, every teardown record naming a distinct AP of the report with its
/// stamps in order inside the window.
///
/// Hotplug-torture is checked by [`check_torture`] instead; every other scenario checks no
/// invariants, so it must report no violations and none of hotplug-torture's results.
pub(super) fn check_scenario(b: &BootReport<'_>) -> Result<(), ReportCheckError> {
    let sc = &b.scenario;
    let bad = |what| Err(ReportCheckError::Scenario(what));
    let Some(scenario) = Scenario::from_u8(sc.scenario) else {
        return bad("an unknown scenario");
    };
    if Teardown::from_u8(sc.teardown).is_none() {
        return bad("an unknown teardown strategy");
    }
    if scenario == Scenario::HotplugTorture {
        return check_torture(b);
    }
    if sc.violations != 0 || sc.violation_count != 0 {
        return bad("violations from a scenario that checks no invariants");
    }
    if torture_results(sc).iter().any(|v| *v != 0) {
        return bad("hotplug-torture results from another scenario");
    }
    let offline = b
        .cpus()
        .filter(|r| r.state == CpuState::Offline as u8)
        .count();
    if scenario == Scenario::Boot {
        if *sc != Default::default() {
            return bad("results without a scenario");
        }
        if offline > 0 {
            return bad("CPUs offline without a scenario");
        }
        return Ok(());
    }
    if sc.rounds == 0 || sc.rounds != sc.round_count {
        return bad("the rounds completed do not match the rounds listed");
    }
    if scenario == Scenario::Teardown && sc.rounds != 1 {
        return bad("a teardown of more than one round");
    }
    if sc.teardown_count > b.summary.cpu_count {
        return bad("more teardown records than CPU records");
    }
    let max_ops = 2 * u64::from(sc.rounds) * u64::from(sc.teardown_count);
    if u64::from(sc.ops) > max_ops {
        return bad("more operations than the rounds and CPUs allow");
    }
    let bsp = |p: BspPhase| b.summary.bsp_stamps[p as usize];
    let (start, end) = (sc.teardown_start, sc.teardown_end);
    if start == 0 || end < start || start < bsp(BspPhase::AllOnline) {
        return bad("the teardown window is empty or starts before the last bringup ended");
    }
    if bsp(BspPhase::Report) != 0 && end > bsp(BspPhase::Report) {
        return bad("the teardown window ends after the report");
    }
    let records: Vec<CpuRecord> = b.cpus().collect();
    let mut seen = std::collections::HashSet::new();
    for (index, t) in b.teardown().enumerate() {
        let err = |what| {
            Err(ReportCheckError::TeardownRecord {
                index,
                apic_id: t.apic_id,
                what,
            })
        };
        let Some(cpu) = records.iter().find(|r| r.apic_id == t.apic_id) else {
            return err("no CPU record has its APIC ID");
        };
        if cpu.flags & CPU_FLAG_BSP != 0 {
            return err("the BSP cannot be taken offline");
        }
        if !seen.insert(t.apic_id) {
            return err("its APIC ID appears twice");
        }
        if t.flags != 0 {
            return err("unknown flags");
        }
        if t.request == 0 || t.init == 0 {
            return err("no request or INIT stamp");
        }
        let stamps = t.stamps();
        if !ordered(stamps.iter().copied()) {
            return err("stamps out of order");
        }
        if stamps.iter().any(|s| *s != 0 && (*s < start || *s > end)) {
            return err("a stamp outside the teardown window");
        }
        if (cpu.state == CpuState::Offline as u8) != (t.ack != 0) {
            return err("offline exactly when it acknowledged, or not");
        }
    }
    // Each acknowledged record matched a distinct offline CPU above; any other is unexplained.
    if offline != b.teardown().filter(|t| t.ack != 0).count() {
        return bad("CPUs offline without a teardown record");
    }
    Ok(())
}

/// Checks a hotplug-torture block: no rounds or teardown records, the listed violations match
/// the count, a concurrency the guest's clamp allows (1 to the APs minus one; 0 when it ran
/// no operations), latency
/// percentiles in order and within the run, a run inside the time from bringup to the report,
/// the BSP online, and every violation naming CPUs of the report (the BSP never goes offline)
/// with its TSC in that time.
fn check_torture(b: &BootReport<'_>) -> Result<(), ReportCheckError> {
    let sc = &b.scenario;
    let bad = |what| Err(ReportCheckError::Scenario(what));
    if sc.rounds != 0
        || sc.round_count != 0
        || sc.teardown_count != 0
        || sc.teardown_start != 0
        || sc.teardown_end != 0
    {
        return bad("rounds or a teardown from hotplug-torture");
    }
    if sc.violation_count != sc.violations.min(MAX_VIOLATIONS) {
        return bad("the violations listed do not match the violations counted");
    }
    let records: Vec<CpuRecord> = b.cpus().collect();
    let aps = records
        .iter()
        .filter(|r| r.flags & CPU_FLAG_BSP == 0)
        .count();
    let most = u32::try_from(aps)
        .unwrap_or(u32::MAX)
        .saturating_sub(1)
        .max(1);
    // A guest left with fewer than two online APs runs nothing, at concurrency 0.
    if (sc.concurrency == 0 && sc.ops != 0) || sc.concurrency > most {
        return bad("operations at a concurrency below 1, or one above the APs minus one");
    }
    if sc.latency_p50 > sc.latency_p99 || sc.latency_p99 > sc.latency_max {
        return bad("latency percentiles out of order (p50, p99, max)");
    }
    if sc.latency_max > sc.duration_cycles {
        return bad("an operation slower than the whole run");
    }
    if sc.ops == 0 && sc.latency_max != 0 {
        return bad("latencies without operations");
    }
    let bsp = |p: BspPhase| b.summary.bsp_stamps[p as usize];
    let (from, to) = (bsp(BspPhase::AllOnline), bsp(BspPhase::Report));
    if from != 0 && to != 0 && sc.duration_cycles > to.saturating_sub(from) {
        return bad("a run longer than the time from bringup to the report");
    }
    if records
        .iter()
        .any(|r| r.flags & CPU_FLAG_BSP != 0 && r.state != CpuState::Online as u8)
    {
        return bad("the BSP is not online at the end");
    }
    let known = |apic_id: u32| records.iter().find(|r| r.apic_id == apic_id);
    for (index, v) in b.violations().enumerate() {
        let err = |what| Err(ReportCheckError::Violation { index, what });
        match (ViolationKind::from_u32(v.kind), known(v.apic_id)) {
            (None, _) => return err("an unknown kind"),
            (Some(ViolationKind::WorkLost), _) if v.apic_id != u32::MAX => {
                return err("lost work names a CPU (its APIC ID must be 0xffffffff)")
            }
            (Some(ViolationKind::WorkLost), _) => {}
            (Some(_), None) => return err("no CPU record has its APIC ID"),
            (Some(_), Some(r)) if r.flags & CPU_FLAG_BSP != 0 => {
                return err("it names the BSP, which never goes offline")
            }
            (Some(_), Some(_)) => {}
        }
        if known(v.reader_apic_id).is_none() {
            return err("no CPU record has its reader's APIC ID");
        }
        if v.tsc != 0 && ((from != 0 && v.tsc < from) || (to != 0 && v.tsc > to)) {
            return err("its TSC lies outside the time from bringup to the report");
        }
    }
    Ok(())
}

/// Checks a checked report's scenario against the options the guest was given (its command
/// line, parsed as the guest parses it): hotplug-torture must have been asked for exactly when
/// it ran, with the seed it was given, no more operations than asked for, no higher
/// concurrency, and violations blaming operations that were asked for.
pub fn check_requested(
    b: &BootReport<'_>,
    requested: &GuestOptions,
) -> Result<(), ReportCheckError> {
    let sc = &b.scenario;
    let bad = |what| Err(ReportCheckError::Scenario(what));
    let ran = Scenario::from_u8(sc.scenario);
    let torture = Scenario::HotplugTorture;
    if (requested.scenario == torture || ran == Some(torture)) && ran != Some(requested.scenario) {
        return bad("the guest ran another scenario than the one asked for");
    }
    if requested.scenario != torture {
        return Ok(());
    }
    if sc.seed != requested.seed {
        return bad("a seed other than the one the guest was given");
    }
    if sc.ops > requested.ops {
        return bad("more operations than asked for");
    }
    if sc.concurrency > requested.concurrency.max(1) {
        return bad("a concurrency above the one asked for");
    }
    for (index, v) in b.violations().enumerate() {
        if v.op > requested.ops {
            return Err(ReportCheckError::Violation {
                index,
                what: "it blames an operation beyond those asked for",
            });
        }
    }
    Ok(())
}

/// The error line of a hotplug-torture run that found invariant violations (None when it
/// found none, or for another scenario): how many, the seed to repeat the run with, and the
/// first one.
pub fn scenario_failure(b: &BootReport<'_>) -> Option<String> {
    let sc = &b.scenario;
    if sc.scenario != Scenario::HotplugTorture as u8 || sc.violations == 0 {
        return None;
    }
    let plural = if sc.violations == 1 { "" } else { "s" };
    let first = b
        .violations()
        .next()
        .map(|v| format!(" (first: {})", ViolationJson::new(&v).describe()))
        .unwrap_or_default();
    Some(format!(
        "hotplug-torture found {} invariant violation{plural} with --seed {}{first}",
        sc.violations, sc.seed
    ))
}

/// One round of a scenario in the JSON report.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RoundJson {
    /// Bringing every AP up, BSP cycles.
    pub up_cycles: u64,
    /// Taking every AP down, BSP cycles.
    pub down_cycles: u64,
}

/// The scenario in the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioJson {
    /// boot / teardown / reboot-cycles / hotplug-torture.
    pub name: &'static str,
    /// serial / parallel (null for boot and hotplug-torture).
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
    fn new(v: &Violation) -> Self {
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
    fn describe(&self) -> String {
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
pub fn scenario_json(b: &BootReport<'_>, tsc_khz: u32) -> ScenarioJson {
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
    if let Some(s) = crate::phases::stats(rounds.iter().map(|r| r.up_cycles).collect()) {
        round_stats.insert("up", s);
    }
    if let Some(s) = crate::phases::stats(rounds.iter().map(|r| r.down_cycles).collect()) {
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
        teardown: (!matches!(scenario, Scenario::Boot | Scenario::HotplugTorture))
            .then(|| Teardown::from_u8(sc.teardown).map_or("invalid", Teardown::name)),
        rounds: sc.rounds,
        ops: sc.ops,
        violations: sc.violations,
        parked: b.teardown().filter(|t| t.parked != 0).count() as u32,
        teardown_cycles,
        teardown_us: cycles_to_us(teardown_cycles, tsc_khz),
        teardown_phases: crate::phases::teardown_stats(b),
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
pub(super) fn render_scenario(s: &ScenarioJson, tsc_khz: u32) -> Option<String> {
    if s.name == Scenario::HotplugTorture.name() {
        return Some(render_torture(s));
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
    keys.push(crate::phases::REQUEST_TO_INIT);
    if !s.teardown_phases.is_empty() {
        out.push_str("teardown ");
        out.push_str(&crate::phases::render_rows(
            &s.teardown_phases,
            &keys,
            tsc_khz,
        ));
    }
    Some(out)
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

#[cfg(test)]
mod tests {
    use super::super::tests::{cpu, report};
    use super::super::{decode, decode_for, render_summary, JsonReport};
    use super::*;
    use firmware::report::decode::Report;
    use firmware::report::encode::{
        write_boot_summary, write_cpu_record, write_scenario, ScenarioEntries,
    };
    use firmware::report::{BootSummary, Round, TeardownRecord};

    /// A teardown report: BSP 0 online, AP 1 offline with `t` as its teardown record, the
    /// window 500..600 after the bringup window (AllOnline 400), the report at 700.
    fn teardown_report(t: TeardownRecord, sc: ScenarioSummary, ap_state: CpuState) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        let mut s = BootSummary {
            cpu_count: 2,
            bringup: 2,
            ..Default::default()
        };
        s.bsp_stamps[BspPhase::BringupStart as usize] = 50;
        s.bsp_stamps[BspPhase::AllOnline as usize] = 400;
        s.bsp_stamps[BspPhase::Report as usize] = 700;
        write_boot_summary(&mut buf, &s).unwrap();
        let mut ap = cpu(1, false);
        ap.state = ap_state as u8;
        write_cpu_record(&mut buf, 0, &cpu(0, true)).unwrap();
        write_cpu_record(&mut buf, 1, &ap).unwrap();
        let rounds = [Round {
            up_cycles: 350,
            down_cycles: 100,
        }];
        let entries = ScenarioEntries {
            rounds: &rounds[..sc.round_count as usize],
            teardown: &[t],
            violations: &[],
        };
        let len = write_scenario(&mut buf, 2, &sc, &entries).unwrap();
        buf.truncate(len);
        buf
    }

    fn teardown_summary() -> ScenarioSummary {
        ScenarioSummary {
            scenario: Scenario::Teardown as u8,
            teardown: Teardown::Parallel as u8,
            rounds: 1,
            ops: 1,
            round_count: 1,
            teardown_count: 1,
            teardown_start: 500,
            teardown_end: 600,
            ..Default::default()
        }
    }

    fn parked_ap() -> TeardownRecord {
        TeardownRecord {
            apic_id: 1,
            flags: 0,
            request: 510,
            ack: 520,
            parked: 530,
            init: 540,
        }
    }

    #[test]
    fn a_consistent_teardown_is_accepted_and_summarised() {
        let buf = teardown_report(parked_ap(), teardown_summary(), CpuState::Offline);
        let Report::Boot(b) = decode(&buf, 2).unwrap() else {
            panic!("not a boot report")
        };
        let j = scenario_json(&b, 1_000_000);
        assert_eq!(
            (j.name, j.teardown, j.rounds, j.parked),
            ("teardown", Some("parallel"), 1, 1)
        );
        assert_eq!(j.teardown_cycles, 100);
        assert_eq!(j.teardown_phases["ack"].median, 10);
        assert_eq!(j.teardown_phases["request_to_init"].median, 30);
        let text = render_scenario(&j, 1_000_000).unwrap();
        assert!(text.contains("request_to_init"), "{text}");
    }

    #[test]
    fn catches_teardown_results_that_contradict_themselves() {
        let err = |t: TeardownRecord, sc: ScenarioSummary, state: CpuState| {
            decode(&teardown_report(t, sc, state), 2)
                .unwrap_err()
                .to_string()
        };
        let sc = teardown_summary();
        let ap = parked_ap();
        let off = CpuState::Offline;
        assert!(err(TeardownRecord { apic_id: 0, ..ap }, sc, off).contains("BSP"));
        assert!(err(TeardownRecord { apic_id: 5, ..ap }, sc, off).contains("no CPU record"));
        assert!(err(TeardownRecord { ack: 505, ..ap }, sc, off).contains("out of order"));
        assert!(err(TeardownRecord { init: 650, ..ap }, sc, off).contains("teardown window"));
        assert!(err(TeardownRecord { request: 0, ..ap }, sc, off).contains("request"));
        assert!(err(TeardownRecord { flags: 4, ..ap }, sc, off).contains("flags"));
        assert!(err(ap, sc, CpuState::Online).contains("acknowledged"));
        let e = |sc: ScenarioSummary| err(ap, sc, off);
        assert!(e(ScenarioSummary {
            violations: 1,
            ..sc
        })
        .contains("violations"));
        assert!(e(ScenarioSummary { scenario: 9, ..sc }).contains("unknown scenario"));
        assert!(e(ScenarioSummary { teardown: 7, ..sc }).contains("unknown teardown"));
        assert!(e(ScenarioSummary { rounds: 2, ..sc }).contains("rounds"));
        assert!(e(ScenarioSummary { ops: 3, ..sc }).contains("operations"));
        assert!(e(ScenarioSummary {
            teardown_start: 300,
            ..sc
        })
        .contains("window"));
        assert!(e(ScenarioSummary {
            teardown_end: 800,
            ..sc
        })
        .contains("after the report"));
        // Without a scenario: no results and no offline CPUs.
        let boot = ScenarioSummary {
            scenario: Scenario::Boot as u8,
            ..sc
        };
        assert!(e(boot).contains("without a scenario"));
        let buf = report(
            &[cpu(0, true), {
                let mut r = cpu(1, false);
                r.state = CpuState::Offline as u8;
                r
            }],
            0,
        );
        assert!(decode(&buf, 2)
            .unwrap_err()
            .to_string()
            .contains("offline without"));
    }

    /// The BSP's stamps of [`torture_report`]: bringup 50..400, the report at 100_000.
    const TORTURE_REPORT_TSC: u64 = 100_000;

    /// A hotplug-torture report of 4 vCPUs: BSP 0 online, APs 1 and 2 online, AP 3 offline
    /// (after the boot's bringup, re-onlined APs stamp up to the report).
    fn torture_report(sc: ScenarioSummary, violations: &[Violation]) -> Vec<u8> {
        torture_report_with(sc, violations, |_| {})
    }

    fn torture_report_with(
        sc: ScenarioSummary,
        violations: &[Violation],
        edit: impl FnOnce(&mut [CpuRecord; 4]),
    ) -> Vec<u8> {
        let mut buf = vec![0u8; 8192];
        let mut s = BootSummary {
            cpu_count: 4,
            bringup: 2,
            ..Default::default()
        };
        s.bsp_stamps[BspPhase::BringupStart as usize] = 50;
        s.bsp_stamps[BspPhase::AllOnline as usize] = 400;
        s.bsp_stamps[BspPhase::Report as usize] = TORTURE_REPORT_TSC;
        write_boot_summary(&mut buf, &s).unwrap();
        let mut cpus = [cpu(0, true), cpu(1, false), cpu(2, false), cpu(3, false)];
        cpus[3].state = CpuState::Offline as u8;
        // AP 2 came back online during the run.
        cpus[2].stamps[firmware::report::ApPhase::Kick as usize] = 5_000;
        cpus[2].stamps[firmware::report::ApPhase::Online as usize] = 5_100;
        edit(&mut cpus);
        for (i, r) in cpus.iter().enumerate() {
            write_cpu_record(&mut buf, i, r).unwrap();
        }
        let sc = ScenarioSummary {
            violation_count: violations.len() as u32,
            ..sc
        };
        let entries = ScenarioEntries {
            violations,
            ..Default::default()
        };
        let len = write_scenario(&mut buf, 4, &sc, &entries).unwrap();
        buf.truncate(len);
        buf
    }

    /// 1000 operations, 2 at a time, over 50_000 cycles, no violations.
    fn torture_summary() -> ScenarioSummary {
        ScenarioSummary {
            scenario: Scenario::HotplugTorture as u8,
            ops: 1000,
            concurrency: 2,
            seed: 42,
            duration_cycles: 50_000,
            latency_p50: 100,
            latency_p99: 900,
            latency_max: 2_000,
            ..Default::default()
        }
    }

    /// What `--scenario hotplug-torture --ops 1000 --concurrency 8 --seed 42` asks for.
    fn torture_options() -> GuestOptions {
        GuestOptions {
            scenario: Scenario::HotplugTorture,
            ops: 1000,
            concurrency: 8,
            seed: 42,
            ..GuestOptions::default()
        }
    }

    fn handed(op: u32, apic_id: u32, reader: u32) -> Violation {
        Violation {
            op,
            apic_id,
            reader_apic_id: reader,
            kind: ViolationKind::HandedToOffline as u32,
            tsc: 6_000,
        }
    }

    fn lost(reader: u32) -> Violation {
        Violation {
            op: 0,
            apic_id: u32::MAX,
            reader_apic_id: reader,
            kind: ViolationKind::WorkLost as u32,
            tsc: 90_000,
        }
    }

    /// A JSON report around a checked boot report, as vm.rs builds it.
    fn json_report(b: &BootReport<'_>, tsc_khz: u32) -> JsonReport {
        let stats = crate::phases::bringup_stats(b);
        JsonReport {
            status: "ok",
            exit_code: 0,
            error: None,
            vcpus: 4,
            online: super::super::online(b),
            tsc_khz,
            vmm_phases_us: Default::default(),
            guest_status: Some(0),
            exit_via: Some("sipi-exit-port"),
            reached: None,
            boot: Some(super::super::boot_json(b, &stats, tsc_khz)),
            stats: Some(stats),
        }
    }

    #[test]
    fn a_consistent_torture_run_is_accepted_and_summarised() {
        let buf = torture_report(torture_summary(), &[]);
        let Report::Boot(b) = decode_for(&buf, 4, Some(&torture_options())).unwrap() else {
            panic!("not a boot report")
        };
        assert_eq!(scenario_failure(&b), None);
        // 1 GHz: one cycle is a nanosecond.
        let j = scenario_json(&b, 1_000_000);
        assert_eq!(
            (j.name, j.teardown, j.ops, j.concurrency, j.seed),
            ("hotplug-torture", None, 1000, 2, Some(42))
        );
        assert_eq!((j.rounds, j.parked, j.violations), (0, 0, 0));
        assert_eq!(j.duration_cycles, 50_000);
        assert_eq!(j.duration_us, Some(50.0));
        // 1000 operations in 50 us.
        assert_eq!(j.ops_per_sec, Some(20_000_000.0));
        assert_eq!(
            j.latency_cycles,
            Latency {
                p50: 100,
                p99: 900,
                max: 2_000
            }
        );
        assert_eq!(
            j.latency_us,
            Some(Latency {
                p50: 0.1,
                p99: 0.9,
                max: 2.0
            })
        );
        assert!(j.violation_list.is_empty());
        let v = serde_json::to_value(&j).unwrap();
        for key in [
            "concurrency",
            "seed",
            "duration_cycles",
            "duration_us",
            "ops_per_sec",
            "violation_list",
        ] {
            assert!(v.get(key).is_some(), "{key} in {v}");
        }
        assert_eq!(v["latency_cycles"]["p99"], 900);
        assert_eq!(v["latency_us"]["max"], 2.0);
        assert_eq!(v["seed"], 42);
        let text = render_summary(&json_report(&b, 1_000_000), false);
        assert!(
            text.contains(
                "scenario hotplug-torture (seed 42): 1000 ops, concurrency 2, 20000000 ops/s \
                 over 50.0 us; latency (us) p50 0.1 p99 0.9 max 2.0; 0 violations"
            ),
            "{text}"
        );
        // Without a TSC frequency: cycles, and no rate.
        let j = scenario_json(&b, 0);
        assert_eq!(
            (j.duration_us, j.ops_per_sec, j.latency_us),
            (None, None, None)
        );
        let text = render_scenario(&j, 0).unwrap();
        assert!(text.contains("- ops/s over 50000 cycles"), "{text}");
        assert!(
            text.contains("latency (cycles) p50 100 p99 900 max 2000"),
            "{text}"
        );
        // The decoder alone (without the options) accepts it too.
        assert!(decode(&buf, 4).is_ok());
    }

    #[test]
    fn violations_on_a_consistent_report_are_a_guest_failure() {
        let sc = ScenarioSummary {
            violations: 3,
            ..torture_summary()
        };
        let list = [handed(17, 3, 1), lost(0), {
            let mut v = handed(18, 3, 2);
            v.kind = ViolationKind::RanOnOffline as u32;
            v.op = 0;
            v
        }];
        let buf = torture_report(sc, &list);
        let decoded = decode_for(&buf, 4, Some(&torture_options()));
        let Ok(Report::Boot(b)) = &decoded else {
            panic!("not a consistent boot report: {decoded:?}")
        };
        let line = scenario_failure(b).unwrap();
        assert_eq!(
            line,
            "hotplug-torture found 3 invariant violations with --seed 42 (first: the reader on \
             APIC ID 1 handed work to APIC ID 3 after op 17 took it offline)"
        );
        // The verdict: guest failure (exit 1) with that line, as for CPUs that never came up.
        let stop = crate::vcpu::Outcome::Stop {
            vcpu: 0,
            event: crate::devices::DeviceEvent::SipiExit(0),
        };
        let v = crate::exit::verdict(&crate::exit::Ending {
            wake: crate::event_loop::Wake::VmExit,
            outcome: Some(&stop),
            report: Some(&decoded),
            timeout: None,
            extra_rings: 0,
            sipi_guest: true,
        });
        assert_eq!(v.status, crate::exit::Status::GuestFailure);
        assert_eq!(v.status.code(), 1);
        assert_eq!(v.error.as_deref(), Some(line.as_str()));
        // The JSON lists them, work-lost without a CPU.
        let j = scenario_json(b, 1_000_000);
        assert_eq!(j.violations, 3);
        assert_eq!(
            j.violation_list[1],
            ViolationJson {
                op: 0,
                cpu: None,
                reader_cpu: 0,
                kind: "work-lost",
                tsc: 90_000
            }
        );
        let v = serde_json::to_value(&j).unwrap();
        assert_eq!(v["violation_list"][0]["kind"], "handed-to-offline");
        assert_eq!(v["violation_list"][0]["cpu"], 3);
        assert_eq!(v["violation_list"][0]["reader_cpu"], 1);
        assert!(v["violation_list"][1]["cpu"].is_null());
        let text = render_scenario(&j, 1_000_000).unwrap();
        assert!(text.contains("3 violations"), "{text}");
        assert!(
            text.contains("violation ran-on-offline at TSC 6000: reader work ran on APIC ID 3 after it went offline (found by APIC ID 2)"),
            "{text}"
        );
        assert!(
            text.contains("reader work was lost or duplicated (found by APIC ID 0)"),
            "{text}"
        );
        // More violations than the list carries: the count says how many.
        let list: Vec<Violation> = (1..=MAX_VIOLATIONS).map(|op| handed(op, 3, 1)).collect();
        let sc = ScenarioSummary {
            violations: 1000,
            ..torture_summary()
        };
        let buf = torture_report(sc, &list);
        let Report::Boot(b) = decode(&buf, 4).unwrap() else {
            panic!("not a boot report")
        };
        assert!(scenario_failure(&b)
            .unwrap()
            .contains("1000 invariant violations"));
        let text = render_scenario(&scenario_json(&b, 1_000_000), 1_000_000).unwrap();
        assert!(text.contains("... and 995 more"), "{text}");
        // One is singular.
        let sc = ScenarioSummary {
            violations: 1,
            ..torture_summary()
        };
        let buf = torture_report(sc, &[lost(2)]);
        let Report::Boot(b) = decode(&buf, 4).unwrap() else {
            panic!("not a boot report")
        };
        assert!(scenario_failure(&b)
            .unwrap()
            .contains("found 1 invariant violation with"));
    }

    #[test]
    fn catches_torture_results_that_contradict_themselves() {
        let err = |sc: ScenarioSummary, list: &[Violation]| {
            decode(&torture_report(sc, list), 4)
                .unwrap_err()
                .to_string()
        };
        let sc = torture_summary();
        let e = |changed: ScenarioSummary| err(changed, &[]);
        assert!(e(ScenarioSummary {
            latency_p50: 901,
            ..sc
        })
        .contains("latency percentiles out of order"));
        assert!(e(ScenarioSummary {
            latency_p99: 2_001,
            ..sc
        })
        .contains("out of order"));
        assert!(e(ScenarioSummary {
            latency_max: 60_000,
            ..sc
        })
        .contains("slower than the whole run"));
        assert!(e(ScenarioSummary {
            duration_cycles: 200_000,
            latency_max: 2_000,
            ..sc
        })
        .contains("longer than the time from bringup"));
        assert!(e(ScenarioSummary { ops: 0, ..sc }).contains("latencies without operations"));
        assert!(e(ScenarioSummary {
            concurrency: 0,
            ..sc
        })
        .contains("concurrency below 1"));
        // Nothing ran (too few APs online): concurrency 0 is what the guest reports.
        let idle = ScenarioSummary {
            ops: 0,
            concurrency: 0,
            duration_cycles: 0,
            latency_p50: 0,
            latency_p99: 0,
            latency_max: 0,
            ..sc
        };
        assert!(decode(&torture_report(idle, &[]), 4).is_ok());
        // 3 APs: at most 2 in flight.
        assert!(e(ScenarioSummary {
            concurrency: 3,
            ..sc
        })
        .contains("APs minus one"));
        assert!(e(ScenarioSummary { rounds: 1, ..sc }).contains("rounds or a teardown"));
        assert!(e(ScenarioSummary {
            teardown_start: 500,
            teardown_end: 600,
            ..sc
        })
        .contains("rounds or a teardown"));
        // The count and the list disagree.
        assert!(e(ScenarioSummary {
            violations: 2,
            ..sc
        })
        .contains("violations listed do not match"));
        let two = [handed(1, 3, 1), handed(2, 3, 1)];
        assert!(err(
            ScenarioSummary {
                violations: 1,
                ..sc
            },
            &two
        )
        .contains("violations listed do not match"));
        assert!(err(
            ScenarioSummary {
                violations: 65,
                ..sc
            },
            &two
        )
        .contains("violations listed do not match"));
        // Violations naming CPUs the report does not have, or that cannot be.
        let one = ScenarioSummary {
            violations: 1,
            ..sc
        };
        let bad = |v: Violation| err(one, &[v]);
        assert!(bad(handed(1, 9, 1)).contains("violation 0 is inconsistent: no CPU record"));
        assert!(bad(handed(1, 3, 9)).contains("reader's APIC ID"));
        assert!(bad(handed(1, 0, 1)).contains("names the BSP"));
        assert!(bad(Violation {
            apic_id: 3,
            ..lost(1)
        })
        .contains("lost work names a CPU"));
        assert!(bad(handed(1, u32::MAX, 1)).contains("no CPU record"));
        assert!(bad(Violation {
            tsc: 10,
            ..handed(1, 3, 1)
        })
        .contains("outside the time from bringup"));
        assert!(bad(Violation {
            tsc: TORTURE_REPORT_TSC + 1,
            ..handed(1, 3, 1)
        })
        .contains("outside the time from bringup"));
        // The BSP stays online.
        let buf = torture_report_with(sc, &[], |c| c[0].state = CpuState::Offline as u8);
        assert!(decode(&buf, 4)
            .unwrap_err()
            .to_string()
            .contains("BSP is not online"));
        // AP stamps after the report are still outside the window.
        let buf = torture_report_with(sc, &[], |c| {
            c[2].stamps[firmware::report::ApPhase::Online as usize] = TORTURE_REPORT_TSC + 1
        });
        assert!(decode(&buf, 4)
            .unwrap_err()
            .to_string()
            .contains("bringup window"));
    }

    #[test]
    fn other_scenarios_carry_no_torture_results() {
        let mut sc = teardown_summary();
        sc.concurrency = 1;
        let buf = teardown_report(parked_ap(), sc, CpuState::Offline);
        let e = decode(&buf, 2).unwrap_err().to_string();
        assert!(e.contains("hotplug-torture results"), "{e}");
        let mut sc = teardown_summary();
        sc.seed = 1;
        let buf = teardown_report(parked_ap(), sc, CpuState::Offline);
        assert!(decode(&buf, 2).is_err());
        // Their JSON has the torture fields empty, and the seed null.
        let buf = teardown_report(parked_ap(), teardown_summary(), CpuState::Offline);
        let Report::Boot(b) = decode(&buf, 2).unwrap() else {
            panic!("not a boot report")
        };
        assert_eq!(scenario_failure(&b), None);
        let v = serde_json::to_value(scenario_json(&b, 1_000_000)).unwrap();
        assert_eq!(v["concurrency"], 0);
        assert!(v["seed"].is_null());
        assert!(v["ops_per_sec"].is_null());
        assert_eq!(v["duration_cycles"], 0);
        assert_eq!(v["latency_cycles"]["p50"], 0);
        assert_eq!(v["violation_list"], serde_json::json!([]));
        let buf = report(&[cpu(0, true), cpu(1, false)], 0);
        let Report::Boot(b) = decode(&buf, 2).unwrap() else {
            panic!("not a boot report")
        };
        let j = scenario_json(&b, 1_000_000);
        assert_eq!((j.name, j.teardown, j.seed), ("boot", None, None));
        assert_eq!(render_scenario(&j, 1_000_000), None);
    }

    #[test]
    fn torture_results_must_match_what_was_asked_for() {
        let err = |sc: ScenarioSummary, list: &[Violation], asked: &GuestOptions| {
            decode_for(&torture_report(sc, list), 4, Some(asked))
                .unwrap_err()
                .to_string()
        };
        let sc = torture_summary();
        let asked = torture_options();
        assert!(err(ScenarioSummary { seed: 43, ..sc }, &[], &asked).contains("seed"));
        assert!(err(ScenarioSummary { ops: 1001, ..sc }, &[], &asked)
            .contains("more operations than asked for"));
        let one = GuestOptions {
            concurrency: 1,
            ..asked
        };
        assert!(err(sc, &[], &one).contains("concurrency above"));
        let with = ScenarioSummary {
            violations: 1,
            ..sc
        };
        assert!(err(with, &[handed(1001, 3, 1)], &asked).contains("beyond those asked for"));
        // Torture where another scenario was asked for, and the reverse.
        let boot = GuestOptions::default();
        assert!(err(sc, &[], &boot).contains("another scenario"));
        let buf = report(&[cpu(0, true), cpu(1, false)], 0);
        let e = decode_for(&buf, 2, Some(&asked)).unwrap_err().to_string();
        assert!(e.contains("another scenario"), "{e}");
        // Unknown options check nothing more, and other scenarios only the name.
        assert!(decode_for(
            &torture_report(ScenarioSummary { seed: 43, ..sc }, &[]),
            4,
            None
        )
        .is_ok());
        let buf = teardown_report(parked_ap(), teardown_summary(), CpuState::Offline);
        assert!(decode_for(&buf, 2, Some(&boot)).is_ok());
    }
}
