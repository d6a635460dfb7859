//! sipi's bundled guest kernel.
//!
//! A freestanding x86-64 kernel, entered through PVH (32-bit) or directly in long mode (see
//! [`boot`]). The entry code sets up long mode, the GDT, TSS and IDT at CPL 0, then runs all the
//! Rust code at CPL 3 (see [`boot`] for why). The BSP enables its local APIC, reads the boot
//! hand-off and the MADT, brings the APs up with INIT/SIPI ([`bringup`]), and hands the VMM ONE
//! boot report with TSC stamps of every phase of every CPU (see `firmware::report`).
//! Interrupts stay masked, except around the HLT of a CPU that sleeps until another wakes it
//! with an IPI ([`supervisor::wait_while`], used by the TSC check).
//!
//! One file per concern, in layers. Each module uses only modules listed before it (and the
//! firmware crate), assembly labels included, so that the modules form no circle; only the
//! entry code calls up into this file's `bsp_main`.
//!
//! 1. Primitives: [`cpu`] (unprivileged instructions and architectural numbers),
//!    [`supervisor`] (the privileged operations CPL-3 code asks CPL 0 for), [`global`],
//!    [`mem`] (memcpy and friends), [`phys`] (checked reads of firmware memory), [`rng`]
//!    (pseudo-random choices).
//! 2. Devices and tables: [`apic`] (local APIC, IPIs), [`gdt`] (segment descriptors,
//!    selectors, TSS layout), [`cpus`] (the per-CPU records and the APIC ID -> slot map),
//!    [`serial`], [`tsc`] (time), [`acpi`], [`bootinfo`] (PVH start info, memory map,
//!    command line).
//! 3. Services: [`report`] (report buffers, doorbell, exit), [`live`] (the live state a VMM
//!    reads after a timeout, and the BSP's stamps), [`percpu`] (the APs' GDT, TSS and
//!    stacks), [`batch`] (batched IPIs), [`deadline`] (how long the BSP waits for APs).
//! 4. Entry code and exceptions: [`idt`] (exception stubs and handler, the supervisor-call
//!    entry), [`panic`], [`fault`] (deliberate exceptions for tests), [`boot`] (the BSP's
//!    entry points, GDT, TSS and page tables).
//! 5. What an AP runs: [`tsc_sync`] (the TSC synchronisation check between per-CPU init and
//!    online), [`teardown`] (taking APs offline again: both sides), [`torture`] (hotplug
//!    torture: random offline/online operations under checked reader work), [`ap`] (an AP's
//!    Rust code, and which of those it runs once online), [`trampoline`] (AP start-up code,
//!    which enters [`ap`]).
//! 6. The BSP's plan: [`bringup`] (bringup strategies, kicks and retries), [`resume`] (ACPI
//!    S3 suspend and the BSP's way back), [`scenario`] (teardown, reboot cycles and suspend
//!    cycles after bringup), and this file.
//!
//! Built for the host target `x86_64-unknown-linux-gnu` with the flags in vmm/build.rs and the
//! link arguments in build.rs; vmm/build.rs says why the host target only.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod acpi;
mod ap;
mod apic;
mod batch;
mod boot;
mod bootinfo;
mod bringup;
mod cpu;
mod cpus;
mod deadline;
mod fault;
mod gdt;
mod global;
mod idt;
mod live;
mod mem;
mod panic;
mod percpu;
mod phys;
mod ready;
mod report;
mod resume;
mod rng;
mod scenario;
mod serial;
mod supervisor;
mod teardown;
mod torture;
mod trampoline;
mod tsc;
mod tsc_sync;

use core::fmt::Write;

use firmware::cmdline::{Console, GuestOptions, Scenario, TscSync};
use firmware::report::{BootSummary, BspPhase, FLAG_TSC_ADJUST, FLAG_X2APIC, ScenarioSummary};

use crate::apic::{LocalApic, Mode};
use crate::serial::Com1;

