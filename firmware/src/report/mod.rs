//! The guest-to-VMM report protocol.
//!
//! The guest stamps phases with the TSC into guest memory while it works, and when it is done
//! it hands the VMM one report with ONE 32-bit `out` to [`crate::layout::REPORT_PORT`] carrying
//! the report's guest-physical address (below 4 GiB, 8-byte aligned). Nothing is reported per
//! event inside a timed window. It then ends the VM with a 32-bit `out` of its exit status to
//! [`crate::layout::EXIT_PORT`].
//!
//! Every report starts with a [`RawHeader`]; the body depends on [`Kind`]. Each layout is
//! defined once, by the `#[repr(C)]` structure named below: the guest's encoder ([`encode`])
//! writes its bytes and the VMM's decoder ([`decode`]) reads them back. All fields are little
//! endian, naturally aligned, and explicitly reserved where the layout would otherwise pad.
//! The VMM treats every byte as untrusted: see [`decode`].
//!
//! - A boot report ([`Kind::Boot`]) is a [`RawBootSummary`] (header included), then
//!   `cpu_count` [`CpuRecord`]s, then the scenario block: a [`RawScenarioSummary`] followed by
//!   `round_count` [`Round`]s, `teardown_count` [`TeardownRecord`]s and `violation_count`
//!   [`Violation`]s. The header's length covers all of it.
//! - A fault report ([`Kind::Fault`]) is a [`RawFaultReport`]: the header, then a [`Fault`].
//! - A panic report ([`Kind::Panic`]) is the header, then the message (UTF-8, at most
//!   [`PANIC_MESSAGE_MAX`] bytes).
//!
//! Version 2 added the TSC synchronisation check: the [`ApPhase::TscSync`] stamp between
//! PerCpuInit and Online (Online moved from slot 4 to slot 5), the `tsc_sync` strategy byte and
//! the [`TscSyncSummary`] block in the boot summary, and the `tsc_warp` and `tsc_adjust` fields
//! and `CPU_FLAG_TSC_*` bits of the CPU record (80 bytes before, 96 now).
//!
//! Version 3 added the scenario block after the CPU records (the `sipi.scenario` that ran after
//! bringup: its rounds, and every AP's [`TeardownRecord`] of the last teardown; bounded by
//! [`MAX_ROUNDS`] and [`MAX_CPUS`], its counts must add up to the header's length) and the
//! [`CpuState::Offline`] state.
//!
//! Version 4 added the hotplug-torture fields to the scenario block (`concurrency`, `seed`,
//! the run's duration and per-operation latency percentiles in cycles) and the first
//! [`MAX_VIOLATIONS`] invariant [`Violation`]s (`violations` counts them all).

use core::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::word_enum::word_enum;

pub mod decode;
pub mod encode;
pub mod live;

/// `"SIPI"` read as a little-endian u32.
pub const REPORT_MAGIC: u32 = u32::from_le_bytes(*b"SIPI");
/// The protocol version this crate speaks.
pub const REPORT_VERSION: u16 = 4;
/// Size of the common header ([`RawHeader`]).
pub const HEADER_SIZE: usize = size_of::<RawHeader>();
/// The largest report the VMM accepts; nothing larger is ever read or allocated.
pub const REPORT_MAX_LEN: u32 = 1 << 20;
/// Most CPU records in a boot report (KVM_MAX_VCPU_IDS on x86 is 4096).
pub const MAX_CPUS: u32 = 4096;
/// Required alignment of the report address.
pub const REPORT_ALIGN: u32 = 8;

