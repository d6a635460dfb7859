//! The VMM's diagnostics go through `log`: at the default level stderr holds exactly the
//! lines it always did, `RUST_LOG=debug` adds the VMM's lifecycle, and `--quiet` still hides
//! the warnings (docs/cli.md, "Environment").

mod common;

use std::process::{Command, Output};

use common::*;

/// The warning a boot with `--test-no-kvm-stats` prints, as it read before `log`.
const STATS_WARNING: &str = "warning: KVM's own counters are unavailable, so this boot reports none: --test-no-kvm-stats: the VMM opened no statistics file, as on a host without them";

/// Boots 2 vCPUs without KVM's counters (so that there is a warning) with `RUST_LOG` set to
/// `rust_log` (or unset) and `extra` arguments; returns the output.
fn boot(rust_log: Option<&str>, extra: &[&str]) -> Output {
    let mut cmd = Command::new(VMM);
    cmd.args([
        "--vcpus",
        "2",
        "--console",
        "/dev/null",
        "--test-no-kvm-stats",
    ])
    .args(extra);
    match rust_log {
        Some(v) => cmd.env("RUST_LOG", v),
        None => cmd.env_remove("RUST_LOG"),
    };
    let out = cmd.output().expect("cannot run the vmm binary");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The lines a debug run adds for a 2-vCPU boot of the bundled guest.
const LIFECYCLE: &[&str] = &[
    "vCPU 0 thread started",
    "vCPU 1 thread started",
    "vCPU 1 runs",
    "2 vCPU threads, their vCPUs, the memory slots and the VM left to the kernel at exit",
    "placement: sipi's own guest gets the fixed boot layout",
    "ACPI tables for 2 vCPUs written",
    "is a device event: SipiExit(0)",
];

#[test]
fn the_default_level_prints_what_it_always_did() {
    if !kvm_available() {
        return;
    }
    let err = stderr(&boot(None, &[]));
    assert_eq!(err, format!("{STATS_WARNING}\n"), "exactly the warning");
    // RUST_LOG=warn and =info show the same: warnings and notes were always shown.
    for level in ["warn", "info"] {
        let err = stderr(&boot(Some(level), &[]));
        assert_eq!(err, format!("{STATS_WARNING}\n"), "RUST_LOG={level}");
    }
}

#[test]
fn rust_log_debug_shows_the_lifecycle() {
    if !kvm_available() {
        return;
    }
    let default = stderr(&boot(None, &[]));
    let debug = stderr(&boot(Some("debug"), &[]));
    for line in LIFECYCLE {
        assert!(
            debug.contains(line),
            "RUST_LOG=debug shows {line:?}: {debug}"
        );
        assert!(!default.contains(line), "the default run hides {line:?}");
    }
    // The warning reads the same among the debug lines.
    assert!(
        debug.lines().any(|l| l == STATS_WARNING),
        "the warning is unchanged: {debug}"
    );
    assert!(debug.lines().all(|l| !l.is_empty()), "one record a line");
    // A filter by module narrows them.
    let vcpu_only = stderr(&boot(Some("vmm::vcpu=debug"), &[]));
    assert!(vcpu_only.contains("vCPU 0 thread started"), "{vcpu_only}");
    assert!(!vcpu_only.contains("placement:"), "{vcpu_only}");
    assert!(!vcpu_only.contains(STATS_WARNING), "{vcpu_only}");
}

#[test]
fn quiet_still_hides_the_warnings() {
    if !kvm_available() {
        return;
    }
    let out = boot(None, &["--quiet"]);
    assert!(out.stderr.is_empty(), "--quiet: {}", stderr(&out));
    assert!(out.stdout.is_empty(), "--quiet: no summary");
    // With RUST_LOG=debug the lifecycle shows, but --quiet still hides the warning.
    let err = stderr(&boot(Some("debug"), &["--quiet"]));
    assert!(err.contains("vCPU 0 thread started"), "{err}");
    assert!(!err.contains("warning:"), "--quiet hides warnings: {err}");
}
