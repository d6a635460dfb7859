//! Bad input from the user: each case gives one `error:` line and a documented exit status
//! (2 for usage and input errors, 3 when the host cannot run KVM).

mod common;

use common::*;

#[test]
fn bad_vcpu_and_memory_values() {
    assert_one_line_error(&vmm(&["--vcpus", "0"]), 2, "--vcpus");
    assert_one_line_error(&vmm(&["--vcpus", "many"]), 2, "--vcpus");
    assert_one_line_error(&vmm(&["--memory", "0"]), 2, "--memory");
    assert_one_line_error(&vmm(&["--memory", "lots"]), 2, "--memory");
    assert_one_line_error(&vmm(&["--frobnicate"]), 2, "--frobnicate");
    assert_one_line_error(&vmm(&["--bringup", "sideways"]), 2, "sideways");
}

#[test]
fn limits_that_need_kvm() {
    if !kvm_available() {
        return;
    }
    assert_one_line_error(&vmm(&["--vcpus", "100000"]), 2, "above KVM's maximum");
    assert_one_line_error(&vmm(&["--memory", "100000000"]), 2, "more than this host");
    // A kernel linked at 3 MiB does not fit in 2 MiB of RAM.
    let dir = tempdir();
    let high = write_file(dir.path(), "high.elf", &tiny_elf(0x30_0000, &[0xF4]));
    let high = high.to_str().unwrap();
    assert_one_line_error(
        &vmm(&["--memory", "2", "--kernel", high]),
        2,
        "outside guest RAM",
    );
}

