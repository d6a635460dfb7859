//! Per-phase bringup statistics: for each AP phase, the cycles from the AP's previous stamp
//! to this one, summarised across APs (min / median / p99 / max), plus each AP's breakdown for
//! the slowest-CPU lines. The phases come from `ApPhase::ALL`; one an AP did not stamp (the
//! TSC check without `--tsc-sync`, the middle phases in floor bringup) is left out, and the
//! next phase is measured from the AP's previous stamp.
//!
//! An AP whose TSC the guest found out of sync stamped in its own time base: its Kick stamp
//! (the BSP's TSC) is left out of its spans, and it has no kick-to-online time.

use std::collections::BTreeMap;

use firmware::report::decode::BootReport;
use firmware::report::{ApPhase, BspPhase, CpuState, CPU_FLAG_BSP, TEARDOWN_PHASES};

use serde::Serialize;

use super::stamps::{cycles_to_us, tsc_out_of_sync};

/// Summary of one phase across APs, in TSC cycles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PhaseStats {
    /// Fastest AP.
    pub min: u64,
    /// Median (nearest rank).
    pub median: u64,
    /// 99th percentile (nearest rank).
    pub p99: u64,
    /// Slowest AP.
    pub max: u64,
    /// APs that reached this phase.
    pub count: usize,
}

/// One AP's phase durations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuTiming {
    /// Index in the report.
    pub cpu: usize,
    /// APIC ID.
    pub apic_id: u32,
    /// Online or missing.
    pub state: CpuState,
    /// INIT/SIPI re-sends.
    pub retries: u16,
    /// Cycles into each phase from the previous stamp (None: phase not reached).
    pub phases: [Option<u64>; ApPhase::ALL.len()],
    /// Kick to the last stamp reached (from its first own stamp when its TSC is out of sync).
    pub total: u64,
    /// The guest found this CPU's TSC out of sync with the BSP's.
    pub tsc_out_of_sync: bool,
}

/// The bringup as a whole.
#[derive(Debug, Clone, Default)]
pub struct BringupStats {
    /// BringupStart to AllOnline on the BSP, in cycles.
    pub bringup_cycles: u64,
    /// Per phase (keyed by the phase that ends), plus `kick_to_online`.
    pub phases: BTreeMap<&'static str, PhaseStats>,
    /// Every AP, in report order.
    pub cpus: Vec<CpuTiming>,
}

/// Nearest-rank percentile of sorted, non-empty `v`.
fn percentile(v: &[u64], pct: usize) -> u64 {
    let rank = (v.len() * pct).div_ceil(100).max(1);
    v[rank.min(v.len()) - 1]
}

/// Summarises `values` (unsorted); None if empty.
pub fn stats(mut values: Vec<u64>) -> Option<PhaseStats> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    Some(PhaseStats {
        min: values[0],
        median: percentile(&values, 50),
        p99: percentile(&values, 99),
        max: values[values.len() - 1],
        count: values.len(),
    })
}

/// The key under which the phase ending at `p` is reported.
pub fn phase_key(p: ApPhase) -> &'static str {
    p.name()
}

/// Key of the whole kick-to-online span.
pub const KICK_TO_ONLINE: &str = "kick_to_online";

/// Computes the statistics of a (checked) boot report: stamps never decrease, so the
/// subtractions below cannot underflow; saturating arithmetic keeps it so regardless.
pub fn bringup_stats(b: &BootReport<'_>) -> BringupStats {
    let bsp = |p: BspPhase| b.summary.bsp_stamps[p as usize];
    let bringup_cycles = bsp(BspPhase::AllOnline).saturating_sub(bsp(BspPhase::BringupStart));
    let mut per_phase: Vec<Vec<u64>> = vec![Vec::new(); ApPhase::ALL.len()];
    let mut totals = Vec::new();
    let mut cpus = Vec::new();
    for (cpu, r) in b.cpus().enumerate() {
        let Some(state) = CpuState::from_u8(r.state) else {
            continue;
        };
        if r.flags & CPU_FLAG_BSP != 0 || state == CpuState::Listed {
            continue;
        }
        let own_base = tsc_out_of_sync(&r);
        let mut phases = [None; ApPhase::ALL.len()];
        let mut prev: Option<u64> = None;
        let mut first = None;
        for p in ApPhase::ALL {
            let t = r.stamps[p as usize];
            if t == 0 || (own_base && p == ApPhase::Kick) {
                continue;
            }
            first.get_or_insert(t);
            if let Some(prev) = prev {
                let d = t.saturating_sub(prev);
                phases[p as usize] = Some(d);
                per_phase[p as usize].push(d);
            }
            prev = Some(t);
        }
        let kick = r.stamps[ApPhase::Kick as usize];
        let from = if own_base { first.unwrap_or(0) } else { kick };
        let total = prev.map_or(0, |last| last.saturating_sub(from));
        if kick != 0 && !own_base && r.stamps[ApPhase::Online as usize] != 0 {
            totals.push(total);
        }
        cpus.push(CpuTiming {
            cpu,
            apic_id: r.apic_id,
            state,
            retries: r.retries,
            phases,
            total,
            tsc_out_of_sync: own_base,
        });
    }
    let mut phases = BTreeMap::new();
    for p in ApPhase::ALL.iter().skip(1) {
        if let Some(s) = stats(std::mem::take(&mut per_phase[*p as usize])) {
            phases.insert(phase_key(*p), s);
        }
    }
    if let Some(s) = stats(totals) {
        phases.insert(KICK_TO_ONLINE, s);
    }
    BringupStats {
        bringup_cycles,
        phases,
        cpus,
    }
}

