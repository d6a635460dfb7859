//! Tests of the scenario block's checks, JSON and summary.

use super::super::tests::{cpu, report};
use super::super::{decode, decode_for, render_summary, BootOutcome};
use super::json::render_scenario;
use super::json::Latency;
use super::*;
use crate::arch::x86_64::topology::Topology;
use crate::report::details::boot_json;
use crate::report::stats::{bringup_stats, online};
use crate::status::Status;
use firmware::report::decode::Report;
use firmware::report::encode::{
    write_boot_summary, write_cpu_record, write_scenario, ScenarioEntries,
};
use firmware::report::{ApPhase, BootSummary, Round, TeardownRecord, Violation};

/// A teardown report: BSP 0 online, AP 1 offline with `t` as its teardown record, the
/// window 500..600 after the bringup window (AllOnline 400), the report at 700.
fn teardown_report(t: TeardownRecord, sc: ScenarioSummary, ap_state: CpuState) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let mut s = BootSummary {
        cpu_count: 2,
        bringup: 2,
        ..Default::default()
    };
    s.bsp_stamps[BspPhase::BringupStart as usize] = 50;
    s.bsp_stamps[BspPhase::AllOnline as usize] = 400;
    s.bsp_stamps[BspPhase::Report as usize] = 700;
    write_boot_summary(&mut buf, &s).unwrap();
    let mut ap = cpu(1, false);
    ap.state = ap_state as u8;
    write_cpu_record(&mut buf, 0, &cpu(0, true)).unwrap();
    write_cpu_record(&mut buf, 1, &ap).unwrap();
    let rounds = [Round {
        up_cycles: 350,
        down_cycles: 100,
    }];
    let entries = ScenarioEntries {
        rounds: &rounds[..sc.round_count as usize],
        teardown: &[t],
        violations: &[],
    };
    let len = write_scenario(&mut buf, 2, &sc, &entries).unwrap();
    buf.truncate(len);
    buf
}

fn teardown_summary() -> ScenarioSummary {
    ScenarioSummary {
        scenario: Scenario::Teardown as u8,
        teardown: Teardown::Parallel as u8,
        rounds: 1,
        ops: 1,
        round_count: 1,
        teardown_count: 1,
        teardown_start: 500,
        teardown_end: 600,
        ..Default::default()
    }
}

fn parked_ap() -> TeardownRecord {
    TeardownRecord {
        apic_id: 1,
        flags: 0,
        request: 510,
        ack: 520,
        parked: 530,
        init: 540,
    }
}

#[test]
fn a_consistent_teardown_is_accepted_and_summarised() {
    let buf = teardown_report(parked_ap(), teardown_summary(), CpuState::Offline);
    let Report::Boot(b) = decode(&buf, Topology::new(2)).unwrap() else {
        panic!("not a boot report")
    };
    let j = scenario_json(&b, 1_000_000);
    assert_eq!(
        (j.name, j.teardown, j.rounds, j.parked),
        ("teardown", Some("parallel"), 1, 1)
    );
    assert_eq!(j.teardown_cycles, 100);
    assert_eq!(j.teardown_phases["ack"].median, 10);
    assert_eq!(j.teardown_phases["request_to_init"].median, 30);
    let text = render_scenario(&j, 1_000_000).unwrap();
    assert!(text.contains("request_to_init"), "{text}");
}

