//! The guest's report: read from guest memory with every size bounded, checked against the
//! VM it came from, and rendered as a human summary and as JSON. The scenario block (what the
//! guest did after bringup) is in [`scenario`].

mod scenario;

pub use scenario::{
    check_requested, scenario_failure, scenario_json, Latency, RoundJson, ScenarioJson,
    ViolationJson,
};

use firmware::cmdline::{Bringup, GuestOptions, Kick, Scenario, TscSync};
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
    /// A hotplug-torture violation contradicts the scenario block or the CPU records.
    #[error("violation {index} is inconsistent: {what}")]
    Violation { index: usize, what: &'static str },
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
/// bringup window. In hotplug-torture, which brings APs online again until it reports, the
/// window extends to the report.
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
    // Hotplug-torture brings APs online again one at a time until it reports: their stamps
    // lie between the boot's bringup and the report.
    let bringup_end = match Scenario::from_u8(b.scenario.scenario) {
        Some(Scenario::HotplugTorture) => bsp(BspPhase::Report),
        _ => bsp(BspPhase::AllOnline),
    };
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
        let (from, to) = (bsp(BspPhase::BringupStart), bringup_end);
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
    scenario::check_scenario(b)
}

/// Decodes and checks a report read by [`read`].
pub fn decode(buf: &[u8], vcpus: u32) -> Result<Report<'_>, ReportCheckError> {
    let r = decode::parse(buf)?;
    if let Report::Boot(b) = &r {
        check_boot(b, vcpus)?;
    }
    Ok(r)
}

/// [`decode`], then checks the scenario against the options the guest was given (None: they
/// are unknown, as when the command line does not parse), see [`check_requested`].
pub fn decode_for<'a>(
    buf: &'a [u8],
    vcpus: u32,
    requested: Option<&GuestOptions>,
) -> Result<Report<'a>, ReportCheckError> {
    let r = decode(buf, vcpus)?;
    if let (Report::Boot(b), Some(requested)) = (&r, requested) {
        check_requested(b, requested)?;
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
    /// Without a report (a timeout, a signal): what the guest had reached, from its live
    /// state; null when there is a report or the guest published none.
    pub reached: Option<crate::live::Reached>,
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
        .and_then(|b| scenario::render_scenario(&b.scenario, j.tsc_khz))
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
mod tests;
