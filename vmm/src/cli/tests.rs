//! The command line: parsing, the options that depend on each other, and the guest options
//! they resolve to.

use clap::Parser;
use firmware::cmdline::{Bringup, Console, GuestOptions, Kick, Scenario, Teardown, TscSync};

use super::args::*;
use crate::config::TscSkew;

#[test]
fn defaults_and_guest_options() {
    let cli = Cli::try_parse_from(["vmm"]).unwrap().boot;
    assert_eq!(cli.vcpus, DEFAULT_VCPUS);
    assert_eq!(cli.memory_bytes(), Some(DEFAULT_MEMORY_MIB << 20));
    // The defaults, but the console through sipi's doorbell.
    assert_eq!(
        cli.guest_options(),
        GuestOptions {
            console: Console::Port,
            ..GuestOptions::default()
        }
    );
    let cli = Cli::try_parse_from(["vmm", "--bringup", "serial", "--kick", "broadcast"])
        .unwrap()
        .boot;
    assert_eq!(cli.guest_options().bringup, Bringup::Serial);
    assert_eq!(cli.guest_options().kick, Kick::Broadcast);
    assert_eq!(cli.guest_options().tsc_sync, TscSync::None);
    assert_eq!(cli.test_skew_tsc, None);
    assert_eq!(cli.validate(), Ok(()));
}

#[test]
fn tsc_sync_and_the_skew_test_option() {
    let parse = |args: &[&str]| {
        let mut v = vec!["vmm"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).map(|c| c.boot)
    };
    for (arg, want) in [
        ("none", TscSync::None),
        ("serial", TscSync::Serial),
        ("parallel", TscSync::Parallel),
    ] {
        let cli = parse(&["--tsc-sync", arg]).unwrap();
        assert_eq!(cli.guest_options().tsc_sync, want);
    }
    assert!(parse(&["--tsc-sync", "sometimes"]).is_err());
    let floor = parse(&["--tsc-sync", "serial", "--bringup", "floor"]).unwrap();
    assert!(floor.validate().unwrap_err().contains("--bringup"));
    let unchecked = parse(&["--vcpus", "4", "--test-skew-tsc", "3:1000"]).unwrap();
    assert!(unchecked.validate().unwrap_err().contains("--tsc-sync"));
    let cli = parse(&[
        "--vcpus",
        "4",
        "--tsc-sync",
        "parallel",
        "--test-skew-tsc",
        "3:10000000000",
    ])
    .unwrap();
    assert_eq!(
        cli.test_skew_tsc,
        Some(TscSkew {
            vcpu: 3,
            cycles: 10_000_000_000
        })
    );
    assert_eq!(cli.validate(), Ok(()));
    let beyond = parse(&[
        "--vcpus",
        "4",
        "--tsc-sync",
        "serial",
        "--test-skew-tsc",
        "4:1000",
    ])
    .unwrap();
    assert!(beyond.validate().unwrap_err().contains("vCPU 4"));
    for bad in ["3", "x:1", "3:0", "3:-5", "3:many"] {
        assert!(parse(&["--test-skew-tsc", bad]).is_err(), "{bad}");
    }
}

#[test]
fn scenarios_and_their_combinations() {
    let parse = |args: &[&str]| {
        let mut v = vec!["vmm"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).map(|c| c.boot)
    };
    let cli = parse(&["--scenario", "teardown", "--teardown", "parallel"]).unwrap();
    assert_eq!(cli.validate(), Ok(()));
    let o = cli.guest_options();
    assert_eq!(
        (o.scenario, o.teardown, o.cycles),
        (Scenario::Teardown, Teardown::Parallel, 0)
    );
    let cli = parse(&[
        "--scenario",
        "reboot-cycles",
        "--teardown",
        "serial",
        "--cycles",
        "4",
    ])
    .unwrap();
    assert_eq!(cli.validate(), Ok(()));
    assert_eq!(cli.guest_options().cycles, 4);
    assert_eq!(cli.guest_options().scenario, Scenario::RebootCycles);
    for (args, needle) in [
        (&["--teardown", "serial"][..], "--scenario"),
        (&["--cycles", "3"][..], "--scenario"),
        (&["--scenario", "teardown"][..], "--teardown"),
        (
            &["--scenario", "reboot-cycles", "--teardown", "serial"][..],
            "--cycles",
        ),
        (
            &[
                "--scenario",
                "teardown",
                "--teardown",
                "serial",
                "--cycles",
                "2",
            ][..],
            "--cycles",
        ),
        (
            &[
                "--scenario",
                "teardown",
                "--teardown",
                "serial",
                "--bringup",
                "floor",
            ][..],
            "--bringup",
        ),
        (
            &[
                "--scenario",
                "teardown",
                "--teardown",
                "serial",
                "--tsc-sync",
                "serial",
            ][..],
            "--tsc-sync",
        ),
    ] {
        let cli = parse(args).unwrap();
        let e = cli.validate().unwrap_err();
        assert!(e.contains(needle), "{args:?}: {e}");
    }
    assert!(parse(&["--scenario", "torture"]).is_err());
    assert!(parse(&["--scenario", "hotplug-torture"]).is_ok());
    assert!(parse(&["--cycles", "0"]).is_err());
    assert!(parse(&["--cycles", "1025"]).is_err());
}