/// The prebuilt `core` is compiled with unwinding and refers to the personality routine; with
/// `panic = "abort"` it is never called.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

/// Per-CPU setup every CPU runs at CPL 3: enable the local APIC. The entry code already loaded
/// the GDT, TSS, IDT and page tables.
fn per_cpu_init() -> LocalApic {
    LocalApic::enable()
}

/// The BSP's Rust entry, called at CPL 3 by [`boot`] with the guest-physical address of
/// `hvm_start_info` and the TSC read by the entry's first instruction.
extern "sysv64" fn bsp_main(start_info_addr: u64, entry_tsc: u64) -> ! {
    let rust_entry = cpu::rdtsc();
    live::set(BspPhase::Entry, entry_tsc);
    live::set(BspPhase::RustEntry, rust_entry);

    let apic = per_cpu_init();
    let bsp_apic_id = apic.id();
    let per_cpu_done = cpu::rdtsc();
    let tsc_khz = cpu::tsc_khz();

    let handoff = bootinfo::read(start_info_addr);
    if handoff.options.console == Console::Port {
        serial::use_port();
    }
    let madt = acpi::find_madt(handoff.start_info.rsdp_paddr).unwrap_or_else(|e| panic!("{e}"));
    let online = cpu::rdtsc();
    let registered = cpus::register(
        madt.cpus(),
        bsp_apic_id,
        cpus::BspOnline {
            long_mode: rust_entry,
            per_cpu_init: per_cpu_done,
            online,
        },
    );
    let Some(bsp_slot) = registered.bsp_index else {
        panic!(
            "the BSP's APIC ID {bsp_apic_id} is not among the {} CPUs in the MADT",
            registered.madt_cpus
        );
    };
    live::publish();
    live::hang_after(handoff.options.test_hang);
    live::stamp(BspPhase::AcpiParsed);

    if handoff.options.fault_vector != 0 {
        fault::raise(handoff.options.fault_vector);
    }

    let options = &handoff.options;
    assert!(
        options.scenario == Scenario::Boot || options.tsc_sync == TscSync::None,
        "sipi.scenario={} needs sipi.tsc_sync=none",
        options.scenario.name()
    );
    ap::set_scenario(options.scenario);
    ap::set_test_port_write(options.test_port_write);
    // Found before bringup, so that a VM that cannot suspend fails at once.
    let sleep = (options.scenario == Scenario::SuspendResume).then(|| {
        acpi::find_sleep_control(handoff.start_info.rsdp_paddr).unwrap_or_else(|e| panic!("{e}"))
    });
    torture::prepare(options, tsc_khz);
    live::stamp(BspPhase::BringupStart);
    let outcome = bringup::run(options, apic, tsc::Tsc::new(tsc_khz), &handoff, bsp_slot);
    live::stamp(BspPhase::AllOnline);
    let stamps = live::stamps();
    let up = stamps[BspPhase::AllOnline as usize] - stamps[BspPhase::BringupStart as usize];
    // The scenario (if any): its later bringups move the bringup window to the last one, so
    // that the CPU records' stamps (the last bringup's) lie inside it.
    let tsc = tsc::Tsc::new(tsc_khz);
    let sc = if options.scenario == Scenario::HotplugTorture {
        let t = torture::run(options, apic, tsc, outcome.started);
        Finished {
            summary: ScenarioSummary {
                scenario: options.scenario as u8,
                ops: t.ops,
                violations: t.violations,
                concurrency: t.concurrency,
                seed: options.seed,
                duration_cycles: t.duration,
                latency_p50: t.p50,
                latency_p99: t.p99,
                latency_max: t.max,
                ..ScenarioSummary::default()
            },
            failed: t.failed,
            rounds: &[],
            teardown: &[],
            violations: t.logged,
        }
    } else {
        let sc = scenario::run(
            options,
            apic,
            tsc,
            outcome.started,
            up,
            sleep,
            |begin, end| {
                live::set(BspPhase::BringupStart, begin);
                live::set(BspPhase::AllOnline, end);
            },
        );
        let no_teardown = matches!(options.scenario, Scenario::Boot | Scenario::SuspendResume);
        Finished {
            summary: ScenarioSummary {
                scenario: options.scenario as u8,
                teardown: if no_teardown {
                    0
                } else {
                    options.teardown as u8
                },
                rounds: sc.rounds,
                ops: sc.ops,
                teardown_start: sc.last.start,
                teardown_end: sc.last.end,
                ..ScenarioSummary::default()
            },
            failed: sc.failed,
            rounds: scenario::rounds(sc.rounds),
            teardown: sc.slots,
            violations: &[],
        }
    };

    let mut flags = 0;
    if apic.mode() == Mode::X2Apic {
        flags |= FLAG_X2APIC;
    }
    if tsc_sync::adjust_present() {
        flags |= FLAG_TSC_ADJUST;
    }
    let summary = BootSummary {
        bsp_apic_id,
        tsc_khz,
        flags,
        madt_cpus: registered.madt_cpus,
        bringup: handoff.options.bringup as u8,
        kick: handoff.options.kick as u8,
        tsc_sync: outcome.tsc_sync as u8,
        tsc: outcome.tsc,
        cpu_count: 0, // set by `send_boot` from the CPU table
        // The guest's verdict: the number of CPUs that should have come online and did not,
        // plus the scenario's failures (APs that did not park or come online again).
        status: outcome.missing + sc.failed,
        bsp_stamps: live::stamps(),
    };
    // The doorbell closes the measured window; printing happens after it. The exit status is
    // 0 whenever the report went out: the report carries the verdict.
    report::send_boot(
        summary,
        &report::ScenarioReport {
            summary: sc.summary,
            rounds: sc.rounds,
            teardown: sc.teardown,
            record: teardown::snapshot,
            violations: sc.violations,
        },
    );
    print_summary(&summary, apic.mode(), &handoff.options, &outcome);
    report::exit(report::EXIT_SUCCESS)
}

