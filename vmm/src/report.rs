//! The guest's report: read from guest memory with every size bounded, checked against the
//! VM it came from, and rendered as a human summary and as JSON.

use firmware::cmdline::{Bringup, Kick};
use firmware::report::decode::{self, BootReport, Report, ReportError};
use firmware::report::{
    ApPhase, BspPhase, CpuState, Kind, CPU_FLAG_BSP, FLAG_X2APIC, HEADER_SIZE, REPORT_ALIGN,
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
/// 0..vcpus.
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
    let bsp = |p: BspPhase| s.bsp_stamps[p as usize];
    if !ordered(BspPhase::ALL.iter().map(|p| bsp(*p))) {
        return Err(ReportCheckError::BspStampOrder);
    }
    // vcpus is bounded by KVM's maximum, so this bitmap is small.
    let mut seen = vec![false; vcpus as usize];
    let mut bsps = 0;
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
        if !ordered(ApPhase::ALL.iter().map(|p| r.stamps[*p as usize])) {
            return Err(ReportCheckError::StampOrder {
                index,
                apic_id: r.apic_id,
            });
        }
        let (from, to) = (bsp(BspPhase::BringupStart), bsp(BspPhase::AllOnline));
        let outside = |t: u64| t != 0 && ((from != 0 && t < from) || (to != 0 && t > to));
        if r.flags & CPU_FLAG_BSP == 0
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
    /// The guest's exit status, if it wrote one.
    pub guest_status: Option<u32>,
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
    out.push_str(&format!(
        "sipi: {}/{} vCPUs online, TSC {mhz:.3} MHz, status {}\n",
        j.online, j.vcpus, j.status
    ));
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
    }
    if let Some(s) = &j.stats {
        if !s.cpus.is_empty() {
            out.push_str(&crate::phases::render(s, j.tsc_khz, per_cpu, SLOWEST_SHOWN));
        }
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
    use firmware::report::encode::{write_boot_summary, write_cpu_record};
    use firmware::report::{BootSummary, CpuRecord};

    fn report(cpus: &[CpuRecord], bsp: u32) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        let mut s = BootSummary {
            cpu_count: cpus.len() as u32,
            bsp_apic_id: bsp,
            bringup: 2,
            ..Default::default()
        };
        // The APs below stamp between 100 and 300.
        s.bsp_stamps[BspPhase::BringupStart as usize] = 50;
        s.bsp_stamps[BspPhase::AllOnline as usize] = 400;
        let len = write_boot_summary(&mut buf, &s).unwrap();
        for (i, r) in cpus.iter().enumerate() {
            write_cpu_record(&mut buf, i, r).unwrap();
        }
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
        mem.write_slice(&buf, GuestAddress(0xFFF00)).unwrap();
        assert_eq!(read(&mem, 0xFFF00).unwrap(), buf);
        // A header claiming more bytes than remain in memory.
        mem.write_slice(&buf[..16], GuestAddress(0xFFFF0)).unwrap();
        assert!(matches!(
            read(&mem, 0xFFFF0),
            Err(ReportCheckError::OutsideMemory { .. })
        ));
    }
}
