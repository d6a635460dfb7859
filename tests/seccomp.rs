//! The vCPU threads' seccomp filter on the real binary: boots work with it and without it
//! (`SIPI_NO_SECCOMP=1`), every vCPU thread runs filtered (and only they), and the VM still
//! stops cleanly through the filter. That a forbidden system call ends the process with one
//! line and status 3 is tested in vmm/src/seccomp/mod.rs (a forked child).

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The opt-out variable (vmm::seccomp::OPT_OUT_VAR).
const OPT_OUT: &str = "SIPI_NO_SECCOMP";

/// vCPUs of the runs that watch the threads.
const WATCHED_VCPUS: usize = 8;

/// How long the vCPU threads may take to start running.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// How often /proc is polled.
const POLL: Duration = Duration::from_millis(10);

/// A kernel that halts forever with interrupts off: `cli; hlt; jmp .-1` (Intel SDM Vol. 2).
const HALT_FOREVER: [u8; 4] = [0xFA, 0xF4, 0xEB, 0xFD];

fn halting_kernel(dir: &Path) -> String {
    let p = write_file(dir, "halt.elf", &tiny_elf(0x10_0000, &HALT_FOREVER));
    p.to_str().expect("utf-8 temp path").to_string()
}

/// `vmm` with `args`, the filter on, or off with `opt_out`.
fn command(args: &[&str], opt_out: bool) -> Command {
    let mut c = Command::new(VMM);
    c.args(args).env_remove(OPT_OUT);
    if opt_out {
        c.env(OPT_OUT, "1");
    }
    c
}

fn output(c: &mut Command) -> Output {
    c.output().expect("cannot run the vmm binary")
}

#[test]
fn a_64_vcpu_boot_runs_with_the_filter_and_without() {
    if !kvm_available() {
        return;
    }
    for opt_out in [false, true] {
        let dir = tempdir();
        let json = dir.path().join("r.json");
        let json_arg = json.to_str().expect("utf-8 temp path");
        let args = ["--vcpus", "64", "--quiet", "--console", "/dev/null"];
        let out = output(command(&args, opt_out).args(["--json", json_arg]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{OPT_OUT}={}: {stderr}",
            u8::from(opt_out)
        );
        let j = read_json(&json);
        assert_eq!(j["online"], 64);
    }
}

/// The seccomp mode of each vCPU thread of `pid` (2: filtered), by thread name; None once the
/// process is gone.
fn vcpu_seccomp_modes(pid: u32) -> Option<Vec<(String, u32)>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut modes = Vec::new();
    for task in tasks.flatten() {
        let dir = task.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        let name = comm.trim_end().to_string();
        if !name.starts_with("vcpu") {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(dir.join("status")) else {
            continue;
        };
        modes.push((name, seccomp_mode(&status)));
    }
    Some(modes)
}

/// The `Seccomp:` field of a /proc status file.
fn seccomp_mode(status: &str) -> u32 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map(|v| v.trim().parse().expect("a numeric Seccomp field"))
        .expect("the kernel shows no Seccomp field in /proc: built without CONFIG_SECCOMP?")
}

fn spawn(args: &[&str], opt_out: bool) -> Child {
    command(args, opt_out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start vmm")
}

#[test]
fn every_vcpu_thread_runs_filtered_and_stops_cleanly() {
    if !kvm_available() {
        return;
    }
    let dir = tempdir();
    let kernel = halting_kernel(dir.path());
    let n = WATCHED_VCPUS.to_string();
    let child = spawn(
        &["--kernel", &kernel, "--vcpus", &n, "--timeout", "60"],
        false,
    );
    let pid = child.id();
    let start = Instant::now();
    loop {
        let modes = vcpu_seccomp_modes(pid).expect("vmm ended before its vCPUs ran");
        if modes.len() == WATCHED_VCPUS && modes.iter().all(|(_, m)| *m == 2) {
            break;
        }
        assert!(
            start.elapsed() < START_DEADLINE,
            "vCPU threads not all filtered after {START_DEADLINE:?}: {modes:?}"
        );
        std::thread::sleep(POLL);
    }
    let main = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("main thread");
    assert_eq!(seccomp_mode(&main), 0, "the main thread is not filtered");
    // Stopping kicks every vCPU thread out of KVM_RUN with a signal and joins them: the
    // handler's return, the threads' exit and the VM's teardown all pass the filter.
    let pid = libc::pid_t::try_from(pid).expect("pid fits");
    // SAFETY: sending a signal to our own child process has no memory-safety effect.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().expect("vmm did not finish");
    assert_one_line_error(&out, 143, "SIGTERM");
}

#[test]
fn the_opt_out_leaves_vcpu_threads_unfiltered() {
    if !kvm_available() {
        return;
    }
    let dir = tempdir();
    let kernel = halting_kernel(dir.path());
    let n = WATCHED_VCPUS.to_string();
    // Watched until the timeout ends the VM: a filter would be installed within
    // milliseconds of the vCPUs starting.
    let mut child = spawn(
        &["--kernel", &kernel, "--vcpus", &n, "--timeout", "2"],
        true,
    );
    let mut seen = 0;
    while let Some(modes) = vcpu_seccomp_modes(child.id()) {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        assert!(
            modes.iter().all(|(_, m)| *m == 0),
            "{OPT_OUT}=1, yet: {modes:?}"
        );
        seen = seen.max(modes.len());
        std::thread::sleep(POLL);
    }
    let out = child.wait_with_output().expect("vmm did not finish");
    assert_one_line_error(&out, 5, "--timeout 2");
    assert_eq!(seen, WATCHED_VCPUS, "every vCPU thread was watched");
}
