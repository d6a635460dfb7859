//! The bounds-checked reader of KVM's binary statistics files (Documentation/virt/kvm/api.rst,
//! "KVM_GET_STATS_FD"): a header, then `num_desc` descriptors packed one after another (each a
//! `struct kvm_stats_desc` followed by a `name_size`-byte name), then a data block of u64
//! values, `size` of them for each descriptor at `data_offset + desc.offset`.
//!
//! The file is the kernel's, not a layout sipi trusts: every count is bounded before anything
//! is allocated from it, every offset and length is checked for overflow and against the
//! others, every name must be NUL-terminated UTF-8, and a read that comes back short is an
//! error. The descriptors are read once ([`Layout::read`]); a snapshot re-reads only the data
//! block ([`Layout::read_values`]).

use std::fs::File;
use std::os::unix::fs::FileExt;

use kvm_bindings::{
    KVM_STATS_BASE_MASK, KVM_STATS_BASE_POW10, KVM_STATS_BASE_POW2, KVM_STATS_TYPE_CUMULATIVE,
    KVM_STATS_TYPE_INSTANT, KVM_STATS_TYPE_LINEAR_HIST, KVM_STATS_TYPE_LOG_HIST,
    KVM_STATS_TYPE_MASK, KVM_STATS_TYPE_PEAK, KVM_STATS_UNIT_BOOLEAN, KVM_STATS_UNIT_BYTES,
    KVM_STATS_UNIT_CYCLES, KVM_STATS_UNIT_MASK, KVM_STATS_UNIT_NONE, KVM_STATS_UNIT_SECONDS,
};

/// `sizeof(struct kvm_stats_header)`: flags, name_size, num_desc, id_offset, desc_offset,
/// data_offset, each a u32.
pub const HEADER_SIZE: usize = 24;
/// `sizeof(struct kvm_stats_desc)` without its name: flags (u32), exponent (s16), size (u16),
/// offset (u32), bucket_size (u32).
pub const DESC_SIZE: usize = 16;
/// Size of one value in the data block.
const VALUE_SIZE: usize = 8;
/// Most descriptors sipi reads from one file (Linux has fewer than 100 per file).
pub const MAX_DESCRIPTORS: u32 = 4096;
/// Largest `name_size` sipi accepts (Linux's KVM_STATS_NAME_SIZE is 48).
pub const MAX_NAME_SIZE: u32 = 256;
/// Most values one descriptor may have (Linux's histograms have at most 32 buckets).
pub const MAX_VALUES: u16 = 1024;
/// Largest data block sipi reads, in bytes (Linux's are under 1 KiB: one u64 per value).
pub const MAX_DATA_LEN: usize = 1 << 20;

/// Why a statistics file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StatsParseError {
    /// A read failed.
    #[error("cannot read the statistics {what}")]
    Read {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The file ended before a part it declares.
    #[error("the statistics file ends inside its {what} ({len} bytes at offset {offset})")]
    Truncated {
        what: &'static str,
        offset: u64,
        len: usize,
    },
    /// The header declares more descriptors than sipi reads.
    #[error(
        "the statistics header declares {0} counters, more than the {MAX_DESCRIPTORS} sipi reads"
    )]
    TooManyDescriptors(u32),
    /// The header's name size is zero or too large.
    #[error("the statistics header's name size {0} is not between 1 and {MAX_NAME_SIZE}")]
    NameSize(u32),
    /// An offset plus a length does not fit in 64 bits, or a part's length in memory.
    #[error("the statistics {0} lies beyond any file offset")]
    Overflow(&'static str),
    /// Two parts of the file overlap.
    #[error("the statistics {0} overlaps its {1}")]
    Overlap(&'static str, &'static str),
    /// A name has no NUL within `name_size` bytes.
    #[error("the name of statistics counter {0} is not NUL-terminated")]
    NameNotTerminated(u32),
    /// A name is empty or not UTF-8.
    #[error("the name of statistics counter {0} is empty or not UTF-8")]
    BadName(u32),
    /// Two descriptors have the same name.
    #[error("the statistics counter {0} is described twice")]
    DuplicateName(String),
    /// A descriptor has no values or too many.
    #[error("the statistics counter {name} has {size} values, not between 1 and {MAX_VALUES}")]
    ValueCount { name: String, size: u16 },
    /// The descriptors' values reach too far into the data block.
    #[error("the statistics counter {0} has values {1} bytes into the data block, beyond the {MAX_DATA_LEN} sipi reads")]
    DataTooLarge(String, usize),
    /// The values of two descriptors overlap in the data block.
    #[error("the values of statistics counters {0} and {1} overlap")]
    ValuesOverlap(String, String),
}

/// What a counter's value is over time (`KVM_STATS_TYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows: a window's value is the difference of its ends.
    Cumulative,
    /// The current value: a window's value is its end's.
    Instant,
    /// The largest value so far.
    Peak,
    /// A histogram with buckets of equal width.
    LinearHistogram,
    /// A histogram with buckets of doubling width.
    LogHistogram,
    /// A type this sipi does not know.
    Unknown(u32),
}

