//! The scenario block of a boot report (what the guest did after bringup): its checks against
//! the rest of the report and against what was asked for, its JSON and its summary lines, and
//! hotplug-torture's verdict on the invariant violations it found.

use firmware::cmdline::{GuestOptions, Scenario, Teardown};
use firmware::report::decode::BootReport;
use firmware::report::{
    BspPhase, CpuRecord, CpuState, ScenarioSummary, ViolationKind, CPU_FLAG_BSP, MAX_VIOLATIONS,
};

mod json;
#[cfg(test)]
mod tests;

pub(super) use json::render_scenario;
pub(super) use json::{scenario_json, ScenarioJson, ViolationJson};

use super::error::ReportCheckError;
use super::stamps::ordered;

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
    if scenario == Scenario::SuspendResume {
        return check_suspend_resume(b);
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

/// Checks a suspend-resume block: no teardown and none of hotplug-torture's results; round 1
/// is the boot's bringup, each later round the bringup after a resume, so every round has an
/// "up", every round but the last a "down" (its suspend to the next resume) and the last none;
/// the last round's "up" is the bringup window of the BSP's stamps (which then starts at the
/// resume); every AP that came online at boot came online again after each resume (the
/// operations), and no CPU is offline.
fn check_suspend_resume(b: &BootReport<'_>) -> Result<(), ReportCheckError> {
    let sc = &b.scenario;
    let bad = |what| Err(ReportCheckError::Scenario(what));
    if sc.violations != 0 || sc.violation_count != 0 || torture_results(sc).iter().any(|v| *v != 0)
    {
        return bad("hotplug-torture results from suspend-resume");
    }
    if sc.teardown != 0 || sc.teardown_count != 0 || sc.teardown_start != 0 || sc.teardown_end != 0
    {
        return bad("a teardown from suspend-resume");
    }
    if sc.rounds == 0 || sc.rounds != sc.round_count {
        return bad("the rounds completed do not match the rounds listed");
    }
    let rounds: Vec<_> = b.rounds().collect();
    let last = rounds.len() - 1;
    for (i, r) in rounds.iter().enumerate() {
        if r.up_cycles == 0 {
            return bad("a round without a bringup");
        }
        if (i < last) != (r.down_cycles != 0) {
            return bad("a suspend missing before a resume, or one after the last round");
        }
    }
    let bsp = |p: BspPhase| b.summary.bsp_stamps[p as usize];
    let window = bsp(BspPhase::AllOnline).saturating_sub(bsp(BspPhase::BringupStart));
    if last > 0 && rounds[last].up_cycles != window {
        return bad("the last resume's bringup is not the report's bringup window");
    }
    let records: Vec<CpuRecord> = b.cpus().collect();
    if records.iter().any(|r| r.state == CpuState::Offline as u8) {
        return bad("CPUs offline after suspend-resume");
    }
    let aps = records
        .iter()
        .filter(|r| r.flags & CPU_FLAG_BSP == 0)
        .count() as u64;
    let resumes = last as u64;
    if u64::from(sc.ops) > resumes * aps || (resumes > 0 && u64::from(sc.ops) % resumes != 0) {
        return bad("operations that are not the same APs brought up after every resume");
    }
    // Every AP online at the end came up after the last resume (its stamps are checked against
    // the bringup window with the others'), so it must be among those brought up again.
    let online_aps = records
        .iter()
        .filter(|r| r.flags & CPU_FLAG_BSP == 0 && r.state == CpuState::Online as u8)
        .count() as u64;
    if resumes > 0 && online_aps > u64::from(sc.ops) / resumes {
        return bad("more APs online than were brought up after the last resume");
    }
    if resumes > 0 && online_aps < u64::from(sc.ops) / resumes && b.summary.status == 0 {
        return bad("an AP missing after a resume that the guest's verdict does not count");
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
/// line, parsed as the guest parses it): suspend-resume must have been asked for exactly when
/// it ran, with no more suspends than asked for; hotplug-torture must have been asked for
/// exactly when it ran, with the seed it was given, no more operations than asked for, no higher
/// concurrency, and violations blaming operations that were asked for.
pub(super) fn check_requested(
    b: &BootReport<'_>,
    requested: &GuestOptions,
) -> Result<(), ReportCheckError> {
    let sc = &b.scenario;
    let bad = |what| Err(ReportCheckError::Scenario(what));
    let ran = Scenario::from_u8(sc.scenario);
    let torture = Scenario::HotplugTorture;
    let checked = [torture, Scenario::SuspendResume];
    if (checked.contains(&requested.scenario) || ran.is_some_and(|r| checked.contains(&r)))
        && ran != Some(requested.scenario)
    {
        return bad("the guest ran another scenario than the one asked for");
    }
    // Round 1 is the boot's bringup; each suspend asked for adds one.
    if requested.scenario == Scenario::SuspendResume
        && u64::from(sc.rounds) > u64::from(requested.cycles) + 1
    {
        return bad("more suspends than asked for");
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
pub(crate) fn scenario_failure(b: &BootReport<'_>) -> Option<String> {
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
