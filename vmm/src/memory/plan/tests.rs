//! Pure-logic tests of the planner: hand-worked cases, then random sequences of views applied
//! to a model of KVM's slot rules (api.rst 4.35), checking legality, coverage and minimality.

use std::collections::BTreeMap;

use super::*;

const P: u64 = 0x1000;
const HOST_A: u64 = 0x7f00_0000_0000;
const HOST_B: u64 = 0x7e00_0000_0000;
const NONE: RegionFlags = RegionFlags::NONE;
const DIRTY: RegionFlags = RegionFlags::LOG_DIRTY_PAGES;
const RO: RegionFlags = RegionFlags::READONLY;

/// `pages` pages at page `at`, backed by `host` at the same offset (so neighbours merge).
fn span(at: u64, pages: u64, host: u64, flags: RegionFlags) -> Span {
    Span {
        range: GuestRange::new(at * P, pages * P),
        host: host + at * P,
        flags,
    }
}

fn slot(id: u32, span: Span) -> InstalledSlot {
    InstalledSlot { id, span }
}

/// KVM's slot table and its rules for KVM_SET_USER_MEMORY_REGION.
#[derive(Default)]
struct KvmModel {
    slots: BTreeMap<u32, Span>,
    next_id: u32,
}

impl KvmModel {
    fn installed(&self) -> Vec<InstalledSlot> {
        let mut v: Vec<_> = self.slots.iter().map(|(id, s)| slot(*id, *s)).collect();
        v.sort_by_key(|s| s.span.range.start);
        v
    }

    fn overlaps_other(&self, id: Option<u32>, r: &GuestRange) -> bool {
        self.slots
            .iter()
            .any(|(i, s)| Some(*i) != id && s.range.overlaps(r))
    }

    fn apply(&mut self, step: &Step) {
        match *step {
            Step::Delete { id, span } => {
                assert_eq!(
                    self.slots.remove(&id),
                    Some(span),
                    "delete of a slot KVM lacks"
                );
            }
            Step::UpdateFlags { id, span } => {
                let old = self.slots[&id];
                assert_eq!((old.range, old.host), (span.range, span.host));
                assert!(
                    old.flags.updatable_to(span.flags),
                    "READONLY toggled in place"
                );
                assert_ne!(old.flags, span.flags, "a no-op flags update");
                self.slots.insert(id, span);
            }
            Step::Move { id, from, to } => {
                assert_eq!(self.slots[&id], from);
                assert_eq!(
                    (from.range.size(), from.host, from.flags),
                    (to.range.size(), to.host, to.flags)
                );
                assert!(
                    !self.overlaps_other(Some(id), &to.range),
                    "move onto another slot"
                );
                self.slots.insert(id, to);
            }
            Step::Add { span } => {
                assert!(span.range.size() > 0);
                assert!(
                    !self.overlaps_other(None, &span.range),
                    "add overlaps a slot: {span:?}"
                );
                self.slots.insert(self.next_id, span);
                self.next_id += 1;
            }
        }
    }
}

/// Every page of `spans` as (guest page, host address, flags).
fn pages(spans: impl IntoIterator<Item = Span>) -> Vec<(u64, u64, RegionFlags)> {
    let mut v: Vec<_> = spans
        .into_iter()
        .flat_map(|s| {
            (s.range.start..s.range.end)
                .step_by(P as usize)
                .map(move |a| (a, s.host_at(a), s.flags))
        })
        .collect();
    v.sort_unstable();
    v
}

/// Plans, applies to the model, and checks: every step legal, KVM ends up mapping exactly the
/// view, slots that still held were not touched.
fn apply_and_check(kvm: &mut KvmModel, view: &[Span], limit: u32) -> Plan {
    let before = kvm.installed();
    let plan = plan(view, &before, limit).expect("fits");
    for step in &plan.steps {
        kvm.apply(step);
    }
    assert_eq!(
        pages(kvm.slots.values().copied()),
        pages(view.iter().copied())
    );
    assert_eq!(kvm.slots.len(), plan.slots_after);
    assert!(kvm.slots.len() <= limit as usize);
    if !plan.compacted {
        for s in &before {
            if judge(view, s) == Verdict::Keep {
                let touched = plan.steps.iter().any(|st| match st {
                    Step::Delete { id, .. }
                    | Step::UpdateFlags { id, .. }
                    | Step::Move { id, .. } => *id == s.id,
                    Step::Add { .. } => false,
                });
                assert!(!touched, "slot {s:?} still held but was touched");
            }
        }
    }
    plan
}

fn kinds(plan: &Plan) -> Vec<&'static str> {
    plan.steps
        .iter()
        .map(|s| match s {
            Step::Delete { .. } => "delete",
            Step::UpdateFlags { .. } => "flags",
            Step::Move { .. } => "move",
            Step::Add { .. } => "add",
        })
        .collect()
}

#[test]
fn nothing_to_do_costs_nothing() {
    let mut kvm = KvmModel::default();
    assert!(apply_and_check(&mut kvm, &[], 8).steps.is_empty());
    let view = [span(0, 4, HOST_A, NONE)];
    apply_and_check(&mut kvm, &view, 8);
    assert!(apply_and_check(&mut kvm, &view, 8).steps.is_empty());
}

