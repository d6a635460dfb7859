//! The guest memory map: the committed regions, the slots KVM has for them, and the
//! keep-alive references that make those slots sound.

use std::collections::BTreeMap;
use std::sync::Arc;

use kvm_bindings::kvm_userspace_memory_region;
use vm_memory::MmapRegion;

use super::error::{MapError, SlotOpKind};
use super::plan::{self, InstalledSlot, Span, Step};
use super::range::GuestRange;
use super::region::{Region, RegionFlags};
use super::sink::MemslotSink;
use super::slot_ids::SlotIds;
use crate::kvm::KvmHost;

/// The bounds a map enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapLimits {
    /// Slot numbers `0..slots` (KVM_CAP_NR_MEMSLOTS, or fewer).
    pub slots: u32,
    /// The guest's physical address width in bits.
    pub phys_bits: u32,
}

impl MapLimits {
    /// KVM's slot limit and the guest address width KVM's CPUID advertises.
    pub fn of(host: &KvmHost) -> Self {
        Self {
            slots: host.nr_memslots,
            phys_bits: host.phys_addr_bits(),
        }
    }
}

/// A slot KVM has, as [`MemoryMap::slots`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotInfo {
    /// Slot number.
    pub id: u32,
    /// Guest-physical range.
    pub range: GuestRange,
    /// Host address of the first byte.
    pub host_addr: u64,
    /// Flags.
    pub flags: RegionFlags,
}

/// What one commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// add / remove / resize / set_flags calls in the transaction.
    pub changes: u64,
    /// KVM_SET_USER_MEMORY_REGION calls issued.
    pub ioctls: u32,
    /// Slots created.
    pub added: u32,
    /// Slots deleted.
    pub deleted: u32,
    /// Slots moved in place (KVM_MR_MOVE).
    pub moved: u32,
    /// Slots whose flags changed in place (KVM_MR_FLAGS_ONLY).
    pub flags_updated: u32,
    /// Slots KVM has after the commit.
    pub slots: u32,
    /// True if the slot limit forced merging live slots (see the `plan` module).
    pub compacted: bool,
}

/// A slot KVM has, and the mappings its host range lies in (kept alive while it exists).
struct SlotRecord {
    id: u32,
    span: Span,
    keep: Vec<Arc<MmapRegion>>,
}

/// The guest memory map of one VM: regions changed only through transactions
/// ([`MemoryMap::begin`], in the `transaction` module), each committed as the minimal ordered
/// set of KVM_SET_USER_MEMORY_REGION calls (the `plan` module).
///
/// The map owns a reference to every host mapping a KVM slot points into, and deletes its
/// slots when dropped, so host memory is never unmapped while the guest can reach it.
pub struct MemoryMap<S: MemslotSink> {
    sink: S,
    limits: MapLimits,
    regions: BTreeMap<u64, Region>,
    installed: BTreeMap<u64, SlotRecord>,
    ids: SlotIds,
}

impl<S: MemslotSink> MemoryMap<S> {
    /// An empty map whose slots go to `sink` (a VM without slots).
    pub fn new(sink: S, limits: MapLimits) -> Self {
        Self {
            sink,
            limits,
            regions: BTreeMap::new(),
            installed: BTreeMap::new(),
            ids: SlotIds::new(limits.slots),
        }
    }

    /// The committed regions, by guest address: where a transaction starts from.
    pub(super) fn committed(&self) -> &BTreeMap<u64, Region> {
        &self.regions
    }

    /// The slots KVM has, by guest address.
    pub fn slots(&self) -> Vec<SlotInfo> {
        self.installed
            .values()
            .map(|r| SlotInfo {
                id: r.id,
                range: r.span.range,
                host_addr: r.span.host,
                flags: r.span.flags,
            })
            .collect()
    }

    /// The bounds.
    pub fn limits(&self) -> MapLimits {
        self.limits
    }

    /// The sink (for its statistics).
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The sink, mutably (to clear its statistics).
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Plans and applies the diff from KVM's slots to `pending`, then makes `pending` the
    /// committed regions. On a KVM error the committed regions stay as they were while the slot
    /// records follow every ioctl that succeeded, so the next commit (even of an empty
    /// transaction) converges KVM on the committed regions again.
    pub(super) fn commit(
        &mut self,
        pending: BTreeMap<u64, Region>,
        changes: u64,
    ) -> Result<CommitStats, MapError> {
        let view: Vec<Span> = pending.values().map(span_of).collect();
        let installed: Vec<InstalledSlot> = self
            .installed
            .values()
            .map(|r| InstalledSlot {
                id: r.id,
                span: r.span,
            })
            .collect();
        let plan = plan::plan(&view, &installed, self.limits.slots).map_err(|needed| {
            MapError::SlotLimit {
                needed,
                limit: self.limits.slots,
            }
        })?;
        let mut stats = CommitStats {
            changes,
            compacted: plan.compacted,
            ..CommitStats::default()
        };
        for step in &plan.steps {
            self.apply(step, &pending)?;
            stats.ioctls += 1;
            match step {
                Step::Add { .. } => stats.added += 1,
                Step::Delete { .. } => stats.deleted += 1,
                Step::Move { .. } => stats.moved += 1,
                Step::UpdateFlags { .. } => stats.flags_updated += 1,
            }
        }
        self.regions = pending;
        stats.slots = self.installed.len() as u32;
        Ok(stats)
    }

