//! The exit statuses of `vmm`, documented in docs/cli.md (scripts depend on these numbers).

use crate::devices::debug_exit;

/// A documented process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The guest ended the VM cleanly: sipi's guest reported and every CPU it was asked to
    /// start came online; or a kernel powered off (ACPI S5), reset the machine, or exited
    /// through sipi's exit port with status 0.
    Ok,
    /// The guest ended with a non-zero status or reported CPUs that never came online, CPUs out
    /// of TSC sync, or hotplug-torture invariant violations.
    GuestFailure,
    /// Bad command line or bad input file (the kernel image, a path).
    Usage,
    /// The host cannot run the VM: /dev/kvm missing or not permitted, a missing KVM capability,
    /// a failing KVM ioctl, or memory the host cannot map.
    Host,
    /// The guest faulted: an exception report, a triple fault, or a KVM emulation failure.
    GuestFault,
    /// `--timeout` expired before the guest ended the VM.
    Timeout,
    /// sipi's guest did not report, or its report was malformed, or its vCPUs exited to the VMM
    /// inside the timed windows (a measurement the protocol rules out).
    BadReport,
    /// The guest wrote this value to isa-debug-exit: the status is `(v << 1) | 1`, as QEMU's.
    DebugExit(u32),
    /// Interrupted by SIGINT.
    Interrupted,
    /// Terminated by SIGTERM.
    Terminated,
}

impl Status {
    /// The numeric process exit status.
    pub fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::GuestFailure => 1,
            Self::Usage => 2,
            Self::Host => 3,
            Self::GuestFault => 4,
            Self::Timeout => 5,
            Self::BadReport => 6,
            Self::DebugExit(v) => debug_exit::exit_code(v),
            Self::Interrupted => 130,
            Self::Terminated => 143,
        }
    }

    /// Short name used in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::GuestFailure => "guest-failure",
            Self::Usage => "usage",
            Self::Host => "host-error",
            Self::GuestFault => "guest-fault",
            Self::Timeout => "timeout",
            Self::BadReport => "bad-report",
            Self::DebugExit(_) => "debug-exit",
            Self::Interrupted => "interrupted",
            Self::Terminated => "terminated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXED: [Status; 9] = [
        Status::Ok,
        Status::GuestFailure,
        Status::Usage,
        Status::Host,
        Status::GuestFault,
        Status::Timeout,
        Status::BadReport,
        Status::Interrupted,
        Status::Terminated,
    ];

    #[test]
    fn fixed_codes_and_names_are_distinct() {
        let mut codes: Vec<u8> = FIXED.iter().map(|s| s.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), FIXED.len());
        let mut names: Vec<&str> = FIXED.iter().map(|s| s.name()).collect();
        names.push(Status::DebugExit(0).name());
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FIXED.len() + 1);
    }

    #[test]
    fn debug_exit_codes_are_odd_as_in_qemu() {
        assert_eq!(Status::DebugExit(0).code(), 1);
        assert_eq!(Status::DebugExit(0x10).code(), 33);
        assert_eq!(Status::DebugExit(0x7F).code(), 255);
    }
}
