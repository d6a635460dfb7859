//! The typed outcome of a boot: what `vmm` prints as its summary and writes as JSON, both
//! views of this one value.

use serde::Serialize;

use super::details::BootJson;
use super::kvm_stats::KvmStats;
use super::live::Reached;
use super::measurement::Measurement;
use super::stats::BringupStats;
use super::timeline::BootTimeline;
use crate::status::Status;

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
    /// From the VM's end to the last counter snapshot (the vCPU threads are not waited for).
    pub teardown: u64,
    /// The whole boot, first to last.
    pub total: u64,
}

/// When the BSP started and what ran concurrently because of it (`--bsp-start`; field names
/// are a stable interface, docs/json.md).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct BspStartReport {
    /// `early` (the BSP ran while the VMM was still creating vCPUs) or `all-ready`.
    pub mode: &'static str,
    /// From the BSP's first KVM_RUN to the last vCPU becoming ready: how long the guest ran
    /// concurrently with vCPU creation, i.e. how much of `vmm_phases_us.create_vcpus` overlaps
    /// `first_run` and `report` (0 when all-ready).
    pub overlap_us: u64,
    /// The guest's writes and reads of the vCPU-readiness port (docs/devices.md).
    pub ready_asks: u32,
    pub ready_queries: u32,
    /// Reads that blocked until the vCPU asked about was ready, and the time the guest's vCPU
    /// spent blocked in them: time inside the guest's bringup window spent waiting for the VMM.
    pub ready_waits: u32,
    pub ready_wait_us: u64,
}

/// How a boot ended and what the guest reported.
#[derive(Debug, Clone)]
pub struct BootOutcome {
    /// The exit status.
    pub status: Status,
    /// The one-line error, without the "error: " prefix (None for a clean end).
    pub error: Option<String>,
    /// vCPUs in the VM.
    pub vcpus: u32,
    /// CPUs that reported online, BSP included.
    pub online: u32,
    /// TSC frequency (kHz) KVM reports and the guest was given (0: unknown).
    pub tsc_khz: u32,
    /// VMM phases.
    pub vmm_phases_us: VmmPhasesUs,
    /// When the BSP started, and what overlapped.
    pub bsp_start: BspStartReport,
    /// The status the guest wrote to sipi's exit port, or the value it wrote to
    /// isa-debug-exit.
    pub guest_status: Option<u32>,
    /// How the guest ended the VM, if it did.
    pub exit_via: Option<&'static str>,
    /// Without a report: what the guest had reached, from its live state.
    pub reached: Option<Reached>,
    /// The boot report's details, when one was received.
    pub boot: Option<BootJson>,
    /// The per-AP timings of the boot report.
    pub stats: Option<BringupStats>,
    /// KVM's own counters of the VM and each vCPU (docs/kvm_stats.md).
    pub kvm_stats: Option<KvmStats>,
    /// The events the guest marked through Firecracker's boot timer and Cloud Hypervisor's
    /// debug port, bounded (docs/devices.md).
    pub timeline: BootTimeline,
    /// sipi's guest with a report: its vCPUs' exits to the VMM inside the timed windows,
    /// checked (docs/kvm_stats.md).
    pub measurement: Option<Measurement>,
}
