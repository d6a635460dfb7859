//! What the VMM does only for tests, in one place. The guest's own test options
//! (`--test-lose-apic-id`, `--test-fault-vector`, `--test-skip-barrier`, `--test-hang-after`)
//! are guest options like any other and travel in `VmConfig::guest`; this holds what the VMM
//! itself must do.

/// Test only (`--test-skew-tsc`): move one vCPU's TSC ahead of the others' before it first
/// runs, so that the guest's TSC check has something to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TscSkew {
    /// The vCPU (its index).
    pub vcpu: u32,
    /// Cycles ahead of the others.
    pub cycles: u64,
}

/// The VMM's test hooks (all off by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestHooks {
    /// `--test-skew-tsc`.
    pub tsc_skew: Option<TscSkew>,
    /// `--test-no-kvm-stats`: boot as on a host without KVM's binary statistics.
    pub no_kvm_stats: bool,
}
