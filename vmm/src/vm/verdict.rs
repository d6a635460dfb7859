//! The one place that decides, from how a boot ended, which exit status it gets, with its
//! error line, `exit_via` and guest status.

use std::time::Duration;

use firmware::report::decode::Report;
use firmware::report::exception_name;

use crate::devices::DeviceEvent;
use crate::event_loop::Wake;
use crate::report::details::tsc_failure;
use crate::report::scenario_failure;
use crate::report::stats::missing;
use crate::report::ReportCheckError;
use crate::status::Status;
use crate::vcpu::Outcome;

/// Everything the verdict depends on: how the VM ended and what the guest reported.
pub(crate) struct Ending<'a> {
    /// What woke the main thread.
    pub wake: Wake,
    /// The first terminal event the vCPUs saw.
    pub outcome: Option<&'a Outcome>,
    /// sipi's report, decoded and checked, if the guest rang the doorbell.
    pub report: Option<&'a Result<Report<'a>, ReportCheckError>>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// Doorbell rings after the first.
    pub extra_rings: u32,
    /// The kernel is sipi's own guest (embedded, or a file identical to it), which must send
    /// a report before it exits through the exit port.
    pub sipi_guest: bool,
}

/// The outcome of a boot as `vmm` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// The exit status.
    pub status: Status,
    /// The one-line error, without the "error: " prefix (None for a clean end).
    pub error: Option<String>,
    /// How the guest ended the VM (JSON `exit_via`), if it did.
    pub exit_via: Option<&'static str>,
    /// The status the guest wrote to sipi's exit port or the value it wrote to isa-debug-exit.
    pub guest_status: Option<u32>,
}

/// Decides the exit status, error line, `exit_via` and guest status of a boot.
pub(crate) fn verdict(e: &Ending<'_>) -> Verdict {
    let ended_by_guest = matches!(e.wake, Wake::VmExit);
    let exit_via = match e.outcome {
        Some(Outcome::Stop { event, .. }) if ended_by_guest => Some(event.exit_via()),
        Some(Outcome::TripleFault { .. }) if ended_by_guest => Some("triple-fault"),
        Some(Outcome::TooManySuspends { .. }) if ended_by_guest => {
            Some(DeviceEvent::Suspend.exit_via())
        }
        _ => None,
    };
    let guest_status = match e.outcome {
        Some(Outcome::Stop {
            event: DeviceEvent::SipiExit(s) | DeviceEvent::DebugExit(s),
            ..
        }) => Some(*s),
        _ => None,
    };
    let (status, error) = decide(e);
    Verdict {
        status,
        error,
        exit_via,
        guest_status,
    }
}

