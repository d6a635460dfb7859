//! The details of a boot report, typed: its summary, the TSC check, the scenario and every
//! CPU, as the outcome of a boot carries them (their field names are the JSON report's, a
//! stable interface documented in docs/json.md).

use std::collections::BTreeMap;

use firmware::cmdline::{Bringup, Kick, TscSync};
use firmware::report::decode::BootReport;
use firmware::report::{
    ApPhase, BspPhase, CpuRecord, CpuState, CPU_FLAG_BSP, CPU_FLAG_TSC_ADJUST,
    CPU_FLAG_TSC_CHECKED, CPU_FLAG_TSC_TEST_SKEW, FLAG_TSC_ADJUST, FLAG_X2APIC,
};
use serde::Serialize;

use super::scenario::{scenario_json, ScenarioJson};
use super::stamps::{cycles_to_us, tsc_out_of_sync};
use super::stats::{BringupStats, PhaseStats};

/// One CPU in the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct CpuJson {
    /// Index in the report.
    pub cpu: usize,
    /// APIC ID.
    pub apic_id: u32,
    /// online / missing / listed.
    pub state: &'static str,
    /// INIT/SIPI re-sends.
    pub retries: u16,
    /// Whether this is the BSP.
    pub bsp: bool,
    /// TSC per phase (phases not reached omitted).
    pub stamps: BTreeMap<&'static str, u64>,
    /// The CPU took part in the TSC check to the end.
    pub tsc_checked: bool,
    /// The largest TSC warp blamed on this CPU, in cycles (0: in sync, or not checked).
    pub tsc_warp_cycles: u64,
    /// Its IA32_TSC_ADJUST, read before the check (null: not read).
    pub tsc_adjust: Option<i64>,
    /// Test only: the guest added `--test-skew-tsc`'s skew to this CPU's readings in the check
    /// (on a KVM that ignores TSC writes).
    pub tsc_test_skew: bool,
}

/// A CPU in `tsc_sync.out_of_sync` or `tsc_sync.tsc_adjust_nonzero`.
#[derive(Debug, Clone, Serialize)]
pub struct TscCpuJson {
    /// Index in the report.
    pub cpu: usize,
    /// APIC ID.
    pub apic_id: u32,
    /// The warp blamed on it, or its IA32_TSC_ADJUST.
    pub value: i64,
}

/// The TSC check in the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct TscSyncJson {
    /// none / serial / parallel.
    pub strategy: &'static str,
    /// TSC cycles the BSP spent on the check.
    pub cycles: u64,
    /// The same in microseconds (null without a TSC frequency).
    pub us: Option<f64>,
    /// The largest warp found, in cycles.
    pub max_warp_cycles: u64,
    /// Readings older than one seen before them, over every CPU.
    pub warps: u32,
    /// True if no warp was found; null when no check ran.
    pub synchronised: Option<bool>,
    /// CPUs that took part to the end, the BSP included.
    pub checked_cpus: u32,
    /// The CPUs found out of sync (`value`: the warp blamed on each, cycles).
    pub out_of_sync: Vec<TscCpuJson>,
    /// CPUID reports IA32_TSC_ADJUST.
    pub tsc_adjust_supported: bool,
    /// CPUs whose IA32_TSC_ADJUST is not 0 (`value`: the MSR, signed).
    pub tsc_adjust_nonzero: Vec<TscCpuJson>,
}

/// The TSC check of a report.
pub fn tsc_sync_json(b: &BootReport<'_>, tsc_khz: u32) -> TscSyncJson {
    let s = &b.summary;
    let strategy = TscSync::from_u8(s.tsc_sync).unwrap_or(TscSync::None);
    let list = |keep: &dyn Fn(&CpuRecord) -> Option<i64>| {
        b.cpus()
            .enumerate()
            .filter_map(|(cpu, r)| {
                keep(&r).map(|value| TscCpuJson {
                    cpu,
                    apic_id: r.apic_id,
                    value,
                })
            })
            .collect()
    };
    TscSyncJson {
        strategy: strategy.name(),
        cycles: s.tsc.cycles,
        us: cycles_to_us(s.tsc.cycles, tsc_khz),
        max_warp_cycles: s.tsc.max_warp,
        warps: s.tsc.warps,
        synchronised: (strategy != TscSync::None)
            .then(|| s.tsc.max_warp == 0 && b.cpus().all(|r| !tsc_out_of_sync(&r))),
        checked_cpus: b
            .cpus()
            .filter(|r| r.flags & CPU_FLAG_TSC_CHECKED != 0)
            .count() as u32,
        out_of_sync: list(&|r| {
            tsc_out_of_sync(r).then(|| i64::try_from(r.tsc_warp).unwrap_or(i64::MAX))
        }),
        tsc_adjust_supported: s.flags & FLAG_TSC_ADJUST != 0,
        tsc_adjust_nonzero: list(&|r| {
            (r.flags & CPU_FLAG_TSC_ADJUST != 0 && r.tsc_adjust != 0).then_some(r.tsc_adjust as i64)
        }),
    }
}