#[test]
fn bad_kernel_files() {
    let dir = tempdir();
    let d = dir.path();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let run = |p: &str| vmm(&["--kernel", p]);
    assert_one_line_error(&run("/nonexistent/guest.elf"), 2, "cannot read kernel");
    assert_one_line_error(&run(&path(d)), 2, "is a directory");
    assert_one_line_error(&run(&path(&write_file(d, "empty", b""))), 2, "is empty");
    assert_one_line_error(
        &run(&path(&write_file(d, "text", b"#!/bin/sh\necho hi\n"))),
        2,
        "not an ELF",
    );
    let guest = std::fs::read(GUEST_ELF).expect("the embedded guest file exists");
    assert_one_line_error(
        &run(&path(&write_file(d, "trunc", &guest[..40]))),
        2,
        "truncated",
    );
    let mut arm = guest.clone();
    arm[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    assert_one_line_error(&run(&path(&write_file(d, "arm", &arm))), 2, "machine 183");
    let mut elf32 = guest.clone();
    elf32[4] = 1; // ELFCLASS32
    assert_one_line_error(&run(&path(&write_file(d, "elf32", &elf32))), 2, "32-bit");
    let mut phnum = guest;
    phnum[56..58].copy_from_slice(&0xFFFFu16.to_le_bytes());
    assert_one_line_error(
        &run(&path(&write_file(d, "phnum", &phnum))),
        2,
        "program headers",
    );
}

#[test]
fn hotplug_torture_options_and_their_combinations() {
    let torture = |extra: &[&str]| {
        let mut args = vec!["--scenario", "hotplug-torture", "--vcpus", "8"];
        args.extend_from_slice(extra);
        vmm(&args)
    };
    // Values out of range.
    assert_one_line_error(&torture(&["--ops", "0"]), 2, "--ops");
    assert_one_line_error(&torture(&["--ops", "1000001"]), 2, "--ops");
    assert_one_line_error(&torture(&["--concurrency", "0"]), 2, "--concurrency");
    assert_one_line_error(&torture(&["--concurrency", "4097"]), 2, "--concurrency");
    assert_one_line_error(&torture(&["--seed", "x"]), 2, "--seed");
    assert_one_line_error(&torture(&["--seed", "18446744073709551616"]), 2, "--seed");
    // Options of hotplug-torture without it, and options of other scenarios with it.
    // Every combination is checked in vmm/src/cli.rs's unit tests; here one of each kind goes
    // through the binary: an option without its scenario, one of another scenario, a strategy
    // the scenario cannot use.
    assert_one_line_error(
        &vmm(&["--seed", "7"]),
        2,
        "--seed needs --scenario hotplug-torture",
    );
    assert_one_line_error(
        &torture(&["--cycles", "2"]),
        2,
        "--cycles needs --scenario reboot-cycles",
    );
    assert_one_line_error(
        &torture(&["--bringup", "floor"]),
        2,
        "use --bringup serial or parallel",
    );
    for vcpus in ["1", "2"] {
        assert_one_line_error(
            &vmm(&["--scenario", "hotplug-torture", "--vcpus", vcpus]),
            2,
            "needs at least 3 vCPUs",
        );
    }
    // A usage error leaves no JSON behind.
    let dir = tempdir();
    let json = dir.path().join("r.json");
    assert_one_line_error(
        &torture(&[
            "--ops",
            "5",
            "--teardown",
            "serial",
            "--json",
            json.to_str().unwrap(),
        ]),
        2,
        "--teardown",
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn bad_output_paths() {
    let dir = tempdir();
    let d = dir.path().to_str().unwrap();
    assert_one_line_error(&vmm(&["--json", d]), 2, "cannot write JSON report");
    assert_one_line_error(
        &vmm(&["--json", "/nonexistent/dir/r.json"]),
        2,
        "cannot write JSON report",
    );
    assert_one_line_error(&vmm(&["--console", d]), 2, "cannot open console file");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no partial files are left behind"
    );
}

#[test]
fn kvm_device_problems_are_host_errors_that_say_how_to_fix_them() {
    assert_one_line_error(
        &vmm(&["--kvm-device", "/nonexistent/kvm"]),
        3,
        "load the kvm module",
    );
    assert_one_line_error(&vmm(&["--kvm-device", "/dev/null"]), 3, "not a KVM device");
}

#[test]
fn a_kvm_device_the_user_may_not_open_is_a_permission_error() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let dir = tempdir();
    let out = if root {
        // Root opens anything: make a KVM device node only root may open (misc device 10:232,
        // mode 0600, in a directory anyone may search) and drop to nobody (util-linux setpriv).
        let node = dir.path().join("kvm");
        let c = std::ffi::CString::new(node.to_str().expect("utf-8 path")).expect("no NUL");
        // SAFETY: mknod reads the NUL-terminated path and creates a node; no memory is shared.
        let made =
            unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(10, 232)) };
        assert_eq!(made, 0, "mknod: {}", std::io::Error::last_os_error());
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod 755");
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", VMM])
            .args([
                "--vcpus",
                "1",
                "--kvm-device",
                node.to_str().expect("utf-8 path"),
            ])
            .output()
            .expect("setpriv (util-linux) runs the vmm as nobody")
    } else {
        // A non-root user cannot open a file of mode 000.
        let locked = write_file(dir.path(), "kvm", b"");
        std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000))
            .expect("chmod 000");
        vmm(&["--kvm-device", locked.to_str().expect("utf-8 path")])
    };
    assert_one_line_error(&out, 3, "permission denied opening");
}

#[test]
fn help_and_version_succeed() {
    let out = vmm(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--vcpus",
        "--kernel",
        "--memory",
        "--cmdline",
        "--timeout",
        "--console",
        "--json",
    ] {
        assert!(help.contains(flag), "--help lists {flag}");
    }
    for flag in ["hotplug-torture", "--ops", "--concurrency", "--seed"] {
        assert!(help.contains(flag), "--help lists {flag}");
    }
    for hidden in ["--test-fault-vector", "--test-skip-barrier"] {
        assert!(!help.contains(hidden), "test-only options are hidden");
    }
    assert_eq!(vmm(&["--version"]).status.code(), Some(0));
}
