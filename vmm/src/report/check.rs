//! Reading the guest's report out of guest memory with every size bounded, and checking it
//! against the VM it came from and the options the guest was given.

use firmware::cmdline::{Bringup, GuestOptions, Kick, Scenario, TscSync};
use firmware::report::decode::{self, BootReport, Report};
use firmware::report::{
    ApPhase, BspPhase, CpuRecord, CpuState, CPU_FLAG_BSP, CPU_FLAG_TSC_ADJUST,
    CPU_FLAG_TSC_CHECKED, CPU_FLAG_TSC_OUT_OF_SYNC, CPU_FLAG_TSC_TEST_SKEW, FLAG_TSC_ADJUST,
    HEADER_SIZE, REPORT_ALIGN,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::error::ReportCheckError;
use super::scenario::{check_requested, check_scenario};
use super::stamps::{ordered, tsc_out_of_sync};
use crate::arch::x86_64::topology::Topology;

/// Every `CPU_FLAG_TSC_*` bit.
const CPU_FLAGS_TSC: u32 =
    CPU_FLAG_TSC_CHECKED | CPU_FLAG_TSC_OUT_OF_SYNC | CPU_FLAG_TSC_ADJUST | CPU_FLAG_TSC_TEST_SKEW;

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
pub(crate) fn read(mem: &GuestMemoryMmap, addr: u32) -> Result<Vec<u8>, ReportCheckError> {
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

/// Checks a structurally valid boot report against the VM's topology. A CPU the guest found out of sync with the BSP's TSC has its stamps in its own time
/// base: only their order among themselves is checked, not against the BSP's Kick stamp or
/// bringup window. In hotplug-torture, which brings APs online again until it reports, the
/// window extends to the report.
pub(super) fn check_boot(b: &BootReport<'_>, topology: Topology) -> Result<(), ReportCheckError> {
    let vcpus = topology.vcpus();
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
        let slot = topology
            .vcpu_of(r.apic_id)
            .and_then(|vcpu| seen.get_mut(vcpu as usize))
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
    check_scenario(b)
}

/// Decodes and checks a report read by [`read`].
pub fn decode(buf: &[u8], topology: Topology) -> Result<Report<'_>, ReportCheckError> {
    let r = decode::parse(buf)?;
    if let Report::Boot(b) = &r {
        check_boot(b, topology)?;
    }
    Ok(r)
}

/// [`decode`], then checks the scenario against the options the guest was given, see
/// [`check_requested`].
pub(crate) fn decode_for<'a>(
    buf: &'a [u8],
    topology: Topology,
    requested: &GuestOptions,
) -> Result<Report<'a>, ReportCheckError> {
    let r = decode(buf, topology)?;
    if let Report::Boot(b) = &r {
        check_requested(b, requested)?;
    }
    Ok(r)
}
