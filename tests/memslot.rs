//! Memslot-burst regression tests: the memory-map transaction layer on real KVM, with vCPUs
//! running guest code that keeps checking its RAM. Ioctls are counted by the wrapper around
//! the real VM fd (`KvmMemslots`), never by a mock.

mod common;

use std::path::Path;
use std::sync::Arc;

use vm_memory::MmapRegion;
use vmm::memory::{
    phys_limit, Backing, GuestRange, IoctlCall, MapError, Region, RegionFlags, SlotInfo,
};
use vmm::memslot_burst::workload::{
    self, Change, BURST_IN_FLIGHT, BURST_REGION_SIZE, BURST_WINDOW_BASE, BURST_WINDOW_REGIONS,
};
use vmm::memslot_burst::{BurstVm, NaiveSlots, PROGRESS_TIMEOUT};

const PAGE: u64 = 0x1000;

/// A burst VM with `vcpus` vCPUs running the guest loop, or None when KVM tests are skipped.
fn burst_vm(vcpus: u32) -> Option<BurstVm> {
    if !common::kvm_available() {
        return None;
    }
    Some(
        BurstVm::new(Path::new("/dev/kvm"), vcpus, !vmm::seccomp::disabled())
            .expect("cannot set up the burst VM"),
    )
}

/// Window page `p` (guest address and pool offset `BURST_WINDOW_BASE + p * 4 KiB`).
fn page(pool: &Arc<MmapRegion>, p: u64) -> Region {
    pages(pool, p, 1)
}

/// `n` window pages from page `p`, as one region.
fn pages(pool: &Arc<MmapRegion>, p: u64, n: u64) -> Region {
    let addr = BURST_WINDOW_BASE + p * PAGE;
    Region::new(
        addr,
        n * PAGE,
        Backing::new(Arc::clone(pool), addr),
        RegionFlags::NONE,
    )
}

fn window(p: u64, n: u64) -> GuestRange {
    GuestRange::new(BURST_WINDOW_BASE + p * PAGE, n * PAGE)
}

/// The ioctls issued since the last call (and forgets them).
fn take_calls(vm: &mut BurstVm) -> Vec<IoctlCall> {
    let calls = vm.map.sink().stats().calls().to_vec();
    vm.map.sink_mut().stats_mut().clear();
    calls
}

/// The slot that maps RAM (guest address 0).
fn ram_slot(vm: &BurstVm) -> SlotInfo {
    vm.map.slots()[0]
}

/// Burst slots (everything but RAM), by guest address.
fn burst_slots(vm: &BurstVm) -> Vec<GuestRange> {
    let slots = vm.map.slots();
    slots
        .iter()
        .filter(|s| s.range.start >= BURST_WINDOW_BASE)
        .map(|s| s.range)
        .collect()
}

/// Asserts that no vCPU has seen its memory change or vanish, and that every vCPU runs its
/// loop again from now on (its memory is still there and still right).
fn assert_vcpus_still_read_correct_memory(vm: &BurstVm) {
    assert_eq!(vm.failures(), vec![]);
    let now = vm.counters();
    vm.wait_for_progress(&now, PROGRESS_TIMEOUT)
        .expect("a vCPU stopped running its loop");
    assert_eq!(vm.failures(), vec![]);
}

/// Applies changes `from..to` of the burst in one transaction.
fn commit_changes(vm: &mut BurstVm, from: u64, to: u64) -> u32 {
    let pool = Arc::clone(vm.pool());
    let mut txn = vm.map.begin();
    for c in (from..to).map(workload::change) {
        match c {
            Change::Add(k) => txn.add(workload::region(&pool, k)).unwrap(),
            Change::Remove(k) => drop(txn.remove(workload::guest_addr(k)).unwrap()),
        }
    }
    txn.commit().unwrap().ioctls
}

