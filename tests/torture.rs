//! `--scenario hotplug-torture` on real KVM: random CPU offline and online operations, several
//! in flight, while reader work runs on every online CPU; at 8 and 64 vCPUs with 1000
//! operations and no invariant violation, and with the grace-period barrier skipped (test
//! only), where the invariant check must find violations: the check can fail.

mod common;

use common::*;
use serde_json::Value;

/// Checks what every torture report must say, violations or not.
fn assert_torture_report(j: &Value, vcpus: u32, ops: u64, concurrency: u64, seed: u64) {
    let s = &j["scenario"];
    assert_eq!(s["name"], "hotplug-torture", "{s}");
    assert_eq!(s["ops"], ops, "every operation completed: {s}");
    assert_eq!(s["seed"], seed, "the seed is echoed: {s}");
    let c = s["concurrency"].as_u64().expect("concurrency");
    assert!((1..=concurrency).contains(&c), "{s}");
    let lat = &s["latency_cycles"];
    let (p50, p99, max) = (
        lat["p50"].as_u64().expect("p50"),
        lat["p99"].as_u64().expect("p99"),
        lat["max"].as_u64().expect("max"),
    );
    assert!(0 < p50 && p50 <= p99 && p99 <= max, "{s}");
    assert!(
        max <= s["duration_cycles"].as_u64().expect("duration"),
        "{s}"
    );
    assert!(s["ops_per_sec"].as_f64().expect("ops/s") > 0.0, "{s}");
    let cpus = j["cpus"].as_array().expect("cpus");
    assert_eq!(cpus.len(), vcpus as usize);
    for cpu in cpus {
        let state = cpu["state"].as_str().unwrap_or("");
        assert!(
            state == "online" || (cpu["bsp"] != true && state == "offline"),
            "every AP ends online or offline, none lost: {cpu}"
        );
    }
}

#[test]
fn torture_at_8_and_64_vcpus_finds_no_violation() {
    if !kvm_available() {
        return;
    }
    for vcpus in [8, 64] {
        let (code, j, stderr) = boot_json(
            vcpus,
            &[
                "--scenario",
                "hotplug-torture",
                "--ops",
                "1000",
                "--concurrency",
                "8",
                "--seed",
                "42",
            ],
        );
        assert_eq!(code, Some(0), "{vcpus} vCPUs: {stderr} {j}");
        assert_eq!(j["status"], "ok", "{j}");
        assert_eq!(j["scenario"]["violations"], 0, "{}", j["scenario"]);
        assert_eq!(j["scenario"]["violation_list"], Value::Array(vec![]));
        assert_torture_report(&j, vcpus, 1000, 8, 42);
    }
}

#[test]
fn skipping_the_grace_period_is_caught_by_the_invariant_check() {
    if !kvm_available() {
        return;
    }
    // 2000 operations: a run finds several violations per 1000 (docs/benchmarks.md, "Hotplug
    // torture"), so none at all would be a check that cannot fail rather than bad luck.
    let (code, j, stderr) = boot_json(
        8,
        &[
            "--scenario",
            "hotplug-torture",
            "--ops",
            "2000",
            "--concurrency",
            "8",
            "--seed",
            "7",
            "--test-skip-barrier",
        ],
    );
    assert_eq!(code, Some(1), "violations are a guest failure: {stderr}");
    assert!(
        stderr.contains("invariant violation") && stderr.lines().count() == 1,
        "one error line: {stderr}"
    );
    assert_eq!(j["status"], "guest-failure", "{j}");
    assert_torture_report(&j, 8, 2000, 8, 7);
    let s = &j["scenario"];
    let total = s["violations"].as_u64().expect("violations");
    let list = s["violation_list"].as_array().expect("violation list");
    assert!(total > 0, "no violation without the barrier: {s}");
    assert_eq!(list.len() as u64, total.min(64), "{s}");
    for v in list {
        assert_eq!(v["kind"], "handed-to-offline", "{v}");
        let (cpu, reader) = (v["cpu"].as_u64(), v["reader_cpu"].as_u64());
        assert!(
            cpu.is_some_and(|c| c < 8) && reader.is_some_and(|r| r < 8),
            "{v}"
        );
        assert_ne!(
            cpu, reader,
            "a reader never hands work to itself once closed: {v}"
        );
        let op = v["op"].as_u64().expect("op");
        assert!((1..=2000).contains(&op), "{v}");
    }
}
