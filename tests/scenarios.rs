//! Scenarios after bringup on real KVM (`--scenario`): every AP taken offline serially or in
//! parallel, each parked with its teardown stamps in order, reboot cycles that bring the
//! same APs online again through the same SIPI and trampoline path, and ACPI S3 suspends after
//! each of which every AP comes online again, at 8 and 64 vCPUs.

mod common;

use common::*;
use serde_json::Value;

/// Boots `vcpus` with `extra` options and returns the JSON report, checking the VM ended well.
fn run(vcpus: u32, extra: &[&str]) -> Value {
    let dir = tempdir();
    let json = dir.path().join("r.json");
    let n = vcpus.to_string();
    let mut args = vec![
        "--vcpus",
        &n,
        "--quiet",
        "--console",
        "/dev/null",
        "--json",
        json.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = vmm(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        json.exists(),
        "no JSON for {vcpus} vCPUs {extra:?}: {stderr}"
    );
    let j = read_json(&json);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{vcpus} vCPUs {extra:?}: {stderr} {j}"
    );
    assert_eq!(j["status"], "ok", "{j}");
    j
}

/// Checks that every AP is offline, parked with its teardown stamps, and that the per-phase
/// teardown statistics cover every AP.
fn assert_all_parked(vcpus: u32, j: &Value, what: &str) {
    let aps = u64::from(vcpus - 1);
    let s = &j["scenario"];
    assert_eq!(j["online"], 1, "{what}: only the BSP stays online: {s}");
    assert_eq!(s["parked"], aps, "{what}: {s}");
    assert_eq!(s["violations"], 0, "{what}: {s}");
    assert!(
        s["teardown_cycles"].as_u64().unwrap_or(0) > 0,
        "{what}: {s}"
    );
    for phase in ["ack", "parked", "init", "request_to_init"] {
        assert_eq!(
            s["teardown_phases"][phase]["count"], aps,
            "{what}: every AP has the {phase} phase: {s}"
        );
    }
    let cpus = j["cpus"].as_array().expect("cpus");
    assert_eq!(cpus.len(), vcpus as usize, "{what}");
    for c in cpus {
        let want = if c["bsp"] == true {
            "online"
        } else {
            "offline"
        };
        assert_eq!(c["state"], want, "{what}: {c}");
    }
}

#[test]
fn teardown_serial_and_parallel_park_every_ap() {
    if !kvm_available() {
        return;
    }
    for vcpus in [8, 64] {
        for mode in ["serial", "parallel"] {
            let what = format!("{vcpus} vCPUs, {mode} teardown");
            let j = run(vcpus, &["--scenario", "teardown", "--teardown", mode]);
            let s = &j["scenario"];
            assert_eq!(s["name"], "teardown", "{what}");
            assert_eq!(s["teardown"], mode, "{what}");
            assert_eq!(s["rounds"], 1, "{what}");
            assert_eq!(s["ops"], u64::from(vcpus - 1), "{what}");
            assert_all_parked(vcpus, &j, &what);
        }
    }
}

#[test]
fn reboot_cycles_bring_the_same_aps_up_and_down_each_round() {
    if !kvm_available() {
        return;
    }
    for (vcpus, mode) in [(8, "serial"), (64, "parallel")] {
        let what = format!("{vcpus} vCPUs, {mode} teardown, 3 cycles");
        let j = run(
            vcpus,
            &[
                "--scenario",
                "reboot-cycles",
                "--teardown",
                mode,
                "--cycles",
                "3",
            ],
        );
        let s = &j["scenario"];
        assert_eq!(s["name"], "reboot-cycles", "{what}");
        assert_eq!(s["rounds"], 3, "{what}");
        // Round 1's "up" is the boot; each round takes every AP down, rounds 2 and 3 bring
        // them up again.
        assert_eq!(s["ops"], 5 * u64::from(vcpus - 1), "{what}");
        let rounds = s["round_cycles"].as_array().expect("round_cycles");
        assert_eq!(rounds.len(), 3, "{what}");
        for r in rounds {
            assert!(r["up_cycles"].as_u64().unwrap_or(0) > 0, "{what}: {r}");
            assert!(r["down_cycles"].as_u64().unwrap_or(0) > 0, "{what}: {r}");
        }
        assert_eq!(s["round_stats"]["up"]["count"], 3, "{what}");
        // The CPU records hold the last bringup, inside the (moved) bringup window, with
        // every phase the trampoline and the AP's Rust code stamp.
        for c in j["cpus"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["bsp"] == false)
        {
            for p in ["kick", "trampoline", "long_mode", "percpu_init", "online"] {
                assert!(c["stamps"][p].as_u64().is_some(), "{what}: {p} in {c}");
            }
        }
        assert_all_parked(vcpus, &j, &what);
    }
}

/// The stamp `name` of a JSON stamps object, which must be there and nonzero.
fn stamp(stamps: &Value, name: &str, what: &str) -> u64 {
    let v = stamps[name].as_u64().unwrap_or(0);
    assert!(v > 0, "{what}: no {name} stamp in {stamps}");
    v
}

