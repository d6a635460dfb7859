//! The JSON view of a boot's outcome (field names are a stable interface, documented in
//! docs/json.md).

use serde::Serialize;

use super::details::BootJson;
use super::kvm_stats::KvmStats;
use super::live::Reached;
use super::measurement::Measurement;
use super::outcome::{BootOutcome, BspStartReport, VmmPhasesUs};
use super::timeline::TimelineEntry;

/// The JSON report: a view of a [`BootOutcome`] (field names are a stable interface).
#[derive(Debug, Serialize)]
pub(crate) struct JsonReport<'a> {
    /// ok, guest-failure, ... (see docs/json.md).
    status: &'static str,
    /// The process exit status.
    exit_code: u8,
    /// The error, if any.
    error: Option<&'a str>,
    /// vCPUs in the VM.
    vcpus: u32,
    /// CPUs that reported online, BSP included.
    online: u32,
    /// TSC frequency (kHz) KVM reports and the guest was given.
    tsc_khz: u32,
    /// VMM phases.
    vmm_phases_us: &'a VmmPhasesUs,
    /// When the BSP started, and how long the guest ran while vCPUs were still being created.
    bsp_start: &'a BspStartReport,
    /// The status the guest wrote to sipi's exit port, or the value it wrote to
    /// isa-debug-exit.
    guest_status: Option<u32>,
    /// How the guest ended the VM (`sipi-exit-port`, `isa-debug-exit`, `i8042-reset`,
    /// `port92-reset`, `cf9-reset`, `acpi-s5`, `triple-fault`); null if it did not.
    exit_via: Option<&'static str>,
    /// Without a report (a timeout, a signal): what the guest had reached, from its live
    /// state; null when there is a report or the guest published none.
    reached: Option<&'a Reached>,
    /// KVM's own counters of the VM and each vCPU (docs/kvm_stats.md); `available` false, with
    /// the reason, on a host without them.
    kvm_stats: Option<&'a KvmStats>,
    /// The boot timeline: the first events the guest marked through Firecracker's boot timer
    /// or Cloud Hypervisor's debug port, in order.
    timeline: &'a [TimelineEntry],
    /// Timeline events seen after the list was full, counted only.
    timeline_dropped: u64,
    /// sipi's guest with a report: each vCPU's exits to the VMM from its first run to the
    /// report doorbell, and the vCPUs that broke the protocol's promise of none; null otherwise.
    measurement: Option<&'a Measurement>,
    /// Boot report details, when one was received.
    #[serde(flatten)]
    boot: Option<&'a BootJson>,
}

impl<'a> From<&'a BootOutcome> for JsonReport<'a> {
    fn from(o: &'a BootOutcome) -> Self {
        Self {
            status: o.status.name(),
            exit_code: o.status.code(),
            error: o.error.as_deref(),
            vcpus: o.vcpus,
            online: o.online,
            tsc_khz: o.tsc_khz,
            vmm_phases_us: &o.vmm_phases_us,
            bsp_start: &o.bsp_start,
            guest_status: o.guest_status,
            exit_via: o.exit_via,
            reached: o.reached.as_ref(),
            kvm_stats: o.kvm_stats.as_ref(),
            timeline: &o.timeline.events,
            timeline_dropped: o.timeline.dropped,
            measurement: o.measurement.as_ref(),
            boot: o.boot.as_ref(),
        }
    }
}