/// Offset of the CPU records in a boot report: the size of its fixed part ([`RawBootSummary`]).
pub const BOOT_RECORDS_OFFSET: usize = size_of::<RawBootSummary>();
/// Size of one [`CpuRecord`].
pub const CPU_RECORD_SIZE: usize = size_of::<CpuRecord>();
/// Size of a fault report ([`RawFaultReport`]).
pub const FAULT_REPORT_SIZE: usize = size_of::<RawFaultReport>();
/// Most message bytes in a panic report.
pub const PANIC_MESSAGE_MAX: usize = 1024;
/// Size of the fixed part of the scenario block ([`RawScenarioSummary`]).
pub const SCENARIO_HEADER_SIZE: usize = size_of::<RawScenarioSummary>();
/// Size of one [`Violation`].
pub const VIOLATION_SIZE: usize = size_of::<Violation>();
/// Most [`Violation`] entries a scenario block carries (`violations` counts every one).
pub const MAX_VIOLATIONS: u32 = 64;
/// Size of one [`Round`].
pub const ROUND_SIZE: usize = size_of::<Round>();
/// Size of one [`TeardownRecord`].
pub const TEARDOWN_RECORD_SIZE: usize = size_of::<TeardownRecord>();
/// Most rounds a scenario block carries (and most `sipi.cycles`).
pub const MAX_ROUNDS: u32 = 1024;
/// Stamp slots per CPU record and for the BSP.
pub const STAMP_SLOTS: usize = 8;

// The sizes of protocol version 4; a change here is a protocol change (bump REPORT_VERSION).
const _: () = assert!(HEADER_SIZE == 16);
const _: () = assert!(BOOT_RECORDS_OFFSET == 136);
const _: () = assert!(CPU_RECORD_SIZE == 96);
const _: () = assert!(FAULT_REPORT_SIZE == 56);
const _: () = assert!(SCENARIO_HEADER_SIZE == 88);
const _: () = assert!(VIOLATION_SIZE == 24);
const _: () = assert!(ROUND_SIZE == 16);
const _: () = assert!(TEARDOWN_RECORD_SIZE == 40);

/// The common header of every report.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct RawHeader {
    /// [`REPORT_MAGIC`].
    pub magic: u32,
    /// [`REPORT_VERSION`].
    pub version: u16,
    /// A [`Kind`].
    pub kind: u16,
    /// Total length in bytes, header included.
    pub length: u32,
    /// Reserved (0).
    pub reserved: u32,
}

impl RawHeader {
    /// The header of a `kind` report of `length` bytes, in this crate's version.
    pub const fn new(kind: Kind, length: u32) -> Self {
        Self {
            magic: REPORT_MAGIC,
            version: REPORT_VERSION,
            kind: kind as u16,
            length,
            reserved: 0,
        }
    }
}

word_enum! {
    /// What a report carries.
    pub enum Kind: u16 {
        /// The bringup result: summary, BSP stamps, one record per CPU.
        Boot = 1 => "boot",
        /// A CPU took an exception it could not handle.
        Fault = 2 => "fault",
        /// The guest panicked; the body is the message.
        Panic = 3 => "panic",
    }
}

word_enum! {
    /// The phases an AP goes through, in order; each is a stamp slot in its [`CpuRecord`].
    #[derive(PartialOrd, Ord)]
    pub enum ApPhase: u8 {
        /// The BSP sent this AP its INIT/SIPI (stamped by the BSP).
        Kick = 0 => "kick",
        /// The AP's first trampoline instruction, in real mode.
        Trampoline = 1 => "trampoline",
        /// The AP reached Rust in long mode.
        LongMode = 2 => "long_mode",
        /// The AP's GDT, IDT and local APIC are set up.
        PerCpuInit = 3 => "percpu_init",
        /// The AP finished its TSC synchronisation check (only with `sipi.tsc_sync` other than
        /// `none`): the phase includes waiting for its turn or for the others.
        TscSync = 4 => "tsc_sync",
        /// The AP marked itself online.
        Online = 5 => "online",
    }
}

word_enum! {
    /// BSP stamps in the boot summary, in order.
    #[derive(PartialOrd, Ord)]
    pub enum BspPhase: u8 {
        /// First instruction of the kernel entry point.
        Entry = 0 => "entry",
        /// First Rust instruction.
        RustEntry = 1 => "rust_entry",
        /// ACPI tables found and the MADT parsed.
        AcpiParsed = 2 => "acpi_parsed",
        /// AP bringup started.
        BringupStart = 3 => "bringup_start",
        /// Every AP online (or given up on).
        AllOnline = 4 => "all_online",
        /// Report written, just before the doorbell.
        Report = 5 => "report",
    }
}

