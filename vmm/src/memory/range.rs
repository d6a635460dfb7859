//! Guest-physical ranges: what regions, slots and errors are about.

use std::fmt;

/// A half-open guest-physical range `[start, end)`, shown as `0x1000..0x2000` in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GuestRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl GuestRange {
    /// The range of `size` bytes at `start` (saturating at the top of the address space; a
    /// region that would wrap is rejected when it is added to a transaction).
    pub fn new(start: u64, size: u64) -> Self {
        Self {
            start,
            end: start.saturating_add(size),
        }
    }

    /// Bytes in the range.
    pub fn size(&self) -> u64 {
        self.end - self.start
    }

    /// True if the two ranges share at least one byte.
    pub fn overlaps(&self, other: &GuestRange) -> bool {
        self.start < other.end && other.start < self.end
    }
}

impl fmt::Display for GuestRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}..{:#x}", self.start, self.end)
    }
}