#[test]
fn adjacent_regions_contiguous_in_guest_and_host_merge_into_one_slot() {
    let view: Vec<Span> = (0..256).map(|i| span(i, 1, HOST_A, NONE)).collect();
    let plan = apply_and_check(&mut KvmModel::default(), &view, 8);
    assert_eq!(
        plan.steps,
        vec![Step::Add {
            span: span(0, 256, HOST_A, NONE)
        }]
    );
}

#[test]
fn regions_split_by_host_address_flags_or_a_gap_do_not_merge() {
    let view = [
        span(0, 1, HOST_A, NONE),
        span(1, 1, HOST_B, NONE),
        span(2, 1, HOST_B, DIRTY),
        span(4, 1, HOST_B, DIRTY),
    ];
    let plan = apply_and_check(&mut KvmModel::default(), &view, 8);
    assert_eq!(kinds(&plan), ["add"; 4]);
}

#[test]
fn removing_from_the_middle_deletes_first_then_re_adds_both_sides() {
    let mut kvm = KvmModel::default();
    apply_and_check(&mut kvm, &[span(0, 8, HOST_A, NONE)], 8);
    let view = [span(0, 3, HOST_A, NONE), span(4, 4, HOST_A, NONE)];
    let plan = apply_and_check(&mut kvm, &view, 8);
    assert_eq!(kinds(&plan), ["delete", "add", "add"]);
    assert_eq!(plan.slots_after, 2);
}

#[test]
fn growing_keeps_the_live_slot_and_shrinking_replaces_it() {
    let mut kvm = KvmModel::default();
    apply_and_check(&mut kvm, &[span(0, 2, HOST_A, NONE)], 8);
    let grown = apply_and_check(&mut kvm, &[span(0, 3, HOST_A, NONE)], 8);
    assert_eq!(
        grown.steps,
        vec![Step::Add {
            span: span(2, 1, HOST_A, NONE)
        }]
    );
    let shrunk = apply_and_check(&mut kvm, &[span(0, 1, HOST_A, NONE)], 8);
    assert_eq!(kinds(&shrunk), ["delete", "delete", "add"]);
}

#[test]
fn flags_change_in_place_except_readonly() {
    let mut kvm = KvmModel::default();
    apply_and_check(&mut kvm, &[span(0, 4, HOST_A, NONE)], 8);
    let dirty = apply_and_check(&mut kvm, &[span(0, 4, HOST_A, DIRTY)], 8);
    assert_eq!(kinds(&dirty), ["flags"]);
    let ro = apply_and_check(&mut kvm, &[span(0, 4, HOST_A, RO)], 8);
    assert_eq!(kinds(&ro), ["delete", "add"]);
}

#[test]
fn a_moved_region_is_one_move_and_a_swap_breaks_the_cycle() {
    let mut kvm = KvmModel::default();
    let a = span(0, 1, HOST_A, NONE);
    let b = span(1, 1, HOST_B, NONE);
    apply_and_check(&mut kvm, &[a, b], 8);
    // Move A's host memory to guest page 5.
    let moved = Span {
        range: GuestRange::new(5 * P, P),
        ..a
    };
    let plan = apply_and_check(&mut kvm, &[b, moved], 8);
    assert_eq!(kinds(&plan), ["move"]);
    // Swap them (A to page 1, B to page 5): one move must become a delete and an add.
    let a_at_1 = Span {
        range: GuestRange::new(P, P),
        ..moved
    };
    let b_at_5 = Span {
        range: GuestRange::new(5 * P, P),
        ..b
    };
    let plan = apply_and_check(&mut kvm, &[a_at_1, b_at_5], 8);
    assert_eq!(kinds(&plan), ["delete", "move", "add"]);
}

#[test]
fn over_the_limit_compacts_and_beyond_that_fails() {
    let mut kvm = KvmModel::default();
    apply_and_check(&mut kvm, &[span(0, 1, HOST_A, NONE)], 2);
    apply_and_check(&mut kvm, &[span(0, 2, HOST_A, NONE)], 2);
    assert_eq!(kvm.slots.len(), 2);
    let plan = apply_and_check(&mut kvm, &[span(0, 3, HOST_A, NONE)], 2);
    assert!(plan.compacted);
    assert_eq!(kinds(&plan), ["delete", "delete", "add"]);
    let scattered = [
        span(0, 1, HOST_A, NONE),
        span(2, 1, HOST_A, NONE),
        span(4, 1, HOST_A, NONE),
    ];
    assert_eq!(super::plan(&scattered, &kvm.installed(), 2), Err(3));
}