word_enum! {
    /// State of a CPU in a boot report.
    pub enum CpuState: u8 {
        /// Listed in the MADT, not started (bringup did not run).
        Listed = 0 => "listed",
        /// Online.
        Online = 1 => "online",
        /// Kicked but never came online.
        Missing = 2 => "missing",
        /// Came online, then was taken offline by the scenario (parked in wait-for-SIPI).
        Offline = 3 => "offline",
    }
}

/// Boot summary flag: the BSP runs its local APIC in x2APIC mode.
pub const FLAG_X2APIC: u32 = 1 << 0;
/// Boot summary flag: CPUID.(EAX=7,ECX=0):EBX\[1\] reports IA32_TSC_ADJUST, so the CPUs that took
/// part in the TSC check read it.
pub const FLAG_TSC_ADJUST: u32 = 1 << 1;
/// Every boot summary flag this version defines.
pub const FLAGS_KNOWN: u32 = FLAG_X2APIC | FLAG_TSC_ADJUST;
/// CPU record flag: this record is the BSP.
pub const CPU_FLAG_BSP: u32 = 1 << 0;
/// CPU record flag: the CPU took part in the TSC synchronisation check to the end.
pub const CPU_FLAG_TSC_CHECKED: u32 = 1 << 1;
/// CPU record flag: the check found this CPU's TSC out of sync (by `tsc_warp` cycles).
pub const CPU_FLAG_TSC_OUT_OF_SYNC: u32 = 1 << 2;
/// CPU record flag: `tsc_adjust` holds the CPU's IA32_TSC_ADJUST, read before the check.
pub const CPU_FLAG_TSC_ADJUST: u32 = 1 << 3;
/// CPU record flag: test only, this CPU added `sipi.test_tsc_skew` to its readings in the check.
pub const CPU_FLAG_TSC_TEST_SKEW: u32 = 1 << 4;
/// Every CPU record flag this version defines.
pub const CPU_FLAGS_KNOWN: u32 = CPU_FLAG_BSP
    | CPU_FLAG_TSC_CHECKED
    | CPU_FLAG_TSC_OUT_OF_SYNC
    | CPU_FLAG_TSC_ADJUST
    | CPU_FLAG_TSC_TEST_SKEW;

/// One CPU's record, in wire layout (`#[repr(C)]`, 96 bytes). The guest may keep these in
/// memory and let each CPU stamp its own, so the report needs no copying.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct CpuRecord {
    /// APIC ID (x2APIC ID when above 254).
    pub apic_id: u32,
    /// ACPI processor UID from the MADT.
    pub acpi_uid: u32,
    /// A [`CpuState`].
    pub state: u8,
    /// Highest [`ApPhase`] reached, plus one (0: none).
    pub last_phase: u8,
    /// Times the BSP re-sent INIT/SIPI to this CPU.
    pub retries: u16,
    /// CPU_FLAG_* bits.
    pub flags: u32,
    /// TSC per [`ApPhase`] slot; 0 means not reached.
    pub stamps: [u64; STAMP_SLOTS],
    /// With [`CPU_FLAG_TSC_OUT_OF_SYNC`]: the largest TSC warp (a reading older than one seen
    /// before it) blamed on this CPU, in cycles; 0 otherwise.
    pub tsc_warp: u64,
    /// With [`CPU_FLAG_TSC_ADJUST`]: IA32_TSC_ADJUST (a signed 64-bit value); 0 otherwise.
    pub tsc_adjust: u64,
}

/// The result of the TSC synchronisation check, in the boot summary (all 0 when it did not run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TscSyncSummary {
    /// TSC cycles the BSP spent on the check.
    pub cycles: u64,
    /// The largest warp seen, in cycles (0: the TSCs are synchronised).
    pub max_warp: u64,
    /// Readings older than one seen before them, counted over every CPU (saturating).
    pub warps: u32,
}

