//! Writing reports (the guest side). Every writer checks that the report fits its buffer.
//!
//! Each writer fills in the wire structure of its part (see the [module documentation](super))
//! and copies its bytes; nothing here knows an offset.

use core::mem::offset_of;

use zerocopy::IntoBytes;

use super::*;
use crate::bytes::put;

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
    let len = full_report_len(cpu_count, rounds.len(), teardown.len(), violations.len());
    if len > buf.len() || len > REPORT_MAX_LEN as usize {
        return None;
    }
    let mut at = boot_report_len(cpu_count);
    for part in [
        RawScenarioSummary::new(s).as_bytes(),
        rounds.as_bytes(),
        teardown.as_bytes(),
        violations.as_bytes(),
    ] {
        put(buf, at, part)?;
        at += part.len();
    }
    // The header's length covers the block.
    put(buf, offset_of!(RawHeader, length), (len as u32).as_bytes())?;
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
    put(buf, 0, RawBootSummary::new(s, len as u32).as_bytes())?;
    Some(len)
}

/// Writes CPU record `index` of a boot report.
pub fn write_cpu_record(buf: &mut [u8], index: usize, r: &CpuRecord) -> Option<()> {
    let off = BOOT_RECORDS_OFFSET.checked_add(index.checked_mul(CPU_RECORD_SIZE)?)?;
    put(buf, off, r.as_bytes())
}

/// Writes a fault report; returns its length.
pub fn write_fault(buf: &mut [u8], f: &Fault) -> Option<usize> {
    let report = RawFaultReport {
        header: RawHeader::new(Kind::Fault, FAULT_REPORT_SIZE as u32),
        fault: *f,
    };
    put(buf, 0, report.as_bytes())?;
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
    put(buf, 0, RawHeader::new(Kind::Panic, len as u32).as_bytes())?;
    put(buf, HEADER_SIZE, &message.as_bytes()[..n])?;
    Some(len)
}