#[test]
fn catches_teardown_results_that_contradict_themselves() {
    let err = |t: TeardownRecord, sc: ScenarioSummary, state: CpuState| {
        decode(&teardown_report(t, sc, state), Topology::new(2))
            .unwrap_err()
            .to_string()
    };
    let sc = teardown_summary();
    let ap = parked_ap();
    let off = CpuState::Offline;
    assert!(err(TeardownRecord { apic_id: 0, ..ap }, sc, off).contains("BSP"));
    assert!(err(TeardownRecord { apic_id: 5, ..ap }, sc, off).contains("no CPU record"));
    assert!(err(TeardownRecord { ack: 505, ..ap }, sc, off).contains("out of order"));
    assert!(err(TeardownRecord { init: 650, ..ap }, sc, off).contains("teardown window"));
    assert!(err(TeardownRecord { request: 0, ..ap }, sc, off).contains("request"));
    assert!(err(TeardownRecord { flags: 4, ..ap }, sc, off).contains("flags"));
    assert!(err(ap, sc, CpuState::Online).contains("acknowledged"));
    let e = |sc: ScenarioSummary| err(ap, sc, off);
    assert!(e(ScenarioSummary {
        violations: 1,
        ..sc
    })
    .contains("violations"));
    assert!(e(ScenarioSummary { scenario: 9, ..sc }).contains("unknown scenario"));
    assert!(e(ScenarioSummary { teardown: 7, ..sc }).contains("unknown teardown"));
    assert!(e(ScenarioSummary { rounds: 2, ..sc }).contains("rounds"));
    assert!(e(ScenarioSummary { ops: 3, ..sc }).contains("operations"));
    assert!(e(ScenarioSummary {
        teardown_start: 300,
        ..sc
    })
    .contains("window"));
    assert!(e(ScenarioSummary {
        teardown_end: 800,
        ..sc
    })
    .contains("after the report"));
    // Without a scenario: no results and no offline CPUs.
    let boot = ScenarioSummary {
        scenario: Scenario::Boot as u8,
        ..sc
    };
    assert!(e(boot).contains("without a scenario"));
    let buf = report(
        &[cpu(0, true), {
            let mut r = cpu(1, false);
            r.state = CpuState::Offline as u8;
            r
        }],
        0,
    );
    assert!(decode(&buf, Topology::new(2))
        .unwrap_err()
        .to_string()
        .contains("offline without"));
}

/// The BSP's stamps of [`torture_report`]: bringup 50..400, the report at 100_000.
const TORTURE_REPORT_TSC: u64 = 100_000;

/// A hotplug-torture report of 4 vCPUs: BSP 0 online, APs 1 and 2 online, AP 3 offline
/// (after the boot's bringup, re-onlined APs stamp up to the report).
fn torture_report(sc: ScenarioSummary, violations: &[Violation]) -> Vec<u8> {
    torture_report_with(sc, violations, |_| {})
}

fn torture_report_with(
    sc: ScenarioSummary,
    violations: &[Violation],
    edit: impl FnOnce(&mut [CpuRecord; 4]),
) -> Vec<u8> {
    let mut buf = vec![0u8; 8192];
    let mut s = BootSummary {
        cpu_count: 4,
        bringup: 2,
        ..Default::default()
    };
    s.bsp_stamps[BspPhase::BringupStart as usize] = 50;
    s.bsp_stamps[BspPhase::AllOnline as usize] = 400;
    s.bsp_stamps[BspPhase::Report as usize] = TORTURE_REPORT_TSC;
    write_boot_summary(&mut buf, &s).unwrap();
    let mut cpus = [cpu(0, true), cpu(1, false), cpu(2, false), cpu(3, false)];
    cpus[3].state = CpuState::Offline as u8;
    // AP 2 came back online during the run.
    cpus[2].stamps[firmware::report::ApPhase::Kick as usize] = 5_000;
    cpus[2].stamps[firmware::report::ApPhase::Online as usize] = 5_100;
    edit(&mut cpus);
    for (i, r) in cpus.iter().enumerate() {
        write_cpu_record(&mut buf, i, r).unwrap();
    }
    let sc = ScenarioSummary {
        violation_count: violations.len() as u32,
        ..sc
    };
    let entries = ScenarioEntries {
        violations,
        ..Default::default()
    };
    let len = write_scenario(&mut buf, 4, &sc, &entries).unwrap();
    buf.truncate(len);
    buf
}

/// 1000 operations, 2 at a time, over 50_000 cycles, no violations.
fn torture_summary() -> ScenarioSummary {
    ScenarioSummary {
        scenario: Scenario::HotplugTorture as u8,
        ops: 1000,
        concurrency: 2,
        seed: 42,
        duration_cycles: 50_000,
        latency_p50: 100,
        latency_p99: 900,
        latency_max: 2_000,
        ..Default::default()
    }
}

/// What `--scenario hotplug-torture --ops 1000 --concurrency 8 --seed 42` asks for.
fn torture_options() -> GuestOptions {
    GuestOptions {
        scenario: Scenario::HotplugTorture,
        ops: 1000,
        concurrency: 8,
        seed: 42,
        ..GuestOptions::default()
    }
}

fn handed(op: u32, apic_id: u32, reader: u32) -> Violation {
    Violation {
        op,
        apic_id,
        reader_apic_id: reader,
        kind: ViolationKind::HandedToOffline as u32,
        tsc: 6_000,
    }
}