/// The fixed part of a boot report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BootSummary {
    /// The BSP's APIC ID.
    pub bsp_apic_id: u32,
    /// TSC frequency the guest read from CPUID 0x40000010 (0 if absent).
    pub tsc_khz: u32,
    /// FLAG_* bits.
    pub flags: u32,
    /// Usable CPUs the guest found in the MADT.
    pub madt_cpus: u32,
    /// Bringup strategy ([`crate::cmdline::Bringup`] as u8).
    pub bringup: u8,
    /// Kick style ([`crate::cmdline::Kick`] as u8).
    pub kick: u8,
    /// TSC synchronisation check ([`crate::cmdline::TscSync`] as u8).
    pub tsc_sync: u8,
    /// CPU records that follow.
    pub cpu_count: u32,
    /// The guest's own verdict: 0 when everything it was asked to do succeeded.
    pub status: u32,
    /// TSC per [`BspPhase`] slot; 0 means not reached.
    pub bsp_stamps: [u64; STAMP_SLOTS],
    /// The TSC synchronisation check's result.
    pub tsc: TscSyncSummary,
}

/// One round of a scenario: how long bringing the APs up and taking them down took, on the
/// BSP's TSC. Wire layout.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct Round {
    /// BringupStart to AllOnline (0 when the round did not bring CPUs up).
    pub up_cycles: u64,
    /// Teardown start to every AP parked and INITed.
    pub down_cycles: u64,
}

/// One AP's stamps in the last teardown, in wire layout (`#[repr(C)]`, 40 bytes); 0 means not
/// reached. The BSP writes `request` and `init`, the AP `ack` and `parked`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct TeardownRecord {
    /// The AP's APIC ID.
    pub apic_id: u32,
    /// Reserved (0).
    pub flags: u32,
    /// The BSP asked the AP to go offline.
    pub request: u64,
    /// The AP saw the request and left the online set.
    pub ack: u64,
    /// The AP's last instruction before its final HLT.
    pub parked: u64,
    /// The BSP sent it INIT (wait-for-SIPI).
    pub init: u64,
}

/// The teardown phases of a [`TeardownRecord`], in order, with their names.
pub const TEARDOWN_PHASES: [&str; 4] = ["request", "ack", "parked", "init"];

impl TeardownRecord {
    /// The stamps in [`TEARDOWN_PHASES`] order.
    pub fn stamps(&self) -> [u64; 4] {
        [self.request, self.ack, self.parked, self.init]
    }
}

/// The fixed part of the scenario block ([`crate::cmdline::Scenario`] `Boot`: all 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScenarioSummary {
    /// [`crate::cmdline::Scenario`] as u8.
    pub scenario: u8,
    /// [`crate::cmdline::Teardown`] as u8.
    pub teardown: u8,
    /// Rounds completed (bring up, take down).
    pub rounds: u32,
    /// Operations (CPU offline or online transitions).
    pub ops: u32,
    /// Invariant violations found.
    pub violations: u32,
    /// [`Round`] entries that follow.
    pub round_count: u32,
    /// [`TeardownRecord`] entries after the rounds.
    pub teardown_count: u32,
    /// The last teardown's start on the BSP's TSC.
    pub teardown_start: u64,
    /// The last teardown's end (every AP parked and INITed).
    pub teardown_end: u64,
    /// Hotplug-torture: most operations in flight at once.
    pub concurrency: u32,
    /// [`Violation`] entries after the teardown records (at most [`MAX_VIOLATIONS`]).
    pub violation_count: u32,
    /// Hotplug-torture: the seed of the guest's pseudo-random choices.
    pub seed: u64,
    /// Hotplug-torture: BSP TSC cycles from the first operation to the last one's end.
    pub duration_cycles: u64,
    /// Hotplug-torture: median per-operation latency, in TSC cycles.
    pub latency_p50: u64,
    /// Hotplug-torture: 99th percentile per-operation latency, in TSC cycles.
    pub latency_p99: u64,
    /// Hotplug-torture: the slowest operation, in TSC cycles.
    pub latency_max: u64,
}

