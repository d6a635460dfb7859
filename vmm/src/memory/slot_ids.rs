//! KVM slot numbers: bounded by KVM_CAP_NR_MEMSLOTS, and recycled (the lowest free number is
//! handed out first) so that a VM that adds and deletes slots forever never runs out.

use std::collections::BTreeSet;

/// Hands out slot numbers `0..limit`.
#[derive(Debug, Clone)]
pub(crate) struct SlotIds {
    limit: u32,
    /// Every number below this has been handed out at some point.
    next: u32,
    /// Numbers below `next` that were released.
    free: BTreeSet<u32>,
}

impl SlotIds {
    /// Numbers `0..limit` (KVM's are `0..KVM_CAP_NR_MEMSLOTS` in address space 0).
    pub(crate) fn new(limit: u32) -> Self {
        Self {
            limit,
            next: 0,
            free: BTreeSet::new(),
        }
    }

    /// The lowest free number, or None if all `limit` are in use.
    pub(crate) fn alloc(&mut self) -> Option<u32> {
        if let Some(id) = self.free.pop_first() {
            return Some(id);
        }
        (self.next < self.limit).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    /// Returns `id` for reuse.
    pub(crate) fn release(&mut self, id: u32) {
        debug_assert!(id < self.next && !self.free.contains(&id));
        if id + 1 == self.next {
            self.next -= 1;
            // Keep `next` minimal so that `free` holds only holes below it.
            while self.next > 0 && self.free.remove(&(self.next - 1)) {
                self.next -= 1;
            }
        } else {
            self.free.insert(id);
        }
    }

    /// The bound.
    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::SlotIds;

    #[test]
    fn numbers_are_bounded_and_the_lowest_free_one_is_reused() {
        let mut ids = SlotIds::new(3);
        assert_eq!(
            (ids.alloc(), ids.alloc(), ids.alloc()),
            (Some(0), Some(1), Some(2))
        );
        assert_eq!(ids.alloc(), None);
        ids.release(1);
        ids.release(0);
        assert_eq!(ids.alloc(), Some(0));
        assert_eq!(ids.alloc(), Some(1));
        assert_eq!(ids.alloc(), None);
        ids.release(2);
        ids.release(1);
        ids.release(0);
        assert_eq!(
            (ids.alloc(), ids.alloc(), ids.alloc(), ids.alloc()),
            (Some(0), Some(1), Some(2), None),
            "every number is free again"
        );
    }
}
