//! Limits and endurance on real KVM: 200 consecutive boots of 64 vCPUs in one process leak no
//! file descriptors and no memory; four 256-vCPU VMs in separate processes at once all succeed;
//! KVM's maximum vCPU count boots.

mod common;

use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::*;
use vmm::config::VmConfig;
use vmm::report::BootOutcome;
use vmm::status::Status;
use vmm::vm::boot;

/// Boots the embedded guest in this process.
fn boot_in_process(vcpus: u32) -> BootOutcome {
    let mut cfg = VmConfig::new(vcpus, 64 << 20);
    cfg.timeout = Some(Duration::from_secs(30));
    boot(cfg).unwrap_or_else(|e| panic!("boot failed: {}", vmm::error_line(&e)))
}

/// The tests of this file run one at a time: the leak check counts this process's fds, which
/// the other tests' child-process pipes would change.
fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Resident set size in KiB (/proc/self/statm, in pages).
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm field");
    pages * 4
}

#[test]
fn two_hundred_boots_of_64_vcpus_leak_nothing() {
    if !kvm_available() {
        return;
    }
    let _serial = exclusive();
    // Warm up: the first boots allocate what the process keeps (thread stacks cached by the
    // C library, the signal handler, allocator arenas).
    for _ in 0..3 {
        assert_eq!(boot_in_process(64).status, Status::Ok);
    }
    let (fds, rss) = (open_fds(), rss_kib());
    for i in 0..200 {
        let r = boot_in_process(64);
        assert_eq!(r.status, Status::Ok, "boot {i}: {:?}", r.error);
        assert_eq!(r.online, 64, "boot {i}");
    }
    assert_eq!(open_fds(), fds, "file descriptors leaked over 200 boots");
    let grown = rss_kib().saturating_sub(rss);
    // Each boot maps 64 MiB of guest RAM and 64 thread stacks: a leak of either would show as
    // gigabytes after 200 boots; allow allocator noise.
    assert!(grown < 16 << 10, "RSS grew by {grown} KiB over 200 boots");
}

#[test]
fn four_256_vcpu_vms_at_once_all_succeed() {
    if !kvm_available() {
        return;
    }
    let _serial = exclusive();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(VMM)
                .args(["--vcpus", "256", "--quiet", "--console", "/dev/null"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("cannot start vmm")
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().expect("vmm did not finish");
        assert_eq!(
            out.status.code(),
            Some(0),
            "VM {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn kvms_maximum_vcpu_count_boots() {
    if !kvm_available() {
        return;
    }
    let _serial = exclusive();
    let kvm = kvm_ioctls::Kvm::new().expect("/dev/kvm");
    let max = kvm.get_max_vcpus().min(4096).to_string();
    let dir = tempdir();
    let json = dir.path().join("r.json");
    let out = vmm(&[
        "--vcpus",
        &max,
        "--quiet",
        "--console",
        "/dev/null",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        read_json(&json)["online"].as_u64().map(|n| n.to_string()),
        Some(max)
    );
}

#[test]
fn the_leak_checks_see_a_deliberate_leak() {
    let _serial = exclusive();
    let (fds, rss) = (open_fds(), rss_kib());
    std::mem::forget(std::fs::File::open("/dev/null").expect("/dev/null"));
    assert_eq!(open_fds(), fds + 1, "a leaked descriptor must be counted");
    // Fresh pages from mmap (the allocator might reuse pages freed by an earlier test). The
    // process's RSS can also shrink by a few MiB meanwhile, as the thread of the test before
    // this one exits and its allocator cache is returned (the 4096-vCPU boot's parsed JSON,
    // with every vCPU's KVM counters, is several MiB): leak far more than that, and more than
    // twice what the 200-boot check allows.
    let len = 128 << 20;
    // SAFETY: an anonymous private mapping; nothing else refers to it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    // SAFETY: `p` is a writable mapping of `len` bytes, leaked on purpose.
    unsafe { std::ptr::write_bytes(p.cast::<u8>(), 1, len) };
    assert!(
        rss_kib() >= rss + (96 << 10),
        "128 MiB touched and leaked must show in RSS"
    );
}