word_enum! {
    /// What a hotplug-torture invariant check caught.
    pub enum ViolationKind: u32 {
        /// A reader handed work to a CPU that had already gone offline.
        HandedToOffline = 1 => "handed-to-offline",
        /// A read-side critical section ran on a CPU that was offline.
        RanOnOffline = 2 => "ran-on-offline",
        /// The final audit found reader work lost or duplicated.
        WorkLost = 3 => "work-lost",
    }
}

/// One invariant violation found by hotplug-torture, in wire layout.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct Violation {
    /// The operation (numbered from 1 in the order started) that took the CPU offline; 0 if
    /// none is to blame.
    pub op: u32,
    /// The CPU the invariant was broken on (for [`ViolationKind::WorkLost`]: `u32::MAX`).
    pub apic_id: u32,
    /// The CPU whose reader found it.
    pub reader_apic_id: u32,
    /// A [`ViolationKind`] as u32.
    pub kind: u32,
    /// The reader's TSC when it found it.
    pub tsc: u64,
}

/// A CPU exception that reached the guest's last-resort handler: the body of a fault report,
/// in wire layout.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct Fault {
    /// APIC ID of the CPU that faulted.
    pub apic_id: u32,
    /// Exception vector (Intel SDM Vol. 3A, Table 6-1).
    pub vector: u32,
    /// Error code pushed by the CPU, or 0.
    pub error_code: u64,
    /// Faulting instruction pointer.
    pub rip: u64,
    /// CR2 (the faulting address for #PF).
    pub cr2: u64,
    /// Stack pointer at the fault.
    pub rsp: u64,
}

/// The fixed part of a boot report, header included: what [`BootSummary`] says, as the wire
/// carries it. The CPU records follow at [`BOOT_RECORDS_OFFSET`], its size.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct RawBootSummary {
    /// Kind [`Kind::Boot`]; the length covers the records and the scenario block.
    pub header: RawHeader,
    /// [`BootSummary::bsp_apic_id`].
    pub bsp_apic_id: u32,
    /// [`BootSummary::tsc_khz`].
    pub tsc_khz: u32,
    /// [`BootSummary::flags`].
    pub flags: u32,
    /// [`BootSummary::madt_cpus`].
    pub madt_cpus: u32,
    /// [`BootSummary::bringup`].
    pub bringup: u8,
    /// [`BootSummary::kick`].
    pub kick: u8,
    /// [`BootSummary::tsc_sync`].
    pub tsc_sync: u8,
    /// Reserved (0).
    pub reserved0: u8,
    /// [`BootSummary::cpu_count`].
    pub cpu_count: u32,
    /// [`CPU_RECORD_SIZE`], so that a decoder knows the records' layout.
    pub record_size: u32,
    /// [`BootSummary::status`].
    pub status: u32,
    /// [`BootSummary::bsp_stamps`].
    pub bsp_stamps: [u64; STAMP_SLOTS],
    /// [`TscSyncSummary::cycles`].
    pub tsc_sync_cycles: u64,
    /// [`TscSyncSummary::max_warp`].
    pub tsc_max_warp: u64,
    /// [`TscSyncSummary::warps`].
    pub tsc_warps: u32,
    /// Reserved (0).
    pub reserved1: u32,
}

impl RawBootSummary {
    /// The wire form of `s` in a report of `length` bytes.
    pub fn new(s: &BootSummary, length: u32) -> Self {
        Self {
            header: RawHeader::new(Kind::Boot, length),
            bsp_apic_id: s.bsp_apic_id,
            tsc_khz: s.tsc_khz,
            flags: s.flags,
            madt_cpus: s.madt_cpus,
            bringup: s.bringup,
            kick: s.kick,
            tsc_sync: s.tsc_sync,
            reserved0: 0,
            cpu_count: s.cpu_count,
            record_size: CPU_RECORD_SIZE as u32,
            status: s.status,
            bsp_stamps: s.bsp_stamps,
            tsc_sync_cycles: s.tsc.cycles,
            tsc_max_warp: s.tsc.max_warp,
            tsc_warps: s.tsc.warps,
            reserved1: 0,
        }
    }

