//! The guest-physical ranges no kernel segment may occupy, whatever its entry: what a PC's
//! firmware and chipset own. Everything else in RAM is the kernel's to ask for; the boot
//! structures move out of its way ([`super::plan`]).

use firmware::layout::{BIOS_AREA_END, EBDA_START, IVT_BDA_END, MMIO_HOLE_END, MMIO_HOLE_START};

/// A range of guest-physical memory that kernels may not load into, and what owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reserved {
    /// First byte.
    pub start: u64,
    /// First byte after.
    pub end: u64,
    /// What owns it, as the error message names it.
    pub owner: &'static str,
}

/// The ranges refused to every kernel segment.
pub(crate) const RESERVED: [Reserved; 3] = [
    Reserved {
        start: 0,
        end: IVT_BDA_END,
        owner: "the real-mode interrupt vector table and BIOS data area",
    },
    Reserved {
        start: EBDA_START,
        end: BIOS_AREA_END,
        owner: "the EBDA, VGA and BIOS area (where sipi keeps the ACPI tables)",
    },
    Reserved {
        start: MMIO_HOLE_START,
        end: MMIO_HOLE_END,
        owner: "the MMIO hole (IOAPIC, local APIC)",
    },
];

/// The first reserved range that `[start, end)` overlaps, if any.
pub(crate) fn overlapping(start: u64, end: u64) -> Option<&'static Reserved> {
    RESERVED.iter().find(|r| start < r.end && r.start < end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ranges_are_found_at_their_edges() {
        assert_eq!(overlapping(0x4FF, 0x500).map(|r| r.start), Some(0));
        assert_eq!(overlapping(0x500, 0x9_FC00), None);
        assert_eq!(
            overlapping(0x9_F000, 0x9_FC01).map(|r| r.start),
            Some(EBDA_START)
        );
        assert_eq!(
            overlapping(0xF_FFFF, 0x10_0001).map(|r| r.start),
            Some(EBDA_START)
        );
        assert_eq!(overlapping(0x10_0000, MMIO_HOLE_START), None);
        assert_eq!(
            overlapping(MMIO_HOLE_START - 1, MMIO_HOLE_START + 1).map(|r| r.start),
            Some(MMIO_HOLE_START)
        );
        assert_eq!(overlapping(MMIO_HOLE_END, MMIO_HOLE_END + 0x1000), None);
    }
}
