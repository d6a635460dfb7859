//! Why a report was rejected.

use firmware::report::decode::ReportError;
use firmware::report::REPORT_ALIGN;

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
