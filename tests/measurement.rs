//! Measurement truth (docs/kvm_stats.md): the bundled guest makes no exit to the VMM inside its
//! timed windows but its one report doorbell, and the check catches a guest that does. A
//! 64-vCPU boot has no exit before the doorbell on any AP and exactly the doorbell on the BSP;
//! with `--test-ap-port-write 5`, the AP with APIC ID 5 writes port 0x80 once inside its
//! bringup window, which must show as exactly one more exit on that vCPU, fail the run with
//! bad-report (6) and name the vCPU. KVM's own `exits` counter of each vCPU must cover what
//! sipi counted.

mod common;

use common::*;
use serde_json::Value;

/// vCPUs of the boots.
const VCPUS: u32 = 64;
/// The AP that makes the deliberate port write (APIC ID = vCPU index in sipi's topology).
const VIOLATOR: u64 = 5;

/// sipi's count of each vCPU's exits to the VMM before the doorbell.
fn window_exits(j: &Value) -> Vec<u64> {
    j["measurement"]["userspace_exits"]
        .as_array()
        .unwrap_or_else(|| panic!("no measurement: {}", j["measurement"]))
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

/// KVM's `name` counter of each vCPU over the bringup window (setup to doorbell).
fn kvm_column(j: &Value, name: &str) -> Vec<u64> {
    let k = &j["kvm_stats"]["vcpu"];
    let at = k["counters"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no counter {name}"));
    k["setup_to_doorbell"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[at].as_u64().unwrap())
        .collect()
}

/// The BSP's writes and reads of the vCPU-readiness port, which the protocol allows.
fn readiness_accesses(j: &Value) -> u64 {
    let b = &j["bsp_start"];
    b["ready_asks"].as_u64().unwrap() + b["ready_queries"].as_u64().unwrap()
}

/// Every exit sipi saw is one KVM counted: its `exits` cover sipi's counts, vCPU by vCPU.
fn kvm_covers(j: &Value, sipi: &[u64]) {
    if j["kvm_stats"]["available"] != true {
        return;
    }
    let kvm = kvm_column(j, "exits");
    for (v, (k, s)) in kvm.iter().zip(sipi).enumerate() {
        assert!(
            k >= s,
            "vCPU {v}: KVM counted {k} exits, sipi {s} to the VMM"
        );
    }
}

#[test]
fn a_normal_boot_exits_only_for_its_doorbell() {
    if !kvm_available() {
        return;
    }
    let (code, j, stderr) = boot_json(VCPUS, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let m = &j["measurement"];
    assert_eq!(m["window"], "first-run-to-doorbell");
    assert_eq!(m["doorbell_vcpu"], 0);
    assert_eq!(m["violations"], serde_json::json!([]));
    let exits = window_exits(&j);
    assert_eq!(exits.len(), VCPUS as usize);
    let asked = readiness_accesses(&j);
    assert!(
        asked >= 2,
        "the BSP, started early, asks which vCPUs exist at least once"
    );
    assert_eq!(
        exits[0],
        1 + asked,
        "the BSP: its doorbell and its readiness questions only"
    );
    assert_eq!(m["doorbell_vcpu_allowed"], 1 + asked);
    assert!(exits[1..].iter().all(|&e| e == 0), "{exits:?}");
    kvm_covers(&j, &exits);
    assert_eq!(j["timeline"], serde_json::json!([]));
}

#[test]
fn one_port_write_in_an_aps_bringup_window_fails_the_check() {
    if !kvm_available() {
        return;
    }
    let id = VIOLATOR.to_string();
    let (code, j, stderr) = boot_json(VCPUS, &["--test-ap-port-write", &id]);
    assert_eq!(code, Some(6), "bad-report: {stderr}");
    assert_eq!(j["status"], "bad-report");
    assert_eq!(j["online"], VCPUS, "bringup itself succeeded");
    let exits = window_exits(&j);
    assert_eq!(
        exits[0],
        1 + readiness_accesses(&j),
        "the BSP: its doorbell and its readiness questions only"
    );
    for (v, &e) in exits.iter().enumerate().skip(1) {
        let want = u64::from(v as u64 == VIOLATOR);
        assert_eq!(e, want, "vCPU {v}: {exits:?}");
    }
    assert_eq!(
        j["measurement"]["violations"],
        serde_json::json!([{"vcpu": VIOLATOR, "exits": 1, "allowed": 0}])
    );
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or("");
    assert!(
        line.contains(&format!(
            "vCPU {VIOLATOR} made 1 exit to the VMM before the report doorbell"
        )),
        "{stderr}"
    );
    assert_eq!(j["error"].as_str(), line.strip_prefix("error: "));
    kvm_covers(&j, &exits);
    // The write went to the debug port: the timeline has it, from that vCPU.
    let t = &j["timeline"];
    assert_eq!(t.as_array().map(Vec::len), Some(1), "{t}");
    assert_eq!(t[0]["vcpu"], VIOLATOR);
    assert_eq!(t[0]["code"], 0xA9);
    // Where the host counts port I/O exits (VMX/SVM; kvm_pvm does not), KVM sees it too.
    if j["kvm_stats"]["available"] == true {
        let io = kvm_column(&j, "io_exits");
        if io[0] > 0 {
            assert!(io[VIOLATOR as usize] >= 1, "{io:?}");
        }
    }
}
