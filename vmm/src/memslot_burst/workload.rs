//! The burst: which region each change adds or removes, and the fewest ioctls any VMM needs
//! to apply it with given transaction boundaries.
//!
//! A *change* is one add or one remove of a small region (one KVM_SET_USER_MEMORY_REGION when
//! applied naively). The sequence is QEMU's pattern (a small region is added, then deleted
//! again) with [`BURST_IN_FLIGHT`] regions alive at a time: the first [`BURST_IN_FLIGHT`]
//! changes add regions 0, 1, ...; after that the changes alternate between removing the oldest
//! live region and adding the next one. `N` changes thus make about `N / 2` add/delete pairs,
//! and leave the newest (up to [`BURST_IN_FLIGHT`]) regions mapped.
//!
//! Region `k` is [`BURST_REGION_SIZE`] bytes at window position `k mod BURST_WINDOW_REGIONS`;
//! the window starts right after the burst VM's RAM in both guest-physical and host address
//! (the same pool mapping), so consecutive live regions can merge into one slot, and a region
//! at position 0 could merge with RAM, which the transaction layer must not do while vCPUs
//! use that RAM.

use std::collections::BTreeSet;
use std::sync::Arc;

use firmware::layout::PAGE_SIZE;
use vm_memory::MmapRegion;

use super::guest::BURST_RAM_SIZE;
use crate::memory::{Backing, Region, RegionFlags};

/// Size of one burst region.
pub const BURST_REGION_SIZE: u64 = PAGE_SIZE;
/// Regions alive at a time once the burst is under way.
pub const BURST_IN_FLIGHT: u64 = 16;
/// Positions in the window; region `k` uses position `k mod BURST_WINDOW_REGIONS`.
pub const BURST_WINDOW_REGIONS: u64 = 512;
/// Guest address (and pool offset) of window position 0: right after RAM.
pub const BURST_WINDOW_BASE: u64 = BURST_RAM_SIZE;
/// Bytes of the pool mapping: RAM, then the window.
pub const BURST_POOL_SIZE: u64 = BURST_WINDOW_BASE + BURST_WINDOW_REGIONS * BURST_REGION_SIZE;

const _: () = assert!(BURST_WINDOW_REGIONS > BURST_IN_FLIGHT);

/// One change of the burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Add region `k`.
    Add(u64),
    /// Remove region `k`.
    Remove(u64),
}

/// Change number `j` (from 0).
pub fn change(j: u64) -> Change {
    if j < BURST_IN_FLIGHT {
        return Change::Add(j);
    }
    let k = j - BURST_IN_FLIGHT;
    if k.is_multiple_of(2) {
        Change::Remove(k / 2)
    } else {
        Change::Add(BURST_IN_FLIGHT + k / 2)
    }
}

/// The first `n` changes.
pub fn changes(n: u64) -> impl Iterator<Item = Change> {
    (0..n).map(change)
}

/// Completed add/delete pairs (regions added and removed again) in `n` changes.
pub fn pairs(n: u64) -> u64 {
    n.saturating_sub(BURST_IN_FLIGHT).div_ceil(2)
}

/// Window position of region `k`.
pub fn position(k: u64) -> u64 {
    k % BURST_WINDOW_REGIONS
}

/// Guest address of region `k` (also its offset in the pool).
pub fn guest_addr(k: u64) -> u64 {
    BURST_WINDOW_BASE + position(k) * BURST_REGION_SIZE
}

/// Region `k`, backed by the pool at the offset equal to its guest address.
pub fn region(pool: &Arc<MmapRegion>, k: u64) -> Region {
    let addr = guest_addr(k);
    Region::new(
        addr,
        BURST_REGION_SIZE,
        Backing::new(Arc::clone(pool), addr),
        RegionFlags::NONE,
    )
}