/// True if a CPU in `state` came online (it may have been taken offline since).
fn came_up(state: CpuState) -> bool {
    matches!(state, CpuState::Online | CpuState::Offline)
}

/// The teardown of a scenario: per phase of the APs' [`TeardownRecord`] stamps, the cycles from
/// the previous stamp across APs, plus `request_to_init`.
///
/// [`TeardownRecord`]: firmware::report::TeardownRecord
pub fn teardown_stats(b: &BootReport<'_>) -> BTreeMap<&'static str, PhaseStats> {
    let mut per_phase: Vec<Vec<u64>> = vec![Vec::new(); TEARDOWN_PHASES.len()];
    let mut totals = Vec::new();
    for t in b.teardown() {
        let stamps = t.stamps();
        for i in 1..stamps.len() {
            if stamps[i] != 0 && stamps[i - 1] != 0 {
                per_phase[i].push(stamps[i].saturating_sub(stamps[i - 1]));
            }
        }
        if t.request != 0 && t.init != 0 {
            totals.push(t.init.saturating_sub(t.request));
        }
    }
    let mut out = BTreeMap::new();
    for (i, v) in per_phase.into_iter().enumerate().skip(1) {
        if let Some(s) = stats(v) {
            out.insert(TEARDOWN_PHASES[i], s);
        }
    }
    if let Some(s) = stats(totals) {
        out.insert(REQUEST_TO_INIT, s);
    }
    out
}

/// Key of the whole request-to-INIT span of a teardown.
pub const REQUEST_TO_INIT: &str = "request_to_init";

/// The phase table rows of `keys` present in `phases` (the same columns as bringup's).
pub fn render_rows(
    phases: &BTreeMap<&'static str, PhaseStats>,
    keys: &[&str],
    tsc_khz: u32,
) -> String {
    let mut out = format!(
        "{:<16}{:>12}{:>12}{:>12}{:>12}  {:>10}{:>10}{:>10}{:>10}\n",
        "phase", "min cyc", "median", "p99", "max", "min us", "median", "p99", "max"
    );
    for key in keys {
        if let Some(p) = phases.get(key) {
            out.push_str(&format!(
                "{key:<16}{:>12}{:>12}{:>12}{:>12}  {:>10}{:>10}{:>10}{:>10}\n",
                p.min,
                p.median,
                p.p99,
                p.max,
                fmt_us(p.min, tsc_khz),
                fmt_us(p.median, tsc_khz),
                fmt_us(p.p99, tsc_khz),
                fmt_us(p.max, tsc_khz)
            ));
        }
    }
    out
}

fn fmt_us(cycles: u64, tsc_khz: u32) -> String {
    cycles_to_us(cycles, tsc_khz).map_or_else(|| format!("{cycles}c"), |us| format!("{us:.1}"))
}

/// The per-phase table, the total, and the slowest CPUs (all CPUs with `per_cpu`).
pub fn render(s: &BringupStats, tsc_khz: u32, per_cpu: bool, slowest: usize) -> String {
    let mut out = String::new();
    let online = s.cpus.iter().filter(|c| came_up(c.state)).count();
    let missing = s.cpus.len() - online;
    let retries: u64 = s.cpus.iter().map(|c| u64::from(c.retries)).sum();
    out.push_str(&format!(
        "bringup: {} cycles ({} us), {online}/{} APs online, {missing} missing, {retries} retries\n",
        s.bringup_cycles,
        fmt_us(s.bringup_cycles, tsc_khz),
        s.cpus.len()
    ));
    if s.phases.is_empty() {
        return out;
    }
    let keys: Vec<&str> = ApPhase::ALL
        .iter()
        .skip(1)
        .map(|p| phase_key(*p))
        .chain([KICK_TO_ONLINE])
        .collect();
    out.push_str(&render_rows(&s.phases, &keys, tsc_khz));
    let mut order: Vec<&CpuTiming> = s.cpus.iter().collect();
    let shown = if per_cpu {
        order.len()
    } else {
        order.sort_by_key(|c| (came_up(c.state), std::cmp::Reverse(c.total)));
        slowest.min(order.len())
    };
    if shown > 0 {
        out.push_str(if per_cpu {
            "every CPU (us):\n"
        } else {
            "slowest CPUs (us):\n"
        });
    }
    for c in order.iter().take(shown) {
        let parts: Vec<String> = ApPhase::ALL
            .iter()
            .skip(1)
            .filter_map(|p| {
                c.phases[*p as usize].map(|d| format!("{} {}", p.name(), fmt_us(d, tsc_khz)))
            })
            .collect();
        let verb = if came_up(c.state) {
            "up in"
        } else {
            "MISSING after"
        };
        out.push_str(&format!(
            "  CPU#{} (APIC {}) {verb} {}: {}{}{}\n",
            c.cpu,
            c.apic_id,
            fmt_us(c.total, tsc_khz),
            parts.join(", "),
            if c.retries > 0 {
                format!(" [{} retries]", c.retries)
            } else {
                String::new()
            },
            if c.tsc_out_of_sync {
                " [TSC out of sync: timed from its own first stamp]"
            } else {
                ""
            }
        ));
    }
    out
}

/// CPUs the guest kicked that never came online.
pub fn missing(b: &BootReport<'_>) -> u32 {
    b.cpus()
        .filter(|r| r.state == CpuState::Missing as u8)
        .count() as u32
}

/// CPUs online in a boot report.
pub fn online(b: &BootReport<'_>) -> u32 {
    b.cpus()
        .filter(|r| r.state == CpuState::Online as u8)
        .count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware::report::decode::{parse, Report};
    use firmware::report::encode::{write_boot_summary, write_cpu_record, write_scenario};
    use firmware::report::ScenarioSummary;
    use firmware::report::{
        BootSummary, CpuRecord, CPU_FLAG_TSC_CHECKED, CPU_FLAG_TSC_OUT_OF_SYNC,
    };

    /// An AP with the stamps of Kick, Trampoline, LongMode, PerCpuInit and Online (no TSC
    /// check).
    fn ap(apic_id: u32, stamps: [u64; 5], state: CpuState) -> CpuRecord {
        let mut r = CpuRecord {
            apic_id,
            state: state as u8,
            ..Default::default()
        };
        r.stamps[..4].copy_from_slice(&stamps[..4]);
        r.stamps[ApPhase::Online as usize] = stamps[4];
        r
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let s = stats((1..=100).collect()).unwrap();
        assert_eq!(
            (s.min, s.median, s.p99, s.max, s.count),
            (1, 50, 99, 100, 100)
        );
        let s = stats(vec![7]).unwrap();
        assert_eq!((s.median, s.p99), (7, 7));
        assert!(stats(vec![]).is_none());
    }

    #[test]
    fn phases_are_measured_between_consecutive_stamps() {
        let mut buf = vec![0u8; 1024];
        let mut s = BootSummary {
            cpu_count: 4,
            ..Default::default()
        };
        s.bsp_stamps[BspPhase::BringupStart as usize] = 1000;
        s.bsp_stamps[BspPhase::AllOnline as usize] = 9000;
        write_boot_summary(&mut buf, &s).unwrap();
        let mut bsp = ap(0, [0, 0, 0, 0, 500], CpuState::Online);
        bsp.flags = CPU_FLAG_BSP;
        write_cpu_record(&mut buf, 0, &bsp).unwrap();
        write_cpu_record(
            &mut buf,
            1,
            &ap(1, [1000, 1100, 1300, 1600, 2000], CpuState::Online),
        )
        .unwrap();
        write_cpu_record(
            &mut buf,
            2,
            &ap(2, [1000, 1200, 0, 0, 1400], CpuState::Online),
        )
        .unwrap();
        write_cpu_record(&mut buf, 3, &ap(3, [1000, 0, 0, 0, 0], CpuState::Missing)).unwrap();
        write_scenario(
            &mut buf,
            4,
            &ScenarioSummary::default(),
            &Default::default(),
        )
        .unwrap();
        let Ok(Report::Boot(b)) = parse(&buf) else {
            panic!("bad test report")
        };
        let st = bringup_stats(&b);
        assert_eq!(st.bringup_cycles, 8000);
        assert_eq!(st.cpus.len(), 3, "the BSP is not an AP");
        assert_eq!(st.phases["trampoline"].min, 100);
        assert_eq!(st.phases["trampoline"].max, 200);
        assert_eq!(st.phases["long_mode"].count, 1);
        assert_eq!(st.phases["online"].max, 400);
        assert_eq!(
            st.phases["online"].min, 200,
            "floor-style APs skip phases: measured from the last stamp"
        );
        assert_eq!(st.phases[KICK_TO_ONLINE].max, 1000);
        assert_eq!(
            st.phases[KICK_TO_ONLINE].count, 2,
            "a missing AP has no kick-to-online time"
        );
        let text = render(&st, 1_000_000, false, 2);
        assert!(text.contains("2/3 APs online, 1 missing"), "{text}");
        assert!(
            text.contains("CPU#3 (APIC 3) MISSING"),
            "missing CPUs come first: {text}"
        );
        assert!(
            text.contains("CPU#1 (APIC 1) up in 1.0: trampoline 0.1, long_mode 0.2"),
            "{text}"
        );
        assert!(
            !text.contains("CPU#2"),
            "only the slowest 2 without --per-cpu"
        );
        assert!(render(&st, 1_000_000, true, 2).contains("CPU#2"));
        assert!(
            !st.phases.contains_key("tsc_sync"),
            "no TSC check, no phase"
        );
    }

    #[test]
    fn the_tsc_check_is_a_phase_and_an_out_of_sync_cpu_keeps_its_own_time_base() {
        let mut buf = vec![0u8; 1024];
        let mut s = BootSummary {
            cpu_count: 3,
            tsc_sync: 2,
            ..Default::default()
        };
        s.bsp_stamps[BspPhase::BringupStart as usize] = 1000;
        s.bsp_stamps[BspPhase::AllOnline as usize] = 9000;
        write_boot_summary(&mut buf, &s).unwrap();
        let mut bsp = ap(0, [0, 0, 0, 0, 500], CpuState::Online);
        bsp.flags = CPU_FLAG_BSP | CPU_FLAG_TSC_CHECKED;
        write_cpu_record(&mut buf, 0, &bsp).unwrap();
        let mut synced = ap(1, [1000, 1100, 1300, 1600, 5100], CpuState::Online);
        synced.stamps[ApPhase::TscSync as usize] = 5000;
        synced.flags = CPU_FLAG_TSC_CHECKED;
        write_cpu_record(&mut buf, 1, &synced).unwrap();
        // Ten billion cycles ahead of the BSP: only its own spans mean anything.
        let ahead = 10_000_000_000;
        let mut skewed = ap(
            2,
            [1000, ahead + 1100, ahead + 1300, ahead + 1600, ahead + 5200],
            CpuState::Online,
        );
        skewed.stamps[ApPhase::TscSync as usize] = ahead + 5000;
        skewed.flags = CPU_FLAG_TSC_CHECKED | CPU_FLAG_TSC_OUT_OF_SYNC;
        skewed.tsc_warp = ahead;
        write_cpu_record(&mut buf, 2, &skewed).unwrap();
        write_scenario(
            &mut buf,
            3,
            &ScenarioSummary::default(),
            &Default::default(),
        )
        .unwrap();
        let Ok(Report::Boot(b)) = parse(&buf) else {
            panic!("bad test report")
        };
        let st = bringup_stats(&b);
        let tsc = st.phases["tsc_sync"];
        assert_eq!((tsc.min, tsc.max, tsc.count), (3400, 3400, 2));
        assert_eq!(st.phases["online"].max, 200);
        assert_eq!(
            st.phases["trampoline"].count, 1,
            "no kick-to-trampoline span"
        );
        assert_eq!(st.phases[KICK_TO_ONLINE].count, 1);
        assert_eq!(st.phases[KICK_TO_ONLINE].max, 4100);
        assert_eq!(st.cpus[1].total, 4100, "its own first stamp to its last");
        let text = render(&st, 1_000_000, true, 5);
        assert!(
            text.contains("tsc_sync") && text.contains("[TSC out of sync"),
            "{text}"
        );
    }
}
