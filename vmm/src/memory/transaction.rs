//! A transaction on the memory map: any number of region changes, checked as they are made,
//! applied to KVM together by [`Transaction::commit`]. This module owns the transaction, from
//! [`MemoryMap::begin`] to the commit; the map knows nothing of it and offers only its
//! committed regions, its limits, and the commit of a final view.

use std::collections::BTreeMap;

use super::error::MapError;
use super::map::{CommitStats, MemoryMap};
use super::region::{Region, RegionFlags};
use super::sink::MemslotSink;

/// Pending changes to a [`MemoryMap`]. Each call checks its change against the regions as the
/// transaction has left them so far and either applies it to the pending view or returns an
/// error and leaves the view as it was. Only the final view counts: a region added and removed
/// again before the commit costs no ioctl. Dropping the transaction discards it.
#[must_use = "a transaction does nothing until it is committed"]
pub struct Transaction<'m, S: MemslotSink> {
    map: &'m mut MemoryMap<S>,
    pending: BTreeMap<u64, Region>,
    changes: u64,
}

impl<S: MemslotSink> MemoryMap<S> {
    /// Starts a transaction. Nothing reaches KVM until [`Transaction::commit`]; dropping the
    /// transaction discards it.
    pub fn begin(&mut self) -> Transaction<'_, S> {
        Transaction {
            pending: self.committed().clone(),
            map: self,
            changes: 0,
        }
    }
}

impl<S: MemslotSink> Transaction<'_, S> {
    /// Adds `region`. Errors: zero size, an address or size not page aligned, a range beyond
    /// the guest's physical address width or its backing mapping, an overlap with another
    /// region.
    pub fn add(&mut self, region: Region) -> Result<(), MapError> {
        region.validate(self.map.limits().phys_bits)?;
        self.check_free(&region, None)?;
        self.pending.insert(region.guest_addr, region);
        self.changes += 1;
        Ok(())
    }

    /// Removes the region that starts at `guest_addr` and returns it.
    pub fn remove(&mut self, guest_addr: u64) -> Result<Region, MapError> {
        let region = self
            .pending
            .remove(&guest_addr)
            .ok_or(MapError::NoRegion(guest_addr))?;
        self.changes += 1;
        Ok(region)
    }

    /// Gives the region that starts at `guest_addr` a new size (same start, same host memory
    /// from the same offset), with the checks of [`Transaction::add`].
    pub fn resize(&mut self, guest_addr: u64, size: u64) -> Result<(), MapError> {
        let old = self
            .pending
            .get(&guest_addr)
            .ok_or(MapError::NoRegion(guest_addr))?;
        let new = Region {
            size,
            ..old.clone()
        };
        new.validate(self.map.limits().phys_bits)?;
        self.check_free(&new, Some(guest_addr))?;
        self.pending.insert(guest_addr, new);
        self.changes += 1;
        Ok(())
    }

    /// Gives the region that starts at `guest_addr` new flags.
    pub fn set_flags(&mut self, guest_addr: u64, flags: RegionFlags) -> Result<(), MapError> {
        let region = self
            .pending
            .get_mut(&guest_addr)
            .ok_or(MapError::NoRegion(guest_addr))?;
        region.flags = flags;
        self.changes += 1;
        Ok(())
    }

    /// Applies the transaction: see the `plan` module for the ioctls issued and their order.
    /// Fails before any ioctl if the result needs more slots than the limit.
    pub fn commit(self) -> Result<CommitStats, MapError> {
        self.map.commit(self.pending, self.changes)
    }

    /// Fails if `region` overlaps a pending region other than the one at `skip`.
    fn check_free(&self, region: &Region, skip: Option<u64>) -> Result<(), MapError> {
        let range = region.range();
        // Regions are disjoint, so the only candidates are the last one starting before the
        // end (after skipping `skip`) and, below it, nothing that reaches past its start.
        let hit = self
            .pending
            .range(..range.end)
            .rev()
            .find(|(start, _)| Some(**start) != skip)
            .filter(|(_, r)| r.range().overlaps(&range));
        match hit {
            Some((_, existing)) => Err(MapError::Overlap {
                new: range,
                existing: existing.range(),
            }),
            None => Ok(()),
        }
    }
}
