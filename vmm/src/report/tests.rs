//! Tests of the report checks, JSON and summary.

use super::check::{decode, read};
use super::details::*;
use super::stats::*;
use super::*;
use crate::arch::x86_64::topology::Topology;
use firmware::report::decode::Report;
use firmware::report::encode::{write_boot_summary, write_cpu_record, write_scenario};
use firmware::report::*;
use firmware::report::{BootSummary, CpuRecord, ScenarioSummary, TscSyncSummary};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// A report of `cpus` with BSP `bsp`, no TSC check and no scenario.
pub(super) fn report(cpus: &[CpuRecord], bsp: u32) -> Vec<u8> {
    report_with(cpus, bsp, BootSummary::default())
}

/// A report of `cpus` whose summary is `base` with the CPU count, BSP and bringup window
/// filled in.
fn report_with(cpus: &[CpuRecord], bsp: u32, base: BootSummary) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let mut s = BootSummary {
        cpu_count: cpus.len() as u32,
        bsp_apic_id: bsp,
        bringup: 2,
        ..base
    };
    // The APs below stamp between 100 and 300.
    s.bsp_stamps[BspPhase::BringupStart as usize] = 50;
    s.bsp_stamps[BspPhase::AllOnline as usize] = 400;
    write_boot_summary(&mut buf, &s).unwrap();
    for (i, r) in cpus.iter().enumerate() {
        write_cpu_record(&mut buf, i, r).unwrap();
    }
    let len = write_scenario(
        &mut buf,
        cpus.len(),
        &ScenarioSummary::default(),
        &Default::default(),
    )
    .unwrap();
    buf.truncate(len);
    buf
}

/// An online CPU record stamped inside the bringup window of [`report`].
pub(super) fn cpu(apic_id: u32, bsp: bool) -> CpuRecord {
    let mut r = CpuRecord {
        apic_id,
        state: CpuState::Online as u8,
        last_phase: 5,
        ..Default::default()
    };
    r.flags = if bsp { CPU_FLAG_BSP } else { 0 };
    r.stamps[ApPhase::Kick as usize] = 100;
    r.stamps[ApPhase::Online as usize] = 200;
    r
}

#[test]
fn accepts_a_consistent_report() {
    let buf = report(&[cpu(0, true), cpu(1, false)], 0);
    let Report::Boot(b) = decode(&buf, Topology::new(2)).unwrap() else {
        panic!("not a boot report")
    };
    assert_eq!(online(&b), 2);
    let j = boot_json(&b, &bringup_stats(&b), 1_000_000);
    assert_eq!(j.cpus.len(), 2);
    assert_eq!(j.cpus[1].stamps.get("online").copied(), Some(200));
}

#[test]
fn catches_reports_that_disagree_with_the_vm() {
    let err = |cpus: &[CpuRecord], bsp, vcpus| {
        decode(&report(cpus, bsp), Topology::new(vcpus))
            .unwrap_err()
            .to_string()
    };
    assert!(err(&[cpu(0, true), cpu(1, false)], 0, 1).contains("VM has 1"));
    assert!(err(&[cpu(0, true), cpu(7, false)], 0, 2).contains("APIC ID 7"));
    assert!(err(&[cpu(0, true), cpu(0, false)], 0, 2).contains("more than one"));
    assert!(err(&[cpu(0, false), cpu(1, false)], 0, 2).contains("BSP"));
    assert!(err(&[cpu(0, true), cpu(1, true)], 0, 2).contains("BSP"));
    let mut late = cpu(1, false);
    late.stamps[ApPhase::Kick as usize] = 300;
    assert!(err(&[cpu(0, true), late], 0, 2).contains("out of order"));
    let mut early = cpu(1, false);
    early.stamps[ApPhase::Kick as usize] = 10;
    assert!(err(&[cpu(0, true), early], 0, 2).contains("bringup window"));
    let mut late = cpu(1, false);
    late.stamps[ApPhase::Online as usize] = 10_000;
    assert!(err(&[cpu(0, true), late], 0, 2).contains("bringup window"));
    let mut unstamped = cpu(1, false);
    unstamped.stamps[ApPhase::Online as usize] = 0;
    assert!(err(&[cpu(0, true), unstamped], 0, 2).contains("no online stamp"));
}

