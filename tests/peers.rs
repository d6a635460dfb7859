//! The peer comparison of `make bench` (benches/bringup/, docs/benchmarks.md "Peers"): the
//! minimal PVH kernel every VMM boots, under sipi; and the harness's own peer code, compiled in
//! here, booting sipi's rows for real and catching a broken peer, a kernel that ends the wrong
//! way, and CPUs missing from a report.

mod common;

use std::path::{Path, PathBuf};

use common::*;

#[allow(dead_code)]
#[path = "../benches/bringup/guest_console.rs"]
mod guest_console;
#[allow(dead_code)]
#[path = "../benches/bringup/peer_binaries.rs"]
mod peer_binaries;
#[allow(dead_code)]
#[path = "../benches/bringup/peer_stats.rs"]
mod peer_stats;
#[allow(dead_code)]
#[path = "../benches/bringup/peers.rs"]
mod peers;
#[allow(dead_code)]
#[path = "../benches/bringup/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "../benches/bringup/runner.rs"]
mod runner;
#[allow(dead_code)]
#[path = "../benches/bringup/stats.rs"]
mod stats;

use peer_binaries::Binaries;
use peers::{PeerSample, Row};

/// sipi's binaries and inputs, no peer.
fn sipi_only() -> Binaries {
    Binaries {
        vmm: PathBuf::from(VMM),
        guest: PathBuf::from(GUEST_ELF),
        minimal_kernel: PathBuf::from(test_kernel("pvh_exit_now.elf")),
        ..Binaries::default()
    }
}

/// The counters of `vcpu` in the report's `kvm_stats`, over the whole run, by name; None
/// without counters on this host.
fn vcpu_counter(json: &serde_json::Value, vcpu: usize, name: &str) -> Option<u64> {
    let k = &json["kvm_stats"];
    if k["available"] != true {
        return None;
    }
    let i = k["vcpu"]["counters"]
        .as_array()?
        .iter()
        .position(|c| c == name)?;
    k["vcpu"]["setup_to_exit"][vcpu][i].as_u64()
}

#[test]
fn the_minimal_kernel_ends_at_once_through_isa_debug_exit() {
    if !kvm_available() {
        return;
    }
    let kernel = test_kernel("pvh_exit_now.elf");
    assert_eq!(
        std::fs::read(&kernel).expect("kernel")[4],
        2,
        "ELF64: Cloud Hypervisor and Firecracker load no ELF32"
    );
    for vcpus in [1u32, 2, 64, 256] {
        let n = vcpus.to_string();
        let b = boot_kernel(&kernel, &["--vcpus", &n]);
        let what = format!("pvh_exit_now at {vcpus} vCPUs");
        let j = &b.json;
        assert_eq!(b.code, Some(33), "{what}: {j}\nstderr: {}", b.stderr);
        assert_eq!(j["status"], "debug-exit", "{what}");
        assert_eq!(j["exit_via"], "isa-debug-exit", "{what}");
        assert_eq!(
            j["guest_status"],
            peers::MINIMAL_KERNEL_EXIT_VALUE,
            "{what}"
        );
        assert_eq!(j["vcpus"], vcpus, "{what}");
        assert_eq!(j["online"], 0, "{what}");
        assert!(j["error"].is_null(), "{what}: {j}");
        assert_eq!(b.console, "", "{what}: it prints nothing");
        // No AP ever ran guest code: none left KVM_RUN for the guest's sake.
        for ap in 1..vcpus as usize {
            if let Some(exits) = vcpu_counter(j, ap, "exits") {
                assert_eq!(exits, 0, "{what}: AP {ap} ran");
            }
        }
    }
}

#[test]
fn sipis_rows_boot_and_pass_their_checks() {
    if !kvm_available() {
        return;
    }
    let b = sipi_only();
    for row in [Row::SipiBringup, Row::SipiFloor, Row::SipiIdle] {
        let s = peers::run(row, &b, 2, None).unwrap_or_else(|e| panic!("{}: {e}", row.name()));
        assert!(
            s.wall_us > 0.0 && s.max_rss_kb > 0.0,
            "{}: {s:?}",
            row.name()
        );
        assert!(s.tsc_khz > 0.0, "{}: {s:?}", row.name());
        assert_eq!(
            s.guest_bringup_us.is_finite(),
            row != Row::SipiIdle,
            "{}: {s:?}",
            row.name()
        );
    }
}

#[test]
fn the_idle_row_rejects_a_kernel_that_ends_another_way() {
    if !kvm_available() {
        return;
    }
    // pvh_sipi_exit ends cleanly (status 0), but not the way the minimal kernel must.
    let b = Binaries {
        minimal_kernel: PathBuf::from(test_kernel("pvh_sipi_exit.elf")),
        ..sipi_only()
    };
    let e = peers::run(Row::SipiIdle, &b, 1, None).expect_err("a wrong ending must fail");
    assert!(e.contains("exited with status 0 (expected 33)"), "{e}");
}