fn decide(e: &Ending<'_>) -> (Status, Option<String>) {
    match e.wake {
        Wake::Signal(libc::SIGINT) => {
            return (Status::Interrupted, Some("interrupted by SIGINT".into()))
        }
        Wake::Signal(_) => return (Status::Terminated, Some("terminated by SIGTERM".into())),
        Wake::Timeout => {
            let secs = e.timeout.map_or(0, |t| t.as_secs());
            return (
                Status::Timeout,
                Some(format!(
                    "the guest did not finish within --timeout {secs} s"
                )),
            );
        }
        Wake::VmExit => {}
    }
    match e.report {
        Some(Ok(Report::Fault(f))) => {
            return (
                Status::GuestFault,
                Some(format!(
                    "guest CPU with APIC ID {} took exception {} (vector {}) at RIP {:#x}, error code {:#x}, CR2 {:#x}",
                    f.apic_id,
                    exception_name(f.vector),
                    f.vector,
                    f.rip,
                    f.error_code,
                    f.cr2
                )),
            )
        }
        Some(Ok(Report::Panic(msg))) => {
            let line = msg.lines().next().unwrap_or("");
            return (Status::GuestFault, Some(format!("the guest panicked: {line}")));
        }
        _ => {}
    }
    match e.outcome {
        Some(Outcome::TripleFault { vcpu, rip }) => {
            return (
                Status::GuestFault,
                Some(format!("vCPU {vcpu} triple-faulted at RIP {rip:#x}")),
            )
        }
        Some(Outcome::InternalError {
            vcpu,
            suberror,
            rip,
        }) => {
            return (
                Status::GuestFault,
                Some(format!(
                    "KVM internal error (suberror {suberror}) on vCPU {vcpu} at RIP {rip:#x}"
                )),
            )
        }
        Some(Outcome::FailEntry { vcpu, reason }) => {
            return (
                Status::Host,
                Some(format!(
                    "VM entry failed on vCPU {vcpu} (reason {reason:#x})"
                )),
            )
        }
        Some(Outcome::SystemEvent { vcpu, kind }) => {
            return (
                Status::GuestFault,
                Some(format!(
                    "vCPU {vcpu} requested a system event of type {kind}"
                )),
            )
        }
        Some(Outcome::VcpuFailed { vcpu, message }) => {
            return (Status::Host, Some(format!("vCPU {vcpu}: {message}")))
        }
        Some(Outcome::TooManySuspends { vcpu, limit }) => {
            return (
                Status::GuestFault,
                Some(format!(
                    "the guest suspended the VM (ACPI S3) more than {limit} times; vCPU {vcpu} asked once more"
                )),
            )
        }
        // The VM ending is the result: the guest chose its status, or powered off or reset.
        Some(Outcome::Stop {
            event: DeviceEvent::DebugExit(v),
            ..
        }) => return (Status::DebugExit(*v), None),
        Some(Outcome::Stop {
            event: DeviceEvent::Reset(_) | DeviceEvent::PowerOff,
            ..
        }) => return (Status::Ok, None),
        Some(Outcome::Stop {
            event: DeviceEvent::SipiExit(status),
            ..
        }) if *status != 0 => {
            return (
                Status::GuestFailure,
                Some(format!("the guest exited with status {status}")),
            )
        }
        Some(Outcome::Stop { .. }) | None => {}
    }
    match e.report {
        None if e.sipi_guest => (
            Status::BadReport,
            Some("the guest exited without sending a report".into()),
        ),
        // A kernel other than sipi's guest has no report to send.
        None => (Status::Ok, None),
        Some(Err(err)) => (Status::BadReport, Some(err.to_string())),
        // Hotplug-torture's invariant violations first: they are what the run is for.
        Some(Ok(Report::Boot(b))) if scenario_failure(b).is_some() => {
            (Status::GuestFailure, scenario_failure(b))
        }
        Some(Ok(Report::Boot(b))) if missing(b) > 0 => {
            let ids: Vec<String> = b
                .cpus()
                .filter(|r| r.state == firmware::report::CpuState::Missing as u8)
                .take(8)
                .map(|r| r.apic_id.to_string())
                .collect();
            let more = if missing(b) > 8 { ", ..." } else { "" };
            (
                Status::GuestFailure,
                Some(format!(
                    "{} CPUs never came online (APIC IDs {}{more})",
                    missing(b),
                    ids.join(", ")
                )),
            )
        }
        Some(Ok(Report::Boot(b))) if tsc_failure(b).is_some() => {
            (Status::GuestFailure, tsc_failure(b))
        }
        Some(Ok(Report::Boot(b))) if b.summary.status != 0 => (
            Status::GuestFailure,
            Some(format!(
                "the guest reported failure status {}",
                b.summary.status
            )),
        ),
        Some(Ok(_)) if e.extra_rings > 0 => (
            Status::BadReport,
            Some(format!(
                "the guest rang the report doorbell {} times; once is the protocol",
                e.extra_rings + 1
            )),
        ),
        Some(Ok(_)) => (Status::Ok, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::ResetSource;

    fn ending(outcome: Option<&Outcome>, sipi_guest: bool) -> Verdict {
        verdict(&Ending {
            wake: Wake::VmExit,
            outcome,
            report: None,
            timeout: None,
            extra_rings: 0,
            sipi_guest,
        })
    }

    fn stop(event: DeviceEvent) -> Outcome {
        Outcome::Stop { vcpu: 0, event }
    }

    #[test]
    fn each_way_of_stopping_has_its_status() {
        let v = ending(Some(&stop(DeviceEvent::DebugExit(0x10))), false);
        assert_eq!(
            v,
            Verdict {
                status: Status::DebugExit(0x10),
                error: None,
                exit_via: Some("isa-debug-exit"),
                guest_status: Some(0x10),
            }
        );
        for (event, via) in [
            (DeviceEvent::Reset(ResetSource::I8042), "i8042-reset"),
            (DeviceEvent::PowerOff, "acpi-s5"),
        ] {
            let v = ending(Some(&stop(event)), true);
            assert_eq!(
                (v.status, v.error, v.exit_via),
                (Status::Ok, None, Some(via))
            );
        }
        let tf = Outcome::TripleFault {
            vcpu: 3,
            rip: 0x10_0040,
        };
        let v = ending(Some(&tf), false);
        assert_eq!(v.status, Status::GuestFault);
        assert_eq!(v.exit_via, Some("triple-fault"));
        assert_eq!(
            v.error.as_deref(),
            Some("vCPU 3 triple-faulted at RIP 0x100040")
        );
    }

    #[test]
    fn the_exit_port_without_a_report() {
        let zero = stop(DeviceEvent::SipiExit(0));
        let v = ending(Some(&zero), true);
        assert_eq!(v.status, Status::BadReport, "sipi's guest must report");
        assert_eq!(v.guest_status, Some(0));
        let v = ending(Some(&zero), false);
        assert_eq!(
            (v.status, v.error, v.exit_via),
            (Status::Ok, None, Some("sipi-exit-port")),
            "another kernel has nothing to report"
        );
        let v = ending(Some(&stop(DeviceEvent::SipiExit(9))), false);
        assert_eq!(v.status, Status::GuestFailure);
        assert_eq!(v.guest_status, Some(9));
    }

    #[test]
    fn signals_and_timeouts_win_and_carry_no_exit_via() {
        let off = stop(DeviceEvent::PowerOff);
        let e = Ending {
            wake: Wake::Timeout,
            outcome: Some(&off),
            report: None,
            timeout: Some(Duration::from_secs(7)),
            extra_rings: 0,
            sipi_guest: false,
        };
        let v = verdict(&e);
        assert_eq!((v.status, v.exit_via), (Status::Timeout, None));
        assert!(v.error.unwrap().contains("--timeout 7"));
    }
}