#[test]
fn compaction_keeps_slots_that_already_are_whole_runs() {
    let mut kvm = KvmModel::default();
    apply_and_check(
        &mut kvm,
        &[span(0, 1, HOST_A, NONE), span(4, 2, HOST_B, NONE)],
        8,
    );
    apply_and_check(
        &mut kvm,
        &[span(0, 2, HOST_A, NONE), span(4, 2, HOST_B, NONE)],
        8,
    );
    assert_eq!(kvm.slots.len(), 3);
    let view = [
        span(0, 2, HOST_A, NONE),
        span(4, 2, HOST_B, NONE),
        span(8, 1, HOST_B, NONE),
    ];
    let plan = apply_and_check(&mut kvm, &view, 3);
    assert!(plan.compacted);
    assert_eq!(kinds(&plan), ["delete", "delete", "add", "add"]);
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random add/remove/resize/move/flags sequences over 64 pages, applied in random-sized
/// transactions: every plan is legal, exact, and leaves held slots alone.
#[test]
fn random_transactions_are_legal_exact_and_leave_held_slots_alone() {
    const PAGES: u64 = 64;
    let (mut compacted, mut moves, mut updates, mut refused) = (0, 0, 0, 0);
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut kvm = KvmModel::default();
        // The view as regions keyed by first page: (pages, host base, flags).
        let mut regions: BTreeMap<u64, (u64, u64, RegionFlags)> = BTreeMap::new();
        let limit = if seed % 3 == 0 { 6 } else { 64 };
        for _round in 0..20 {
            for _op in 0..1 + rng.below(12) {
                let at = rng.below(PAGES);
                let len = 1 + rng.below(4);
                let free = |regions: &BTreeMap<u64, (u64, u64, RegionFlags)>,
                            at: u64,
                            len: u64,
                            skip: Option<u64>| {
                    at + len <= PAGES
                        && regions
                            .iter()
                            .all(|(s, (l, _, _))| Some(*s) == skip || s + l <= at || at + len <= *s)
                };
                match rng.below(5) {
                    0 | 1 => {
                        if free(&regions, at, len, None) {
                            let host = if rng.below(4) == 0 { HOST_B } else { HOST_A };
                            let flags = [NONE, NONE, DIRTY, RO][rng.below(4) as usize];
                            regions.insert(at, (len, host, flags));
                        }
                    }
                    2 => {
                        if let Some((&s, _)) = regions.range(at..).next() {
                            regions.remove(&s);
                        }
                    }
                    3 => {
                        if let Some((&s, &(_, host, flags))) = regions.range(at..).next() {
                            if free(&regions, s, len, Some(s)) {
                                regions.insert(s, (len, host, flags));
                            }
                        }
                    }
                    _ => {
                        // Move a region's host memory elsewhere, or flip its flags.
                        if let Some((&s, &(l, host, flags))) = regions.range(at..).next() {
                            if rng.below(2) == 0 {
                                let to = rng.below(PAGES);
                                if free(&regions, to, l, Some(s)) {
                                    regions.remove(&s);
                                    // Keep the host memory: a moved region, as KVM_MR_MOVE sees it.
                                    regions.insert(to, (l, host + s * P - to * P, flags));
                                }
                            } else {
                                let f = if flags == NONE { DIRTY } else { NONE };
                                regions.insert(s, (l, host, f));
                            }
                        }
                    }
                }
            }
            let view: Vec<Span> = regions
                .iter()
                .map(|(s, (l, host, flags))| span(*s, *l, *host, *flags))
                .collect();
            let needed = merge_runs(view.iter().copied()).len();
            match plan(&view, &kvm.installed(), limit) {
                Err(n) => {
                    assert!(n > limit as usize && n == needed);
                    refused += 1;
                }
                Ok(_) => {
                    let before = kvm.installed();
                    let p = apply_and_check(&mut kvm, &view, limit);
                    compacted += usize::from(p.compacted);
                    moves += kinds(&p).iter().filter(|k| **k == "move").count();
                    updates += kinds(&p).iter().filter(|k| **k == "flags").count();
                    if !p.compacted {
                        // At most one step per slot that stopped holding plus one per new
                        // slot, and new slots are maximal: no two of them could have merged.
                        let stale = before
                            .iter()
                            .filter(|s| judge(&view, s) != Verdict::Keep)
                            .count();
                        let mut new: Vec<Span> = p
                            .steps
                            .iter()
                            .filter_map(|s| match s {
                                Step::Add { span } | Step::Move { to: span, .. } => Some(*span),
                                _ => None,
                            })
                            .collect();
                        assert!(p.steps.len() <= stale + new.len());
                        new.sort_by_key(|s| s.range.start);
                        assert!(
                            new.windows(2).all(|w| !w[0].continues_into(&w[1])),
                            "{new:?}"
                        );
                    }
                }
            }
        }
    }
    // The sequences reach every path.
    assert!(
        compacted > 0 && moves > 0 && updates > 0 && refused > 0,
        "{compacted} {moves} {updates} {refused}"
    );
}

#[test]
fn a_region_added_and_removed_before_commit_is_not_in_the_view() {
    // The transaction layer never shows the planner such a region, so the plan is empty; this
    // pins the planner's part: identical views give no steps.
    let mut kvm = KvmModel::default();
    let view = [span(0, 16, HOST_A, NONE)];
    apply_and_check(&mut kvm, &view, 4);
    let again = plan(&view, &kvm.installed(), 4).unwrap();
    assert_eq!(again.steps, vec![]);
}
