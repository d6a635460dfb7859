//! Handing results to the VMM: the report buffers, the doorbell, the exit port.
//!
//! A report is encoded with the firmware crate into a static, 8-byte-aligned buffer below
//! 4 GiB, and handed over with ONE 32-bit `out` of its physical address to [`REPORT_PORT`]. The
//! VM then ends with a 32-bit `out` of the exit status to [`EXIT_PORT`]; for QEMU the same status
//! also goes to its isa-debug-exit port, [`DEBUG_EXIT_PORT`]. Fatal events (exceptions, panics) are reported by the
//! first CPU that claims the fatal path with [`claim_fatal`].

use core::sync::atomic::{AtomicU32, Ordering};

use firmware::layout::{DEBUG_EXIT_PORT, EXIT_PORT, REPORT_PORT};
use firmware::report::encode::{
    ScenarioEntries, full_report_len, write_boot_summary, write_cpu_record, write_fault,
    write_panic, write_scenario,
};
use firmware::report::{
    BootSummary, BspPhase, FAULT_REPORT_SIZE, Fault, HEADER_SIZE, MAX_CPUS, MAX_ROUNDS,
    MAX_VIOLATIONS, PANIC_MESSAGE_MAX, REPORT_ALIGN, Round, ScenarioSummary, TeardownRecord,
    Violation,
};

use crate::cpu;
use crate::cpus;
use crate::global::Global;
use crate::supervisor;

/// Exit status: the kernel did everything it was asked to.
pub(crate) const EXIT_SUCCESS: u32 = 0;
/// Exit status: a panic (a panic report was sent).
pub(crate) const EXIT_PANIC: u32 = 0xFE;
/// Exit status: an unhandled CPU exception (a fault report was sent).
pub(crate) const EXIT_FAULT: u32 = 0xFF;
/// Exit status: a fault or panic while this CPU was already reporting one (no new report).
pub(crate) const EXIT_NESTED_FATAL: u32 = 0xFD;

/// Size of the boot report buffer: the summary, a record for every possible CPU, and the
/// largest scenario block.
const BOOT_REPORT_CAPACITY: usize = full_report_len(
    MAX_CPUS as usize,
    MAX_ROUNDS as usize,
    MAX_CPUS as usize,
    MAX_VIOLATIONS as usize,
);
/// Size of the fatal report buffer: the larger of a fault report and a full panic report.
const FATAL_REPORT_CAPACITY: usize = HEADER_SIZE + PANIC_MESSAGE_MAX;
const _: () = assert!(FATAL_REPORT_CAPACITY >= FAULT_REPORT_SIZE);
const _: () = assert!(cpus::CAPACITY <= MAX_CPUS as usize);

/// A report buffer, aligned as the doorbell requires.
#[repr(C, align(8))]
struct ReportBuffer<const N: usize>([u8; N]);
const _: () = assert!(core::mem::align_of::<ReportBuffer<1>>() >= REPORT_ALIGN as usize);

/// The boot report; written only by the BSP, once, at the end of the boot.
static BOOT_REPORT: Global<ReportBuffer<BOOT_REPORT_CAPACITY>> =
    Global::new(ReportBuffer([0; BOOT_REPORT_CAPACITY]));
/// The fault or panic report; written only by the CPU that won [`claim_fatal`].
static FATAL_REPORT: Global<ReportBuffer<FATAL_REPORT_CAPACITY>> =
    Global::new(ReportBuffer([0; FATAL_REPORT_CAPACITY]));

/// The scenario part of a boot report.
pub(crate) struct ScenarioReport<'a> {
    /// The fixed part (its counts are set from the slices).
    pub(crate) summary: ScenarioSummary,
    /// Every round.
    pub(crate) rounds: &'a [Round],
    /// The last teardown's record of each AP, by slot.
    pub(crate) teardown: &'a [u16],
    /// Reads the teardown record of a slot.
    pub(crate) record: fn(usize) -> TeardownRecord,
    /// The first violations hotplug-torture found.
    pub(crate) violations: &'a [Violation],
}

/// Scratch for the teardown records of the report (BSP only).
static TEARDOWN_OUT: Global<[TeardownRecord; MAX_CPUS as usize]> = Global::new(
    [TeardownRecord {
        apic_id: 0,
        flags: 0,
        request: 0,
        ack: 0,
        parked: 0,
        init: 0,
    }; MAX_CPUS as usize],
);