fn lost(reader: u32) -> Violation {
    Violation {
        op: 0,
        apic_id: u32::MAX,
        reader_apic_id: reader,
        kind: ViolationKind::WorkLost as u32,
        tsc: 90_000,
    }
}

/// The outcome of a boot around a checked boot report, as the VM's conclusion builds it.
fn json_report(b: &BootReport<'_>, tsc_khz: u32) -> BootOutcome {
    let stats = bringup_stats(b);
    BootOutcome {
        status: Status::Ok,
        error: None,
        vcpus: 4,
        online: online(b),
        tsc_khz,
        vmm_phases_us: Default::default(),
        bsp_start: Default::default(),
        guest_status: Some(0),
        exit_via: Some("sipi-exit-port"),
        reached: None,
        boot: Some(boot_json(b, &stats, tsc_khz)),
        stats: Some(stats),
        kvm_stats: None,
        timeline: Default::default(),
        measurement: None,
    }
}

#[test]
fn a_consistent_torture_run_is_accepted_and_summarised() {
    let buf = torture_report(torture_summary(), &[]);
    let Report::Boot(b) = decode_for(&buf, Topology::new(4), &torture_options()).unwrap() else {
        panic!("not a boot report")
    };
    assert_eq!(scenario_failure(&b), None);
    // 1 GHz: one cycle is a nanosecond.
    let j = scenario_json(&b, 1_000_000);
    assert_eq!(
        (j.name, j.teardown, j.ops, j.concurrency, j.seed),
        ("hotplug-torture", None, 1000, 2, Some(42))
    );
    assert_eq!((j.rounds, j.parked, j.violations), (0, 0, 0));
    assert_eq!(j.duration_cycles, 50_000);
    assert_eq!(j.duration_us, Some(50.0));
    // 1000 operations in 50 us.
    assert_eq!(j.ops_per_sec, Some(20_000_000.0));
    assert_eq!(
        j.latency_cycles,
        Latency {
            p50: 100,
            p99: 900,
            max: 2_000
        }
    );
    assert_eq!(
        j.latency_us,
        Some(Latency {
            p50: 0.1,
            p99: 0.9,
            max: 2.0
        })
    );
    assert!(j.violation_list.is_empty());
    let v = serde_json::to_value(&j).unwrap();
    for key in [
        "concurrency",
        "seed",
        "duration_cycles",
        "duration_us",
        "ops_per_sec",
        "violation_list",
    ] {
        assert!(v.get(key).is_some(), "{key} in {v}");
    }
    assert_eq!(v["latency_cycles"]["p99"], 900);
    assert_eq!(v["latency_us"]["max"], 2.0);
    assert_eq!(v["seed"], 42);
    let text = render_summary(&json_report(&b, 1_000_000), false);
    assert!(
        text.contains(
            "scenario hotplug-torture (seed 42): 1000 ops, concurrency 2, 20000000 ops/s \
             over 50.0 us; latency (us) p50 0.1 p99 0.9 max 2.0; 0 violations"
        ),
        "{text}"
    );
    // Without a TSC frequency: cycles, and no rate.
    let j = scenario_json(&b, 0);
    assert_eq!(
        (j.duration_us, j.ops_per_sec, j.latency_us),
        (None, None, None)
    );
    let text = render_scenario(&j, 0).unwrap();
    assert!(text.contains("- ops/s over 50000 cycles"), "{text}");
    assert!(
        text.contains("latency (cycles) p50 100 p99 900 max 2000"),
        "{text}"
    );
    // The decoder alone (without the options) accepts it too.
    assert!(decode(&buf, Topology::new(4)).is_ok());
}

