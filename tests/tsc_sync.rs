//! The TSC synchronisation check on real KVM: both strategies find the TSCs of one VM in sync
//! (KVM keeps them so) at 2, 64 and 256 vCPUs, within their budgets, and both catch and name a
//! vCPU whose TSC the VMM skewed (`--test-skew-tsc`): the check can fail.

mod common;

use common::*;
use serde_json::Value;

/// The windows the guest's strategies use (guest/src/tsc_sync.rs): a serial turn per AP, one
/// parallel window in all.
const SERIAL_WINDOW_US: u64 = 2_000;
const PARALLEL_WINDOW_US: u64 = 2_000;
/// The skew of the skew tests: four seconds at 2.5 GHz, beyond KVM's one-second
/// resynchronisation of TSC writes.
const SKEW: u64 = 10_000_000_000;

/// The AP phases with a TSC check, in order.
const PHASES: [&str; 6] = [
    "kick",
    "trampoline",
    "long_mode",
    "percpu_init",
    "tsc_sync",
    "online",
];

/// Checks a boot whose TSC check found every CPU in sync, and that the check took at least its
/// windows.
fn assert_synchronised(vcpus: u32, strategy: &str, code: Option<i32>, j: &Value, stderr: &str) {
    let what = format!("{vcpus} vCPUs, --tsc-sync {strategy}");
    assert_eq!(code, Some(0), "{what}: {stderr}");
    assert_eq!(j["online"], vcpus, "{what}");
    let t = &j["tsc_sync"];
    assert_eq!(t["strategy"], strategy, "{what}: {t}");
    assert_eq!(t["synchronised"], true, "{what}: {t}");
    assert_eq!(t["max_warp_cycles"], 0, "{what}: {t}");
    assert_eq!(t["warps"], 0, "{what}: {t}");
    assert_eq!(t["checked_cpus"], vcpus, "{what}: {t}");
    assert_eq!(t["out_of_sync"].as_array().map(Vec::len), Some(0), "{what}");
    let khz = j["tsc_khz"].as_u64().expect("tsc_khz");
    let cycles = t["cycles"].as_u64().expect("tsc_sync.cycles");
    let window = |us: u64| us * khz / 1000;
    let least = match strategy {
        "serial" => u64::from(vcpus - 1) * window(SERIAL_WINDOW_US),
        _ if vcpus > 1 => window(PARALLEL_WINDOW_US),
        _ => 0,
    };
    assert!(
        cycles >= least,
        "{what}: {cycles} cycles, less than the windows' {least}"
    );
    for c in j["cpus"].as_array().expect("cpus") {
        assert_eq!(c["tsc_checked"], true, "{what}: {c}");
        assert_eq!(c["tsc_warp_cycles"], 0, "{what}: {c}");
        if c["bsp"] == true {
            continue;
        }
        let stamps: Vec<u64> = PHASES
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
        let phase = &j["phases"]["tsc_sync"];
        assert_eq!(phase["count"], vcpus - 1, "{what}: {phase}");
        // A serial turn lasts at least the AP's own window. (In the parallel test an AP that
        // the host runs only after the window has closed takes just a few readings.)
        if strategy == "serial" {
            assert!(
                phase["min"].as_u64().unwrap_or(0) >= window(SERIAL_WINDOW_US),
                "{what}: {phase}"
            );
        }
    }
}

fn both_strategies_at(vcpus: u32) {
    for strategy in ["serial", "parallel"] {
        let (code, j, stderr) = boot_json(vcpus, &["--tsc-sync", strategy]);
        assert_synchronised(vcpus, strategy, code, &j, &stderr);
    }
}

#[test]
fn both_strategies_find_the_tscs_in_sync_at_2() {
    if kvm_available() {
        both_strategies_at(2);
    }
}

#[test]
fn both_strategies_find_the_tscs_in_sync_at_64() {
    if kvm_available() {
        both_strategies_at(64);
    }
}

#[test]
fn both_strategies_find_the_tscs_in_sync_at_256() {
    if kvm_available() {
        both_strategies_at(256);
    }
}

#[test]
fn every_bringup_runs_both_strategies() {
    if !kvm_available() {
        return;
    }
    for bringup in ["serial", "parallel"] {
        for kick in ["per-cpu", "broadcast"] {
            for strategy in ["serial", "parallel"] {
                let (code, j, stderr) = boot_json(
                    3,
                    &["--bringup", bringup, "--kick", kick, "--tsc-sync", strategy],
                );
                assert_eq!(j["bringup"], bringup);
                assert_synchronised(3, strategy, code, &j, &stderr);
            }
        }
    }
    // Only the BSP: nothing to compare, and nothing wrong.
    let (code, j, stderr) = boot_json(1, &["--tsc-sync", "parallel"]);
    assert_synchronised(1, "parallel", code, &j, &stderr);
}

