//! The guest-to-VMM report protocol.
//!
//! The guest stamps phases with the TSC into guest memory while it works, and when it is done
//! it hands the VMM one report with ONE 32-bit `out` to [`crate::layout::REPORT_PORT`] carrying
//! the report's guest-physical address (below 4 GiB, 8-byte aligned). Nothing is reported per
//! event inside a timed window. It then ends the VM with a 32-bit `out` of its exit status to
//! [`crate::layout::EXIT_PORT`].
//!
//! Every report starts with a 16-byte [`Header`]; the body depends on [`Kind`]. All fields are
//! little endian at fixed offsets. The VMM treats every byte as untrusted: see [`decode`].
//!
//! ```text
//! Header  0 magic "SIPI" | 4 version u16 | 6 kind u16 | 8 length u32 | 12 reserved u32
//! Boot   16 bsp_apic_id u32 | 20 tsc_khz u32 | 24 flags u32 | 28 madt_cpus u32
//!        32 bringup u8 | 33 kick u8 | 34 tsc_sync u8 | 35 reserved u8 | 36 cpu_count u32
//!        40 record_size u32 | 44 status u32 | 48 bsp stamps [u64; 8]
//!        112 tsc_sync_cycles u64 | 120 tsc_max_warp u64 | 128 tsc_warps u32 | 132 reserved u32
//!        136 cpu records [CpuRecord; cpu_count]
//! Record  0 apic_id u32 | 4 acpi_uid u32 | 8 state u8 | 9 last_phase u8 | 10 retries u16
//!        12 flags u32 | 16 stamps [u64; 8] | 80 tsc_warp u64 | 88 tsc_adjust u64
//! Scenario (version 3; at boot_report_len(cpu_count), after the records)
//!        0 scenario u8 | 1 teardown u8 | 2 reserved u16 | 4 rounds u32 | 8 ops u32
//!        12 violations u32 | 16 round_count u32 | 20 teardown_count u32
//!        24 teardown_start u64 | 32 teardown_end u64
//!        40 concurrency u32 | 44 violation_count u32 | 48 seed u64 | 56 duration_cycles u64
//!        64 latency_p50 u64 | 72 latency_p99 u64 | 80 latency_max u64
//!        88 rounds [Round; round_count] | then [TeardownRecord; teardown_count]
//!        | then [Violation; violation_count]
//! Round   0 up_cycles u64 | 8 down_cycles u64
//! Teardown 0 apic_id u32 | 4 flags u32 | 8 request u64 | 16 ack u64 | 24 parked u64 | 32 init u64
//! Violation 0 op u32 | 4 apic_id u32 | 8 reader_apic_id u32 | 12 kind u32 | 16 tsc u64
//! Fault  16 apic_id u32 | 20 vector u32 | 24 error_code u64 | 32 rip u64 | 40 cr2 u64 | 48 rsp u64
//! Panic  16 message bytes (UTF-8, at most PANIC_MESSAGE_MAX)
//! ```
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

pub mod decode;
pub mod encode;
pub mod live;

/// `"SIPI"` read as a little-endian u32.
pub const REPORT_MAGIC: u32 = u32::from_le_bytes(*b"SIPI");
/// The protocol version this crate speaks.
pub const REPORT_VERSION: u16 = 4;
/// Size of the common header.
pub const HEADER_SIZE: usize = 16;
/// The largest report the VMM accepts; nothing larger is ever read or allocated.
pub const REPORT_MAX_LEN: u32 = 1 << 20;
/// Most CPU records in a boot report (KVM_MAX_VCPU_IDS on x86 is 4096).
pub const MAX_CPUS: u32 = 4096;
/// Required alignment of the report address.
pub const REPORT_ALIGN: u32 = 8;

/// Offset of the CPU records in a boot report.
pub const BOOT_RECORDS_OFFSET: usize = 136;
/// Size of one CPU record.
pub const CPU_RECORD_SIZE: usize = 96;
/// Size of a fault report.
pub const FAULT_REPORT_SIZE: usize = 56;
/// Most message bytes in a panic report.
pub const PANIC_MESSAGE_MAX: usize = 1024;
/// Size of the fixed part of the scenario block.
pub const SCENARIO_HEADER_SIZE: usize = 88;
/// Size of one [`Violation`].
pub const VIOLATION_SIZE: usize = 24;
/// Most [`Violation`] entries a scenario block carries (`violations` counts every one).
pub const MAX_VIOLATIONS: u32 = 64;
/// Size of one [`Round`].
pub const ROUND_SIZE: usize = 16;
/// Size of one [`TeardownRecord`].
pub const TEARDOWN_RECORD_SIZE: usize = 40;
/// Most rounds a scenario block carries (and most `sipi.cycles`).
pub const MAX_ROUNDS: u32 = 1024;
/// Stamp slots per CPU record and for the BSP.
pub const STAMP_SLOTS: usize = 8;

/// What a report carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Kind {
    /// The bringup result: summary, BSP stamps, one record per CPU.
    Boot = 1,
    /// A CPU took an exception it could not handle.
    Fault = 2,
    /// The guest panicked; the body is the message.
    Panic = 3,
}

impl Kind {
    /// Decodes a kind field.
    pub fn from_u16(v: u16) -> Option<Self> {
        match v {
            1 => Some(Self::Boot),
            2 => Some(Self::Fault),
            3 => Some(Self::Panic),
            _ => None,
        }
    }
}