#[test]
fn violations_on_a_consistent_report_are_a_guest_failure() {
    let sc = ScenarioSummary {
        violations: 3,
        ..torture_summary()
    };
    let list = [handed(17, 3, 1), lost(0), {
        let mut v = handed(18, 3, 2);
        v.kind = ViolationKind::RanOnOffline as u32;
        v.op = 0;
        v
    }];
    let buf = torture_report(sc, &list);
    let decoded = decode_for(&buf, Topology::new(4), &torture_options());
    let Ok(Report::Boot(b)) = &decoded else {
        panic!("not a consistent boot report: {decoded:?}")
    };
    let line = scenario_failure(b).unwrap();
    assert_eq!(
        line,
        "hotplug-torture found 3 invariant violations with --seed 42 (first: the reader on \
         APIC ID 1 handed work to APIC ID 3 after op 17 took it offline)"
    );
    // The verdict: guest failure (exit 1) with that line, as for CPUs that never came up.
    let stop = crate::vcpu::Outcome::Stop {
        vcpu: 0,
        event: crate::devices::DeviceEvent::SipiExit(0),
    };
    let v = crate::vm::verdict::verdict(&crate::vm::verdict::Ending {
        wake: crate::event_loop::Wake::VmExit,
        outcome: Some(&stop),
        report: Some(&decoded),
        timeout: None,
        extra_rings: 0,
        sipi_guest: true,
    });
    assert_eq!(v.status, Status::GuestFailure);
    assert_eq!(v.status.code(), 1);
    assert_eq!(v.error.as_deref(), Some(line.as_str()));
    // The JSON lists them, work-lost without a CPU.
    let j = scenario_json(b, 1_000_000);
    assert_eq!(j.violations, 3);
    assert_eq!(
        j.violation_list[1],
        ViolationJson {
            op: 0,
            cpu: None,
            reader_cpu: 0,
            kind: "work-lost",
            tsc: 90_000
        }
    );
    let v = serde_json::to_value(&j).unwrap();
    assert_eq!(v["violation_list"][0]["kind"], "handed-to-offline");
    assert_eq!(v["violation_list"][0]["cpu"], 3);
    assert_eq!(v["violation_list"][0]["reader_cpu"], 1);
    assert!(v["violation_list"][1]["cpu"].is_null());
    let text = render_scenario(&j, 1_000_000).unwrap();
    assert!(text.contains("3 violations"), "{text}");
    assert!(
        text.contains("violation ran-on-offline at TSC 6000: reader work ran on APIC ID 3 after it went offline (found by APIC ID 2)"),
        "{text}"
    );
    assert!(
        text.contains("reader work was lost or duplicated (found by APIC ID 0)"),
        "{text}"
    );
    // More violations than the list carries: the count says how many.
    let list: Vec<Violation> = (1..=MAX_VIOLATIONS).map(|op| handed(op, 3, 1)).collect();
    let sc = ScenarioSummary {
        violations: 1000,
        ..torture_summary()
    };
    let buf = torture_report(sc, &list);
    let Report::Boot(b) = decode(&buf, Topology::new(4)).unwrap() else {
        panic!("not a boot report")
    };
    assert!(scenario_failure(&b)
        .unwrap()
        .contains("1000 invariant violations"));
    let text = render_scenario(&scenario_json(&b, 1_000_000), 1_000_000).unwrap();
    assert!(text.contains("... and 995 more"), "{text}");
    // One is singular.
    let sc = ScenarioSummary {
        violations: 1,
        ..torture_summary()
    };
    let buf = torture_report(sc, &[lost(2)]);
    let Report::Boot(b) = decode(&buf, Topology::new(4)).unwrap() else {
        panic!("not a boot report")
    };
    assert!(scenario_failure(&b)
        .unwrap()
        .contains("found 1 invariant violation with"));
}