/// What the scenario after bringup did, for the report.
struct Finished {
    summary: ScenarioSummary,
    /// APs that failed to park or to come online again.
    failed: u32,
    rounds: &'static [firmware::report::Round],
    teardown: &'static [u16],
    violations: &'static [firmware::report::Violation],
}

/// Prints the one-line summary on COM1 as `key=value` words (the benchmark reads them from
/// QEMU's console), kept short: every byte is a VM exit (guest/README.md, "Running on
/// kvm_pvm", has the cost). CPUs listed but not started appear only when there are some.
fn print_summary(s: &BootSummary, mode: Mode, options: &GuestOptions, o: &bringup::Outcome) {
    let mut out = Com1::new();
    let cycles = s.bsp_stamps[BspPhase::AllOnline as usize]
        .saturating_sub(s.bsp_stamps[BspPhase::BringupStart as usize]);
    let _ = write!(
        out,
        "sipi-guest: cpus={} online={} missing={} bringup={}/{} bringup_cycles={cycles}",
        s.madt_cpus,
        o.online,
        o.missing,
        options.bringup.name(),
        options.kick.name(),
    );
    if s.tsc_khz != 0 {
        let _ = write!(
            out,
            " bringup_us={}",
            cycles.saturating_mul(1000) / u64::from(s.tsc_khz)
        );
    }
    if o.listed > 0 {
        let _ = write!(out, " not_started={}", o.listed);
    }
    if o.tsc_sync != TscSync::None {
        // The check's cost is in the report; each byte here costs a VM exit.
        let _ = write!(
            out,
            " tsc_sync={} tsc_warp={}",
            o.tsc_sync.name(),
            o.tsc.max_warp
        );
    }
    let _ = writeln!(
        out,
        " {}",
        match mode {
            Mode::X2Apic => "x2apic",
            Mode::XApic => "xapic",
        }
    );
}