/// The phases an AP goes through, in order; each is a stamp slot in its [`CpuRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum ApPhase {
    /// The BSP sent this AP its INIT/SIPI (stamped by the BSP).
    Kick = 0,
    /// The AP's first trampoline instruction, in real mode.
    Trampoline = 1,
    /// The AP reached Rust in long mode.
    LongMode = 2,
    /// The AP's GDT, IDT and local APIC are set up.
    PerCpuInit = 3,
    /// The AP finished its TSC synchronisation check (only with `sipi.tsc_sync` other than
    /// `none`): the phase includes waiting for its turn or for the others.
    TscSync = 4,
    /// The AP marked itself online.
    Online = 5,
}

impl ApPhase {
    /// Every AP phase in order.
    pub const ALL: [ApPhase; 6] = [
        Self::Kick,
        Self::Trampoline,
        Self::LongMode,
        Self::PerCpuInit,
        Self::TscSync,
        Self::Online,
    ];

    /// Short name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kick => "kick",
            Self::Trampoline => "trampoline",
            Self::LongMode => "long_mode",
            Self::PerCpuInit => "percpu_init",
            Self::TscSync => "tsc_sync",
            Self::Online => "online",
        }
    }
}

/// BSP stamps in the boot summary, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum BspPhase {
    /// First instruction of the kernel entry point.
    Entry = 0,
    /// First Rust instruction.
    RustEntry = 1,
    /// ACPI tables found and the MADT parsed.
    AcpiParsed = 2,
    /// AP bringup started.
    BringupStart = 3,
    /// Every AP online (or given up on).
    AllOnline = 4,
    /// Report written, just before the doorbell.
    Report = 5,
}

impl BspPhase {
    /// Every BSP phase in order.
    pub const ALL: [BspPhase; 6] = [
        Self::Entry,
        Self::RustEntry,
        Self::AcpiParsed,
        Self::BringupStart,
        Self::AllOnline,
        Self::Report,
    ];

    /// Short name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Entry => "entry",
            Self::RustEntry => "rust_entry",
            Self::AcpiParsed => "acpi_parsed",
            Self::BringupStart => "bringup_start",
            Self::AllOnline => "all_online",
            Self::Report => "report",
        }
    }

    /// The phase named `name` (see [`Self::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// State of a CPU in a boot report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CpuState {
    /// Listed in the MADT, not started (bringup did not run).
    Listed = 0,
    /// Online.
    Online = 1,
    /// Kicked but never came online.
    Missing = 2,
    /// Came online, then was taken offline by the scenario (parked in wait-for-SIPI).
    Offline = 3,
}

impl CpuState {
    /// Decodes a state byte.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Listed),
            1 => Some(Self::Online),
            2 => Some(Self::Missing),
            3 => Some(Self::Offline),
            _ => None,
        }
    }

    /// Name used in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Listed => "listed",
            Self::Online => "online",
            Self::Missing => "missing",
            Self::Offline => "offline",
        }
    }
}

/// Boot summary flag: the BSP runs its local APIC in x2APIC mode.
pub const FLAG_X2APIC: u32 = 1 << 0;
/// Boot summary flag: CPUID.(EAX=7,ECX=0):EBX[1] reports IA32_TSC_ADJUST, so the CPUs that took
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

const _: () = assert!(core::mem::size_of::<CpuRecord>() == CPU_RECORD_SIZE);
// The in-memory record is the wire layout (see the module documentation).
const _: () = assert!(core::mem::offset_of!(CpuRecord, flags) == 12);
const _: () = assert!(core::mem::offset_of!(CpuRecord, stamps) == 16);
const _: () = assert!(core::mem::offset_of!(CpuRecord, tsc_warp) == 80);
const _: () = assert!(core::mem::offset_of!(CpuRecord, tsc_adjust) == 88);
const _: () = assert!(BOOT_RECORDS_OFFSET == 48 + 8 * STAMP_SLOTS + 24);

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
/// BSP's TSC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// BringupStart to AllOnline (0 when the round did not bring CPUs up).
    pub up_cycles: u64,
    /// Teardown start to every AP parked and INITed.
    pub down_cycles: u64,
}

/// One AP's stamps in the last teardown, in wire layout (`#[repr(C)]`, 40 bytes); 0 means not
/// reached. The BSP writes `request` and `init`, the AP `ack` and `parked`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
const _: () = assert!(core::mem::size_of::<TeardownRecord>() == TEARDOWN_RECORD_SIZE);

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

/// What a hotplug-torture invariant check caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ViolationKind {
    /// A reader handed work to a CPU that had already gone offline.
    HandedToOffline = 1,
    /// A read-side critical section ran on a CPU that was offline.
    RanOnOffline = 2,
    /// The final audit found reader work lost or duplicated.
    WorkLost = 3,
}

impl ViolationKind {
    /// Decodes a kind field.
    pub fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::HandedToOffline),
            2 => Some(Self::RanOnOffline),
            3 => Some(Self::WorkLost),
            _ => None,
        }
    }

    /// Name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::HandedToOffline => "handed-to-offline",
            Self::RanOnOffline => "ran-on-offline",
            Self::WorkLost => "work-lost",
        }
    }
}

/// One invariant violation found by hotplug-torture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

/// A CPU exception that reached the guest's last-resort handler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

/// The mnemonic of an exception vector (Intel SDM Vol. 3A, Table 6-1).
pub fn exception_name(vector: u32) -> &'static str {
    const NAMES: [&str; 22] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS",
        "#GP", "#PF", "reserved", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("interrupt")
}
