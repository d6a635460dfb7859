//! The RTC's update-in-progress bit, its alarm interrupt, and ACPI S3 with test kernels of tests/kernels (built by
//! `make kernels`; s3.inc is their shared body): a kernel that waits for an RTC update, kernels
//! that arm the RTC alarm, suspend, and resume at their FACS waking vector in real mode (where
//! they check WAK_STS and the alarm flag and report through isa-debug-exit), one that never
//! arms a wake and meets --timeout, one woken by --wake-after, and one that suspends at every
//! resume until the suspend bound ends it.

mod common;

use common::*;

/// Boots `name` at `vcpus` with `args`; checks the exit status and JSON status.
fn boot(name: &str, vcpus: u32, args: &[&str], code: i32, status: &str) -> Option<Boot> {
    if !kvm_available() {
        return None;
    }
    let kernel = test_kernel(name);
    let n = vcpus.to_string();
    let mut all = vec!["--vcpus", n.as_str()];
    all.extend_from_slice(args);
    let b = boot_kernel(&kernel, &all);
    let what = format!("{name} at {vcpus} vCPUs {args:?}");
    b.assert_code(code, &what);
    assert_eq!(b.json["status"], status, "{what}: {}", b.json);
    Some(b)
}

#[test]
fn the_rtc_shows_an_update_in_progress_once_a_second() {
    // 0x21: UIP rose and fell; 0x41 or 0x42 if it never did.
    if let Some(b) = boot("pvh_rtc_uip.elf", 1, &["--timeout", "60"], 67, "debug-exit") {
        assert!(
            b.console.contains("rtc-uip: the update started and ended"),
            "{}",
            b.console
        );
    }
}

#[test]
fn the_rtc_alarm_raises_irq_8_while_the_vm_runs() {
    // 0x22: IRQ 8 reached the slave 8259's IRR and register C showed AF | IRQF, then nothing;
    // 0x42 if IRQ 8 never came.
    if let Some(b) = boot(
        "pvh_rtc_alarm.elf",
        1,
        &["--timeout", "60"],
        69,
        "debug-exit",
    ) {
        assert!(
            b.console.contains("rtc-alarm: IRQ 8 and the alarm flag"),
            "{}",
            b.console
        );
    }
}

#[test]
fn s3_woken_by_the_rtc_alarm_resumes_at_the_waking_vector() {
    for vcpus in [1, 8] {
        // 0x31: resumed once with WAK_STS and the alarm flag set; (0x31 << 1) | 1 = 99.
        let Some(b) = boot("pvh_s3.elf", vcpus, &["--timeout", "60"], 99, "debug-exit") else {
            return;
        };
        assert_eq!(b.json["guest_status"], 0x31, "{}", b.json);
        assert!(
            b.console.contains("s3: saw the RTC update in progress"),
            "{}",
            b.console
        );
        assert!(
            b.stderr
                .contains("acpi-s3: resume 1: woken by the RTC alarm"),
            "{}",
            b.stderr
        );
        assert!(b.stderr.contains("waking vector 0x1000"), "{}", b.stderr);
    }
}

#[test]
fn s3_twice() {
    // 0x32: resumed twice; (0x32 << 1) | 1 = 101.
    if let Some(b) = boot(
        "pvh_s3_twice.elf",
        2,
        &["--timeout", "60"],
        101,
        "debug-exit",
    ) {
        assert_eq!(b.json["guest_status"], 0x32, "{}", b.json);
        assert!(b.stderr.contains("acpi-s3: suspend 2:"), "{}", b.stderr);
        assert!(b.stderr.contains("acpi-s3: resume 2:"), "{}", b.stderr);
    }
}

#[test]
fn s3_without_a_wake_event_sleeps_until_the_timeout() {
    if let Some(b) = boot("pvh_s3_nowake.elf", 1, &["--timeout", "2"], 5, "timeout") {
        assert!(b.stderr.contains("no wake event is set"), "{}", b.stderr);
        assert!(!b.stderr.contains("acpi-s3: resume"), "{}", b.stderr);
        assert!(
            b.stderr
                .contains("error: the guest did not finish within --timeout 2 s"),
            "{}",
            b.stderr
        );
    }
}

#[test]
fn wake_after_wakes_a_vm_with_no_alarm() {
    let args = ["--timeout", "60", "--wake-after", "0.1"];
    if let Some(b) = boot("pvh_s3_nowake.elf", 4, &args, 99, "debug-exit") {
        assert!(
            b.stderr
                .contains("acpi-s3: resume 1: woken by --wake-after"),
            "{}",
            b.stderr
        );
    }
}

#[test]
fn a_guest_that_suspends_forever_meets_the_bound() {
    let args = ["--timeout", "120", "--wake-after", "0", "--quiet"];
    if let Some(b) = boot("pvh_s3_loop.elf", 2, &args, 4, "guest-fault") {
        assert_eq!(b.json["exit_via"], "acpi-s3", "{}", b.json);
        assert!(
            b.stderr
                .contains("error: the guest suspended the VM (ACPI S3) more than 1000 times"),
            "{}",
            b.stderr
        );
        assert!(
            !b.stderr.contains("acpi-s3: resume"),
            "--quiet: {}",
            b.stderr
        );
    }
}
