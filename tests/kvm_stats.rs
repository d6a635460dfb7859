//! KVM's own counters per boot (docs/kvm_stats.md): a 64-vCPU boot of the bundled guest
//! reports every vCPU's counters for each window, and the human summary names them.

mod common;

use common::*;
use serde_json::Value;

/// The per-vCPU values of `window` for counter `name`, one per vCPU (None where missing).
fn column(k: &Value, window: &str, name: &str) -> Vec<Option<u64>> {
    let counters = k["vcpu"]["counters"].as_array().expect("vcpu.counters");
    let at = counters
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no counter {name} in {counters:?}"));
    k["vcpu"][window]
        .as_array()
        .unwrap_or_else(|| panic!("no window {window}"))
        .iter()
        .map(|v| v.as_array().and_then(|v| v[at].as_u64()))
        .collect()
}

#[test]
fn a_64_vcpu_boot_has_every_vcpus_exits_per_window() {
    if !kvm_available() {
        return;
    }
    let (code, j, stderr) = boot_json(64, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let k = &j["kvm_stats"];
    assert_eq!(k["available"], true, "{k}");
    assert_eq!(k["unavailable_reason"], Value::Null, "{k}");
    assert_eq!(
        k["missing"],
        serde_json::json!([]),
        "this host has every key counter"
    );
    for window in ["setup_to_doorbell", "doorbell_to_exit"] {
        let exits = column(k, window, "exits");
        assert_eq!(exits.len(), 64, "{window}");
        assert!(exits.iter().all(Option::is_some), "{window}: {exits:?}");
        let io = column(k, window, "io_exits");
        assert!(io.iter().all(Option::is_some), "{window}: {io:?}");
        assert!(k["vm"][window].is_array(), "{window}: VM counters");
    }
    assert!(
        k["vcpu"].get("setup_to_exit").is_none(),
        "there was a doorbell"
    );
    // Every AP exits during bringup: its INIT/SIPI wait, its halts, its emulated instructions.
    let exits = column(k, "setup_to_doorbell", "exits");
    for (i, e) in exits.iter().enumerate().skip(1) {
        assert!(e.unwrap() > 0, "AP vCPU {i} has no exits during bringup");
    }
    assert!(exits[0].unwrap() > 0, "the BSP exits during bringup");
    let aps = &k["summary"]["setup_to_doorbell"]["aps"]["exits"];
    let sum: u64 = exits.iter().skip(1).map(|e| e.unwrap()).sum();
    assert_eq!(aps["sum"], sum, "{aps}");
    assert!(aps["min"].as_u64() <= aps["median"].as_u64());
    assert!(aps["median"].as_u64() <= aps["max"].as_u64());
    assert_eq!(
        k["summary"]["setup_to_doorbell"]["bsp"]["exits"],
        exits[0].unwrap()
    );
}

#[test]
fn the_summary_names_the_bsp_median_and_worst_ap_and_per_cpu_every_cpu() {
    if !kvm_available() {
        return;
    }
    let out = vmm(&["--vcpus", "8", "--console", "/dev/null"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("kvm exits (setup to doorbell):"))
        .unwrap_or_else(|| panic!("no kvm exits line in {text}"));
    assert!(
        line.contains("BSP") && line.contains("median AP") && line.contains("worst AP"),
        "{line}"
    );
    let out = vmm(&["--vcpus", "8", "--console", "/dev/null", "--per-cpu"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for i in 0..8 {
        assert!(
            text.contains(&format!("  vCPU {i}: ")),
            "vCPU {i} in {text}"
        );
    }
}

#[test]
fn a_kernel_without_a_doorbell_has_one_window_for_every_vcpu() {
    if !kvm_available() {
        return;
    }
    let b = boot_kernel(&test_kernel("pvh_debug_exit.elf"), &["--vcpus", "2"]);
    let k = &b.json["kvm_stats"];
    assert_eq!(k["available"], true, "{k}");
    assert!(k["vcpu"].get("setup_to_doorbell").is_none(), "{k}");
    let exits = column(k, "setup_to_exit", "exits");
    assert_eq!(exits.len(), 2, "{k}");
    assert!(exits[0].unwrap() > 0, "the BSP ran: {k}");
    // The AP never got a SIPI from this kernel: its window is there, with no growth.
    assert_eq!(exits[1], Some(0), "{k}");
    assert!(k["vm"]["setup_to_exit"].is_array(), "{k}");
}

#[test]
fn a_host_without_statistics_still_boots_warns_once_and_says_why() {
    if !kvm_available() {
        return;
    }
    let dir = tempdir();
    let json = dir.path().join("r.json");
    let out = vmm(&[
        "--vcpus",
        "4",
        "--console",
        "/dev/null",
        "--test-no-kvm-stats",
        "--json",
        json.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("counters are unavailable"))
        .collect();
    assert_eq!(warnings.len(), 1, "said once: {stderr}");
    assert!(
        !stdout.contains("kvm exits"),
        "no counters to show: {stdout}"
    );
    let k = &read_json(&json)["kvm_stats"];
    assert_eq!(k["available"], false, "{k}");
    assert!(
        k["unavailable_reason"]
            .as_str()
            .is_some_and(|r| r.contains("no statistics file")),
        "{k}"
    );
    assert_eq!(k["vcpu"], Value::Null, "{k}");
    // The guest's own report is untouched.
    assert_eq!(read_json(&json)["online"], 4);
}