/// The QEMU-ACPI pattern: 6000 add/delete pairs of 4 KiB regions in one transaction cost
/// exactly one ioctl (the 16 regions still live at the end, merged into one slot), never touch
/// RAM's slot, and the vCPUs keep reading correct memory.
#[test]
fn qemu_acpi_pattern_in_one_transaction_costs_one_ioctl() {
    let Some(mut vm) = burst_vm(2) else { return };
    let n = 12_016;
    assert_eq!(workload::pairs(n), 6000);
    let ram = ram_slot(&vm);
    let ioctls = commit_changes(&mut vm, 0, n);
    // After 12016 changes regions 6000..6016 are live: window positions 368..384 (6000 mod
    // 512 = 368), contiguous in guest and host addresses, so one slot and one add.
    assert_eq!(ioctls, 1);
    let calls = take_calls(&mut vm);
    assert_eq!(calls.len(), 1, "counted on the VM fd: {calls:?}");
    assert_eq!(burst_slots(&vm), vec![window(368, BURST_IN_FLIGHT)]);
    assert_eq!(ioctls as u64, workload::minimal_ioctls(n, n));
    assert!(calls.iter().all(|c| c.slot != ram.id && c.ok));
    assert_eq!(ram_slot(&vm), ram);
    assert_vcpus_still_read_correct_memory(&vm);
    assert_eq!(vm.stop(), vec![]);
}

/// The same 6000 pairs committed every 1000 changes, with the vCPUs checked between commits:
/// the first commit adds one slot; each later one deletes the previous live slot (its oldest
/// regions are gone) and adds the new one.
#[test]
fn qemu_acpi_pattern_committed_every_1000_changes_costs_the_net_diff() {
    let Some(mut vm) = burst_vm(2) else { return };
    let n = 12_016;
    let ram = ram_slot(&vm);
    let mut per_commit = Vec::new();
    let mut j = 0;
    while j < n {
        let end = (j + 1000).min(n);
        per_commit.push(commit_changes(&mut vm, j, end));
        j = end;
        // Live regions are (j - 16) / 2 .. +16: window positions 492, 480, 468, ..., 360,
        // then 368 at the end; none wraps around the window.
        let first = (j - BURST_IN_FLIGHT) / 2;
        assert_eq!(
            burst_slots(&vm),
            vec![window(first % BURST_WINDOW_REGIONS, BURST_IN_FLIGHT)]
        );
        assert_vcpus_still_read_correct_memory(&vm);
    }
    let mut expected = vec![1];
    expected.extend([2; 12]);
    assert_eq!(per_commit, expected);
    let calls = take_calls(&mut vm);
    assert_eq!(calls.len(), 25);
    assert_eq!(calls.len() as u64, workload::minimal_ioctls(n, 1000));
    assert!(calls.iter().all(|c| c.slot != ram.id && c.ok));
    assert_eq!(vm.stop(), vec![]);
}

/// The naive path issues one ioctl per change: the baseline of the benchmark.
#[test]
fn naive_burst_issues_one_ioctl_per_change() {
    let Some(mut vm) = burst_vm(2) else { return };
    let n = 2_016;
    let mut naive = NaiveSlots::new(&vm);
    naive.apply(&mut vm, n).unwrap();
    assert_eq!(naive.live(), BURST_IN_FLIGHT as usize);
    let calls = take_calls(&mut vm);
    assert_eq!(calls.len() as u64, n);
    assert_eq!(calls.iter().filter(|c| c.memory_size == 0).count(), 1000);
    naive.clear(&mut vm);
    assert_vcpus_still_read_correct_memory(&vm);
    assert_eq!(vm.stop(), vec![]);
}