/// A TSC check's summary: `strategy` as u8, and the warps found.
fn tsc_summary(strategy: u8, max_warp: u64, warps: u32) -> BootSummary {
    BootSummary {
        tsc_sync: strategy,
        flags: FLAG_TSC_ADJUST,
        tsc: TscSyncSummary {
            cycles: 5_000,
            max_warp,
            warps,
        },
        ..Default::default()
    }
}

/// `cpu` after a TSC check: checked, IA32_TSC_ADJUST read, a tsc_sync stamp.
fn checked(mut r: CpuRecord) -> CpuRecord {
    r.flags |= CPU_FLAG_TSC_CHECKED | CPU_FLAG_TSC_ADJUST;
    if r.flags & CPU_FLAG_BSP == 0 {
        r.stamps[ApPhase::TscSync as usize] = 150;
    }
    r
}

#[test]
fn a_tsc_check_that_found_nothing_is_synchronised() {
    let cpus = [checked(cpu(0, true)), checked(cpu(1, false))];
    let buf = report_with(&cpus, 0, tsc_summary(2, 0, 0));
    let Report::Boot(b) = decode(&buf, Topology::new(2)).unwrap() else {
        panic!("not a boot report")
    };
    let t = tsc_sync_json(&b, 1_000_000);
    assert_eq!(
        (t.strategy, t.synchronised, t.checked_cpus),
        ("parallel", Some(true), 2)
    );
    assert_eq!(t.us, Some(5.0));
    assert!(t.out_of_sync.is_empty() && t.tsc_adjust_supported);
    assert!(tsc_failure(&b).is_none());
    let j = boot_json(&b, &bringup_stats(&b), 1_000_000);
    assert_eq!(j.cpus[1].tsc_adjust, Some(0));
    assert!(j.cpus[1].tsc_checked);
    assert!(j.phases.contains_key("tsc_sync"));
    // Without a check: nothing checked, and no verdict.
    let buf = report(&[cpu(0, true), cpu(1, false)], 0);
    let Report::Boot(b) = decode(&buf, Topology::new(2)).unwrap() else {
        panic!("not a boot report")
    };
    let t = tsc_sync_json(&b, 1_000_000);
    assert_eq!(
        (t.strategy, t.synchronised, t.checked_cpus),
        ("none", None, 0)
    );
    assert!(tsc_failure(&b).is_none());
}

#[test]
fn a_cpu_out_of_sync_is_named_and_keeps_its_own_time_base() {
    let ahead = 10_000_000_000u64;
    let mut skewed = checked(cpu(2, false));
    for p in [ApPhase::TscSync, ApPhase::Online] {
        skewed.stamps[p as usize] += ahead;
    }
    skewed.flags |= CPU_FLAG_TSC_OUT_OF_SYNC;
    skewed.tsc_warp = ahead;
    let cpus = [checked(cpu(0, true)), checked(cpu(1, false)), skewed];
    let buf = report_with(&cpus, 0, tsc_summary(1, ahead, 3));
    let Report::Boot(b) = decode(&buf, Topology::new(3)).unwrap() else {
        panic!("not a boot report")
    };
    let t = tsc_sync_json(&b, 1_000_000);
    assert_eq!(t.synchronised, Some(false));
    assert_eq!(t.out_of_sync.len(), 1);
    assert_eq!(
        (t.out_of_sync[0].apic_id, t.out_of_sync[0].value),
        (2, ahead as i64)
    );
    let line = tsc_failure(&b).unwrap();
    assert!(
        line.contains("APIC IDs 2)") && line.contains("serial"),
        "{line}"
    );
    // The same stamps on a CPU the guest did not find out of sync are rejected.
    let mut unflagged = skewed;
    unflagged.flags &= !CPU_FLAG_TSC_OUT_OF_SYNC;
    unflagged.tsc_warp = 0;
    let cpus = [checked(cpu(0, true)), checked(cpu(1, false)), unflagged];
    let err = decode(
        &report_with(&cpus, 0, tsc_summary(1, 0, 0)),
        Topology::new(3),
    )
    .unwrap_err();
    assert!(err.to_string().contains("bringup window"), "{err}");
    // Its own stamps must still be in order.
    let mut disordered = skewed;
    disordered.stamps[ApPhase::Online as usize] = 1;
    let cpus = [checked(cpu(0, true)), checked(cpu(1, false)), disordered];
    let err = decode(
        &report_with(&cpus, 0, tsc_summary(1, ahead, 3)),
        Topology::new(3),
    )
    .unwrap_err();
    assert!(err.to_string().contains("out of order"), "{err}");
}

