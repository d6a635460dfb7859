//! The diff: from the slots KVM has to the slots a new flat view of guest memory needs, as an
//! ordered list of KVM_SET_USER_MEMORY_REGION steps. Pure logic, no KVM.
//!
//! # What a slot may become
//!
//! KVM (Documentation/virt/kvm/api.rst, 4.35) lets an existing slot be *moved* (new guest
//! address, same size and host address: KVM_MR_MOVE) or have its *flags* changed in place
//! (KVM_MR_FLAGS_ONLY; KVM_MEM_READONLY excepted), but never resized; slots may not overlap.
//! Growing or shrinking a slot is therefore a delete followed by an add.
//!
//! # The algorithm
//!
//! 1. **Keep what still holds.** An installed slot is kept untouched if every byte of it is
//!    still covered by the view with the same host address and flags; if only the flags changed
//!    (uniformly, and not KVM_MEM_READONLY) it is updated in place. Every other slot is
//!    *stale*.
//! 2. **Cover the rest.** The view minus the kept slots is cut into pieces, and consecutive
//!    pieces that are contiguous in guest-physical *and* host addresses with equal flags merge
//!    into one new slot each. Pieces never merge across a kept slot: merging a new region into
//!    a live slot would mean deleting that slot (unmapping memory a vCPU may be using) to save
//!    a slot number, and would cost an ioctl more, not less.
//! 3. **Move instead of delete + add** when a stale slot and a new slot have the same size,
//!    host address and flags (a region moved in guest-physical space, like a PCI BAR).
//! 4. **Compact only if needed.** If the result needs more slots than the limit, the plan is
//!    recomputed with every run of mergeable regions as one slot (slots that already are such a
//!    run are kept); if even that does not fit, the commit fails before any ioctl.
//!
//! Steps 1-3 issue one ioctl per stale slot (delete or move) plus one per new slot (add) plus
//! one per flags change. A stale slot needs at least one ioctl whatever the VMM does, and each
//! new slot at least one, so this is the minimal count for the kept slots; a region added and
//! removed inside one transaction is in neither view and costs nothing.
//!
//! # Order of the steps, and what stays mapped
//!
//! 1. Deletes of stale slots (they may overlap the new slots, and deleting first keeps the
//!    slot count at or below the larger of the old and new counts).
//! 2. Flags-only updates (in place: the memory stays mapped).
//! 3. Moves, each only once no other slot occupies its destination; a cycle of moves (two
//!    regions swapping places) is broken by turning one move into a delete (first) and an add
//!    (last).
//! 4. Adds, in ascending guest-physical address order.
//!
//! Kept slots are never touched, so memory a running vCPU uses stays mapped throughout unless
//! the change itself unmaps it. The one window where memory that stays in the view is briefly
//! unmapped: a stale slot that is *partly* still in the view (a region shrunk, a region removed
//! from the middle of a merged slot, a flags change KVM cannot do in place, a compaction) is
//! deleted before its surviving part is re-added; a vCPU touching that part in between takes
//! an MMIO exit. KVM offers no way to shrink or split a slot in place.

use std::collections::{BTreeMap, HashMap};

use super::range::GuestRange;
use super::region::RegionFlags;

/// A stretch of the flat view, or a slot: guest range, host address of its first byte, flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    /// Guest-physical range.
    pub(super) range: GuestRange,
    /// Host address of `range.start`.
    pub(super) host: u64,
    /// KVM slot flags.
    pub(super) flags: RegionFlags,
}

impl Span {
    /// Host address backing guest address `addr` (inside the range).
    fn host_at(&self, addr: u64) -> u64 {
        self.host + (addr - self.range.start)
    }

    /// The part of this span inside `[start, end)` (which must intersect it).
    fn clip(&self, start: u64, end: u64) -> Span {
        let start = start.max(self.range.start);
        Span {
            range: GuestRange {
                start,
                end: end.min(self.range.end),
            },
            host: self.host_at(start),
            flags: self.flags,
        }
    }

    /// True if `next` starts where this ends, in guest and host addresses, with equal flags.
    fn continues_into(&self, next: &Span) -> bool {
        self.range.end == next.range.start
            && self.host + self.range.size() == next.host
            && self.flags == next.flags
    }
}

/// A slot KVM has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InstalledSlot {
    /// Slot number.
    pub(super) id: u32,
    /// What it maps.
    pub(super) span: Span,
}

/// One KVM_SET_USER_MEMORY_REGION.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Delete slot `id` (which mapped `span`).
    Delete { id: u32, span: Span },
    /// Give slot `id` the flags of `span` (same range and host address).
    UpdateFlags { id: u32, span: Span },
    /// Move slot `id` from `from` to `to` (same size, host address and flags).
    Move { id: u32, from: Span, to: Span },
    /// Create a slot for `span` (the slot number is chosen when it is applied).
    Add { span: Span },
}