#[test]
fn catches_torture_results_that_contradict_themselves() {
    let err = |sc: ScenarioSummary, list: &[Violation]| {
        decode(&torture_report(sc, list), Topology::new(4))
            .unwrap_err()
            .to_string()
    };
    let sc = torture_summary();
    let e = |changed: ScenarioSummary| err(changed, &[]);
    assert!(e(ScenarioSummary {
        latency_p50: 901,
        ..sc
    })
    .contains("latency percentiles out of order"));
    assert!(e(ScenarioSummary {
        latency_p99: 2_001,
        ..sc
    })
    .contains("out of order"));
    assert!(e(ScenarioSummary {
        latency_max: 60_000,
        ..sc
    })
    .contains("slower than the whole run"));
    assert!(e(ScenarioSummary {
        duration_cycles: 200_000,
        latency_max: 2_000,
        ..sc
    })
    .contains("longer than the time from bringup"));
    assert!(e(ScenarioSummary { ops: 0, ..sc }).contains("latencies without operations"));
    assert!(e(ScenarioSummary {
        concurrency: 0,
        ..sc
    })
    .contains("concurrency below 1"));
    // Nothing ran (too few APs online): concurrency 0 is what the guest reports.
    let idle = ScenarioSummary {
        ops: 0,
        concurrency: 0,
        duration_cycles: 0,
        latency_p50: 0,
        latency_p99: 0,
        latency_max: 0,
        ..sc
    };
    assert!(decode(&torture_report(idle, &[]), Topology::new(4)).is_ok());
    // 3 APs: at most 2 in flight.
    assert!(e(ScenarioSummary {
        concurrency: 3,
        ..sc
    })
    .contains("APs minus one"));
    assert!(e(ScenarioSummary { rounds: 1, ..sc }).contains("rounds or a teardown"));
    assert!(e(ScenarioSummary {
        teardown_start: 500,
        teardown_end: 600,
        ..sc
    })
    .contains("rounds or a teardown"));
    // The count and the list disagree.
    assert!(e(ScenarioSummary {
        violations: 2,
        ..sc
    })
    .contains("violations listed do not match"));
    let two = [handed(1, 3, 1), handed(2, 3, 1)];
    assert!(err(
        ScenarioSummary {
            violations: 1,
            ..sc
        },
        &two
    )
    .contains("violations listed do not match"));
    assert!(err(
        ScenarioSummary {
            violations: 65,
            ..sc
        },
        &two
    )
    .contains("violations listed do not match"));
    // Violations naming CPUs the report does not have, or that cannot be.
    let one = ScenarioSummary {
        violations: 1,
        ..sc
    };
    let bad = |v: Violation| err(one, &[v]);
    assert!(bad(handed(1, 9, 1)).contains("violation 0 is inconsistent: no CPU record"));
    assert!(bad(handed(1, 3, 9)).contains("reader's APIC ID"));
    assert!(bad(handed(1, 0, 1)).contains("names the BSP"));
    assert!(bad(Violation {
        apic_id: 3,
        ..lost(1)
    })
    .contains("lost work names a CPU"));
    assert!(bad(handed(1, u32::MAX, 1)).contains("no CPU record"));
    assert!(bad(Violation {
        tsc: 10,
        ..handed(1, 3, 1)
    })
    .contains("outside the time from bringup"));
    assert!(bad(Violation {
        tsc: TORTURE_REPORT_TSC + 1,
        ..handed(1, 3, 1)
    })
    .contains("outside the time from bringup"));
    // The BSP stays online.
    let buf = torture_report_with(sc, &[], |c| c[0].state = CpuState::Offline as u8);
    assert!(decode(&buf, Topology::new(4))
        .unwrap_err()
        .to_string()
        .contains("BSP is not online"));
    // AP stamps after the report are still outside the window.
    let buf = torture_report_with(sc, &[], |c| {
        c[2].stamps[firmware::report::ApPhase::Online as usize] = TORTURE_REPORT_TSC + 1
    });
    assert!(decode(&buf, Topology::new(4))
        .unwrap_err()
        .to_string()
        .contains("bringup window"));
}

#[test]
fn other_scenarios_carry_no_torture_results() {
    let mut sc = teardown_summary();
    sc.concurrency = 1;
    let buf = teardown_report(parked_ap(), sc, CpuState::Offline);
    let e = decode(&buf, Topology::new(2)).unwrap_err().to_string();
    assert!(e.contains("hotplug-torture results"), "{e}");
    let mut sc = teardown_summary();
    sc.seed = 1;
    let buf = teardown_report(parked_ap(), sc, CpuState::Offline);
    assert!(decode(&buf, Topology::new(2)).is_err());
    // Their JSON has the torture fields empty, and the seed null.
    let buf = teardown_report(parked_ap(), teardown_summary(), CpuState::Offline);
    let Report::Boot(b) = decode(&buf, Topology::new(2)).unwrap() else {
        panic!("not a boot report")
    };
    assert_eq!(scenario_failure(&b), None);
    let v = serde_json::to_value(scenario_json(&b, 1_000_000)).unwrap();
    assert_eq!(v["concurrency"], 0);
    assert!(v["seed"].is_null());
    assert!(v["ops_per_sec"].is_null());
    assert_eq!(v["duration_cycles"], 0);
    assert_eq!(v["latency_cycles"]["p50"], 0);
    assert_eq!(v["violation_list"], serde_json::json!([]));
    let buf = report(&[cpu(0, true), cpu(1, false)], 0);
    let Report::Boot(b) = decode(&buf, Topology::new(2)).unwrap() else {
        panic!("not a boot report")
    };
    let j = scenario_json(&b, 1_000_000);
    assert_eq!((j.name, j.teardown, j.seed), ("boot", None, None));
    assert_eq!(render_scenario(&j, 1_000_000), None);
}

