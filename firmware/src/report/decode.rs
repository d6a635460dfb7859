//! Reading reports (the VMM side). The guest is untrusted: every length, count and enum is
//! checked, nothing is indexed without a bound, and the caller never needs to allocate more
//! than [`REPORT_MAX_LEN`] bytes (it reads the header first, checks it with
//! [`parse_header`], then reads exactly `length` bytes).

use super::*;
use zerocopy::FromBytes;

/// Why a report was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Fewer bytes than a header or than the header's length.
    #[error("the report is truncated: {needed} bytes needed, {available} available")]
    Truncated { needed: usize, available: usize },
    /// Wrong magic.
    #[error("the report magic is {0:#010x}, not \"SIPI\"")]
    BadMagic(u32),
    /// Unsupported version.
    #[error("the report version {0} is not supported (expected {REPORT_VERSION})")]
    BadVersion(u16),
    /// Unknown kind.
    #[error("the report kind {0} is unknown")]
    BadKind(u16),
    /// Length outside [`HEADER_SIZE`]..=[`REPORT_MAX_LEN`] or inconsistent with the body.
    #[error("the report length {length} is invalid for a {kind} report")]
    BadLength { kind: &'static str, length: u32 },
    /// Too many CPU records.
    #[error("the report lists {0} CPUs, more than the {MAX_CPUS} allowed")]
    TooManyCpus(u32),
    /// CPU records of an unexpected size.
    #[error("the report's CPU record size is {0}, expected {CPU_RECORD_SIZE}")]
    BadRecordSize(u32),
    /// A CPU record holds an invalid state byte.
    #[error("CPU record {index} has an invalid state {state}")]
    BadCpuState { index: usize, state: u8 },
    /// A CPU record claims a phase that does not exist.
    #[error("CPU record {index} claims phase {phase}, beyond the last phase")]
    BadPhase { index: usize, phase: u8 },
    /// Summary flag bits this version does not define.
    #[error("the boot summary has unknown flags {0:#x}")]
    BadFlags(u32),
    /// CPU record flag bits this version does not define.
    #[error("CPU record {index} has unknown flags {flags:#x}")]
    BadCpuFlags { index: usize, flags: u32 },
    /// A scenario block with more rounds, teardown records or violations than allowed.
    #[error("the scenario block lists {rounds} rounds, {teardown} teardown records and {violations} violations, more than allowed")]
    TooManyScenarioEntries {
        rounds: u32,
        teardown: u32,
        violations: u32,
    },
    /// A violation entry of a kind this version does not define.
    #[error("violation {index} has an unknown kind {kind}")]
    BadViolationKind { index: usize, kind: u32 },
    /// A panic message that is not UTF-8.
    #[error("the panic message is not valid UTF-8")]
    BadMessage,
}

/// A checked report header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the body holds.
    pub kind: Kind,
    /// Total length in bytes, header included; at most [`REPORT_MAX_LEN`].
    pub length: u32,
}

/// Checks the [`HEADER_SIZE`]-byte header at the start of `buf`.
pub fn parse_header(buf: &[u8]) -> Result<Header, ReportError> {
    let (h, _) = RawHeader::read_from_prefix(buf).map_err(|_| ReportError::Truncated {
        needed: HEADER_SIZE,
        available: buf.len(),
    })?;
    if h.magic != REPORT_MAGIC {
        return Err(ReportError::BadMagic(h.magic));
    }
    if h.version != REPORT_VERSION {
        return Err(ReportError::BadVersion(h.version));
    }
    let kind = Kind::from_u16(h.kind).ok_or(ReportError::BadKind(h.kind))?;
    let min = match kind {
        Kind::Boot => BOOT_RECORDS_OFFSET + SCENARIO_HEADER_SIZE,
        Kind::Fault => FAULT_REPORT_SIZE,
        Kind::Panic => HEADER_SIZE,
    };
    if (h.length as usize) < min || h.length > REPORT_MAX_LEN {
        return Err(ReportError::BadLength {
            kind: kind.name(),
            length: h.length,
        });
    }
    Ok(Header {
        kind,
        length: h.length,
    })
}