    /// Issues one step and records its effect.
    fn apply(&mut self, step: &Step, view: &BTreeMap<u64, Region>) -> Result<(), MapError> {
        match *step {
            Step::Delete { id, span } => {
                self.ioctl(SlotOpKind::Delete, id, span, 0, RegionFlags::NONE)?;
                self.installed.remove(&span.range.start);
                self.ids.release(id);
            }
            Step::UpdateFlags { id, span } => {
                self.ioctl(
                    SlotOpKind::UpdateFlags,
                    id,
                    span,
                    span.range.size(),
                    span.flags,
                )?;
                if let Some(r) = self.installed.get_mut(&span.range.start) {
                    r.span.flags = span.flags;
                }
            }
            Step::Move { id, from, to } => {
                self.ioctl(SlotOpKind::Move, id, to, to.range.size(), to.flags)?;
                if let Some(mut r) = self.installed.remove(&from.range.start) {
                    r.span = to;
                    self.installed.insert(to.range.start, r);
                }
            }
            Step::Add { span } => {
                let Some(id) = self.ids.alloc() else {
                    // The plan never needs more slots than the limit; stay an error regardless.
                    return Err(MapError::SlotLimit {
                        needed: self.installed.len() + 1,
                        limit: self.limits.slots,
                    });
                };
                let keep = mappings_under(view, span.range);
                if let Err(e) = self.ioctl(SlotOpKind::Add, id, span, span.range.size(), span.flags)
                {
                    self.ids.release(id);
                    return Err(e);
                }
                self.installed
                    .insert(span.range.start, SlotRecord { id, span, keep });
            }
        }
        Ok(())
    }

    fn ioctl(
        &mut self,
        op: SlotOpKind,
        slot: u32,
        span: Span,
        memory_size: u64,
        flags: RegionFlags,
    ) -> Result<(), MapError> {
        let region = kvm_userspace_memory_region {
            slot,
            flags: flags.bits(),
            guest_phys_addr: span.range.start,
            memory_size,
            userspace_addr: span.host,
        };
        // SAFETY: a non-empty slot maps host memory inside the mappings of the regions that
        // cover it (the plan only builds slots from the view); the slot's record holds an `Arc`
        // to each of those mappings until the slot is deleted (here, or when the map drops), so
        // the memory stays mapped for as long as KVM can reach it. A delete maps nothing.
        unsafe { self.sink.set_user_memory_region(region) }.map_err(|source| MapError::Kvm {
            op,
            slot,
            range: span.range,
            source,
        })
    }
}

impl<S: MemslotSink> Drop for MemoryMap<S> {
    /// Deletes every slot so that no slot outlives the mappings this map keeps alive. A slot
    /// KVM refuses to delete keeps its mappings forever (leaked), which is safe.
    fn drop(&mut self) {
        let records = std::mem::take(&mut self.installed);
        for r in records.into_values() {
            if self
                .ioctl(SlotOpKind::Delete, r.id, r.span, 0, RegionFlags::NONE)
                .is_err()
            {
                std::mem::forget(r.keep);
            }
        }
    }
}

/// The planner's view of a region.
fn span_of(r: &Region) -> Span {
    Span {
        range: r.range(),
        host: r.host_addr(),
        flags: r.flags,
    }
}

/// The distinct mappings behind the regions that cover `range`.
fn mappings_under(view: &BTreeMap<u64, Region>, range: GuestRange) -> Vec<Arc<MmapRegion>> {
    let first = view
        .range(..=range.start)
        .next_back()
        .map_or(range.start, |(start, _)| *start);
    let mut keep: Vec<Arc<MmapRegion>> = Vec::new();
    for r in view.range(first..range.end).map(|(_, r)| r) {
        if r.range().overlaps(&range) && !keep.iter().any(|k| Arc::ptr_eq(k, r.backing.mapping())) {
            keep.push(Arc::clone(r.backing.mapping()));
        }
    }
    keep
}