    /// What the summary says (the header and `record_size` are the decoder's to check).
    pub fn summary(&self) -> BootSummary {
        BootSummary {
            bsp_apic_id: self.bsp_apic_id,
            tsc_khz: self.tsc_khz,
            flags: self.flags,
            madt_cpus: self.madt_cpus,
            bringup: self.bringup,
            kick: self.kick,
            tsc_sync: self.tsc_sync,
            cpu_count: self.cpu_count,
            status: self.status,
            bsp_stamps: self.bsp_stamps,
            tsc: TscSyncSummary {
                cycles: self.tsc_sync_cycles,
                max_warp: self.tsc_max_warp,
                warps: self.tsc_warps,
            },
        }
    }
}

/// The fixed part of the scenario block: what [`ScenarioSummary`] says, as the wire carries
/// it. Its rounds, teardown records and violations follow.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct RawScenarioSummary {
    /// [`ScenarioSummary::scenario`].
    pub scenario: u8,
    /// [`ScenarioSummary::teardown`].
    pub teardown: u8,
    /// Reserved (0).
    pub reserved: u16,
    /// [`ScenarioSummary::rounds`].
    pub rounds: u32,
    /// [`ScenarioSummary::ops`].
    pub ops: u32,
    /// [`ScenarioSummary::violations`].
    pub violations: u32,
    /// [`ScenarioSummary::round_count`].
    pub round_count: u32,
    /// [`ScenarioSummary::teardown_count`].
    pub teardown_count: u32,
    /// [`ScenarioSummary::teardown_start`].
    pub teardown_start: u64,
    /// [`ScenarioSummary::teardown_end`].
    pub teardown_end: u64,
    /// [`ScenarioSummary::concurrency`].
    pub concurrency: u32,
    /// [`ScenarioSummary::violation_count`].
    pub violation_count: u32,
    /// [`ScenarioSummary::seed`].
    pub seed: u64,
    /// [`ScenarioSummary::duration_cycles`].
    pub duration_cycles: u64,
    /// [`ScenarioSummary::latency_p50`].
    pub latency_p50: u64,
    /// [`ScenarioSummary::latency_p99`].
    pub latency_p99: u64,
    /// [`ScenarioSummary::latency_max`].
    pub latency_max: u64,
}

impl RawScenarioSummary {
    /// The wire form of `s`.
    pub fn new(s: &ScenarioSummary) -> Self {
        Self {
            scenario: s.scenario,
            teardown: s.teardown,
            reserved: 0,
            rounds: s.rounds,
            ops: s.ops,
            violations: s.violations,
            round_count: s.round_count,
            teardown_count: s.teardown_count,
            teardown_start: s.teardown_start,
            teardown_end: s.teardown_end,
            concurrency: s.concurrency,
            violation_count: s.violation_count,
            seed: s.seed,
            duration_cycles: s.duration_cycles,
            latency_p50: s.latency_p50,
            latency_p99: s.latency_p99,
            latency_max: s.latency_max,
        }
    }

    /// What the block's fixed part says.
    pub fn summary(&self) -> ScenarioSummary {
        let s = self;
        ScenarioSummary {
            scenario: s.scenario,
            teardown: s.teardown,
            rounds: s.rounds,
            ops: s.ops,
            violations: s.violations,
            round_count: s.round_count,
            teardown_count: s.teardown_count,
            teardown_start: s.teardown_start,
            teardown_end: s.teardown_end,
            concurrency: s.concurrency,
            violation_count: s.violation_count,
            seed: s.seed,
            duration_cycles: s.duration_cycles,
            latency_p50: s.latency_p50,
            latency_p99: s.latency_p99,
            latency_max: s.latency_max,
        }
    }
}

/// A whole fault report.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct RawFaultReport {
    /// Kind [`Kind::Fault`], length [`FAULT_REPORT_SIZE`].
    pub header: RawHeader,
    /// The fault.
    pub fault: Fault,
}

/// The mnemonic of an exception vector (Intel SDM Vol. 3A, Table 6-1).
pub fn exception_name(vector: u32) -> &'static str {
    const NAMES: [&str; 22] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS",
        "#GP", "#PF", "reserved", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("interrupt")
}
