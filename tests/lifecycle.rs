//! How a VM ends when the guest does not: the timeout fires, SIGINT and SIGTERM stop it
//! cleanly, and each has its documented exit status.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A kernel that halts forever with interrupts off: `cli; hlt; jmp .-1` (Intel SDM Vol. 2).
const HALT_FOREVER: [u8; 4] = [0xFA, 0xF4, 0xEB, 0xFD];

fn halting_kernel(dir: &std::path::Path) -> String {
    let p = write_file(dir, "halt.elf", &tiny_elf(0x10_0000, &HALT_FOREVER));
    p.to_str().expect("utf-8 temp path").to_string()
}

#[test]
fn the_timeout_ends_a_guest_that_never_finishes() {
    if !kvm_available() {
        return;
    }
    let dir = tempdir();
    let kernel = halting_kernel(dir.path());
    let json = dir.path().join("r.json");
    let start = Instant::now();
    let out = vmm(&[
        "--kernel",
        &kernel,
        "--vcpus",
        "4",
        "--timeout",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_one_line_error(&out, 5, "--timeout 1");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the timeout fired late: {:?}",
        start.elapsed()
    );
    let j = read_json(&json);
    assert_eq!(j["status"], "timeout");
    assert_eq!(j["online"], 0, "nothing was reported online");
    assert_eq!(
        j["reached"],
        serde_json::Value::Null,
        "no live state published"
    );
}

#[test]
fn a_timeout_says_what_the_spinning_guest_had_reached() {
    if !kvm_available() {
        return;
    }
    // The bundled guest's BSP spins forever after the phase named (test only).
    for (phase, online, stuck) in [("all_online", 8, 0), ("acpi_parsed", 1, 7)] {
        let (code, j, stderr) = boot_json(8, &["--test-hang-after", phase, "--timeout", "1"]);
        assert_eq!(code, Some(5), "{phase}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "it had reached {phase} with {online}/8 CPUs online"
            )),
            "{phase}: {stderr}"
        );
        let r = &j["reached"];
        assert_eq!(r["bsp_phase"], phase, "{j}");
        assert_eq!(
            (r["cpus"].as_u64(), r["online"].as_u64()),
            (Some(8), Some(online))
        );
        assert_eq!(j["online"], online, "{j}");
        let listed = r["stuck"].as_array().expect("stuck").len();
        assert_eq!(listed, stuck, "{r}");
        assert!(r["bsp_stamps"][phase].as_u64().unwrap_or(0) > 0, "{r}");
    }
}

#[test]
fn sigint_and_sigterm_stop_the_vm_cleanly() {
    if !kvm_available() {
        return;
    }
    let dir = tempdir();
    let kernel = halting_kernel(dir.path());
    for (signal, code, word) in [
        (libc::SIGINT, 130, "SIGINT"),
        (libc::SIGTERM, 143, "SIGTERM"),
    ] {
        let child = Command::new(VMM)
            .args(["--kernel", &kernel, "--vcpus", "8", "--timeout", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start vmm");
        // Let it get as far as running the vCPUs.
        std::thread::sleep(Duration::from_millis(500));
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
        // SAFETY: sending a signal to our own child process has no memory-safety effect.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let out = child.wait_with_output().expect("vmm did not finish");
        assert_one_line_error(&out, code, word);
    }
}