impl Kind {
    fn from_flags(flags: u32) -> Self {
        match flags & KVM_STATS_TYPE_MASK {
            KVM_STATS_TYPE_CUMULATIVE => Self::Cumulative,
            KVM_STATS_TYPE_INSTANT => Self::Instant,
            KVM_STATS_TYPE_PEAK => Self::Peak,
            KVM_STATS_TYPE_LINEAR_HIST => Self::LinearHistogram,
            KVM_STATS_TYPE_LOG_HIST => Self::LogHistogram,
            other => Self::Unknown(other),
        }
    }

    /// The name used in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cumulative => "cumulative",
            Self::Instant => "instant",
            Self::Peak => "peak",
            Self::LinearHistogram => "linear-histogram",
            Self::LogHistogram => "log-histogram",
            Self::Unknown(_) => "unknown",
        }
    }
}

/// A counter's unit (`KVM_STATS_UNIT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A plain count.
    None,
    /// Bytes.
    Bytes,
    /// Seconds, scaled by the exponent (nanoseconds are exponent -9).
    Seconds,
    /// CPU cycles.
    Cycles,
    /// 0 or 1.
    Boolean,
    /// A unit this sipi does not know.
    Unknown(u32),
}

impl Unit {
    fn from_flags(flags: u32) -> Self {
        match flags & KVM_STATS_UNIT_MASK {
            KVM_STATS_UNIT_NONE => Self::None,
            KVM_STATS_UNIT_BYTES => Self::Bytes,
            KVM_STATS_UNIT_SECONDS => Self::Seconds,
            KVM_STATS_UNIT_CYCLES => Self::Cycles,
            KVM_STATS_UNIT_BOOLEAN => Self::Boolean,
            other => Self::Unknown(other),
        }
    }

    /// The name used in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Bytes => "bytes",
            Self::Seconds => "seconds",
            Self::Cycles => "cycles",
            Self::Boolean => "boolean",
            Self::Unknown(_) => "unknown",
        }
    }
}

/// The base of a counter's exponent (`KVM_STATS_BASE_*`): 10 or 2, None if unknown.
fn base_from_flags(flags: u32) -> Option<u8> {
    match flags & KVM_STATS_BASE_MASK {
        KVM_STATS_BASE_POW10 => Some(10),
        KVM_STATS_BASE_POW2 => Some(2),
        _ => None,
    }
}

/// One counter of a statistics file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// Its name, e.g. `exits`.
    pub name: String,
    /// What its value is over time.
    pub kind: Kind,
    /// Its unit.
    pub unit: Unit,
    /// The base of its exponent (10 or 2; None if unknown).
    pub base: Option<u8>,
    /// The value is `value * base^exponent` units.
    pub exponent: i16,
    /// How many values it has (1 but for histograms).
    pub size: u16,
    /// Width of a linear histogram's bucket.
    pub bucket_size: u32,
    /// Offset of its first value in the data block.
    offset: usize,
    /// Index of its first value in a snapshot's values.
    first: usize,
}

/// Where a file's bytes come from: a statistics file, or bytes in memory (tests, fuzzing).
pub trait Source {
    /// Reads up to `buf.len()` bytes at `offset`; 0 at the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize>;
}

impl Source for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
}