/// The ordered steps of one commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Plan {
    /// Steps in the order they must be issued.
    pub(super) steps: Vec<Step>,
    /// Slots KVM has once every step is applied.
    pub(super) slots_after: usize,
    /// True if the plan had to merge kept slots to fit the slot limit.
    pub(super) compacted: bool,
}

/// How much of the installed slots the plan keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// Keep every slot that still holds (the default).
    Preserve,
    /// One slot per maximal run of mergeable regions.
    Compact,
}

/// What becomes of an installed slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Keep,
    UpdateFlags(RegionFlags),
    Stale,
}

/// Plans the steps from `installed` to `view`. Both must be sorted by guest address and free
/// of overlaps. Fails with the number of slots needed if even a compacted plan needs more than
/// `limit`.
pub(super) fn plan(view: &[Span], installed: &[InstalledSlot], limit: u32) -> Result<Plan, usize> {
    let preserving = plan_with(view, installed, Policy::Preserve);
    if preserving.slots_after <= limit as usize {
        return Ok(preserving);
    }
    let compact = plan_with(view, installed, Policy::Compact);
    if compact.slots_after <= limit as usize {
        Ok(compact)
    } else {
        Err(compact.slots_after)
    }
}

/// Merges consecutive spans that continue into each other.
pub(super) fn merge_runs(spans: impl IntoIterator<Item = Span>) -> Vec<Span> {
    let mut runs: Vec<Span> = Vec::new();
    for s in spans {
        match runs.last_mut() {
            Some(last) if last.continues_into(&s) => last.range.end = s.range.end,
            _ => runs.push(s),
        }
    }
    runs
}

fn plan_with(view: &[Span], installed: &[InstalledSlot], policy: Policy) -> Plan {
    let (verdicts, new_slots) = match policy {
        Policy::Preserve => {
            let verdicts: Vec<Verdict> = installed.iter().map(|s| judge(view, s)).collect();
            let kept: Vec<GuestRange> = installed
                .iter()
                .zip(&verdicts)
                .filter(|(_, v)| **v != Verdict::Stale)
                .map(|(s, _)| s.span.range)
                .collect();
            (verdicts, merge_runs(subtract(view, &kept)))
        }
        Policy::Compact => {
            let runs = merge_runs(view.iter().copied());
            let by_start: HashMap<u64, usize> = runs
                .iter()
                .enumerate()
                .map(|(i, r)| (r.range.start, i))
                .collect();
            let mut taken = vec![false; runs.len()];
            let verdicts = installed
                .iter()
                .map(|s| {
                    let Some(&i) = by_start.get(&s.span.range.start) else {
                        return Verdict::Stale;
                    };
                    let run = runs[i];
                    if run.range != s.span.range || run.host != s.span.host {
                        Verdict::Stale
                    } else if run.flags == s.span.flags {
                        taken[i] = true;
                        Verdict::Keep
                    } else if s.span.flags.updatable_to(run.flags) {
                        taken[i] = true;
                        Verdict::UpdateFlags(run.flags)
                    } else {
                        Verdict::Stale
                    }
                })
                .collect();
            let new_slots = runs
                .into_iter()
                .zip(taken)
                .filter(|(_, t)| !t)
                .map(|(r, _)| r)
                .collect();
            (verdicts, new_slots)
        }
    };
    assemble(installed, &verdicts, new_slots, policy == Policy::Compact)
}

/// Keep, update or drop one installed slot, given the view.
fn judge(view: &[Span], slot: &InstalledSlot) -> Verdict {
    let s = slot.span;
    let first = view.partition_point(|v| v.range.end <= s.range.start);
    let mut covered = s.range.start;
    let mut flags = None;
    for v in &view[first..] {
        if covered >= s.range.end {
            break;
        }
        if v.range.start > covered || v.host_at(covered) != s.host_at(covered) {
            return Verdict::Stale;
        }
        match flags {
            None => flags = Some(v.flags),
            Some(f) if f != v.flags => return Verdict::Stale,
            Some(_) => {}
        }
        covered = v.range.end;
    }
    match flags {
        _ if covered < s.range.end => Verdict::Stale,
        Some(f) if f == s.flags => Verdict::Keep,
        Some(f) if s.flags.updatable_to(f) => Verdict::UpdateFlags(f),
        _ => Verdict::Stale,
    }
}

