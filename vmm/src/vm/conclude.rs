//! Step 3 of a boot: read and check the guest's report, decide the verdict, and compute the
//! bringup statistics: the typed outcome both of `vmm`'s views are made of.

use firmware::report::decode::Report;

use super::run::Ran;
use super::verdict::{verdict, Ending};
use crate::config::VmConfig;
use crate::report::details::boot_json;
use crate::report::measurement::Measurement;
use crate::report::stats::{bringup_stats, online};
use crate::report::{self, live, BootOutcome, VmmPhasesUs};
use crate::status::Status;

/// The outcome of a VM that ran.
pub(super) fn conclude(ran: &Ran, cfg: &VmConfig, phases: VmmPhasesUs) -> BootOutcome {
    let (buf, read_error) = match ran.doorbell.map(|d| report::read(&ran.mem, d.addr)) {
        Some(Ok(buf)) => (Some(buf), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    let decoded = match (&buf, read_error) {
        (Some(buf), _) => Some(report::decode_for(buf, cfg.topology, &ran.guest)),
        (None, Some(e)) => Some(Err(e)),
        (None, None) => None,
    };
    let v = verdict(&Ending {
        wake: ran.wake,
        outcome: ran.outcome.as_ref(),
        report: decoded.as_ref(),
        timeout: cfg.timeout,
        extra_rings: ran.extra_rings,
        sipi_guest: ran.sipi_guest,
    });
    let mut outcome = BootOutcome {
        status: v.status,
        error: v.error,
        vcpus: cfg.topology.vcpus(),
        online: 0,
        tsc_khz: ran.tsc_khz,
        vmm_phases_us: phases,
        bsp_start: ran.bsp_start,
        guest_status: v.guest_status,
        exit_via: v.exit_via,
        reached: None,
        boot: None,
        stats: None,
        kvm_stats: Some(ran.kvm_stats.clone()),
        timeline: ran.timeline.clone(),
        measurement: None,
    };
    if let (true, Some(d)) = (ran.sipi_guest, ran.doorbell) {
        let asked = ran.bsp_start.ready_asks + ran.bsp_start.ready_queries;
        let m = Measurement::check(ran.window_exits.clone(), d.vcpu, ran.suspends, asked);
        // A clean run whose timed windows held exits the protocol rules out is not clean: its
        // stamps include what the measurement cost.
        if let (Status::Ok, Some(e)) = (outcome.status, m.error()) {
            outcome.status = Status::BadReport;
            outcome.error = Some(e);
        }
        outcome.measurement = Some(m);
    }
    if let Some(Ok(Report::Boot(b))) = &decoded {
        let stats = bringup_stats(b);
        outcome.online = online(b);
        outcome.boot = Some(boot_json(b, &stats, ran.tsc_khz));
        outcome.stats = Some(stats);
    }
    if buf.is_none() {
        // No report: say what the guest had reached, if it published its live state.
        outcome.reached = live::read(&ran.mem, cfg.topology.vcpus()).ok();
        outcome.online = outcome.reached.as_ref().map_or(0, |r| r.online);
        if let (Some(r), Some(e)) = (&outcome.reached, outcome.error.as_mut()) {
            e.push_str("; ");
            e.push_str(&r.summary());
        }
    }
    outcome
}
