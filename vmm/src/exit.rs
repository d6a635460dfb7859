//! The exit statuses of `vmm`, documented in README.md. Scripts depend on these numbers.

/// A documented process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The guest ran to completion, reported, and every CPU it was asked to start came online.
    Ok,
    /// The guest ended with a non-zero status or reported CPUs that never came online.
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
    /// The guest's report was missing or malformed.
    BadReport,
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
            Self::Interrupted => "interrupted",
            Self::Terminated => "terminated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Status;

    #[test]
    fn codes_are_distinct() {
        let all = [
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
        let mut codes: Vec<u8> = all.iter().map(|s| s.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
