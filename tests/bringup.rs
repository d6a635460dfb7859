//! AP bringup on real KVM: every strategy and kick style brings every vCPU online with every
//! phase stamped in order, across the xAPIC/x2APIC boundary, and a lost AP is reported.

mod common;

use common::*;
use serde_json::Value;

/// The AP phases each strategy stamps, in order, without `--tsc-sync` (tests/tsc_sync.rs covers
/// the `tsc_sync` phase between `percpu_init` and `online`).
fn expected_phases(bringup: &str) -> &'static [&'static str] {
    match bringup {
        "floor" => &["kick", "trampoline", "online"],
        _ => &["kick", "trampoline", "long_mode", "percpu_init", "online"],
    }
}

/// Checks that all `vcpus` came online and every AP has its phases stamped in order.
fn assert_all_online(vcpus: u32, bringup: &str, kick: &str, j: &Value) {
    let what = format!("{vcpus} vCPUs, {bringup}/{kick}");
    assert_eq!(j["online"], vcpus, "{what}: {j}");
    assert_eq!(j["bringup"], bringup, "{what}");
    let cpus = j["cpus"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no cpus"));
    assert_eq!(cpus.len(), vcpus as usize, "{what}");
    let mut ids: Vec<u64> = cpus.iter().filter_map(|c| c["apic_id"].as_u64()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..u64::from(vcpus)).collect::<Vec<_>>(),
        "{what}: every APIC ID once"
    );
    for c in cpus.iter().filter(|c| c["bsp"] == false) {
        assert_eq!(c["state"], "online", "{what}: {c}");
        let mut stamped: Vec<&str> = c["stamps"]
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut expected = expected_phases(bringup).to_vec();
        stamped.sort_unstable();
        expected.sort_unstable();
        assert_eq!(stamped, expected, "{what}: exactly these phases in {c}");
        let stamps: Vec<u64> = expected_phases(bringup)
            .iter()
            .map(|p| {
                c["stamps"][p]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{what}: CPU {c} lacks {p}"))
            })
            .collect();
        assert!(
            stamps.windows(2).all(|w| w[0] <= w[1]),
            "{what}: stamps out of order in {c}"
        );
    }
    if vcpus > 1 {
        assert!(
            j["bringup_cycles"].as_u64().unwrap_or(0) > 0,
            "{what}: bringup_cycles"
        );
        let online = &j["phases"]["online"];
        assert!(
            online["max"].as_u64() >= online["min"].as_u64() && online["min"].is_u64(),
            "{what}: {online}"
        );
        assert!(
            j["phases"].get("tsc_sync").is_none(),
            "{what}: no TSC check was asked for"
        );
    }
}

const STRATEGIES: [(&str, &str); 4] = [
    ("floor", "broadcast"),
    ("serial", "per-cpu"),
    ("parallel", "per-cpu"),
    ("parallel", "broadcast"),
];

/// Checks the JSON's `bsp_start` of a run of sipi's guest started `mode`.
fn assert_bsp_start(mode: &str, j: &Value) {
    let b = &j["bsp_start"];
    assert_eq!(b["mode"], mode, "{b}");
    let asks = b["ready_asks"].as_u64().unwrap_or(0);
    assert_eq!(
        b["ready_queries"].as_u64(),
        Some(asks),
        "each ask is read back: {b}"
    );
    if mode == "early" {
        assert!(asks >= 1, "the guest asks before its first kick: {b}");
    } else {
        // Every vCPU was ready before the BSP ran: nothing to ask, wait for, or overlap.
        assert_eq!(asks, 0, "{b}");
        assert_eq!(b["ready_waits"], 0, "{b}");
        assert_eq!(b["ready_wait_us"], 0, "{b}");
        assert_eq!(b["overlap_us"], 0, "{b}");
    }
}

fn every_strategy_at(vcpus: u32) {
    for (bringup, kick) in STRATEGIES {
        for start in ["early", "all-ready"] {
            let args = ["--bringup", bringup, "--kick", kick, "--bsp-start", start];
            let (code, j, stderr) = boot_json(vcpus, &args);
            assert_eq!(code, Some(0), "{vcpus} vCPUs {args:?}: {stderr}");
            assert_all_online(vcpus, bringup, kick, &j);
            if vcpus > 1 {
                assert_bsp_start(start, &j);
            }
        }
    }
}

#[test]
fn every_strategy_at_small_counts() {
    if !kvm_available() {
        return;
    }
    for vcpus in [1, 2, 3] {
        every_strategy_at(vcpus);
    }
}

#[test]
fn every_strategy_at_64() {
    if kvm_available() {
        every_strategy_at(64);
    }
}

#[test]
fn every_strategy_at_256() {
    if kvm_available() {
        every_strategy_at(256);
    }
}

#[test]
fn the_xapic_x2apic_boundary() {
    if !kvm_available() {
        return;
    }
    // The BSP starts early (the default): APs below 256 are kicked while vCPUs above 255,
    // whose xAPIC IDs alias theirs until they are configured in x2APIC mode, are created.
    for vcpus in [254, 255, 256, 257, 520] {
        let (code, j, stderr) = boot_json(vcpus, &["--bringup", "parallel"]);
        assert_eq!(code, Some(0), "{vcpus} vCPUs: {stderr}");
        assert_all_online(vcpus, "parallel", "per-cpu", &j);
        assert_bsp_start("early", &j);
    }
}

#[test]
fn a_lost_ap_is_reported_missing_and_fails_the_run() {
    if !kvm_available() {
        return;
    }
    for (bringup, kick) in [("parallel", "per-cpu"), ("serial", "per-cpu")] {
        let (code, j, stderr) = boot_json(
            4,
            &[
                "--bringup",
                bringup,
                "--kick",
                kick,
                "--test-lose-apic-id",
                "2",
            ],
        );
        assert_eq!(
            code,
            Some(1),
            "{bringup}: a missing CPU fails the run: {stderr}"
        );
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("error: ") && l.contains("never came online")),
            "{stderr}"
        );
        assert_eq!(j["online"], 3, "{bringup}");
        let lost = j["cpus"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["apic_id"] == 2)
            .cloned()
            .unwrap();
        assert_eq!(lost["state"], "missing", "{bringup}: {lost}");
        assert!(
            lost["retries"].as_u64().unwrap_or(0) > 0,
            "{bringup}: the lost AP was kicked again: {lost}"
        );
    }
}
