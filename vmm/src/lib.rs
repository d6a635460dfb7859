//! sipi's VMM as a library: the `vmm` binary is a thin wrapper around [`run`].
//!
//! One concern per module: [`kvm`] (device and capabilities), [`memory`] (guest RAM and the
//! memory-slot transaction layer), [`memslot_burst`] (`vmm memslot-burst`), [`loader`] (kernel
//! images: ELF32/ELF64, PVH, multiboot), [`acpi`] (tables), [`boot_info`] (PVH and multiboot
//! hand-off), [`cpuid`], [`regs`] (architectural state), [`vcpu`] (threads and run loop),
//! [`devices`] (port I/O), [`irq_routing`] (legacy interrupt lines to the in-kernel irqchip),
//! [`event_loop`] (main thread), [`report`] (the guest's report), [`vm`] (one boot end to end),
//! [`cli`] and [`exit`] (the user interface and the exit-status verdict).

pub mod acpi;
pub mod boot_info;
pub mod cli;
pub mod cpuid;
pub mod devices;
pub mod event_loop;
pub mod exit;
pub mod fds;
pub mod irq_routing;
pub mod kvm;
pub mod live;
pub mod loader;
pub mod memory;
pub mod memslot_burst;
pub mod output;
pub mod phases;
pub mod regs;
pub mod report;
pub mod seccomp;
pub mod vcpu;
pub mod vcpu_set;
pub mod vm;

/// The bundled guest kernel, built by build.rs.
pub static EMBEDDED_GUEST: &[u8] = include_bytes!(env!("SIPI_EMBEDDED_GUEST"));

use std::time::Duration;

use cli::Cli;
use exit::Status;
use vm::{BootConfig, KernelSource};

/// Formats an error and its sources on one line.
pub fn error_line(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = s.source();
    }
    line
}

/// Runs the `vmm` command line and returns the exit status.
pub fn run(cli: &Cli) -> Status {
    match &cli.command {
        Some(cli::Command::MemslotBurst(args)) => memslot_burst(args),
        None => run_boot(&cli.boot),
    }
}

/// `vmm memslot-burst`: runs the burst, prints its figures, writes JSON, returns the status.
fn memslot_burst(args: &cli::MemslotBurstArgs) -> Status {
    let fail = |status: Status, message: String| {
        eprintln!("error: {message}");
        status
    };
    let json_out = match args
        .json
        .as_deref()
        .map(output::JsonOutput::prepare)
        .transpose()
    {
        Ok(j) => j,
        Err(e) => return fail(Status::Usage, error_line(&e)),
    };
    let cfg = memslot_burst::BurstConfig {
        changes: args.changes,
        vcpus: args.vcpus,
        mode: if args.naive {
            memslot_burst::Mode::Naive
        } else {
            memslot_burst::Mode::Batched
        },
        changes_per_transaction: None,
        kvm_device: args.kvm_device.clone(),
    };
    let report = match memslot_burst::run(&cfg) {
        Ok(r) => r,
        Err(e) => return fail(e.status(), error_line(&e)),
    };
    print!("{}", memslot_burst::render(&report));
    if let Some(out) = json_out {
        if let Err(e) = out.write(&report) {
            return fail(Status::Host, error_line(&e));
        }
    }
    match &report.error {
        Some(message) => fail(Status::GuestFailure, message.clone()),
        None => Status::Ok,
    }
}

/// Boots, prints the summary, writes JSON, and returns the status.
pub fn run_boot(cli: &cli::BootArgs) -> Status {
    let fail = |status: Status, message: String| {
        eprintln!("error: {message}");
        status
    };
    if let Err(message) = cli.validate() {
        return fail(Status::Usage, message);
    }
    let Some(memory) = cli.memory_bytes() else {
        return fail(
            Status::Usage,
            format!("--memory {} MiB is too large", cli.memory),
        );
    };
    let json_out = match cli
        .json
        .as_deref()
        .map(output::JsonOutput::prepare)
        .transpose()
    {
        Ok(j) => j,
        Err(e) => return fail(Status::Usage, error_line(&e)),
    };
    let console = match output::console(cli.console.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(Status::Usage, error_line(&e)),
    };
    let mut options = cli.guest_options();
    let tsc_skew =
        match vcpu::plan_tsc_skew(cli.test_skew_tsc, &cli.kvm_device, &mut options, cli.quiet) {
            Ok(s) => s,
            Err(e) => return fail(Status::Host, error_line(&e)),
        };
    let mut cmdline = String::new();
    // Writing to a String cannot fail.
    let _ = options.write(&mut cmdline);
    if !cli.cmdline.is_empty() {
        cmdline.push(' ');
        cmdline.push_str(&cli.cmdline);
    }
    let cfg = BootConfig {
        vcpus: cli.vcpus,
        memory,
        kernel: cli
            .kernel
            .clone()
            .map_or(KernelSource::Embedded, KernelSource::Path),
        cmdline,
        timeout: (cli.timeout > 0).then(|| Duration::from_secs(cli.timeout)),
        entry: cli.entry,
        kvm_device: cli.kvm_device.clone(),
        console,
        quiet: cli.quiet,
        tsc_skew,
    };
    let result = match vm::boot(cfg) {
        Ok(r) => r,
        Err(e) => return fail(e.status(), error_line(&e)),
    };
    if !cli.quiet {
        print!("{}", report::render_summary(&result.json, cli.per_cpu));
    }
    if let Some(out) = json_out {
        if let Err(e) = out.write(&result.json) {
            return fail(Status::Host, error_line(&e));
        }
    }
    match result.error {
        Some(message) => fail(result.status, message),
        None => result.status,
    }
}