/// 256 adjacent 4 KiB regions become one slot; removing one from the middle splits it into
/// two (delete first, then both sides); slot numbers are recycled; RAM's slot, adjacent to
/// the window in guest and host addresses, is never merged or touched.
#[test]
fn adjacent_regions_coalesce_and_removing_from_the_middle_splits() {
    let Some(mut vm) = burst_vm(1) else { return };
    let pool = Arc::clone(vm.pool());
    let ram = ram_slot(&vm);
    let mut txn = vm.map.begin();
    for p in 0..256 {
        txn.add(page(&pool, p)).unwrap();
    }
    let stats = txn.commit().unwrap();
    assert_eq!((stats.changes, stats.ioctls, stats.added), (256, 1, 1));
    assert_eq!(take_calls(&mut vm).len(), 1);
    assert_eq!(burst_slots(&vm), vec![window(0, 256)]);
    assert_eq!(vm.map.slots().len(), 2);
    let whole = vm.map.slots()[1].id;

    let mut txn = vm.map.begin();
    txn.remove(BURST_WINDOW_BASE + 100 * PAGE).unwrap();
    let stats = txn.commit().unwrap();
    assert_eq!((stats.ioctls, stats.deleted, stats.added), (3, 1, 2));
    assert_eq!(burst_slots(&vm), vec![window(0, 100), window(101, 155)]);
    let calls = take_calls(&mut vm);
    assert_eq!(
        calls[0].memory_size, 0,
        "the old slot goes first: {calls:?}"
    );
    assert_eq!(calls[0].slot, whole);
    assert_eq!(calls[1].slot, whole, "its number is recycled");

    // Trim both ends: each side is replaced by a smaller slot.
    let mut txn = vm.map.begin();
    txn.remove(BURST_WINDOW_BASE).unwrap();
    txn.remove(BURST_WINDOW_BASE + 255 * PAGE).unwrap();
    assert_eq!(txn.commit().unwrap().ioctls, 4);
    assert_eq!(burst_slots(&vm), vec![window(1, 99), window(101, 154)]);

    // Filling the hole again adds one slot and leaves the live ones alone.
    let mut txn = vm.map.begin();
    txn.add(page(&pool, 100)).unwrap();
    assert_eq!(txn.commit().unwrap().ioctls, 1);
    assert_eq!(
        burst_slots(&vm),
        vec![window(1, 99), window(100, 1), window(101, 154)]
    );
    let mut ids: Vec<u32> = vm.map.slots().iter().map(|s| s.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![0, 1, 2, 3], "numbers are recycled, lowest first");

    take_calls(&mut vm);
    assert_eq!(ram_slot(&vm), ram);
    assert_vcpus_still_read_correct_memory(&vm);
    assert_eq!(vm.stop(), vec![]);
}

/// Growing keeps the live slot and adds the extension; shrinking replaces it; a flags change
/// and a move are one in-place ioctl each; an add and a remove in one transaction cost nothing.
#[test]
fn resize_move_and_flags_issue_the_minimal_ioctls() {
    let Some(mut vm) = burst_vm(1) else { return };
    let pool = Arc::clone(vm.pool());
    let ram = ram_slot(&vm);
    let mut txn = vm.map.begin();
    txn.add(pages(&pool, 10, 4)).unwrap();
    assert_eq!(txn.commit().unwrap().ioctls, 1);
    let id = vm.map.slots()[1].id;

    let mut txn = vm.map.begin();
    txn.resize(BURST_WINDOW_BASE + 10 * PAGE, 8 * PAGE).unwrap();
    let stats = txn.commit().unwrap();
    assert_eq!((stats.ioctls, stats.added, stats.deleted), (1, 1, 0));
    assert_eq!(burst_slots(&vm), vec![window(10, 4), window(14, 4)]);

    let mut txn = vm.map.begin();
    txn.resize(BURST_WINDOW_BASE + 10 * PAGE, 2 * PAGE).unwrap();
    let stats = txn.commit().unwrap();
    assert_eq!((stats.ioctls, stats.deleted, stats.added), (3, 2, 1));
    assert_eq!(burst_slots(&vm), vec![window(10, 2)]);
    assert_eq!(vm.map.slots()[1].id, id, "the freed number is reused");

    let mut txn = vm.map.begin();
    txn.set_flags(BURST_WINDOW_BASE + 10 * PAGE, RegionFlags::LOG_DIRTY_PAGES)
        .unwrap();
    let stats = txn.commit().unwrap();
    assert_eq!((stats.ioctls, stats.flags_updated), (1, 1));
    assert_eq!(vm.map.slots()[1].flags, RegionFlags::LOG_DIRTY_PAGES);
    assert_eq!(vm.map.slots()[1].id, id, "updated in place");

    // Move the region (same host memory) to window page 40: KVM_MR_MOVE, same slot.
    let mut txn = vm.map.begin();
    let mut r = txn.remove(BURST_WINDOW_BASE + 10 * PAGE).unwrap();
    r.guest_addr = BURST_WINDOW_BASE + 40 * PAGE;
    txn.add(r).unwrap();
    let stats = txn.commit().unwrap();
    assert_eq!((stats.ioctls, stats.moved), (1, 1));
    assert_eq!(vm.map.slots()[1].id, id);
    assert_eq!(burst_slots(&vm), vec![window(40, 2)]);

    let mut txn = vm.map.begin();
    txn.add(page(&pool, 100)).unwrap();
    txn.remove(BURST_WINDOW_BASE + 100 * PAGE).unwrap();
    let stats = txn.commit().unwrap();
    assert_eq!((stats.changes, stats.ioctls), (2, 0));

    assert!(take_calls(&mut vm).iter().all(|c| c.slot != ram.id && c.ok));
    assert_eq!(ram_slot(&vm), ram);
    assert_vcpus_still_read_correct_memory(&vm);
    assert_eq!(vm.stop(), vec![]);
}