/// The error line of a boot whose TSC check found CPUs out of sync, naming them.
pub fn tsc_failure(b: &BootReport<'_>) -> Option<String> {
    let t = tsc_sync_json(b, 0);
    if t.synchronised != Some(false) {
        return None;
    }
    let ids: Vec<String> = t
        .out_of_sync
        .iter()
        .take(8)
        .map(|c| c.apic_id.to_string())
        .collect();
    let more = if t.out_of_sync.len() > 8 { ", ..." } else { "" };
    Some(format!(
        "the TSCs are not synchronised: the {} check found {} CPUs out of sync (APIC IDs {}{more}), by up to {} cycles",
        t.strategy,
        t.out_of_sync.len(),
        ids.join(", "),
        t.max_warp_cycles
    ))
}

/// Boot-report fields of the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct BootJson {
    /// The BSP's APIC ID.
    pub bsp_apic_id: u32,
    /// CPUs the guest found in the MADT.
    pub madt_cpus: u32,
    /// The guest ran its local APIC in x2APIC mode.
    pub x2apic: bool,
    /// Bringup strategy.
    pub bringup: &'static str,
    /// Kick style.
    pub kick: &'static str,
    /// The guest's own verdict (0: all it was asked to do succeeded).
    pub report_status: u32,
    /// BSP TSC stamps per phase.
    pub bsp_stamps: BTreeMap<&'static str, u64>,
    /// BringupStart to AllOnline on the BSP, in TSC cycles.
    pub bringup_cycles: u64,
    /// The same in microseconds (null without a TSC frequency).
    pub bringup_us: Option<f64>,
    /// Per AP phase (keyed by the phase that ends, plus `kick_to_online`): cycles from the
    /// AP's previous stamp, as `min`, `median`, `p99`, `max` and `count` across APs.
    pub phases: BTreeMap<&'static str, PhaseStats>,
    /// Guest time from entry to report, in TSC cycles.
    pub guest_cycles: u64,
    /// The same in microseconds (null without a TSC frequency).
    pub guest_us: Option<f64>,
    /// The TSC synchronisation check.
    pub tsc_sync: TscSyncJson,
    /// The scenario that ran after bringup.
    pub scenario: ScenarioJson,
    /// Every CPU record.
    pub cpus: Vec<CpuJson>,
}

/// Builds the boot part of the JSON report from a report and its statistics.
pub fn boot_json(b: &BootReport<'_>, stats: &BringupStats, tsc_khz: u32) -> BootJson {
    let s = &b.summary;
    let stamp_map = |pairs: &mut dyn Iterator<Item = (&'static str, u64)>| {
        pairs.filter(|(_, v)| *v != 0).collect()
    };
    let bsp = |p: BspPhase| s.bsp_stamps[p as usize];
    let guest_cycles = bsp(BspPhase::Report).saturating_sub(bsp(BspPhase::Entry));
    let cpus = b
        .cpus()
        .enumerate()
        .map(|(cpu, r)| CpuJson {
            cpu,
            apic_id: r.apic_id,
            state: CpuState::from_u8(r.state).map_or("invalid", CpuState::name),
            retries: r.retries,
            bsp: r.flags & CPU_FLAG_BSP != 0,
            stamps: stamp_map(
                &mut ApPhase::ALL
                    .iter()
                    .map(|p| (p.name(), r.stamps[*p as usize])),
            ),
            tsc_checked: r.flags & CPU_FLAG_TSC_CHECKED != 0,
            tsc_warp_cycles: r.tsc_warp,
            tsc_adjust: (r.flags & CPU_FLAG_TSC_ADJUST != 0).then_some(r.tsc_adjust as i64),
            tsc_test_skew: r.flags & CPU_FLAG_TSC_TEST_SKEW != 0,
        })
        .collect();
    BootJson {
        bsp_apic_id: s.bsp_apic_id,
        madt_cpus: s.madt_cpus,
        x2apic: s.flags & FLAG_X2APIC != 0,
        bringup: Bringup::from_u8(s.bringup).map_or("invalid", Bringup::name),
        kick: Kick::from_u8(s.kick).map_or("invalid", Kick::name),
        report_status: s.status,
        bsp_stamps: stamp_map(&mut BspPhase::ALL.iter().map(|p| (p.name(), bsp(*p)))),
        bringup_cycles: stats.bringup_cycles,
        bringup_us: cycles_to_us(stats.bringup_cycles, tsc_khz),
        phases: stats.phases.clone(),
        guest_cycles,
        guest_us: cycles_to_us(guest_cycles, tsc_khz),
        tsc_sync: tsc_sync_json(b, tsc_khz),
        scenario: scenario_json(b, tsc_khz),
        cpus,
    }
}