#[test]
fn a_report_with_cpus_missing_fails_the_bringup_row() {
    let ok =
        serde_json::json!({"status": "ok", "online": 4, "bringup_us": 100.0, "tsc_khz": 2.0e6});
    assert_eq!(
        peers::check_sipi_report(Row::SipiBringup, 4, &ok),
        Ok((100.0, 2.0e6))
    );
    let missing = serde_json::json!({"status": "ok", "online": 3, "error": null});
    let e = peers::check_sipi_report(Row::SipiBringup, 4, &missing).unwrap_err();
    assert!(e.contains("3 of 4 CPUs online"), "{e}");
    let failed = serde_json::json!({"status": "guest-failure", "online": 4});
    assert!(peers::check_sipi_report(Row::SipiFloor, 4, &failed).is_err());
    let idle = serde_json::json!({"status": "debug-exit", "guest_status": 0x10, "online": 0});
    assert!(peers::check_sipi_report(Row::SipiIdle, 4, &idle).is_ok());
    let other = serde_json::json!({"status": "debug-exit", "guest_status": 0x11, "online": 0});
    assert!(peers::check_sipi_report(Row::SipiIdle, 4, &other).is_err());
}

#[test]
fn a_peer_that_fails_fails_its_boot() {
    let b = Binaries {
        cloud_hypervisor: Some(PathBuf::from("/bin/false")),
        firecracker: Some(PathBuf::from("/bin/false")),
        ..sipi_only()
    };
    for row in [Row::CloudHypervisorIdle, Row::FirecrackerIdle] {
        let e = peers::run(row, &b, 1, None).expect_err("/bin/false must fail");
        assert!(
            e.starts_with("/bin/false exited with status 1 (expected 0)"),
            "{}: {e}",
            row.name()
        );
    }
    // A peer the comparison was not given is not run.
    let e = peers::run(Row::MicrovmIdle, &sipi_only(), 1, None).unwrap_err();
    assert_eq!(e, "QEMU microvm, idle is not available");
}

#[test]
fn a_peer_variable_must_name_an_executable_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let plain = write_file(dir.path(), "not-executable", b"#!/bin/sh\n");
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let var = peer_binaries::FIRECRACKER_VAR;
    assert_eq!(
        peer_binaries::executable(var, &plain),
        Err(format!(
            "{var}={} is not an executable file",
            plain.display()
        ))
    );
    assert_eq!(
        peer_binaries::executable(var, dir.path()),
        Err(format!(
            "{var}={} is not an executable file",
            dir.path().display()
        ))
    );
    let gone = dir.path().join("gone");
    let e = peer_binaries::executable(var, &gone).unwrap_err();
    assert!(
        e.starts_with(&format!("{var}={} cannot be used: ", gone.display())),
        "{e}"
    );
    assert_eq!(
        peer_binaries::executable(var, Path::new("/bin/false")),
        Ok(PathBuf::from("/bin/false"))
    );
}

#[test]
fn every_row_runs_only_where_its_vmm_allows() {
    assert!(Row::FirecrackerIdle.applies_to(32));
    assert!(!Row::FirecrackerIdle.applies_to(33));
    assert!(Row::MicrovmGuest.applies_to(288));
    assert!(!Row::MicrovmIdle.applies_to(1024));
    assert!(Row::CloudHypervisorIdle.applies_to(1024));
    assert!(Row::SipiBringup.applies_to(4096));
}

fn sample(wall_us: f64) -> Option<PeerSample> {
    Some(PeerSample {
        wall_us,
        max_rss_kb: 1024.0,
        ..PeerSample::default()
    })
}

#[test]
fn ratios_pair_run_k_with_run_k() {
    // sipi 10, 30, 50 ms; the peer 20, (failed), 40 ms: the pairs are 10/20 and 50/40.
    let sipi = [sample(10.0), sample(30.0), sample(50.0)];
    let peer = [sample(20.0), None, sample(40.0)];
    let r = peer_stats::paired_ratio(&sipi, &peer);
    assert!((r - (0.5 + 1.25) / 2.0).abs() < 1e-9, "{r}");
    assert!(peer_stats::paired_ratio(&sipi[..1], &[None]).is_nan());
    let cells = peer_stats::cells(&[
        peer_stats::PeerSeries {
            row: Row::SipiBringup,
            vcpus: 4,
            runs: sipi.to_vec(),
        },
        peer_stats::PeerSeries {
            row: Row::CloudHypervisorIdle,
            vcpus: 4,
            runs: peer.to_vec(),
        },
        peer_stats::PeerSeries {
            row: Row::FirecrackerIdle,
            vcpus: 4,
            runs: vec![None, None, None],
        },
    ]);
    assert_eq!(cells.len(), 2, "a row with no good boot has no cell");
    let ch = &cells[1];
    assert_eq!((ch.runs, ch.wall_us_min, ch.wall_us_max), (2, 20.0, 40.0));
    assert_eq!(ch.wall_us, 30.0);
    assert!((ch.vs_sipi_bringup - r).abs() < 1e-9);
    assert!(ch.vs_sipi_idle.is_nan(), "no idle sipi row was run");
}

#[test]
fn the_guest_summary_on_a_console_is_read_and_checked() {
    let summary = "noise\nsipi-guest: cpus=4 online=4 missing=0 bringup=parallel/per-cpu bringup_cycles=2000000 x2apic\n";
    assert!(guest_console::all_online(summary, 4).is_ok());
    assert_eq!(
        guest_console::bringup_us(summary, Some(2_000_000.0)),
        1000.0
    );
    assert!(guest_console::bringup_us(summary, None).is_nan());
    assert!(guest_console::all_online(summary, 8).is_err());
    let missing = summary.replace("missing=0", "missing=1");
    assert!(guest_console::all_online(&missing, 4).is_err());
    assert!(guest_console::all_online("no summary", 1).is_err());
}
