//! Writing reports (the guest side). Every writer checks that the report fits its buffer.

use super::*;
use crate::bytes::{put, put_u16, put_u32, put_u64};

/// Writes the common header.
fn header(buf: &mut [u8], kind: Kind, length: u32) -> Option<()> {
    put_u32(buf, 0, REPORT_MAGIC)?;
    put_u16(buf, 4, REPORT_VERSION)?;
    put_u16(buf, 6, kind as u16)?;
    put_u32(buf, 8, length)?;
    put_u32(buf, 12, 0)
}

/// Offset of the scenario block in a boot report with `cpu_count` records.
pub const fn boot_report_len(cpu_count: usize) -> usize {
    BOOT_RECORDS_OFFSET + cpu_count * CPU_RECORD_SIZE
}

/// Size of a scenario block with `rounds` rounds, `teardown` teardown records and
/// `violations` violations.
pub const fn scenario_len(rounds: usize, teardown: usize, violations: usize) -> usize {
    SCENARIO_HEADER_SIZE
        + rounds * ROUND_SIZE
        + teardown * TEARDOWN_RECORD_SIZE
        + violations * VIOLATION_SIZE
}

/// Total length of a boot report with its scenario block.
pub const fn full_report_len(
    cpu_count: usize,
    rounds: usize,
    teardown: usize,
    violations: usize,
) -> usize {
    boot_report_len(cpu_count) + scenario_len(rounds, teardown, violations)
}

/// The variable parts of a scenario block.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScenarioEntries<'a> {
    /// One per round.
    pub rounds: &'a [Round],
    /// One per AP of the last teardown.
    pub teardown: &'a [TeardownRecord],
    /// The first violations found.
    pub violations: &'a [Violation],
}

/// Writes the scenario block of a boot report with `cpu_count` records: `s`, then the rounds,
/// teardown records and violations of `e` (whose lengths must match `s`'s counts). Returns the
/// whole report's length.
pub fn write_scenario(
    buf: &mut [u8],
    cpu_count: usize,
    s: &ScenarioSummary,
    e: &ScenarioEntries<'_>,
) -> Option<usize> {
    let (rounds, teardown, violations) = (e.rounds, e.teardown, e.violations);
    if rounds.len() != s.round_count as usize
        || teardown.len() != s.teardown_count as usize
        || violations.len() != s.violation_count as usize
    {
        return None;
    }
    let off = boot_report_len(cpu_count);
    let len = full_report_len(cpu_count, rounds.len(), teardown.len(), violations.len());
    if len > buf.len() || len > REPORT_MAX_LEN as usize {
        return None;
    }
    put(buf, off, &[s.scenario, s.teardown])?;
    put_u16(buf, off + 2, 0)?;
    put_u32(buf, off + 4, s.rounds)?;
    put_u32(buf, off + 8, s.ops)?;
    put_u32(buf, off + 12, s.violations)?;
    put_u32(buf, off + 16, s.round_count)?;
    put_u32(buf, off + 20, s.teardown_count)?;
    put_u64(buf, off + 24, s.teardown_start)?;
    put_u64(buf, off + 32, s.teardown_end)?;
    put_u32(buf, off + 40, s.concurrency)?;
    put_u32(buf, off + 44, s.violation_count)?;
    put_u64(buf, off + 48, s.seed)?;
    put_u64(buf, off + 56, s.duration_cycles)?;
    put_u64(buf, off + 64, s.latency_p50)?;
    put_u64(buf, off + 72, s.latency_p99)?;
    put_u64(buf, off + 80, s.latency_max)?;
    let mut at = off + SCENARIO_HEADER_SIZE;
    for r in rounds {
        put_u64(buf, at, r.up_cycles)?;
        put_u64(buf, at + 8, r.down_cycles)?;
        at += ROUND_SIZE;
    }
    for t in teardown {
        put_u32(buf, at, t.apic_id)?;
        put_u32(buf, at + 4, t.flags)?;
        for (i, v) in t.stamps().iter().enumerate() {
            put_u64(buf, at + 8 + 8 * i, *v)?;
        }
        at += TEARDOWN_RECORD_SIZE;
    }
    for v in violations {
        put_u32(buf, at, v.op)?;
        put_u32(buf, at + 4, v.apic_id)?;
        put_u32(buf, at + 8, v.reader_apic_id)?;
        put_u32(buf, at + 12, v.kind)?;
        put_u64(buf, at + 16, v.tsc)?;
        at += VIOLATION_SIZE;
    }
    // The header's length covers the block.
    put_u32(buf, 8, len as u32)?;
    Some(len)
}