#[test]
fn without_a_check_there_is_no_verdict_and_no_phase() {
    if !kvm_available() {
        return;
    }
    let (code, j, stderr) = boot_json(4, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let t = &j["tsc_sync"];
    assert_eq!(t["strategy"], "none", "{t}");
    assert!(t["synchronised"].is_null(), "{t}");
    assert_eq!((&t["cycles"], &t["checked_cpus"]), (&0.into(), &0.into()));
    assert!(j["phases"].get("tsc_sync").is_none(), "{}", j["phases"]);
    for c in j["cpus"].as_array().unwrap() {
        assert!(c["stamps"].get("tsc_sync").is_none(), "{c}");
        assert!(
            c["tsc_adjust"].is_null() && c["tsc_checked"] == false,
            "{c}"
        );
    }
}

/// Boots with vCPU `skewed`'s TSC `SKEW` cycles ahead and checks that the run fails naming
/// `named` (and only those).
fn assert_skew_caught(vcpus: u32, strategy: &str, skewed: u32, named: &[u32]) {
    let skew = format!("{skewed}:{SKEW}");
    let (code, j, stderr) = boot_json(vcpus, &["--tsc-sync", strategy, "--test-skew-tsc", &skew]);
    let what = format!("{vcpus} vCPUs, --tsc-sync {strategy}, vCPU {skewed} skewed");
    assert_eq!(
        code,
        Some(1),
        "{what}: the check must fail the run: {stderr}"
    );
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{what}: no error line: {stderr}"));
    assert!(error.contains("not synchronised"), "{what}: {error}");
    assert_eq!(j["status"], "guest-failure", "{what}");
    assert_eq!(
        j["online"], vcpus,
        "{what}: the skewed CPU still comes online"
    );
    let t = &j["tsc_sync"];
    assert_eq!(t["synchronised"], false, "{what}: {t}");
    let mut found: Vec<u64> = t["out_of_sync"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["apic_id"].as_u64().unwrap())
        .collect();
    found.sort_unstable();
    let named: Vec<u64> = named.iter().map(|n| u64::from(*n)).collect();
    assert_eq!(found, named, "{what}: {t}");
    if named.len() == 1 {
        assert!(
            error.contains(&format!("(APIC IDs {skewed})")),
            "{what}: {error}"
        );
    }
    // The warp is the skew, less the time between the readings compared.
    let warp = t["max_warp_cycles"].as_u64().unwrap();
    assert!(warp > SKEW / 2 && warp <= SKEW, "{what}: max warp {warp}");
    for c in t["out_of_sync"].as_array().unwrap() {
        let v = c["value"].as_u64().unwrap();
        assert!(v > SKEW / 2 && v <= SKEW, "{what}: {c}");
    }
}

#[test]
fn a_skewed_ap_is_caught_and_named_by_both_strategies() {
    if !kvm_available() {
        return;
    }
    for strategy in ["serial", "parallel"] {
        assert_skew_caught(4, strategy, 2, &[2]);
        assert_skew_caught(64, strategy, 63, &[63]);
    }
}

#[test]
fn a_skewed_bsp_puts_every_ap_out_of_sync() {
    if !kvm_available() {
        return;
    }
    // The BSP is the reference, as in Linux: every AP disagrees with it.
    for strategy in ["serial", "parallel"] {
        assert_skew_caught(4, strategy, 0, &[1, 2, 3]);
    }
}

#[test]
fn the_options_that_cannot_work_are_usage_errors() {
    let out = vmm(&["--tsc-sync", "parallel", "--bringup", "floor"]);
    assert_one_line_error(&out, 2, "--bringup");
    let out = vmm(&["--vcpus", "4", "--test-skew-tsc", "2:1000"]);
    assert_one_line_error(&out, 2, "--tsc-sync");
    let out = vmm(&[
        "--vcpus",
        "4",
        "--tsc-sync",
        "serial",
        "--test-skew-tsc",
        "4:1000",
    ]);
    assert_one_line_error(&out, 2, "vCPU 4");
    let out = vmm(&["--tsc-sync", "sometimes"]);
    assert_eq!(out.status.code(), Some(2));
}