#[test]
fn catches_tsc_results_that_contradict_themselves() {
    let err = |cpus: &[CpuRecord], summary: BootSummary| {
        decode(&report_with(cpus, 0, summary), Topology::new(2))
            .unwrap_err()
            .to_string()
    };
    let good = [checked(cpu(0, true)), checked(cpu(1, false))];
    assert!(decode(
        &report_with(&good, 0, tsc_summary(2, 0, 0)),
        Topology::new(2)
    )
    .is_ok());
    assert!(err(&good, tsc_summary(3, 0, 0)).contains("unknown TSC check 3"));
    assert!(err(&good, tsc_summary(0, 0, 0)).contains("without a TSC check"));
    assert!(err(&good, tsc_summary(2, 0, 4)).contains("maximum warp without warps"));
    assert!(err(&good, tsc_summary(2, 9, 1)).contains("largest one blamed"));
    let with = |f: &dyn Fn(&mut CpuRecord)| {
        let mut r = checked(cpu(1, false));
        f(&mut r);
        [checked(cpu(0, true)), r]
    };
    let unblamed = with(&|r| r.flags |= CPU_FLAG_TSC_OUT_OF_SYNC);
    assert!(err(&unblamed, tsc_summary(2, 0, 0)).contains("exactly when a warp"));
    let unflagged = with(&|r| r.tsc_warp = 9);
    assert!(err(&unflagged, tsc_summary(2, 9, 1)).contains("exactly when a warp"));
    let too_big = with(&|r| {
        r.flags |= CPU_FLAG_TSC_OUT_OF_SYNC;
        r.tsc_warp = 10;
    });
    assert!(err(&too_big, tsc_summary(2, 9, 1)).contains("above the summary's maximum"));
    let absent = with(&|r| {
        r.flags &= !CPU_FLAG_TSC_CHECKED;
        r.flags |= CPU_FLAG_TSC_OUT_OF_SYNC;
        r.tsc_warp = 9;
    });
    assert!(err(&absent, tsc_summary(2, 9, 1)).contains("without having taken part"));
    let unread = with(&|r| {
        r.flags &= !CPU_FLAG_TSC_ADJUST;
        r.tsc_adjust = 5;
    });
    assert!(err(&unread, tsc_summary(2, 0, 0)).contains("without having read it"));
    let no_cpuid = BootSummary {
        flags: 0,
        ..tsc_summary(2, 0, 0)
    };
    assert!(err(&good, no_cpuid).contains("CPUID did not report it"));
    let stamped = [cpu(0, true), checked(cpu(1, false))];
    assert!(err(&stamped, BootSummary::default()).contains("without a TSC check"));
}

#[test]
fn reads_are_bounded_and_inside_memory() {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
    assert!(matches!(
        read(&mem, 0x1004),
        Err(ReportCheckError::Misaligned(_))
    ));
    assert!(matches!(
        read(&mem, 0xFFFF_FFF8),
        Err(ReportCheckError::OutsideMemory { .. })
    ));
    let buf = report(&[cpu(0, true)], 0);
    mem.write_slice(&buf, GuestAddress(0xFFE00)).unwrap();
    assert_eq!(read(&mem, 0xFFE00).unwrap(), buf);
    // A header claiming more bytes than remain in memory.
    mem.write_slice(&buf[..16], GuestAddress(0xFFFF0)).unwrap();
    assert!(matches!(
        read(&mem, 0xFFFF0),
        Err(ReportCheckError::OutsideMemory { .. })
    ));
}