/// The view minus the `kept` ranges (sorted, disjoint), as clipped spans in order.
fn subtract(view: &[Span], kept: &[GuestRange]) -> Vec<Span> {
    let mut pieces = Vec::new();
    let mut k = 0;
    for v in view {
        let mut at = v.range.start;
        while at < v.range.end {
            while k < kept.len() && kept[k].end <= at {
                k += 1;
            }
            match kept.get(k) {
                Some(r) if r.start <= at => at = r.end.min(v.range.end),
                Some(r) => {
                    let end = r.start.min(v.range.end);
                    pieces.push(v.clip(at, end));
                    at = end;
                }
                None => {
                    pieces.push(v.clip(at, v.range.end));
                    at = v.range.end;
                }
            }
        }
    }
    pieces
}

/// Turns verdicts and new slots into ordered steps, pairing stale slots with new slots as
/// moves where possible.
fn assemble(
    installed: &[InstalledSlot],
    verdicts: &[Verdict],
    new_slots: Vec<Span>,
    compacted: bool,
) -> Plan {
    let mut deletes = Vec::new();
    let mut updates = Vec::new();
    let mut kept = 0usize;
    // New slots by what a move must preserve: size, host address, flags.
    let mut movable: HashMap<(u64, u64, RegionFlags), Vec<usize>> = HashMap::new();
    for (i, s) in new_slots.iter().enumerate().rev() {
        movable
            .entry((s.range.size(), s.host, s.flags))
            .or_default()
            .push(i);
    }
    let mut adds: Vec<Option<Span>> = new_slots.into_iter().map(Some).collect();
    let mut moves = Vec::new();
    for (slot, verdict) in installed.iter().zip(verdicts) {
        match *verdict {
            Verdict::Keep => kept += 1,
            Verdict::UpdateFlags(flags) => {
                kept += 1;
                updates.push(Step::UpdateFlags {
                    id: slot.id,
                    span: Span { flags, ..slot.span },
                });
            }
            Verdict::Stale => {
                let key = (slot.span.range.size(), slot.span.host, slot.span.flags);
                match movable.get_mut(&key).and_then(Vec::pop) {
                    Some(i) => {
                        let to = adds[i].take().expect("each new slot pairs once");
                        moves.push((slot.id, slot.span, to));
                    }
                    None => deletes.push(Step::Delete {
                        id: slot.id,
                        span: slot.span,
                    }),
                }
            }
        }
    }
    let (ordered_moves, broken) = order_moves(moves);
    let mut adds: Vec<Span> = adds.into_iter().flatten().collect();
    for (id, from, to) in broken {
        deletes.push(Step::Delete { id, span: from });
        adds.push(to);
    }
    adds.sort_by_key(|s| s.range.start);
    let slots_after = kept + ordered_moves.len() + adds.len();
    let mut steps = deletes;
    steps.extend(updates);
    steps.extend(ordered_moves);
    steps.extend(adds.into_iter().map(|span| Step::Add { span }));
    Plan {
        steps,
        slots_after,
        compacted,
    }
}

type PendingMove = (u32, Span, Span);

/// Orders moves so that each destination is free when it is issued (the only slots that can
/// still be there are other moving slots at their old places); moves caught in a cycle come
/// back as the second value, to become a delete and an add.
fn order_moves(mut pending: Vec<PendingMove>) -> (Vec<Step>, Vec<PendingMove>) {
    // Old places of the moves not yet issued, by start: disjoint, as installed slots are.
    let mut occupied: BTreeMap<u64, (u64, usize)> = pending
        .iter()
        .enumerate()
        .map(|(i, (_, from, _))| (from.range.start, (from.range.end, i)))
        .collect();
    let blocked = |occupied: &BTreeMap<u64, (u64, usize)>, i: usize, to: &GuestRange| {
        occupied
            .range(..to.end)
            .rev()
            .take_while(|(_, (end, _))| *end > to.start)
            .any(|(_, (_, j))| *j != i)
    };
    let mut ordered = Vec::new();
    let mut broken = Vec::new();
    let mut done = vec![false; pending.len()];
    let mut left = pending.len();
    while left > 0 {
        let mut progress = false;
        for (i, (id, from, to)) in pending.iter().enumerate() {
            if done[i] || blocked(&occupied, i, &to.range) {
                continue;
            }
            ordered.push(Step::Move {
                id: *id,
                from: *from,
                to: *to,
            });
            occupied.remove(&from.range.start);
            done[i] = true;
            left -= 1;
            progress = true;
        }
        if !progress {
            // A cycle: free the first remaining move's old place by deleting it.
            let i = done.iter().position(|d| !d).expect("moves are left");
            occupied.remove(&pending[i].1.range.start);
            done[i] = true;
            left -= 1;
            broken.push(pending[i]);
        }
    }
    pending.clear();
    (ordered, broken)
}

#[cfg(test)]
mod tests;