/// Overlapping adds are refused (with the transaction left usable), whether the other region
/// is committed, pending in the same transaction, or RAM.
#[test]
fn overlapping_adds_are_rejected() {
    let Some(mut vm) = burst_vm(1) else { return };
    let pool = Arc::clone(vm.pool());
    let mut txn = vm.map.begin();
    txn.add(pages(&pool, 10, 10)).unwrap();
    for (p, n) in [(10, 10), (15, 10), (5, 6), (12, 1), (0, 100)] {
        let r = pages(&pool, p, n);
        match txn.add(r) {
            Err(MapError::Overlap { new, existing }) => {
                assert_eq!((new, existing), (window(p, n), window(10, 10)));
            }
            other => panic!("pages {p}+{n}: {other:?}"),
        }
    }
    // Straddling the end of RAM.
    let straddle = Region::new(
        BURST_WINDOW_BASE - PAGE,
        2 * PAGE,
        Backing::new(Arc::clone(&pool), BURST_WINDOW_BASE - PAGE),
        RegionFlags::NONE,
    );
    let e = txn.add(straddle).unwrap_err();
    assert!(matches!(e, MapError::Overlap { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "the region 0xff000..0x101000 overlaps the region 0x0..0x100000 already in the memory map"
    );
    txn.add(pages(&pool, 20, 1)).unwrap();
    assert_eq!(txn.commit().unwrap().ioctls, 1, "pages 10..21 as one slot");
    let mut txn = vm.map.begin();
    let e = txn.add(pages(&pool, 20, 2)).unwrap_err();
    assert!(matches!(e, MapError::Overlap { .. }), "{e}");
    let e = txn
        .resize(BURST_WINDOW_BASE + 10 * PAGE, 11 * PAGE)
        .unwrap_err();
    assert!(matches!(e, MapError::Overlap { .. }), "{e}");
    assert_eq!(txn.commit().unwrap().ioctls, 0);
    assert_vcpus_still_read_correct_memory(&vm);
    assert_eq!(vm.stop(), vec![]);
}

/// Zero-sized, unaligned, out-of-range and unbacked regions are clear errors, and nothing is
/// issued for them.
#[test]
fn zero_sized_unaligned_and_out_of_range_regions_are_errors() {
    let Some(mut vm) = burst_vm(1) else { return };
    let pool = Arc::clone(vm.pool());
    let bits = vm.map.limits().phys_bits;
    let top = phys_limit(bits);
    let region = |addr: u64, size: u64, offset: u64| {
        Region::new(
            addr,
            size,
            Backing::new(Arc::clone(&pool), offset),
            RegionFlags::NONE,
        )
    };
    let base = BURST_WINDOW_BASE;
    let width = format!("does not fit in the guest's {bits}-bit physical address space");
    let mut txn = vm.map.begin();
    let cases: Vec<(Region, &str)> = vec![
        (
            region(base, 0, base),
            "the region at guest address 0x100000 has size zero",
        ),
        (
            region(base + 0x800, PAGE, base),
            "the region at guest address 0x100800 is not page aligned: its guest address 0x100800 is not a multiple of 4 KiB",
        ),
        (
            region(base, 0x1800, base),
            "is not page aligned: its size 0x1800 is not a multiple of 4 KiB",
        ),
        (region(base, PAGE, base + 0x10), "its host address"),
        (
            region(top - PAGE, 2 * PAGE, base),
            &width,
        ),
        (region(top, PAGE, base), "physical address space"),
        (region(!(PAGE - 1), PAGE, base), "physical address space"),
        (
            region(base, 2 * PAGE, workload::BURST_POOL_SIZE - PAGE),
            "needs host memory beyond its mapping",
        ),
    ];
    for (r, needle) in cases {
        let e = txn.add(r.clone()).unwrap_err();
        assert!(e.is_request_error());
        assert!(e.to_string().contains(needle), "{r:?}: {e}");
    }
    let e = txn.remove(base).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no region of the memory map starts at guest address 0x100000"
    );
    assert!(txn.resize(0, 0).is_err(), "RAM cannot shrink to nothing");
    assert_eq!(txn.commit().unwrap().ioctls, 0);
    assert!(take_calls(&mut vm).is_empty());
    assert_vcpus_still_read_correct_memory(&vm);
    assert_eq!(vm.stop(), vec![]);
}

/// The slot limit is KVM's own (KVM_CAP_NR_MEMSLOTS): a commit needing one slot more fails
/// before any ioctl; filling every slot works; a freed number is reused.
#[test]
fn the_slot_limit_is_kvms_and_exceeding_it_is_a_clear_error() {
    let Some(mut vm) = burst_vm(1) else { return };
    let limit = vm.nr_memslots();
    assert_eq!(vm.map.limits().slots, limit);
    // Distinct guest pages all backed by the same host page cannot merge: one slot each (the
    // page is not the one after RAM's, or the first would merge with RAM).
    let pool = Arc::clone(vm.pool());
    let scattered = |i: u64| {
        Region::new(
            BURST_WINDOW_BASE + i * PAGE,
            PAGE,
            Backing::new(Arc::clone(&pool), BURST_WINDOW_BASE + PAGE),
            RegionFlags::NONE,
        )
    };
    // RAM holds one slot: `limit` more regions are one too many.
    let mut txn = vm.map.begin();
    for i in 0..u64::from(limit) {
        txn.add(scattered(i)).unwrap();
    }
    let e = txn.commit().unwrap_err();
    assert!(
        matches!(e, MapError::SlotLimit { needed, limit: l } if needed == limit as usize + 1 && l == limit),
        "{e}"
    );
    assert!(e.to_string().contains("KVM_CAP_NR_MEMSLOTS"), "{e}");
    assert!(take_calls(&mut vm).is_empty(), "refused before any ioctl");
    assert_eq!(vm.map.slots().len(), 1);

    // Exactly the limit fits.
    let mut txn = vm.map.begin();
    for i in 0..u64::from(limit) - 1 {
        txn.add(scattered(i)).unwrap();
    }
    let stats = txn.commit().unwrap();
    assert_eq!(stats.ioctls, limit - 1);
    assert_eq!(vm.map.slots().len(), limit as usize);
    let max_id = vm.map.slots().iter().map(|s| s.id).max().unwrap();
    assert_eq!(max_id, limit - 1);

    let mut txn = vm.map.begin();
    txn.add(scattered(u64::from(limit))).unwrap();
    assert!(matches!(txn.commit(), Err(MapError::SlotLimit { .. })));

    // Free one and take another: the freed number comes back.
    let freed = vm
        .map
        .slots()
        .iter()
        .find(|s| s.range.start == BURST_WINDOW_BASE + 7 * PAGE)
        .unwrap()
        .id;
    take_calls(&mut vm);
    let mut txn = vm.map.begin();
    txn.remove(BURST_WINDOW_BASE + 7 * PAGE).unwrap();
    // Other host memory than the removed region's (the same memory would be one move).
    let other = Region::new(
        BURST_WINDOW_BASE + u64::from(limit) * PAGE,
        PAGE,
        Backing::new(Arc::clone(&pool), BURST_WINDOW_BASE + 2 * PAGE),
        RegionFlags::NONE,
    );
    txn.add(other).unwrap();
    assert_eq!(txn.commit().unwrap().ioctls, 2);
    let calls = take_calls(&mut vm);
    assert_eq!((calls[0].slot, calls[0].memory_size), (freed, 0));
    assert_eq!(calls[1].slot, freed);

    // Moving a region within a full map is one KVM_MR_MOVE of its slot.
    let mut txn = vm.map.begin();
    let mut r = txn.remove(BURST_WINDOW_BASE + 9 * PAGE).unwrap();
    r.guest_addr = BURST_WINDOW_BASE + u64::from(limit + 1) * PAGE;
    txn.add(r).unwrap();
    let stats = txn.commit().unwrap();
    assert_eq!((stats.ioctls, stats.moved), (1, 1));
    assert_vcpus_still_read_correct_memory(&vm);
    assert_eq!(vm.stop_vcpus(), vec![]);
    // Tearing down deletes the 32764 slots one by one, which is slow with that many slots
    // (docs/benchmarks.md, "Memory slots"); this process ends soon, so leave them to it. The
    // vCPU threads are already joined; the VM and its 3 MiB pool stay until the process exits.
    std::mem::forget(vm);
}

/// `vmm memslot-burst` in both modes prints and writes the figures; a bad --vcpus is a usage
/// error.
#[test]
fn memslot_burst_command_reports_both_modes() {
    if !common::kvm_available() {
        return;
    }
    let dir = common::tempdir();
    for (mode, extra, ioctls) in [("batched", None, 1), ("naive", Some("--naive"), 6000)] {
        let json = dir.path().join(format!("{mode}.json"));
        let mut args = vec![
            "memslot-burst",
            "--changes",
            "6000",
            "--vcpus",
            "2",
            "--json",
            json.to_str().unwrap(),
        ];
        args.extend(extra);
        let out = common::vmm(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("ioctl latency  median"), "{stdout}");
        let v = common::read_json(&json);
        assert_eq!(v["status"], "ok");
        assert_eq!(v["changes"], 6000);
        assert_eq!(v["vcpus"], 2);
        assert_eq!(v["mode"], mode);
        assert_eq!(v["ioctls"], ioctls);
        assert_eq!(v["minimal_ioctls"], ioctls);
        assert!(v["wall_us"].as_u64().unwrap() > 0);
        assert!(v["ioctl_us"]["median"].as_f64().unwrap() > 0.0);
        assert!(
            v["ioctl_us"]["p99"].as_f64().unwrap() >= v["ioctl_us"]["median"].as_f64().unwrap()
        );
    }
    let out = common::vmm(&["memslot-burst", "--vcpus", "100000"]);
    common::assert_one_line_error(&out, 2, "--vcpus 100000");
    let bad = dir.path().join("no/such/dir/r.json");
    let out = common::vmm(&["memslot-burst", "--json", bad.to_str().unwrap()]);
    common::assert_one_line_error(&out, 2, "cannot write JSON report");
}

#[test]
fn the_workload_matches_its_documented_shape() {
    // Pure arithmetic, no KVM: window positions and the region size the tests above rely on.
    assert_eq!(BURST_REGION_SIZE, PAGE);
    assert_eq!(BURST_WINDOW_REGIONS, 512);
    assert_eq!(6000 % BURST_WINDOW_REGIONS, 368);
}