#[test]
fn hotplug_torture_and_its_options() {
    // 8 vCPUs unless `args` say otherwise.
    let parse = |args: &[&str]| {
        let mut v = vec!["vmm"];
        if !args.contains(&"--vcpus") {
            v.extend_from_slice(&["--vcpus", "8"]);
        }
        v.extend_from_slice(args);
        Cli::try_parse_from(v).map(|c| c.boot)
    };
    // Defaults: 1000 operations, one at a time, a drawn seed that stays the same.
    let cli = parse(&["--scenario", "hotplug-torture"]).unwrap();
    assert_eq!(cli.validate(), Ok(()));
    let o = cli.guest_options();
    assert_eq!(o.scenario, Scenario::HotplugTorture);
    assert_eq!((o.ops, o.concurrency), (1000, 1));
    assert_eq!(
        (o.teardown, o.cycles, o.test_skip_barrier),
        (Teardown::Serial, 0, false)
    );
    assert_eq!(cli.guest_options().seed, o.seed, "the seed is drawn once");
    assert_eq!(cli.seed(), o.seed);
    assert!(o.seed < 1 << 53, "a drawn seed survives JSON doubles");
    let mut words = String::new();
    o.write(&mut words).unwrap();
    assert!(
        words.contains(&format!(
            "sipi.ops=1000 sipi.concurrency=1 sipi.seed={}",
            o.seed
        )),
        "{words}"
    );
    // Everything given.
    let cli = parse(&[
        "--scenario",
        "hotplug-torture",
        "--ops",
        "1000000",
        "--concurrency",
        "4096",
        "--seed",
        &u64::MAX.to_string(),
        "--test-skip-barrier",
        "--bringup",
        "serial",
    ])
    .unwrap();
    assert_eq!(cli.validate(), Ok(()));
    let o = cli.guest_options();
    assert_eq!(
        (o.ops, o.concurrency, o.seed, o.test_skip_barrier),
        (1_000_000, 4096, u64::MAX, true)
    );
    assert_eq!(
        firmware::cmdline::GuestOptions::parse(&{
            let mut w = String::new();
            o.write(&mut w).unwrap();
            w
        }),
        Ok(o)
    );
    // Other scenarios pass none of it to the guest.
    let o = parse(&["--scenario", "teardown", "--teardown", "serial"])
        .unwrap()
        .guest_options();
    assert_eq!(
        (o.ops, o.concurrency, o.seed, o.test_skip_barrier),
        (0, 0, 0, false)
    );
    // Out of range values are parse errors.
    for bad in [
        &["--ops", "0"][..],
        &["--ops", "1000001"],
        &["--ops", "-1"],
        &["--concurrency", "0"],
        &["--concurrency", "4097"],
        &["--seed", "-1"],
        &["--seed", "18446744073709551616"],
        &["--seed", "0x10"],
        &["--test-skip-barrier", "1"],
    ] {
        let mut args = vec!["--scenario", "hotplug-torture"];
        args.extend_from_slice(bad);
        assert!(parse(&args).is_err(), "{bad:?}");
    }
    // Combinations.
    for (args, needle) in [
        (
            &["--ops", "5"][..],
            "--ops needs --scenario hotplug-torture",
        ),
        (
            &["--concurrency", "2"],
            "--concurrency needs --scenario hotplug-torture",
        ),
        (&["--seed", "7"], "--seed needs --scenario hotplug-torture"),
        (
            &["--test-skip-barrier"],
            "--test-skip-barrier needs --scenario hotplug-torture",
        ),
        (
            &[
                "--scenario",
                "teardown",
                "--teardown",
                "serial",
                "--ops",
                "5",
            ],
            "--ops needs --scenario hotplug-torture",
        ),
        (
            &[
                "--scenario",
                "reboot-cycles",
                "--teardown",
                "serial",
                "--cycles",
                "2",
                "--seed",
                "1",
            ],
            "--seed needs --scenario hotplug-torture",
        ),
        (
            &["--scenario", "hotplug-torture", "--teardown", "parallel"],
            "--teardown needs --scenario teardown or reboot-cycles",
        ),
        (
            &["--scenario", "hotplug-torture", "--cycles", "3"],
            "--cycles needs --scenario reboot-cycles",
        ),
        (
            &["--scenario", "hotplug-torture", "--bringup", "floor"],
            "--bringup serial or parallel",
        ),
        (
            &["--scenario", "hotplug-torture", "--bringup", "none"],
            "--bringup serial or parallel",
        ),
        (
            &["--scenario", "hotplug-torture", "--tsc-sync", "parallel"],
            "cannot be combined with --tsc-sync",
        ),
        (
            &["--scenario", "hotplug-torture", "--vcpus", "2"],
            "at least 3 vCPUs",
        ),
        (
            &["--scenario", "hotplug-torture", "--vcpus", "1"],
            "at least 3 vCPUs",
        ),
    ] {
        let cli = parse(args).unwrap();
        let e = cli.validate().unwrap_err();
        assert!(e.contains(needle), "{args:?}: {e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
    let three = parse(&["--scenario", "hotplug-torture", "--vcpus", "3"]).unwrap();
    assert_eq!(three.validate(), Ok(()));
}

#[test]
fn rejects_bad_values() {
    assert!(Cli::try_parse_from(["vmm", "--vcpus", "0"]).is_err());
    assert!(Cli::try_parse_from(["vmm", "--vcpus", "many"]).is_err());
    assert!(Cli::try_parse_from(["vmm", "--memory", "0"]).is_err());
    assert!(Cli::try_parse_from(["vmm", "--bogus"]).is_err());
    let huge = Cli::try_parse_from(["vmm", "--memory", &u64::MAX.to_string()]).unwrap();
    assert_eq!(huge.boot.memory_bytes(), None);
}

#[test]
fn memslot_burst_is_a_subcommand_with_its_own_options() {
    let args = [
        "vmm",
        "memslot-burst",
        "--changes",
        "10",
        "--vcpus",
        "3",
        "--naive",
    ];
    let cli = Cli::try_parse_from(args).unwrap();
    let Some(Command::MemslotBurst(a)) = cli.command else {
        panic!("not parsed as memslot-burst")
    };
    assert_eq!((a.changes, a.vcpus, a.naive), (10, 3, true));
    assert!(Cli::try_parse_from(["vmm", "memslot-burst", "--changes", "0"]).is_err());
    assert!(Cli::try_parse_from(["vmm", "--memory", "64", "memslot-burst"]).is_err());
}

#[test]
fn guest_text_may_start_with_a_hyphen_and_modules_resolve_in_order() {
    let parse = |args: &[&str]| {
        let mut v = vec!["vmm"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).map(|c| c.boot)
    };
    let cli = parse(&["--cmdline", "-pause_filter_test -x", "--vcpus", "2"]).unwrap();
    assert_eq!(cli.cmdline, "-pause_filter_test -x");
    assert_eq!(cli.vcpus, 2, "the options after it still parse");
    let cli = parse(&[
        "--module",
        "b.bin,-z arg,with comma",
        "--initrd",
        "-env",
        "--module",
        "c",
    ])
    .unwrap();
    let specs: Vec<(String, String)> = cli
        .module_specs()
        .into_iter()
        .map(|m| (m.path.to_string_lossy().into_owned(), m.string))
        .collect();
    assert_eq!(
        specs,
        [
            ("-env".to_string(), "-env".to_string()),
            ("b.bin".to_string(), "-z arg,with comma".to_string()),
            ("c".to_string(), "c".to_string()),
        ]
    );
    assert_eq!(cli.validate(), Ok(()));
    let err = parse(&["--module", ",x"]).unwrap().validate().unwrap_err();
    assert!(err.contains("names no file"), "{err}");
    let mut many = Vec::new();
    for _ in 0..64 {
        many.extend(["--module", "m"]);
    }
    assert_eq!(parse(&many).unwrap().validate(), Ok(()));
    many.extend(["--initrd", "i"]);
    let err = parse(&many).unwrap().validate().unwrap_err();
    assert!(err.contains("at most 64"), "{err}");
}

#[test]
fn wake_after_takes_fractional_seconds_up_to_a_day() {
    let parse = |args: &[&str]| {
        let mut v = vec!["vmm"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).map(|c| c.boot)
    };
    assert_eq!(parse(&[]).unwrap().wake_after, None);
    for (arg, want) in [
        ("0", std::time::Duration::ZERO),
        ("0.1", std::time::Duration::from_millis(100)),
        ("2", std::time::Duration::from_secs(2)),
        ("86400", std::time::Duration::from_secs(86_400)),
    ] {
        assert_eq!(
            parse(&["--wake-after", arg]).unwrap().wake_after,
            Some(want),
            "{arg}"
        );
    }
    for bad in ["-1", "86400.5", "1e9", "NaN", "inf", "soon", ""] {
        let arg = format!("--wake-after={bad}");
        let err = parse(&[&arg]).expect_err(bad).to_string();
        assert!(err.contains("--wake-after"), "{bad}: {err}");
    }
    assert!(parse_wake_after("soon")
        .unwrap_err()
        .contains("not a number of seconds"));
    assert!(parse_wake_after("-0.5")
        .unwrap_err()
        .contains("outside 0 to 86400 seconds"));
}