#[test]
fn suspend_resume_brings_every_ap_online_again_after_each_resume() {
    if !kvm_available() {
        return;
    }
    for (vcpus, suspends) in [(8u32, 2u64), (64, 1)] {
        for mode in ["serial", "parallel"] {
            let what = format!("{vcpus} vCPUs, {mode} bringup, {suspends} suspends");
            let k = suspends.to_string();
            let j = run(
                vcpus,
                &[
                    "--scenario",
                    "suspend-resume",
                    "--bringup",
                    mode,
                    "--cycles",
                    &k,
                ],
            );
            let s = &j["scenario"];
            assert_eq!(s["name"], "suspend-resume", "{what}");
            assert!(s["teardown"].is_null(), "{what}: {s}");
            assert_eq!(s["rounds"], suspends + 1, "{what}: {s}");
            let aps = u64::from(vcpus - 1);
            assert_eq!(
                s["ops"],
                suspends * aps,
                "{what}: every AP after every resume"
            );
            assert_eq!(j["online"], vcpus, "{what}");
            // Round 1 is the boot's bringup; each suspend ends a round (its "down" is the
            // suspend to the resume) and the next round's "up" runs from the resume to every
            // AP online again.
            let rounds = s["round_cycles"].as_array().expect("round_cycles");
            assert_eq!(rounds.len() as u64, suspends + 1, "{what}");
            for (i, r) in rounds.iter().enumerate() {
                assert!(r["up_cycles"].as_u64().unwrap_or(0) > 0, "{what}: {r}");
                let down = r["down_cycles"].as_u64().unwrap_or(0);
                assert_eq!(
                    down > 0,
                    i + 1 < rounds.len(),
                    "{what}: round {}: {r}",
                    i + 1
                );
            }
            // The bringup window is the last resume's: the BSP's stamps in order, and the
            // last round's "up" is that window.
            let b = &j["bsp_stamps"];
            let order = [
                "entry",
                "rust_entry",
                "acpi_parsed",
                "bringup_start",
                "all_online",
                "report",
            ]
            .map(|p| stamp(b, p, &what));
            assert!(order.windows(2).all(|w| w[0] < w[1]), "{what}: {b}");
            let (resume, all_online) = (order[3], order[4]);
            assert_eq!(
                rounds.last().unwrap()["up_cycles"].as_u64(),
                Some(all_online - resume),
                "{what}"
            );
            // Every AP came up again after the last resume, through every phase, in order.
            for c in j["cpus"].as_array().unwrap() {
                assert_eq!(c["state"], "online", "{what}: {c}");
                if c["bsp"] == true {
                    continue;
                }
                let phases = ["kick", "trampoline", "long_mode", "percpu_init", "online"]
                    .map(|p| stamp(&c["stamps"], p, &what));
                assert!(
                    phases.windows(2).all(|w| w[0] <= w[1]),
                    "{what}: phases out of order: {c}"
                );
                assert!(
                    resume <= phases[0] && phases[4] <= all_online,
                    "{what}: not inside the resume's bringup: {c}"
                );
            }
            for p in ["trampoline", "long_mode", "percpu_init", "online"] {
                assert_eq!(j["phases"][p]["count"], aps, "{what}: {p}");
            }
        }
    }
}

#[test]
fn suspend_resume_sleeps_as_long_as_wake_after_says() {
    if !kvm_available() {
        return;
    }
    let j = run(2, &["--scenario", "suspend-resume", "--wake-after", "0.2"]);
    let s = &j["scenario"];
    let khz = j["tsc_khz"].as_u64().unwrap_or(0);
    let down = s["round_cycles"][0]["down_cycles"].as_u64().unwrap_or(0);
    if let Some(ms) = down.checked_div(khz) {
        assert!(ms >= 200, "slept {ms} ms: {s}");
    }
    assert_eq!(j["online"], 2, "{s}");
}

#[test]
fn the_default_boot_scenario_reports_no_scenario_results() {
    if !kvm_available() {
        return;
    }
    let j = run(4, &[]);
    let s = &j["scenario"];
    assert_eq!(s["name"], "boot", "{s}");
    assert_eq!(
        (s["rounds"].as_u64(), s["ops"].as_u64()),
        (Some(0), Some(0)),
        "{s}"
    );
    assert!(s["teardown"].is_null(), "{s}");
    assert_eq!(j["online"], 4);
}

#[test]
fn inconsistent_scenario_options_are_one_line_usage_errors() {
    for (args, needle) in [
        (&["--teardown", "serial"][..], "--scenario"),
        (&["--scenario", "teardown"][..], "--teardown"),
        (
            &["--scenario", "reboot-cycles", "--teardown", "parallel"][..],
            "--cycles",
        ),
        (
            &[
                "--scenario",
                "teardown",
                "--teardown",
                "serial",
                "--bringup",
                "none",
            ][..],
            "--bringup",
        ),
        (
            &["--scenario", "suspend-resume", "--teardown", "serial"][..],
            "--teardown",
        ),
    ] {
        let out = vmm(args);
        assert_one_line_error(&out, 2, needle);
    }
}