impl Source for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// Fills `buf` from `offset` of `src`, or says which part the file ends in.
fn read_exact(
    src: &(impl Source + ?Sized),
    buf: &mut [u8],
    offset: u64,
    what: &'static str,
) -> Result<(), StatsParseError> {
    let mut done = 0;
    while done < buf.len() {
        let at = offset
            .checked_add(done as u64)
            .ok_or(StatsParseError::Overflow(what))?;
        match src.read_at(&mut buf[done..], at) {
            Ok(0) => {
                return Err(StatsParseError::Truncated {
                    what,
                    offset,
                    len: buf.len(),
                })
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => return Err(StatsParseError::Read { what, source }),
        }
    }
    Ok(())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// A byte range of the file, end exclusive.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u64,
    end: u64,
}

impl Span {
    fn new(start: u64, len: u64, what: &'static str) -> Result<Self, StatsParseError> {
        let end = start
            .checked_add(len)
            .ok_or(StatsParseError::Overflow(what))?;
        Ok(Self { start, end })
    }

    fn overlaps(self, other: Self) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// The counters of one statistics file and where their values are: read once, then used for
/// every snapshot of that file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    counters: Vec<Counter>,
    /// Offset of the data block in the file.
    data_offset: u64,
    /// Bytes of the data block that hold values.
    data_len: usize,
    /// Values in a snapshot: the sum of every counter's size.
    values: usize,
}

impl Layout {
    /// Reads and checks the header and descriptors of a statistics file.
    pub fn read(src: &(impl Source + ?Sized)) -> Result<Self, StatsParseError> {
        let mut h = [0u8; HEADER_SIZE];
        read_exact(src, &mut h, 0, "header")?;
        let name_size = u32_at(&h, 4);
        let num_desc = u32_at(&h, 8);
        let desc_offset = u64::from(u32_at(&h, 16));
        let data_offset = u64::from(u32_at(&h, 20));
        if num_desc > MAX_DESCRIPTORS {
            return Err(StatsParseError::TooManyDescriptors(num_desc));
        }
        if name_size == 0 || name_size > MAX_NAME_SIZE {
            return Err(StatsParseError::NameSize(name_size));
        }
        // Both bounded above: neither product can overflow.
        let stride = DESC_SIZE + name_size as usize;
        let desc_len = stride * num_desc as usize;
        let header = Span::new(0, HEADER_SIZE as u64, "header")?;
        let descs = Span::new(desc_offset, desc_len as u64, "descriptors")?;
        if desc_len > 0 && descs.overlaps(header) {
            return Err(StatsParseError::Overlap("descriptors", "header"));
        }
        let mut block = vec![0u8; desc_len];
        read_exact(src, &mut block, desc_offset, "descriptors")?;

        let mut counters: Vec<Counter> = Vec::with_capacity(num_desc as usize);
        let mut values = 0usize;
        for (i, d) in block.chunks_exact(stride).enumerate() {
            let index = i as u32;
            let flags = u32_at(d, 0);
            let exponent = u16_at(d, 4) as i16;
            let size = u16_at(d, 6);
            let offset = u32_at(d, 8) as usize;
            let bucket_size = u32_at(d, 12);
            let raw = &d[DESC_SIZE..];
            let nul = raw
                .iter()
                .position(|&b| b == 0)
                .ok_or(StatsParseError::NameNotTerminated(index))?;
            let name = std::str::from_utf8(&raw[..nul])
                .ok()
                .filter(|n| !n.is_empty())
                .ok_or(StatsParseError::BadName(index))?
                .to_owned();
            if counters.iter().any(|c| c.name == name) {
                return Err(StatsParseError::DuplicateName(name));
            }
            if size == 0 || size > MAX_VALUES {
                return Err(StatsParseError::ValueCount { name, size });
            }
            counters.push(Counter {
                name,
                kind: Kind::from_flags(flags),
                unit: Unit::from_flags(flags),
                base: base_from_flags(flags),
                exponent,
                size,
                bucket_size,
                offset,
                first: values,
            });
            values += usize::from(size);
        }

        // The values: each within 32-bit offsets (bounded, so no overflow in usize), none
        // overlapping another's.
        let mut ranges: Vec<(usize, usize, usize)> = counters
            .iter()
            .enumerate()
            .map(|(i, c)| (c.offset, c.offset + usize::from(c.size) * VALUE_SIZE, i))
            .collect();
        ranges.sort_unstable();
        for w in ranges.windows(2) {
            if w[0].1 > w[1].0 {
                return Err(StatsParseError::ValuesOverlap(
                    counters[w[0].2].name.clone(),
                    counters[w[1].2].name.clone(),
                ));
            }
        }
        let data_len = ranges.last().map_or(0, |r| r.1);
        if let Some(&(_, end, i)) = ranges.last().filter(|r| r.1 > MAX_DATA_LEN) {
            return Err(StatsParseError::DataTooLarge(counters[i].name.clone(), end));
        }
        let data = Span::new(data_offset, data_len as u64, "data")?;
        if data_len > 0 && data.overlaps(header) {
            return Err(StatsParseError::Overlap("data", "header"));
        }
        if data_len > 0 && desc_len > 0 && data.overlaps(descs) {
            return Err(StatsParseError::Overlap("data", "descriptors"));
        }
        Ok(Self {
            counters,
            data_offset,
            data_len,
            values,
        })
    }

    /// The counters, in the file's order.
    pub fn counters(&self) -> &[Counter] {
        &self.counters
    }

    /// The counter named `name`, if this file has it.
    pub fn counter(&self, name: &str) -> Option<&Counter> {
        self.counters.iter().find(|c| c.name == name)
    }

    /// Reads the data block of `src` into `buf` (reused between snapshots) and returns every
    /// counter's values, in the order of [`Layout::counters`], each counter's `size` values
    /// one after another.
    pub fn read_values(
        &self,
        src: &(impl Source + ?Sized),
        buf: &mut Vec<u8>,
    ) -> Result<Vec<u64>, StatsParseError> {
        buf.resize(self.data_len, 0);
        read_exact(src, buf, self.data_offset, "data")?;
        let mut out = Vec::with_capacity(self.values);
        for c in &self.counters {
            for k in 0..usize::from(c.size) {
                let at = c.offset + k * VALUE_SIZE;
                let mut v = [0u8; VALUE_SIZE];
                v.copy_from_slice(&buf[at..at + VALUE_SIZE]);
                out.push(u64::from_le_bytes(v));
            }
        }
        Ok(out)
    }

    /// The single value of scalar counter `name` in `values` (from [`Layout::read_values`]);
    /// None if this file lacks it or it is a histogram.
    pub fn value(&self, values: &[u64], name: &str) -> Option<u64> {
        let c = self.counter(name).filter(|c| c.size == 1)?;
        values.get(c.first).copied()
    }

    /// The values of `counter` in `values`.
    pub fn values_of<'v>(&self, values: &'v [u64], counter: &Counter) -> Option<&'v [u64]> {
        values.get(counter.first..counter.first + usize::from(counter.size))
    }
}