/// A structurally valid report.
#[derive(Debug, Clone, Copy)]
// A report is decoded once per boot and passed by reference; this no_std crate has no
// allocator to box the boot variant with.
#[allow(clippy::large_enum_variant)]
pub enum Report<'a> {
    /// A boot report.
    Boot(BootReport<'a>),
    /// A fault report.
    Fault(Fault),
    /// A panic message.
    Panic(&'a str),
}

/// A structurally valid boot report: summary checked, every CPU record decodable.
#[derive(Debug, Clone, Copy)]
pub struct BootReport<'a> {
    /// The fixed part.
    pub summary: BootSummary,
    /// The fixed part of the scenario block.
    pub scenario: ScenarioSummary,
    records: &'a [u8],
    rounds: &'a [u8],
    teardown: &'a [u8],
    violations: &'a [u8],
}

/// The `T`s that `bytes` holds, in order (a trailing partial one is ignored).
fn entries<T: FromBytes>(bytes: &[u8]) -> impl Iterator<Item = T> + '_ {
    bytes
        .chunks_exact(core::mem::size_of::<T>())
        .filter_map(|e| T::read_from_bytes(e).ok())
}

impl BootReport<'_> {
    /// Number of CPU records.
    pub fn len(&self) -> usize {
        self.records.len() / CPU_RECORD_SIZE
    }

    /// True if there are no CPU records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// CPU record `index`.
    pub fn cpu(&self, index: usize) -> Option<CpuRecord> {
        let off = index.checked_mul(CPU_RECORD_SIZE)?;
        cpu_record(self.records.get(off..off.checked_add(CPU_RECORD_SIZE)?)?)
    }

    /// All CPU records in order.
    pub fn cpus(&self) -> impl Iterator<Item = CpuRecord> + '_ {
        entries(self.records)
    }

    /// The scenario's rounds in order.
    pub fn rounds(&self) -> impl Iterator<Item = Round> + '_ {
        entries(self.rounds)
    }

    /// The last teardown's records in order.
    pub fn teardown(&self) -> impl Iterator<Item = TeardownRecord> + '_ {
        entries(self.teardown)
    }

    /// The recorded violations in order (each kind checked by [`parse`]).
    pub fn violations(&self) -> impl Iterator<Item = Violation> + '_ {
        entries(self.violations)
    }
}

/// Decodes one CPU record from the first [`CPU_RECORD_SIZE`] bytes of `r` (fields only: the
/// caller checks the state, phase and flags).
pub fn cpu_record(r: &[u8]) -> Option<CpuRecord> {
    CpuRecord::read_from_prefix(r)
        .ok()
        .map(|(record, _)| record)
}

/// Decodes a whole report. `buf` must start with the header; bytes past its length are ignored.
pub fn parse(buf: &[u8]) -> Result<Report<'_>, ReportError> {
    let h = parse_header(buf)?;
    let len = h.length as usize;
    let body = buf.get(..len).ok_or(ReportError::Truncated {
        needed: len,
        available: buf.len(),
    })?;
    let bad_length = ReportError::BadLength {
        kind: h.kind.name(),
        length: h.length,
    };
    match h.kind {
        Kind::Boot => parse_boot(body, h.length).map(Report::Boot),
        // parse_header checked that the length covers the whole fault report.
        Kind::Fault => RawFaultReport::read_from_prefix(body)
            .map(|(r, _)| Report::Fault(r.fault))
            .map_err(|_| bad_length),
        Kind::Panic => {
            let msg = &body[HEADER_SIZE..];
            if msg.len() > PANIC_MESSAGE_MAX {
                return Err(bad_length);
            }
            core::str::from_utf8(msg)
                .map(Report::Panic)
                .map_err(|_| ReportError::BadMessage)
        }
    }
}