#[test]
fn torture_results_must_match_what_was_asked_for() {
    let err = |sc: ScenarioSummary, list: &[Violation], asked: &GuestOptions| {
        decode_for(&torture_report(sc, list), Topology::new(4), asked)
            .unwrap_err()
            .to_string()
    };
    let sc = torture_summary();
    let asked = torture_options();
    assert!(err(ScenarioSummary { seed: 43, ..sc }, &[], &asked).contains("seed"));
    assert!(err(ScenarioSummary { ops: 1001, ..sc }, &[], &asked)
        .contains("more operations than asked for"));
    let one = GuestOptions {
        concurrency: 1,
        ..asked
    };
    assert!(err(sc, &[], &one).contains("concurrency above"));
    let with = ScenarioSummary {
        violations: 1,
        ..sc
    };
    assert!(err(with, &[handed(1001, 3, 1)], &asked).contains("beyond those asked for"));
    // Torture where another scenario was asked for, and the reverse.
    let boot = GuestOptions::default();
    assert!(err(sc, &[], &boot).contains("another scenario"));
    let buf = report(&[cpu(0, true), cpu(1, false)], 0);
    let e = decode_for(&buf, Topology::new(2), &asked)
        .unwrap_err()
        .to_string();
    assert!(e.contains("another scenario"), "{e}");
    // Without the options, nothing more is checked; other scenarios check only the name.
    assert!(decode(
        &torture_report(ScenarioSummary { seed: 43, ..sc }, &[]),
        Topology::new(4)
    )
    .is_ok());
    let buf = teardown_report(parked_ap(), teardown_summary(), CpuState::Offline);
    assert!(decode_for(&buf, Topology::new(2), &boot).is_ok());
}

/// A suspend-resume report of 3 CPUs (BSP 0, APs 1 and 2 with `ap_states`): round 1 the boot,
/// then one round per resume; the bringup window 50..400 is the last resume's. `status` is
/// the guest's verdict.
fn suspend_report(
    sc: ScenarioSummary,
    rounds: &[Round],
    ap_states: [CpuState; 2],
    status: u32,
) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let mut s = BootSummary {
        cpu_count: 3,
        bringup: 2,
        status,
        ..Default::default()
    };
    s.bsp_stamps[BspPhase::BringupStart as usize] = 50;
    s.bsp_stamps[BspPhase::AllOnline as usize] = 400;
    s.bsp_stamps[BspPhase::Report as usize] = 700;
    write_boot_summary(&mut buf, &s).unwrap();
    write_cpu_record(&mut buf, 0, &cpu(0, true)).unwrap();
    for (i, state) in ap_states.iter().enumerate() {
        let mut ap = cpu(i as u32 + 1, false);
        ap.state = *state as u8;
        if *state != CpuState::Online {
            ap.stamps[ApPhase::Online as usize] = 0;
        }
        write_cpu_record(&mut buf, i + 1, &ap).unwrap();
    }
    let entries = ScenarioEntries {
        rounds,
        teardown: &[],
        violations: &[],
    };
    let len = write_scenario(&mut buf, 3, &sc, &entries).unwrap();
    buf.truncate(len);
    buf
}

/// Two suspends, each followed by both APs coming up again.
fn suspend_summary() -> ScenarioSummary {
    ScenarioSummary {
        scenario: Scenario::SuspendResume as u8,
        rounds: 3,
        round_count: 3,
        ops: 4,
        ..Default::default()
    }
}

/// Round 1 the boot (1000 cycles), then two resumes whose last is the bringup window (350).
const SUSPEND_ROUNDS: [Round; 3] = [
    Round {
        up_cycles: 1000,
        down_cycles: 80,
    },
    Round {
        up_cycles: 300,
        down_cycles: 90,
    },
    Round {
        up_cycles: 350,
        down_cycles: 0,
    },
];