/// Sends the boot report: copies the CPU table's records out, stamps [`BspPhase::Report`] into
/// `summary`, encodes the summary (its `cpu_count` is set from the table) and the scenario
/// block, and rings the doorbell. Returns the report's physical address.
///
/// Must be called by the BSP, once.
pub(crate) fn send_boot(mut summary: BootSummary, scenario: &ScenarioReport<'_>) -> u64 {
    // SAFETY: only the BSP calls this, once, and nothing else touches BOOT_REPORT, so this is the
    // only reference to it.
    let buf = unsafe { &mut (*BOOT_REPORT.get()).0 };
    let count = cpus::count();
    for index in 0..count {
        write_cpu_record(buf, index, &cpus::snapshot(index))
            .unwrap_or_else(|| panic!("CPU record {index} does not fit the boot report"));
    }
    summary.cpu_count = count as u32;
    summary.bsp_stamps[BspPhase::Report as usize] = cpu::rdtsc();
    write_boot_summary(buf, &summary)
        .unwrap_or_else(|| panic!("a boot report for {count} CPUs does not fit its buffer"));
    // SAFETY: only the BSP uses TEARDOWN_OUT, and only here, once.
    let out = unsafe { &mut *TEARDOWN_OUT.get() };
    let n = scenario.teardown.len().min(out.len());
    for (o, slot) in out.iter_mut().zip(&scenario.teardown[..n]) {
        *o = (scenario.record)(usize::from(*slot));
    }
    let sc = ScenarioSummary {
        round_count: scenario.rounds.len() as u32,
        teardown_count: n as u32,
        violation_count: scenario.violations.len() as u32,
        ..scenario.summary
    };
    let entries = ScenarioEntries {
        rounds: scenario.rounds,
        teardown: &out[..n],
        violations: scenario.violations,
    };
    let len = write_scenario(buf, count, &sc, &entries)
        .unwrap_or_else(|| panic!("the scenario block does not fit the boot report"));
    ring_doorbell(&buf[..len])
}

/// Who handles a fatal event, as decided by [`claim_fatal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This CPU is the first: it reports and ends the VM.
    First,
    /// This CPU faulted or panicked while it was reporting a fatal event itself.
    Nested,
    /// Another CPU is reporting; this one only halts.
    OtherCpu,
}

/// No CPU owns the fatal path.
const NO_OWNER: u32 = u32::MAX;
/// APIC ID of the CPU reporting a fatal event.
static FATAL_OWNER: AtomicU32 = AtomicU32::new(NO_OWNER);

/// Claims the fatal-report path for the CPU with APIC ID `apic_id`.
pub(crate) fn claim_fatal(apic_id: u32) -> Claim {
    match FATAL_OWNER.compare_exchange(NO_OWNER, apic_id, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Claim::First,
        Err(owner) if owner == apic_id => Claim::Nested,
        Err(_) => Claim::OtherCpu,
    }
}

/// Sends a fault report and ends the VM with [`EXIT_FAULT`].
///
/// Only the CPU that got [`Claim::First`] may call this.
pub(crate) fn send_fault(fault: &Fault) -> ! {
    // SAFETY: the caller won the fatal claim, so no other CPU or code path writes FATAL_REPORT,
    // and this path never returns, so the reference is the only one.
    let buf = unsafe { &mut (*FATAL_REPORT.get()).0 };
    if let Some(len) = write_fault(buf, fault) {
        ring_doorbell(&buf[..len]);
    }
    exit(EXIT_FAULT)
}

/// Sends a panic report with `message` and ends the VM with [`EXIT_PANIC`].
///
/// Only the CPU that got [`Claim::First`] may call this.
pub(crate) fn send_panic(message: &str) -> ! {
    // SAFETY: as in `send_fault`: the caller won the fatal claim and this never returns.
    let buf = unsafe { &mut (*FATAL_REPORT.get()).0 };
    if let Some(len) = write_panic(buf, message) {
        ring_doorbell(&buf[..len]);
    }
    exit(EXIT_PANIC)
}

/// Hands `report` to the VMM: ONE 32-bit `out` of its physical address to [`REPORT_PORT`].
/// Returns that address.
fn ring_doorbell(report: &[u8]) -> u64 {
    // Identity mapping: the virtual address is the physical address.
    let addr = report.as_ptr() as u64;
    let Ok(addr32) = u32::try_from(addr) else {
        panic!("the report at {addr:#x} is above 4 GiB");
    };
    assert!(
        addr32 % REPORT_ALIGN == 0,
        "the report at {addr:#x} is not {REPORT_ALIGN}-byte aligned"
    );
    // SAFETY: the report port only takes the address; the VMM reads the report, which is
    // complete and is not written again.
    unsafe { cpu::outl(REPORT_PORT, addr32) };
    addr
}

/// Ends the VM with `status`: the sipi exit port, then QEMU's isa-debug-exit, then halts
/// forever should both be absent.
pub(crate) fn exit(status: u32) -> ! {
    // SAFETY: writing the exit port asks the VMM to end the VM; nothing in this kernel depends
    // on the write having any other effect.
    unsafe { cpu::outl(EXIT_PORT, status) };
    // SAFETY: DEBUG_EXIT_PORT is QEMU's isa-debug-exit when present (QEMU then exits with status
    // `(status << 1) | 1`), and unassigned otherwise, where the write is ignored.
    unsafe { cpu::outl(DEBUG_EXIT_PORT, status) };
    supervisor::halt()
}