fn parse_boot(body: &[u8], length: u32) -> Result<BootReport<'_>, ReportError> {
    let bad_length = ReportError::BadLength {
        kind: Kind::Boot.name(),
        length,
    };
    // parse_header checked that the length covers the fixed part and a scenario block.
    let (raw, _) = RawBootSummary::read_from_prefix(body).map_err(|_| bad_length)?;
    let cpu_count = raw.cpu_count;
    if cpu_count > MAX_CPUS {
        return Err(ReportError::TooManyCpus(cpu_count));
    }
    if raw.record_size as usize != CPU_RECORD_SIZE {
        return Err(ReportError::BadRecordSize(raw.record_size));
    }
    // The scenario block follows the records; its counts say how long the report is.
    let records_end = encode::boot_report_len(cpu_count as usize);
    let (sc, _) = body
        .get(records_end..)
        .and_then(|rest| RawScenarioSummary::read_from_prefix(rest).ok())
        .ok_or(bad_length)?;
    let scenario = sc.summary();
    if scenario.round_count > MAX_ROUNDS
        || scenario.teardown_count > MAX_CPUS
        || scenario.violation_count > MAX_VIOLATIONS
    {
        return Err(ReportError::TooManyScenarioEntries {
            rounds: scenario.round_count,
            teardown: scenario.teardown_count,
            violations: scenario.violation_count,
        });
    }
    let (nr, nt, nv) = (
        scenario.round_count as usize,
        scenario.teardown_count as usize,
        scenario.violation_count as usize,
    );
    if length as usize != encode::full_report_len(cpu_count as usize, nr, nt, nv) {
        return Err(bad_length);
    }
    let rounds_at = records_end + SCENARIO_HEADER_SIZE;
    let teardown_at = rounds_at + nr * ROUND_SIZE;
    let violations_at = teardown_at + nt * TEARDOWN_RECORD_SIZE;
    if raw.flags & !FLAGS_KNOWN != 0 {
        return Err(ReportError::BadFlags(raw.flags));
    }
    let report = BootReport {
        summary: raw.summary(),
        scenario,
        records: &body[BOOT_RECORDS_OFFSET..records_end],
        rounds: &body[rounds_at..teardown_at],
        teardown: &body[teardown_at..violations_at],
        violations: &body[violations_at..],
    };
    for (index, v) in report.violations().enumerate() {
        if ViolationKind::from_u32(v.kind).is_none() {
            return Err(ReportError::BadViolationKind {
                index,
                kind: v.kind,
            });
        }
    }
    for (index, r) in report.cpus().enumerate() {
        if CpuState::from_u8(r.state).is_none() {
            return Err(ReportError::BadCpuState {
                index,
                state: r.state,
            });
        }
        if usize::from(r.last_phase) > ApPhase::ALL.len() {
            return Err(ReportError::BadPhase {
                index,
                phase: r.last_phase,
            });
        }
        if r.flags & !CPU_FLAGS_KNOWN != 0 {
            return Err(ReportError::BadCpuFlags {
                index,
                flags: r.flags,
            });
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::encode::*;
    use super::*;

    fn boot(cpus: usize) -> [u8; 512] {
        let mut buf = [0u8; 512];
        assert!(full_report_len(cpus, 0, 0, 0) <= buf.len());
        let s = BootSummary {
            cpu_count: cpus as u32,
            tsc_khz: 2_000_000,
            flags: FLAG_TSC_ADJUST,
            tsc_sync: 2,
            tsc: TscSyncSummary {
                cycles: 5_000_000,
                max_warp: 1 << 40,
                warps: 7,
            },
            ..Default::default()
        };
        write_boot_summary(&mut buf, &s).unwrap();
        for i in 0..cpus {
            let r = CpuRecord {
                apic_id: i as u32,
                state: 1,
                last_phase: 6,
                flags: CPU_FLAG_TSC_CHECKED | CPU_FLAG_TSC_ADJUST,
                tsc_warp: i as u64 * 3,
                tsc_adjust: (-(i as i64)) as u64,
                ..Default::default()
            };
            write_cpu_record(&mut buf, i, &r).unwrap();
        }
        write_scenario(
            &mut buf,
            cpus,
            &ScenarioSummary::default(),
            &Default::default(),
        )
        .unwrap();
        buf
    }

    #[test]
    fn scenario_block_round_trips_and_is_bounded() {
        let mut buf = [0u8; 1024];
        let s = BootSummary {
            cpu_count: 2,
            ..Default::default()
        };
        write_boot_summary(&mut buf, &s).unwrap();
        let sc = ScenarioSummary {
            scenario: 2,
            teardown: 1,
            rounds: 2,
            ops: 2,
            round_count: 2,
            teardown_count: 1,
            teardown_start: 10,
            teardown_end: 50,
            ..Default::default()
        };
        let rounds = [
            Round {
                up_cycles: 7,
                down_cycles: 8,
            },
            Round {
                up_cycles: 9,
                down_cycles: 40,
            },
        ];
        let t = [TeardownRecord {
            apic_id: 1,
            flags: 0,
            request: 10,
            ack: 20,
            parked: 30,
            init: 40,
        }];
        let v = [Violation {
            op: 17,
            apic_id: 1,
            reader_apic_id: 0,
            kind: ViolationKind::HandedToOffline as u32,
            tsc: 99,
        }];
        let sc = ScenarioSummary {
            violations: 5,
            violation_count: 1,
            concurrency: 4,
            seed: u64::MAX,
            duration_cycles: 1 << 40,
            latency_p50: 3,
            latency_p99: 4,
            latency_max: 5,
            ..sc
        };
        let entries = ScenarioEntries {
            rounds: &rounds,
            teardown: &t,
            violations: &v,
        };
        let len = write_scenario(&mut buf, 2, &sc, &entries).unwrap();
        assert_eq!(len, full_report_len(2, 2, 1, 1));
        let Report::Boot(b) = parse(&buf[..len]).unwrap() else {
            panic!("not a boot report")
        };
        assert_eq!(b.scenario, sc);
        assert_eq!(b.rounds().collect::<std::vec::Vec<_>>(), rounds);
        assert_eq!(b.teardown().next(), Some(t[0]));
        assert_eq!(b.violations().collect::<std::vec::Vec<_>>(), v);
        assert_eq!(b.len(), 2);
        // Counts that disagree with the length, or beyond the bounds, are rejected.
        let off = boot_report_len(2);
        let mut bad = buf;
        bad[off + 20] = 2;
        assert!(matches!(
            parse(&bad[..len]),
            Err(ReportError::BadLength { .. })
        ));
        let mut bad = buf;
        bad[off + 16..off + 20].copy_from_slice(&(MAX_ROUNDS + 1).to_le_bytes());
        assert!(matches!(
            parse(&bad[..len]),
            Err(ReportError::TooManyScenarioEntries { .. })
        ));
        let mut bad = buf;
        bad[off + 44..off + 48].copy_from_slice(&(MAX_VIOLATIONS + 1).to_le_bytes());
        assert!(matches!(
            parse(&bad[..len]),
            Err(ReportError::TooManyScenarioEntries { .. })
        ));
        // A violation of a kind this version does not know is rejected.
        let mut bad = buf;
        let kind_at = len - VIOLATION_SIZE + 12;
        bad[kind_at..kind_at + 4].copy_from_slice(&9u32.to_le_bytes());
        assert_eq!(
            parse(&bad[..len]).unwrap_err(),
            ReportError::BadViolationKind { index: 0, kind: 9 }
        );
        // Mismatched slices are refused by the writer.
        let short = ScenarioEntries {
            rounds: &rounds[..1],
            ..entries
        };
        assert!(write_scenario(&mut buf, 2, &sc, &short).is_none());
        let none = ScenarioEntries {
            violations: &[],
            ..entries
        };
        assert!(write_scenario(&mut buf, 2, &sc, &none).is_none());
    }

    #[test]
    fn boot_report_round_trips() {
        let buf = boot(3);
        let Report::Boot(b) = parse(&buf).unwrap() else {
            panic!("not a boot report")
        };
        assert_eq!(b.summary.tsc_khz, 2_000_000);
        assert_eq!(b.summary.flags, FLAG_TSC_ADJUST);
        assert_eq!(b.summary.tsc_sync, 2);
        assert_eq!(
            b.summary.tsc,
            TscSyncSummary {
                cycles: 5_000_000,
                max_warp: 1 << 40,
                warps: 7
            }
        );
        assert_eq!(b.len(), 3);
        let r = b.cpu(2).unwrap();
        assert_eq!((r.apic_id, r.last_phase), (2, 6));
        assert_eq!(r.flags, CPU_FLAG_TSC_CHECKED | CPU_FLAG_TSC_ADJUST);
        assert_eq!((r.tsc_warp, r.tsc_adjust as i64), (6, -2));
        assert!(b.cpu(3).is_none());
    }

    #[test]
    fn fault_and_panic_round_trip() {
        let mut buf = [0u8; 128];
        let f = Fault {
            apic_id: 3,
            vector: 13,
            rip: 0x10_1234,
            ..Default::default()
        };
        write_fault(&mut buf, &f).unwrap();
        assert!(matches!(parse(&buf), Ok(Report::Fault(g)) if g == f));
        let n = write_panic(&mut buf, "oops at line 3").unwrap();
        assert!(matches!(
            parse(&buf[..n]),
            Ok(Report::Panic("oops at line 3"))
        ));
    }

    #[test]
    fn rejects_malformed_reports() {
        let good = boot(2);
        let mut b = good;
        b[0] = b'X';
        assert!(matches!(parse(&b), Err(ReportError::BadMagic(_))));
        let mut b = good;
        b[4] = 9;
        assert_eq!(parse(&b).unwrap_err(), ReportError::BadVersion(9));
        let mut b = good;
        b[6] = 77;
        assert_eq!(parse(&b).unwrap_err(), ReportError::BadKind(77));
        let mut b = good;
        b[8..12].copy_from_slice(&(REPORT_MAX_LEN + 1).to_le_bytes());
        assert!(matches!(parse(&b), Err(ReportError::BadLength { .. })));
        let mut b = good;
        b[36..40].copy_from_slice(&3u32.to_le_bytes()); // count disagrees with length
        assert!(matches!(parse(&b), Err(ReportError::BadLength { .. })));
        let mut b = good;
        b[36..40].copy_from_slice(&(MAX_CPUS + 1).to_le_bytes());
        assert_eq!(
            parse(&b).unwrap_err(),
            ReportError::TooManyCpus(MAX_CPUS + 1)
        );
        let mut b = good;
        b[40] = 64;
        assert_eq!(parse(&b).unwrap_err(), ReportError::BadRecordSize(64));
        let mut b = good;
        b[BOOT_RECORDS_OFFSET + CPU_RECORD_SIZE + 8] = 9;
        assert_eq!(
            parse(&b).unwrap_err(),
            ReportError::BadCpuState { index: 1, state: 9 }
        );
        let mut b = good;
        b[BOOT_RECORDS_OFFSET + 9] = 7;
        assert_eq!(
            parse(&b).unwrap_err(),
            ReportError::BadPhase { index: 0, phase: 7 }
        );
        let mut b = good;
        b[24] |= 0x80;
        assert_eq!(
            parse(&b).unwrap_err(),
            ReportError::BadFlags(FLAG_TSC_ADJUST | 0x80)
        );
        let mut b = good;
        b[BOOT_RECORDS_OFFSET + CPU_RECORD_SIZE + 12] |= 0x40;
        assert!(matches!(
            parse(&b).unwrap_err(),
            ReportError::BadCpuFlags { index: 1, .. }
        ));
        let mut b = good;
        b[4] = 1; // a version-1 report: slot 4 meant Online then
        assert_eq!(parse(&b).unwrap_err(), ReportError::BadVersion(1));
        let mut b = good;
        b[4] = 2; // a version-2 report has no scenario block
        assert_eq!(parse(&b).unwrap_err(), ReportError::BadVersion(2));
        let len = full_report_len(2, 0, 0, 0);
        assert!(matches!(
            parse(&good[..len - 1]),
            Err(ReportError::Truncated { .. })
        ));
        assert!(matches!(
            parse(&good[..10]),
            Err(ReportError::Truncated { .. })
        ));
        let mut b = [0u8; 64];
        let n = write_panic(&mut b, "ok").unwrap();
        b[HEADER_SIZE] = 0xFF;
        assert_eq!(parse(&b[..n]).unwrap_err(), ReportError::BadMessage);
    }

    #[test]
    fn panic_messages_are_truncated_at_char_boundaries() {
        let mut buf = [0u8; 2048];
        let long = "é".repeat(PANIC_MESSAGE_MAX);
        let n = write_panic(&mut buf, &long).unwrap();
        let Ok(Report::Panic(m)) = parse(&buf[..n]) else {
            panic!("did not parse")
        };
        assert!(m.len() <= PANIC_MESSAGE_MAX && m.len() >= PANIC_MESSAGE_MAX - 1);
    }
}
