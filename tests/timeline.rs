//! The boot timeline of a foreign kernel: Firecracker's boot timer (byte 123 at MMIO
//! 0xd0000000) and Cloud Hypervisor's debug port (port 0x80) reach the JSON's `timeline` in the
//! order the kernel wrote them, with their vCPU, code and range and nondecreasing times, and
//! the human summary prints Firecracker's `Guest-boot-time` line. A kernel that floods port
//! 0x80 as Linux's I/O delay does gets a bounded list and the exact count of the rest. Kernels
//! from tests/kernels/ (`make kernels`).

mod common;

use common::*;

/// Debug-port events the VMM keeps (vmm's `TIMELINE_CAP`, docs/json.md).
const DEBUG_PORT_KEPT: usize = 1024;
/// Port 0x80 writes of pvh_timeline_flood.
const FLOOD_WRITES: u64 = 100_000;

/// The `(source, code, range)` of each timeline event, and checks their common fields.
fn events(j: &serde_json::Value, vcpus: u32) -> Vec<(String, u64, Option<String>)> {
    let t = j["timeline"].as_array().expect("a timeline list");
    let mut last = 0;
    t.iter()
        .map(|e| {
            let at = e["t_us"].as_u64().expect("t_us");
            assert!(at >= last, "times go back: {e} after {last}");
            assert!(at <= j["vmm_phases_us"]["total"].as_u64().unwrap(), "{e}");
            last = at;
            assert!(e["vcpu"].as_u64().unwrap() < u64::from(vcpus), "{e}");
            (
                e["source"].as_str().unwrap().to_string(),
                e["code"].as_u64().unwrap(),
                e["range"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn both_conventions_reach_the_timeline_in_order() {
    if !kvm_available() {
        return;
    }
    let kernel = test_kernel("pvh_timeline.elf");
    for vcpus in [1u32, 4] {
        let n = vcpus.to_string();
        let b = boot_kernel(&kernel, &["--vcpus", &n, "--timeout", "30"]);
        assert_eq!(b.code, Some((0x33 << 1) | 1), "stderr: {}", b.stderr);
        let j = &b.json;
        let got = events(j, vcpus);
        let dp = |code: u64, range: &str| ("debug-port".to_string(), code, Some(range.to_string()));
        let want = vec![
            dp(0x05, "firmware"),
            dp(0x25, "bootloader"),
            dp(0x45, "kernel"),
            ("boot-timer".to_string(), 123, None),
            dp(0x65, "userspace"),
            dp(0x85, "custom"),
        ];
        assert_eq!(
            got, want,
            "{vcpus} vCPUs: the byte 122 is not the boot timer's"
        );
        assert_eq!(j["timeline_dropped"], 0);
        for e in j["timeline"].as_array().unwrap() {
            assert_eq!(e["vcpu"], 0, "the BSP wrote them all");
        }
        let boot_timer = &j["timeline"][3];
        assert!(boot_timer["cpu_us"].as_u64().is_some(), "{boot_timer}");
        let t_us = boot_timer["t_us"].as_u64().unwrap();
        let line = format!(
            "timeline: Guest-boot-time = {t_us:>6} us {} ms, ",
            t_us / 1000
        );
        assert!(b.stdout.contains(&line), "{line:?} in:\n{}", b.stdout);
        assert!(
            b.stdout.contains("timeline: debug port 0x45 (kernel) at "),
            "{}",
            b.stdout
        );
    }
}

#[test]
fn a_flood_of_port_0x80_writes_is_bounded_and_counted() {
    if !kvm_available() {
        return;
    }
    let kernel = test_kernel("pvh_timeline_flood.elf");
    let b = boot_kernel(&kernel, &["--vcpus", "2", "--timeout", "60"]);
    assert_eq!(b.code, Some((0x34 << 1) | 1), "stderr: {}", b.stderr);
    let j = &b.json;
    let got = events(j, 2);
    assert_eq!(
        got.len(),
        DEBUG_PORT_KEPT + 1,
        "the first writes and the boot timer"
    );
    // The kernel writes the low byte of its countdown: 100000, 99999, ...
    for (i, (source, code, _)) in got[..DEBUG_PORT_KEPT].iter().enumerate() {
        assert_eq!(source, "debug-port");
        assert_eq!(*code, (FLOOD_WRITES - i as u64) & 0xFF, "event {i}");
    }
    assert_eq!(
        got[DEBUG_PORT_KEPT].0, "boot-timer",
        "a flood does not hide it"
    );
    assert_eq!(
        j["timeline_dropped"].as_u64(),
        Some(FLOOD_WRITES - DEBUG_PORT_KEPT as u64)
    );
    assert!(
        b.stdout.contains("timeline: Guest-boot-time = "),
        "{}",
        b.stdout
    );
    assert!(
        b.stdout.contains(&format!(
            "timeline: {} more events past the timeline's bound, counted only",
            FLOOD_WRITES - DEBUG_PORT_KEPT as u64
        )),
        "{}",
        b.stdout
    );
}

#[test]
fn kernels_that_mark_nothing_have_an_empty_timeline() {
    if !kvm_available() {
        return;
    }
    let b = boot_kernel(&test_kernel("pvh_debug_exit.elf"), &["--vcpus", "1"]);
    assert_eq!(b.json["timeline"], serde_json::json!([]));
    assert_eq!(b.json["timeline_dropped"], 0);
    assert!(!b.stdout.contains("timeline:"), "{}", b.stdout);
    let (code, j, stderr) = boot_json(4, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(j["timeline"], serde_json::json!([]), "the bundled guest");
}