/// The fewest KVM_SET_USER_MEMORY_REGION calls that apply the first `n` changes when the
/// map must be published after every `per_transaction` changes (and at the end), starting from
/// no burst region, without touching a slot that still holds (RAM's, or a burst slot whose
/// regions are all still there): at each boundary every burst slot that no longer holds needs
/// one ioctl (nothing else can be done with it: no region of the same size and host address
/// lives elsewhere), and every maximal run of live positions not covered by a holding slot
/// needs one. Computed on window positions, independently of the memory map.
pub fn minimal_ioctls(n: u64, per_transaction: u64) -> u64 {
    let per_transaction = per_transaction.max(1);
    let mut live: BTreeSet<u64> = BTreeSet::new();
    // Burst slots as (first position, count).
    let mut slots: Vec<(u64, u64)> = Vec::new();
    let mut total = 0;
    let mut j = 0;
    while j < n {
        let end = (j + per_transaction).min(n);
        for c in (j..end).map(change) {
            match c {
                Change::Add(k) => live.insert(position(k)),
                Change::Remove(k) => live.remove(&position(k)),
            };
        }
        j = end;
        let (holding, stale): (Vec<_>, Vec<_>) = slots
            .into_iter()
            .partition(|(p, len)| (*p..p + len).all(|q| live.contains(&q)));
        total += stale.len() as u64;
        let covered: BTreeSet<u64> = holding.iter().flat_map(|(p, len)| *p..p + len).collect();
        slots = holding;
        let mut run: Option<(u64, u64)> = None;
        for &q in live.iter().filter(|q| !covered.contains(q)) {
            run = match run {
                Some((p, len)) if p + len == q => Some((p, len + 1)),
                Some(r) => {
                    slots.push(r);
                    total += 1;
                    Some((q, 1))
                }
                None => Some((q, 1)),
            };
        }
        if let Some(r) = run {
            slots.push(r);
            total += 1;
        }
    }
    total
}

/// Burst slots the minimal diff leaves at the end (for the report).
pub fn live_regions(n: u64) -> u64 {
    let adds = changes(n).filter(|c| matches!(c, Change::Add(_))).count() as u64;
    adds - (n - adds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_fills_then_alternates_remove_oldest_add_next() {
        let first: Vec<Change> = changes(BURST_IN_FLIGHT + 4).collect();
        assert_eq!(first[0], Change::Add(0));
        assert_eq!(
            first[BURST_IN_FLIGHT as usize - 1],
            Change::Add(BURST_IN_FLIGHT - 1)
        );
        assert_eq!(
            &first[BURST_IN_FLIGHT as usize..],
            &[
                Change::Remove(0),
                Change::Add(BURST_IN_FLIGHT),
                Change::Remove(1),
                Change::Add(BURST_IN_FLIGHT + 1)
            ]
        );
        assert_eq!(pairs(BURST_IN_FLIGHT + 4), 2);
        assert_eq!(pairs(12_016), 6000);
        assert_eq!(live_regions(6000), BURST_IN_FLIGHT);
        assert_eq!(live_regions(6001), BURST_IN_FLIGHT - 1);
    }

    #[test]
    fn minimal_ioctls_of_one_change_per_transaction_is_one_per_change() {
        for n in [1, 5, 16, 17, 100, 1500] {
            assert_eq!(minimal_ioctls(n, 1), n);
        }
    }

    #[test]
    fn minimal_ioctls_of_one_transaction_is_one_per_live_run() {
        // 6000 changes: regions 2992..3008 live, positions 432..448: one run.
        assert_eq!(minimal_ioctls(6000, u64::MAX), 1);
        // Live regions straddling the end of the window make two runs.
        let n = (BURST_WINDOW_REGIONS - 4) * 2 + BURST_IN_FLIGHT;
        assert_eq!(minimal_ioctls(n, u64::MAX), 2);
        assert_eq!(minimal_ioctls(0, u64::MAX), 0);
    }

    #[test]
    fn regions_tile_the_window_after_ram() {
        assert_eq!(guest_addr(0), BURST_RAM_SIZE);
        assert_eq!(guest_addr(BURST_WINDOW_REGIONS), BURST_RAM_SIZE);
        assert_eq!(
            guest_addr(BURST_WINDOW_REGIONS - 1) + BURST_REGION_SIZE,
            BURST_POOL_SIZE
        );
    }
}
