//! The guest's report: read from guest memory with every size bounded, checked against the
//! VM it came from, and rendered as a human summary and as JSON.

use firmware::cmdline::{Bringup, Kick, Scenario, Teardown, TscSync};
use firmware::report::decode::{self, BootReport, Report, ReportError};
use firmware::report::{
    ApPhase, BspPhase, CpuRecord, CpuState, Kind, CPU_FLAG_BSP, CPU_FLAG_TSC_ADJUST,
    CPU_FLAG_TSC_CHECKED, CPU_FLAG_TSC_OUT_OF_SYNC, CPU_FLAG_TSC_TEST_SKEW, FLAG_TSC_ADJUST,
    FLAG_X2APIC, HEADER_SIZE, REPORT_ALIGN,
};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::phases::{BringupStats, PhaseStats};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Why a report was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ReportCheckError {
    /// The doorbell address is misaligned.
    #[error("the report address {0:#x} is not {REPORT_ALIGN}-byte aligned")]
    Misaligned(u32),
    /// The report lies outside guest memory.
    #[error("the report at {addr:#x} ({len} bytes) lies outside guest memory")]
    OutsideMemory { addr: u32, len: u32 },
    /// Structurally invalid.
    #[error("the report is malformed: {0}")]
    Malformed(#[from] ReportError),
    /// More CPUs than the VM has.
    #[error("the report lists {listed} CPUs but the VM has {vcpus}")]
    TooManyCpus { listed: u32, vcpus: u32 },
    /// An APIC ID the VM does not have.
    #[error("CPU record {index} has APIC ID {apic_id}, which no vCPU of this VM has")]
    UnknownApicId { index: usize, apic_id: u32 },
    /// The same APIC ID twice.
    #[error("APIC ID {0} appears in more than one CPU record")]
    DuplicateApicId(u32),
    /// Not exactly one BSP, or it disagrees with the summary.
    #[error("the report does not mark exactly one CPU as the BSP with APIC ID {0}")]
    BadBsp(u32),
    /// Stamps out of order.
    #[error("CPU record {index} (APIC ID {apic_id}) has phase stamps out of order")]
    StampOrder { index: usize, apic_id: u32 },
    /// Online without an online stamp.
    #[error("CPU record {index} (APIC ID {apic_id}) is online but has no online stamp")]
    OnlineWithoutStamp { index: usize, apic_id: u32 },
    /// An AP stamp outside the BSP's bringup window.
    #[error("CPU record {index} (APIC ID {apic_id}) has a stamp outside the BSP's bringup window")]
    OutsideBringup { index: usize, apic_id: u32 },
    /// BSP stamps out of order.
    #[error("the BSP's phase stamps are out of order")]
    BspStampOrder,
    /// Unknown strategy byte.
    #[error("the report names an unknown bringup strategy {0} or kick style")]
    BadStrategy(u8),
    /// Unknown TSC check byte.
    #[error("the report names an unknown TSC check {0}")]
    BadTscSync(u8),
    /// The TSC check's summary contradicts itself or the CPU records.
    #[error("the TSC check's result is inconsistent: {0}")]
    TscSummary(&'static str),
    /// The scenario block contradicts itself or the rest of the report.
    #[error("the scenario's result is inconsistent: {0}")]
    Scenario(&'static str),
    /// A teardown record contradicts itself or the CPU records.
    #[error("teardown record {index} (APIC ID {apic_id}) is inconsistent: {what}")]
    TeardownRecord {
        index: usize,
        apic_id: u32,
        what: &'static str,
    },
    /// A CPU record's TSC check fields contradict each other or the summary.
    #[error("CPU record {index} (APIC ID {apic_id}) has an inconsistent TSC check result: {what}")]
    TscRecord {
        index: usize,
        apic_id: u32,
        what: &'static str,
    },
}

/// Every `CPU_FLAG_TSC_*` bit.
const CPU_FLAGS_TSC: u32 =
    CPU_FLAG_TSC_CHECKED | CPU_FLAG_TSC_OUT_OF_SYNC | CPU_FLAG_TSC_ADJUST | CPU_FLAG_TSC_TEST_SKEW;

/// True if the guest found this CPU's TSC out of sync: its stamps are in another time base than
/// the BSP's.
pub fn tsc_out_of_sync(r: &CpuRecord) -> bool {
    r.flags & CPU_FLAG_TSC_OUT_OF_SYNC != 0
}

/// Checks one record's TSC check fields against the strategy and the summary's flags.
fn check_tsc_record(
    r: &CpuRecord,
    tsc_sync: TscSync,
    summary_flags: u32,
    max_warp: u64,
) -> Result<(), &'static str> {
    if tsc_sync == TscSync::None {
        if r.flags & CPU_FLAGS_TSC != 0 || r.tsc_warp != 0 || r.tsc_adjust != 0 {
            return Err("TSC results without a TSC check");
        }
        if r.stamps[ApPhase::TscSync as usize] != 0 {
            return Err("a tsc_sync stamp without a TSC check");
        }
        return Ok(());
    }
    if tsc_out_of_sync(r) != (r.tsc_warp > 0) {
        return Err("out of sync exactly when a warp is blamed on it, or not");
    }
    if tsc_out_of_sync(r) && r.flags & CPU_FLAG_TSC_CHECKED == 0 {
        return Err("out of sync without having taken part");
    }
    if r.tsc_warp > max_warp {
        return Err("a warp above the summary's maximum");
    }
    if r.flags & CPU_FLAG_TSC_ADJUST == 0 && r.tsc_adjust != 0 {
        return Err("an IA32_TSC_ADJUST value without having read it");
    }
    if r.flags & CPU_FLAG_TSC_ADJUST != 0 && summary_flags & FLAG_TSC_ADJUST == 0 {
        return Err("IA32_TSC_ADJUST read although CPUID did not report it");
    }
    Ok(())
}

/// Reads the report the doorbell points at into a buffer of at most REPORT_MAX_LEN bytes.
pub fn read(mem: &GuestMemoryMmap, addr: u32) -> Result<Vec<u8>, ReportCheckError> {
    if !addr.is_multiple_of(REPORT_ALIGN) {
        return Err(ReportCheckError::Misaligned(addr));
    }
    let mut header = [0u8; HEADER_SIZE];
    mem.read_slice(&mut header, GuestAddress(u64::from(addr)))
        .map_err(|_| ReportCheckError::OutsideMemory {
            addr,
            len: HEADER_SIZE as u32,
        })?;
    let h = decode::parse_header(&header)?;
    // parse_header bounds `length` by REPORT_MAX_LEN, so this allocation is bounded.
    let mut buf = vec![0u8; h.length as usize];
    mem.read_slice(&mut buf, GuestAddress(u64::from(addr)))
        .map_err(|_| ReportCheckError::OutsideMemory {
            addr,
            len: h.length,
        })?;
    Ok(buf)
}

/// True if the non-zero values of `stamps` never decrease.
fn ordered(stamps: impl Iterator<Item = u64>) -> bool {
    let mut last = 0;
    stamps.filter(|s| *s != 0).all(|s| {
        let ok = s >= last;
        last = s;
        ok
    })
}

/// Checks a structurally valid boot report against the VM: `vcpus` vCPUs with APIC IDs
/// 0..vcpus. A CPU the guest found out of sync with the BSP's TSC has its stamps in its own time
/// base: only their order among themselves is checked, not against the BSP's Kick stamp or
/// bringup window.
pub fn check_boot(b: &BootReport<'_>, vcpus: u32) -> Result<(), ReportCheckError> {
    let s = &b.summary;
    if s.cpu_count > vcpus {
        return Err(ReportCheckError::TooManyCpus {
            listed: s.cpu_count,
            vcpus,
        });
    }
    Bringup::from_u8(s.bringup).ok_or(ReportCheckError::BadStrategy(s.bringup))?;
    Kick::from_u8(s.kick).ok_or(ReportCheckError::BadStrategy(s.kick))?;
    let tsc_sync = TscSync::from_u8(s.tsc_sync).ok_or(ReportCheckError::BadTscSync(s.tsc_sync))?;
    let t = &s.tsc;
    if tsc_sync == TscSync::None && *t != Default::default() {
        return Err(ReportCheckError::TscSummary("results without a TSC check"));
    }
    if (t.warps == 0) != (t.max_warp == 0) {
        return Err(ReportCheckError::TscSummary(
            "a maximum warp without warps, or warps without one",
        ));
    }
    let bsp = |p: BspPhase| s.bsp_stamps[p as usize];
    if !ordered(BspPhase::ALL.iter().map(|p| bsp(*p))) {
        return Err(ReportCheckError::BspStampOrder);
    }
    // vcpus is bounded by KVM's maximum, so this bitmap is small.
    let mut seen = vec![false; vcpus as usize];
    let mut bsps = 0;
    let mut max_blamed = 0;
    for (index, r) in b.cpus().enumerate() {
        let slot = seen
            .get_mut(r.apic_id as usize)
            .ok_or(ReportCheckError::UnknownApicId {
                index,
                apic_id: r.apic_id,
            })?;
        if std::mem::replace(slot, true) {
            return Err(ReportCheckError::DuplicateApicId(r.apic_id));
        }
        if r.flags & CPU_FLAG_BSP != 0 {
            if r.apic_id != s.bsp_apic_id {
                return Err(ReportCheckError::BadBsp(s.bsp_apic_id));
            }
            bsps += 1;
        }
        check_tsc_record(&r, tsc_sync, s.flags, t.max_warp).map_err(|what| {
            ReportCheckError::TscRecord {
                index,
                apic_id: r.apic_id,
                what,
            }
        })?;
        max_blamed = max_blamed.max(r.tsc_warp);
        // The BSP's Kick stamp is in the BSP's time base.
        let own_base = tsc_out_of_sync(&r);
        let phases = ApPhase::ALL
            .iter()
            .filter(|p| !own_base || **p != ApPhase::Kick);
        if !ordered(phases.clone().map(|p| r.stamps[*p as usize])) {
            return Err(ReportCheckError::StampOrder {
                index,
                apic_id: r.apic_id,
            });
        }
        let (from, to) = (bsp(BspPhase::BringupStart), bsp(BspPhase::AllOnline));
        let outside = |t: u64| t != 0 && ((from != 0 && t < from) || (to != 0 && t > to));
        if r.flags & CPU_FLAG_BSP == 0
            && !own_base
            && ApPhase::ALL.iter().any(|p| outside(r.stamps[*p as usize]))
        {
            return Err(ReportCheckError::OutsideBringup {
                index,
                apic_id: r.apic_id,
            });
        }
        if r.state == CpuState::Online as u8 && r.stamps[ApPhase::Online as usize] == 0 {
            return Err(ReportCheckError::OnlineWithoutStamp {
                index,
                apic_id: r.apic_id,
            });
        }
    }
    if bsps != 1 {
        return Err(ReportCheckError::BadBsp(s.bsp_apic_id));
    }
    if max_blamed != t.max_warp {
        return Err(ReportCheckError::TscSummary(
            "the maximum warp is not the largest one blamed on a CPU",
        ));
    }
    check_scenario(b)
}

/// Checks the scenario block against itself and the CPU records: counts, the teardown window
/// inside the BSP's stamps, every teardown record naming a distinct AP of the report with its
/// stamps in order inside the window.
fn check_scenario(b: &BootReport<'_>) -> Result<(), ReportCheckError> {
    let sc = &b.scenario;
    let bad = |what| Err(ReportCheckError::Scenario(what));
    let Some(scenario) = Scenario::from_u8(sc.scenario) else {
        return bad("an unknown scenario");
    };
    if Teardown::from_u8(sc.teardown).is_none() {
        return bad("an unknown teardown strategy");
    }
    if sc.violations != 0 {
        return bad("violations from a scenario that checks no invariants");
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

/// Decodes and checks a report read by [`read`].
pub fn decode(buf: &[u8], vcpus: u32) -> Result<Report<'_>, ReportCheckError> {
    let r = decode::parse(buf)?;
    if let Report::Boot(b) = &r {
        check_boot(b, vcpus)?;
    }
    Ok(r)
}

/// VMM-side phase durations in microseconds, consecutive, in the order they happen.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct VmmPhasesUs {
    /// Opening /dev/kvm and checking capabilities.
    pub open_kvm: u64,
    /// KVM_CREATE_VM, irqchip, PIT.
    pub create_vm: u64,
    /// Mapping guest memory and registering it with KVM.
    pub memory: u64,
    /// Reading, validating and loading the kernel.
    pub load_kernel: u64,
    /// Building the ACPI tables and boot information.
    pub acpi: u64,
    /// Creating and configuring every vCPU (in parallel threads).
    pub create_vcpus: u64,
    /// From all vCPUs ready to the BSP's first KVM_RUN.
    pub first_run: u64,
    /// From the BSP's first KVM_RUN to the report doorbell (null without a report).
    pub report: Option<u64>,
    /// From the report doorbell to the VM ending (the guest's exit path, console output
    /// included; null without a report).
    pub exit: Option<u64>,
    /// Stopping and joining the vCPU threads.
    pub teardown: u64,
    /// The whole boot, first to last.
    pub total: u64,
}

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
    pub stamps: serde_json::Map<String, serde_json::Value>,
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

/// The JSON report (field names are a stable interface).
#[derive(Debug, Clone, Serialize)]
pub struct JsonReport {
    /// ok, guest-failure, ... (see README).
    pub status: &'static str,
    /// The process exit status.
    pub exit_code: u8,
    /// The error, if any.
    pub error: Option<String>,
    /// vCPUs in the VM.
    pub vcpus: u32,
    /// CPUs that reported online, BSP included.
    pub online: u32,
    /// TSC frequency (kHz) KVM reports and the guest was given.
    pub tsc_khz: u32,
    /// VMM phases.
    pub vmm_phases_us: VmmPhasesUs,
    /// The status the guest wrote to sipi's exit port, or the value it wrote to
    /// isa-debug-exit.
    pub guest_status: Option<u32>,
    /// How the guest ended the VM (`sipi-exit-port`, `isa-debug-exit`, `i8042-reset`,
    /// `port92-reset`, `cf9-reset`, `acpi-s5`, `triple-fault`); null if it did not.
    pub exit_via: Option<&'static str>,
    /// Boot report details, when one was received.
    #[serde(flatten)]
    pub boot: Option<BootJson>,
    /// Per-AP timings for the human table (the JSON carries `phases` and `cpus` instead).
    #[serde(skip)]
    pub stats: Option<BringupStats>,
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
    pub bsp_stamps: serde_json::Map<String, serde_json::Value>,
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
    /// boot / teardown / reboot-cycles.
    pub name: &'static str,
    /// serial / parallel (null for boot).
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
    ScenarioJson {
        name: scenario.name(),
        teardown: (scenario != Scenario::Boot)
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
    }
}

/// The scenario's lines of the human summary (None for boot).
fn render_scenario(s: &ScenarioJson, tsc_khz: u32) -> Option<String> {
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

/// Cycles to microseconds.
pub fn cycles_to_us(cycles: u64, tsc_khz: u32) -> Option<f64> {
    (tsc_khz > 0).then(|| cycles as f64 * 1000.0 / f64::from(tsc_khz))
}

/// Builds the boot part of the JSON report from a report and its statistics.
pub fn boot_json(b: &BootReport<'_>, stats: &BringupStats, tsc_khz: u32) -> BootJson {
    let s = &b.summary;
    let stamp_map = |pairs: &mut dyn Iterator<Item = (&'static str, u64)>| {
        pairs
            .filter(|(_, v)| *v != 0)
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect()
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

/// Slowest CPUs listed without `--per-cpu`.
const SLOWEST_SHOWN: usize = 5;

/// The human summary printed after a boot; `per_cpu` lists every CPU's phases.
pub fn render_summary(j: &JsonReport, per_cpu: bool) -> String {
    let mut out = String::new();
    let mhz = f64::from(j.tsc_khz) / 1000.0;
    match (&j.boot, j.exit_via) {
        // A kernel that sent no report (a foreign one) says nothing about its CPUs: say how it
        // ended instead of "0/N online".
        (None, Some(via)) => out.push_str(&format!(
            "sipi: {} vCPUs, no report, the guest ended via {via}, TSC {mhz:.3} MHz, status {}\n",
            j.vcpus, j.status
        )),
        _ => out.push_str(&format!(
            "sipi: {}/{} vCPUs online, TSC {mhz:.3} MHz, status {}\n",
            j.online, j.vcpus, j.status
        )),
    }
    if let Some(b) = &j.boot {
        let mode = if b.x2apic { "x2APIC" } else { "xAPIC" };
        out.push_str(&format!(
            "guest: BSP APIC ID {} ({mode}), {} CPUs in the MADT, bringup {} / kick {}\n",
            b.bsp_apic_id, b.madt_cpus, b.bringup, b.kick
        ));
        let entry = b
            .bsp_stamps
            .get(BspPhase::Entry.name())
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        let mut line = String::from("guest phases (since entry):");
        for p in BspPhase::ALL.iter().skip(1) {
            if let Some(t) = b.bsp_stamps.get(p.name()).and_then(|v| v.as_u64()) {
                let c = t.saturating_sub(entry);
                match cycles_to_us(c, j.tsc_khz) {
                    Some(us) => line.push_str(&format!(" {} {us:.1} us;", p.name())),
                    None => line.push_str(&format!(" {} {c} cycles;", p.name())),
                }
            }
        }
        out.push_str(line.trim_end_matches(';'));
        out.push('\n');
        if let Some(line) = render_tsc_sync(&b.tsc_sync, j.tsc_khz) {
            out.push_str(&line);
        }
    }
    if let Some(s) = &j.stats {
        if !s.cpus.is_empty() {
            out.push_str(&crate::phases::render(s, j.tsc_khz, per_cpu, SLOWEST_SHOWN));
        }
    }
    if let Some(text) = j
        .boot
        .as_ref()
        .and_then(|b| render_scenario(&b.scenario, j.tsc_khz))
    {
        out.push_str(&text);
    }
    let p = &j.vmm_phases_us;
    let report = p.report.map_or_else(|| "-".to_string(), |r| r.to_string());
    let exit = p.exit.map_or_else(|| "-".to_string(), |r| r.to_string());
    out.push_str(&format!(
        "vmm phases (us): open_kvm {} | create_vm {} | memory {} | load_kernel {} | acpi {} | create_vcpus {} | first_run {} | report {report} | exit {exit} | teardown {} | total {}\n",
        p.open_kvm, p.create_vm, p.memory, p.load_kernel, p.acpi, p.create_vcpus, p.first_run, p.teardown, p.total
    ));
    out
}

/// The TSC check's line of the human summary (None when no check ran).
fn render_tsc_sync(t: &TscSyncJson, tsc_khz: u32) -> Option<String> {
    let synchronised = t.synchronised?;
    let cost = match cycles_to_us(t.cycles, tsc_khz) {
        Some(us) => format!("{us:.1} us"),
        None => format!("{} cycles", t.cycles),
    };
    let verdict = if synchronised {
        "synchronised".to_string()
    } else {
        let cpus: Vec<String> = t
            .out_of_sync
            .iter()
            .take(SLOWEST_SHOWN)
            .map(|c| format!("CPU#{} (APIC {}) by {} cycles", c.cpu, c.apic_id, c.value))
            .collect();
        let more = if t.out_of_sync.len() > SLOWEST_SHOWN {
            ", ..."
        } else {
            ""
        };
        format!("NOT synchronised: {}{more}", cpus.join(", "))
    };
    let adjust = if !t.tsc_adjust_supported {
        "no IA32_TSC_ADJUST".to_string()
    } else if t.tsc_adjust_nonzero.is_empty() {
        "IA32_TSC_ADJUST 0 everywhere".to_string()
    } else {
        format!(
            "IA32_TSC_ADJUST not 0 on {} CPUs",
            t.tsc_adjust_nonzero.len()
        )
    };
    Some(format!(
        "tsc sync: {}, {cost}, {} CPUs checked, max warp {} cycles ({} warps): {verdict}; {adjust}\n",
        t.strategy, t.checked_cpus, t.max_warp_cycles, t.warps
    ))
}

/// The kind of a decoded report, for messages.
pub fn kind(r: &Report<'_>) -> Kind {
    match r {
        Report::Boot(_) => Kind::Boot,
        Report::Fault(_) => Kind::Fault,
        Report::Panic(_) => Kind::Panic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware::report::encode::{write_boot_summary, write_cpu_record, write_scenario};
    use firmware::report::{
        BootSummary, CpuRecord, Round, ScenarioSummary, TeardownRecord, TscSyncSummary,
    };

    fn report(cpus: &[CpuRecord], bsp: u32) -> Vec<u8> {
        report_with(cpus, bsp, BootSummary::default())
    }

    /// A report of `cpus` whose summary is `base` with the CPU count, BSP and bringup window
    /// filled in.
    fn report_with(cpus: &[CpuRecord], bsp: u32, base: BootSummary) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        let mut s = BootSummary {
            cpu_count: cpus.len() as u32,
            bsp_apic_id: bsp,
            bringup: 2,
            ..base
        };
        // The APs below stamp between 100 and 300.
        s.bsp_stamps[BspPhase::BringupStart as usize] = 50;
        s.bsp_stamps[BspPhase::AllOnline as usize] = 400;
        write_boot_summary(&mut buf, &s).unwrap();
        for (i, r) in cpus.iter().enumerate() {
            write_cpu_record(&mut buf, i, r).unwrap();
        }
        let len =
            write_scenario(&mut buf, cpus.len(), &ScenarioSummary::default(), &[], &[]).unwrap();
        buf.truncate(len);
        buf
    }

    fn cpu(apic_id: u32, bsp: bool) -> CpuRecord {
        let mut r = CpuRecord {
            apic_id,
            state: CpuState::Online as u8,
            last_phase: 5,
            ..Default::default()
        };
        r.flags = if bsp { CPU_FLAG_BSP } else { 0 };
        r.stamps[ApPhase::Kick as usize] = 100;
        r.stamps[ApPhase::Online as usize] = 200;
        r
    }

    #[test]
    fn accepts_a_consistent_report() {
        let buf = report(&[cpu(0, true), cpu(1, false)], 0);
        let Report::Boot(b) = decode(&buf, 2).unwrap() else {
            panic!("not a boot report")
        };
        assert_eq!(online(&b), 2);
        let j = boot_json(&b, &crate::phases::bringup_stats(&b), 1_000_000);
        assert_eq!(j.cpus.len(), 2);
        assert_eq!(
            j.cpus[1].stamps.get("online").and_then(|v| v.as_u64()),
            Some(200)
        );
    }

    #[test]
    fn catches_reports_that_disagree_with_the_vm() {
        let err = |cpus: &[CpuRecord], bsp, vcpus| {
            decode(&report(cpus, bsp), vcpus).unwrap_err().to_string()
        };
        assert!(err(&[cpu(0, true), cpu(1, false)], 0, 1).contains("VM has 1"));
        assert!(err(&[cpu(0, true), cpu(7, false)], 0, 2).contains("APIC ID 7"));
        assert!(err(&[cpu(0, true), cpu(0, false)], 0, 2).contains("more than one"));
        assert!(err(&[cpu(0, false), cpu(1, false)], 0, 2).contains("BSP"));
        assert!(err(&[cpu(0, true), cpu(1, true)], 0, 2).contains("BSP"));
        let mut late = cpu(1, false);
        late.stamps[ApPhase::Kick as usize] = 300;
        assert!(err(&[cpu(0, true), late], 0, 2).contains("out of order"));
        let mut early = cpu(1, false);
        early.stamps[ApPhase::Kick as usize] = 10;
        assert!(err(&[cpu(0, true), early], 0, 2).contains("bringup window"));
        let mut late = cpu(1, false);
        late.stamps[ApPhase::Online as usize] = 10_000;
        assert!(err(&[cpu(0, true), late], 0, 2).contains("bringup window"));
        let mut unstamped = cpu(1, false);
        unstamped.stamps[ApPhase::Online as usize] = 0;
        assert!(err(&[cpu(0, true), unstamped], 0, 2).contains("no online stamp"));
    }

    /// A TSC check's summary: `strategy` as u8, and the warps found.
    fn tsc_summary(strategy: u8, max_warp: u64, warps: u32) -> BootSummary {
        BootSummary {
            tsc_sync: strategy,
            flags: FLAG_TSC_ADJUST,
            tsc: TscSyncSummary {
                cycles: 5_000,
                max_warp,
                warps,
            },
            ..Default::default()
        }
    }

    /// `cpu` after a TSC check: checked, IA32_TSC_ADJUST read, a tsc_sync stamp.
    fn checked(mut r: CpuRecord) -> CpuRecord {
        r.flags |= CPU_FLAG_TSC_CHECKED | CPU_FLAG_TSC_ADJUST;
        if r.flags & CPU_FLAG_BSP == 0 {
            r.stamps[ApPhase::TscSync as usize] = 150;
        }
        r
    }

    #[test]
    fn a_tsc_check_that_found_nothing_is_synchronised() {
        let cpus = [checked(cpu(0, true)), checked(cpu(1, false))];
        let buf = report_with(&cpus, 0, tsc_summary(2, 0, 0));
        let Report::Boot(b) = decode(&buf, 2).unwrap() else {
            panic!("not a boot report")
        };
        let t = tsc_sync_json(&b, 1_000_000);
        assert_eq!(
            (t.strategy, t.synchronised, t.checked_cpus),
            ("parallel", Some(true), 2)
        );
        assert_eq!(t.us, Some(5.0));
        assert!(t.out_of_sync.is_empty() && t.tsc_adjust_supported);
        assert!(tsc_failure(&b).is_none());
        let j = boot_json(&b, &crate::phases::bringup_stats(&b), 1_000_000);
        assert_eq!(j.cpus[1].tsc_adjust, Some(0));
        assert!(j.cpus[1].tsc_checked);
        assert!(j.phases.contains_key("tsc_sync"));
        // Without a check: nothing checked, and no verdict.
        let buf = report(&[cpu(0, true), cpu(1, false)], 0);
        let Report::Boot(b) = decode(&buf, 2).unwrap() else {
            panic!("not a boot report")
        };
        let t = tsc_sync_json(&b, 1_000_000);
        assert_eq!(
            (t.strategy, t.synchronised, t.checked_cpus),
            ("none", None, 0)
        );
        assert!(tsc_failure(&b).is_none());
    }

    #[test]
    fn a_cpu_out_of_sync_is_named_and_keeps_its_own_time_base() {
        let ahead = 10_000_000_000u64;
        let mut skewed = checked(cpu(2, false));
        for p in [ApPhase::TscSync, ApPhase::Online] {
            skewed.stamps[p as usize] += ahead;
        }
        skewed.flags |= CPU_FLAG_TSC_OUT_OF_SYNC;
        skewed.tsc_warp = ahead;
        let cpus = [checked(cpu(0, true)), checked(cpu(1, false)), skewed];
        let buf = report_with(&cpus, 0, tsc_summary(1, ahead, 3));
        let Report::Boot(b) = decode(&buf, 3).unwrap() else {
            panic!("not a boot report")
        };
        let t = tsc_sync_json(&b, 1_000_000);
        assert_eq!(t.synchronised, Some(false));
        assert_eq!(t.out_of_sync.len(), 1);
        assert_eq!(
            (t.out_of_sync[0].apic_id, t.out_of_sync[0].value),
            (2, ahead as i64)
        );
        let line = tsc_failure(&b).unwrap();
        assert!(
            line.contains("APIC IDs 2)") && line.contains("serial"),
            "{line}"
        );
        // The same stamps on a CPU the guest did not find out of sync are rejected.
        let mut unflagged = skewed;
        unflagged.flags &= !CPU_FLAG_TSC_OUT_OF_SYNC;
        unflagged.tsc_warp = 0;
        let cpus = [checked(cpu(0, true)), checked(cpu(1, false)), unflagged];
        let err = decode(&report_with(&cpus, 0, tsc_summary(1, 0, 0)), 3).unwrap_err();
        assert!(err.to_string().contains("bringup window"), "{err}");
        // Its own stamps must still be in order.
        let mut disordered = skewed;
        disordered.stamps[ApPhase::Online as usize] = 1;
        let cpus = [checked(cpu(0, true)), checked(cpu(1, false)), disordered];
        let err = decode(&report_with(&cpus, 0, tsc_summary(1, ahead, 3)), 3).unwrap_err();
        assert!(err.to_string().contains("out of order"), "{err}");
    }

    #[test]
    fn catches_tsc_results_that_contradict_themselves() {
        let err = |cpus: &[CpuRecord], summary: BootSummary| {
            decode(&report_with(cpus, 0, summary), 2)
                .unwrap_err()
                .to_string()
        };
        let good = [checked(cpu(0, true)), checked(cpu(1, false))];
        assert!(decode(&report_with(&good, 0, tsc_summary(2, 0, 0)), 2).is_ok());
        assert!(err(&good, tsc_summary(3, 0, 0)).contains("unknown TSC check 3"));
        assert!(err(&good, tsc_summary(0, 0, 0)).contains("without a TSC check"));
        assert!(err(&good, tsc_summary(2, 0, 4)).contains("maximum warp without warps"));
        assert!(err(&good, tsc_summary(2, 9, 1)).contains("largest one blamed"));
        let with = |f: &dyn Fn(&mut CpuRecord)| {
            let mut r = checked(cpu(1, false));
            f(&mut r);
            [checked(cpu(0, true)), r]
        };
        let unblamed = with(&|r| r.flags |= CPU_FLAG_TSC_OUT_OF_SYNC);
        assert!(err(&unblamed, tsc_summary(2, 0, 0)).contains("exactly when a warp"));
        let unflagged = with(&|r| r.tsc_warp = 9);
        assert!(err(&unflagged, tsc_summary(2, 9, 1)).contains("exactly when a warp"));
        let too_big = with(&|r| {
            r.flags |= CPU_FLAG_TSC_OUT_OF_SYNC;
            r.tsc_warp = 10;
        });
        assert!(err(&too_big, tsc_summary(2, 9, 1)).contains("above the summary's maximum"));
        let absent = with(&|r| {
            r.flags &= !CPU_FLAG_TSC_CHECKED;
            r.flags |= CPU_FLAG_TSC_OUT_OF_SYNC;
            r.tsc_warp = 9;
        });
        assert!(err(&absent, tsc_summary(2, 9, 1)).contains("without having taken part"));
        let unread = with(&|r| {
            r.flags &= !CPU_FLAG_TSC_ADJUST;
            r.tsc_adjust = 5;
        });
        assert!(err(&unread, tsc_summary(2, 0, 0)).contains("without having read it"));
        let no_cpuid = BootSummary {
            flags: 0,
            ..tsc_summary(2, 0, 0)
        };
        assert!(err(&good, no_cpuid).contains("CPUID did not report it"));
        let stamped = [cpu(0, true), checked(cpu(1, false))];
        assert!(err(&stamped, BootSummary::default()).contains("without a TSC check"));
    }

    #[test]
    fn reads_are_bounded_and_inside_memory() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        assert!(matches!(
            read(&mem, 0x1004),
            Err(ReportCheckError::Misaligned(_))
        ));
        assert!(matches!(
            read(&mem, 0xFFFF_FFF8),
            Err(ReportCheckError::OutsideMemory { .. })
        ));
        let buf = report(&[cpu(0, true)], 0);
        mem.write_slice(&buf, GuestAddress(0xFFE00)).unwrap();
        assert_eq!(read(&mem, 0xFFE00).unwrap(), buf);
        // A header claiming more bytes than remain in memory.
        mem.write_slice(&buf[..16], GuestAddress(0xFFFF0)).unwrap();
        assert!(matches!(
            read(&mem, 0xFFFF0),
            Err(ReportCheckError::OutsideMemory { .. })
        ));
    }

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
        let len =
            write_scenario(&mut buf, 2, &sc, &rounds[..sc.round_count as usize], &[t]).unwrap();
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
}