/// Writes the header and summary of a boot report. The CPU records go at
/// [`BOOT_RECORDS_OFFSET`], written with [`write_cpu_record`] or in place by the CPUs.
/// Returns the report length.
pub fn write_boot_summary(buf: &mut [u8], s: &BootSummary) -> Option<usize> {
    let len = boot_report_len(s.cpu_count as usize);
    if len > buf.len() || len > REPORT_MAX_LEN as usize {
        return None;
    }
    header(buf, Kind::Boot, len as u32)?;
    put_u32(buf, 16, s.bsp_apic_id)?;
    put_u32(buf, 20, s.tsc_khz)?;
    put_u32(buf, 24, s.flags)?;
    put_u32(buf, 28, s.madt_cpus)?;
    put(buf, 32, &[s.bringup, s.kick, s.tsc_sync, 0])?;
    put_u32(buf, 36, s.cpu_count)?;
    put_u32(buf, 40, CPU_RECORD_SIZE as u32)?;
    put_u32(buf, 44, s.status)?;
    for (i, stamp) in s.bsp_stamps.iter().enumerate() {
        put_u64(buf, 48 + i * 8, *stamp)?;
    }
    put_u64(buf, 112, s.tsc.cycles)?;
    put_u64(buf, 120, s.tsc.max_warp)?;
    put_u32(buf, 128, s.tsc.warps)?;
    put_u32(buf, 132, 0)?;
    Some(len)
}

/// Writes CPU record `index` of a boot report.
pub fn write_cpu_record(buf: &mut [u8], index: usize, r: &CpuRecord) -> Option<()> {
    let off = BOOT_RECORDS_OFFSET.checked_add(index.checked_mul(CPU_RECORD_SIZE)?)?;
    put_u32(buf, off, r.apic_id)?;
    put_u32(buf, off + 4, r.acpi_uid)?;
    put(buf, off + 8, &[r.state, r.last_phase])?;
    put_u16(buf, off + 10, r.retries)?;
    put_u32(buf, off + 12, r.flags)?;
    for (i, stamp) in r.stamps.iter().enumerate() {
        put_u64(buf, off + 16 + i * 8, *stamp)?;
    }
    put_u64(buf, off + 80, r.tsc_warp)?;
    put_u64(buf, off + 88, r.tsc_adjust)
}

/// Writes a fault report; returns its length.
pub fn write_fault(buf: &mut [u8], f: &Fault) -> Option<usize> {
    header(buf, Kind::Fault, FAULT_REPORT_SIZE as u32)?;
    put_u32(buf, 16, f.apic_id)?;
    put_u32(buf, 20, f.vector)?;
    put_u64(buf, 24, f.error_code)?;
    put_u64(buf, 32, f.rip)?;
    put_u64(buf, 40, f.cr2)?;
    put_u64(buf, 48, f.rsp)?;
    Some(FAULT_REPORT_SIZE)
}

/// Writes a panic report, truncating the message to [`PANIC_MESSAGE_MAX`] bytes at a UTF-8
/// boundary; returns its length.
pub fn write_panic(buf: &mut [u8], message: &str) -> Option<usize> {
    let mut n = message
        .len()
        .min(PANIC_MESSAGE_MAX)
        .min(buf.len().saturating_sub(HEADER_SIZE));
    while !message.is_char_boundary(n) {
        n -= 1;
    }
    let len = HEADER_SIZE + n;
    header(buf, Kind::Panic, len as u32)?;
    put(buf, HEADER_SIZE, &message.as_bytes()[..n])?;
    Some(len)
}
