//! Boots the bundled guest on real KVM and checks its report.

mod common;

use common::*;

/// Boots with `args` plus a JSON report and returns (exit code, JSON, stdout, stderr).
fn boot(args: &[&str]) -> (Option<i32>, serde_json::Value, String, String) {
    let dir = tempdir();
    let json = dir.path().join("r.json");
    let mut all = args.to_vec();
    let json_arg = json.to_str().expect("utf-8 temp path").to_string();
    all.extend(["--json", &json_arg]);
    let out = vmm(&all);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        json.exists(),
        "no JSON report; status {:?}, stderr: {stderr}",
        out.status
    );
    (out.status.code(), read_json(&json), stdout, stderr)
}

fn phases_present(j: &serde_json::Value) {
    let p = &j["vmm_phases_us"];
    for k in [
        "open_kvm",
        "create_vm",
        "memory",
        "create_vcpus",
        "load_kernel",
        "acpi",
        "first_run",
        "report",
        "total",
    ] {
        assert!(p[k].is_u64(), "vmm_phases_us.{k} missing in {p}");
    }
    assert!(
        p["total"].as_u64() >= p["report"].as_u64(),
        "total covers the guest's run: {p}"
    );
}

#[test]
fn one_vcpu_boots_and_reports() {
    if !kvm_available() {
        return;
    }
    let (code, j, stdout, stderr) = boot(&["--vcpus", "1"]);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(j["vcpus"], 1);
    assert_eq!(j["online"], 1);
    assert_eq!(j["status"], "ok");
    assert_eq!(j["madt_cpus"], 1);
    assert_eq!(j["bsp_apic_id"], 0);
    assert!(
        j["tsc_khz"].as_u64().unwrap_or(0) > 0,
        "KVM reports a TSC frequency: {j}"
    );
    assert!(j["guest_cycles"].as_u64().unwrap_or(0) > 0);
    phases_present(&j);
    assert!(stdout.contains("1/1 vCPUs online"), "summary: {stdout}");
    assert!(
        stderr.contains("sipi-guest"),
        "the guest's console line reaches stderr: {stderr}"
    );
    let cpus = j["cpus"].as_array().expect("cpus array");
    assert_eq!(cpus.len(), 1);
    assert_eq!(cpus[0]["state"], "online");
    assert_eq!(cpus[0]["bsp"], true);
}

#[test]
fn two_vcpus_are_listed_in_the_madt() {
    if !kvm_available() {
        return;
    }
    let (code, j, _, stderr) = boot(&["--vcpus", "2", "--bringup", "none"]);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(j["vcpus"], 2);
    assert_eq!(j["madt_cpus"], 2);
    assert_eq!(j["online"], 1, "with --bringup none only the BSP is online");
    let cpus = j["cpus"].as_array().expect("cpus array");
    let ids: Vec<_> = cpus.iter().map(|c| c["apic_id"].as_u64()).collect();
    assert_eq!(ids, [Some(0), Some(1)]);
}

#[test]
fn the_same_kernel_boots_from_a_file_through_both_entries() {
    if !kvm_available() {
        return;
    }
    for entry in ["pvh", "long"] {
        let (code, j, _, stderr) = boot(&["--kernel", GUEST_ELF, "--entry", entry, "--vcpus", "1"]);
        assert_eq!(code, Some(0), "--entry {entry}: {stderr}");
        assert_eq!(j["online"], 1, "--entry {entry}");
    }
}

#[test]
fn console_output_goes_to_the_console_file() {
    if !kvm_available() {
        return;
    }
    let dir = tempdir();
    let console = dir.path().join("console.txt");
    let out = vmm(&[
        "--vcpus",
        "1",
        "--quiet",
        "--console",
        console.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "--quiet prints no summary");
    let text = std::fs::read_to_string(&console).unwrap();
    assert!(text.contains("sipi-guest"), "console file: {text:?}");
}

#[test]
fn a_guest_exception_is_reported_with_vector_and_rip() {
    if !kvm_available() {
        return;
    }
    for (vector, name) in [(13, "#GP"), (6, "#UD")] {
        let v = vector.to_string();
        let out = vmm(&["--vcpus", "1", "--test-fault-vector", &v]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "vector {vector}: {stderr}");
        let line = stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_default();
        assert!(
            line.contains(name) && line.contains(&format!("vector {vector}")),
            "{line}"
        );
        assert!(line.contains("RIP 0x"), "{line}");
    }
}