#[test]
fn a_consistent_suspend_resume_is_accepted_and_summarised() {
    let online = [CpuState::Online; 2];
    let buf = suspend_report(suspend_summary(), &SUSPEND_ROUNDS, online, 0);
    let Report::Boot(b) = decode(&buf, Topology::new(3)).unwrap() else {
        panic!("not a boot report")
    };
    let j = scenario_json(&b, 1_000);
    assert_eq!((j.name, j.teardown, j.rounds), ("suspend-resume", None, 3));
    assert_eq!(j.round_stats["up"].count, 3);
    assert_eq!(
        j.round_stats["down"].count, 2,
        "the last round does not suspend"
    );
    assert_eq!(j.round_stats["down"].max, 90);
    let text = render_scenario(&j, 1_000).unwrap();
    assert!(
        text.contains("round 3: resume to all online 350.0 us"),
        "{text}"
    );
    assert!(text.contains("suspend to resume 90.0 us"), "{text}");
    // An AP missing after a resume, counted by the guest's verdict: a consistent report of a
    // failed run.
    let missing = [CpuState::Online, CpuState::Missing];
    let buf = suspend_report(suspend_summary(), &SUSPEND_ROUNDS, missing, 1);
    decode(&buf, Topology::new(3)).unwrap();
}

#[test]
fn catches_suspend_resume_results_that_contradict_themselves() {
    let online = [CpuState::Online; 2];
    let err = |sc: ScenarioSummary, rounds: &[Round], states: [CpuState; 2], status: u32| {
        decode(
            &suspend_report(sc, rounds, states, status),
            Topology::new(3),
        )
        .unwrap_err()
        .to_string()
    };
    let sc = suspend_summary();
    let r = SUSPEND_ROUNDS;
    // An AP that did not come back after a resume, and a verdict that does not count it.
    let missing = [CpuState::Online, CpuState::Missing];
    assert!(err(sc, &r, missing, 0).contains("an AP missing after a resume"));
    assert!(err(sc, &r, [CpuState::Online, CpuState::Offline], 0).contains("offline"));
    let mut no_up = r;
    no_up[1].up_cycles = 0;
    assert!(err(sc, &no_up, online, 0).contains("a round without a bringup"));
    let mut no_sleep = r;
    no_sleep[0].down_cycles = 0;
    assert!(err(sc, &no_sleep, online, 0).contains("suspend missing"));
    let mut sleeps_last = r;
    sleeps_last[2].down_cycles = 5;
    assert!(err(sc, &sleeps_last, online, 0).contains("suspend missing"));
    let mut other_window = r;
    other_window[2].up_cycles = 200;
    assert!(err(sc, &other_window, online, 0).contains("bringup window"));
    let e = |sc: ScenarioSummary| err(sc, &r, online, 0);
    assert!(e(ScenarioSummary { ops: 3, ..sc }).contains("same APs"));
    assert!(e(ScenarioSummary { ops: 6, ..sc }).contains("same APs"));
    assert!(e(ScenarioSummary { ops: 2, ..sc }).contains("more APs online"));
    assert!(e(ScenarioSummary { teardown: 1, ..sc }).contains("teardown"));
    assert!(e(ScenarioSummary {
        teardown_start: 500,
        teardown_end: 600,
        ..sc
    })
    .contains("teardown"));
    assert!(e(ScenarioSummary { seed: 3, ..sc }).contains("hotplug-torture"));
    let two = ScenarioSummary {
        rounds: 2,
        round_count: 3,
        ..sc
    };
    assert!(e(two).contains("rounds"));
}

#[test]
fn suspend_resume_must_match_what_was_asked_for() {
    let buf = suspend_report(suspend_summary(), &SUSPEND_ROUNDS, [CpuState::Online; 2], 0);
    let asked = |scenario, cycles| GuestOptions {
        scenario,
        cycles,
        ..GuestOptions::default()
    };
    let check = |o: GuestOptions| decode_for(&buf, Topology::new(3), &o).map(|_| ());
    assert!(check(asked(Scenario::SuspendResume, 2)).is_ok());
    let e = |o| check(o).unwrap_err().to_string();
    assert!(e(asked(Scenario::SuspendResume, 1)).contains("more suspends than asked for"));
    assert!(e(asked(Scenario::Boot, 0)).contains("another scenario"));
    let boot = report(&[cpu(0, true), cpu(1, false)], 0);
    let ran_boot = decode_for(&boot, Topology::new(2), &asked(Scenario::SuspendResume, 1));
    assert!(ran_boot
        .unwrap_err()
        .to_string()
        .contains("another scenario"));
}
