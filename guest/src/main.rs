//! sipi's bundled guest kernel.
//!
//! A freestanding x86-64 kernel, entered through PVH (32-bit) or directly in long mode (see
//! [`boot`]). The entry code sets up long mode, the GDT, TSS and IDT at CPL 0, then runs all the
//! Rust code at CPL 3 (see [`boot`] for why). The BSP enables its local APIC, reads the boot
//! hand-off and the MADT, brings the APs up (a later step), and hands the VMM ONE boot report
//! with TSC stamps of every phase (see `firmware::report`). Interrupts stay masked throughout.
//!
//! One file per concern: [`boot`] (entry points, GDT, TSS, page tables), [`idt`] (exception
//! stubs and handler), [`supervisor`] (privileged operations for CPL-3 code), [`cpu`]
//! (unprivileged instructions), [`apic`], [`acpi`], [`bootinfo`] (PVH start info, command
//! line), [`phys`] (checked reads of firmware memory), [`cpus`] (the per-CPU records APs will
//! stamp), [`report`] (report buffers, doorbell, exit), [`serial`], [`panic`], [`fault`]
//! (deliberate exceptions for tests), [`mem`] (memcpy and friends), [`global`].
//!
//! Built for the host target `x86_64-unknown-linux-gnu` with the flags in vmm/build.rs and the
//! link arguments in build.rs; see ARCHITECTURE.md, "Building the guest with the host target
//! only".
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod acpi;
mod apic;
mod boot;
mod bootinfo;
mod cpu;
mod cpus;
mod fault;
mod global;
mod idt;
mod mem;
mod panic;
mod phys;
mod report;
mod serial;
mod supervisor;

use core::fmt::Write;

use firmware::cmdline::GuestOptions;
use firmware::report::{BootSummary, BspPhase, FLAG_X2APIC, STAMP_SLOTS};

use crate::apic::{LocalApic, Mode};
use crate::serial::Com1;

/// The prebuilt `core` is compiled with unwinding and refers to the personality routine; with
/// `panic = "abort"` it is never called.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

/// The BSP's TSC stamps, one slot per [`BspPhase`].
struct BspStamps([u64; STAMP_SLOTS]);

impl BspStamps {
    /// Records `tsc` for `phase`.
    fn set(&mut self, phase: BspPhase, tsc: u64) {
        self.0[phase as usize] = tsc;
    }

    /// Records the current TSC for `phase`.
    fn stamp(&mut self, phase: BspPhase) {
        self.set(phase, cpu::rdtsc());
    }
}

/// Per-CPU setup every CPU runs at CPL 3: enable the local APIC. The entry code already loaded
/// the GDT, TSS, IDT and page tables.
fn per_cpu_init() -> LocalApic {
    LocalApic::enable()
}

/// The BSP's Rust entry, called at CPL 3 by [`boot`] with the guest-physical address of
/// `hvm_start_info` and the TSC read by the entry's first instruction.
extern "sysv64" fn bsp_main(start_info_addr: u64, entry_tsc: u64) -> ! {
    let rust_entry = cpu::rdtsc();
    let mut stamps = BspStamps([0; STAMP_SLOTS]);
    stamps.set(BspPhase::Entry, entry_tsc);
    stamps.set(BspPhase::RustEntry, rust_entry);

    let apic = per_cpu_init();
    let bsp_apic_id = apic.id();
    let per_cpu_done = cpu::rdtsc();
    let tsc_khz = cpu::tsc_khz();

    let handoff = bootinfo::read(start_info_addr);
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
    if registered.bsp_index.is_none() {
        panic!(
            "the BSP's APIC ID {bsp_apic_id} is not among the {} CPUs in the MADT",
            registered.madt_cpus
        );
    }
    stamps.stamp(BspPhase::AcpiParsed);

    if handoff.options.fault_vector != 0 {
        fault::raise(handoff.options.fault_vector);
    }

    stamps.stamp(BspPhase::BringupStart);
    // AP bringup (INIT/SIPI, serial or parallel, per `handoff.options`) goes here: the APs stamp
    // their records in the CPU table in place and the BSP waits for them.
    stamps.stamp(BspPhase::AllOnline);

    let summary = BootSummary {
        bsp_apic_id,
        tsc_khz,
        flags: if apic.mode() == Mode::X2Apic {
            FLAG_X2APIC
        } else {
            0
        },
        madt_cpus: registered.madt_cpus,
        bringup: handoff.options.bringup as u8,
        kick: handoff.options.kick as u8,
        cpu_count: 0, // set by `send_boot` from the CPU table
        status: 0,
        bsp_stamps: stamps.0,
    };
    // The doorbell closes the measured window; printing happens after it.
    let report_addr = report::send_boot(summary);
    print_summary(&summary, apic.mode(), &handoff.options, report_addr);
    report::exit(report::EXIT_SUCCESS)
}

/// Prints the one-line human summary on COM1.
fn print_summary(s: &BootSummary, mode: Mode, options: &GuestOptions, report_addr: u64) {
    let _ = writeln!(
        Com1,
        "sipi-guest: bsp apic {}, {} cpus in MADT, tsc {} kHz, {}, bringup {} ({}), \
         report at {report_addr:#x}",
        s.bsp_apic_id,
        s.madt_cpus,
        s.tsc_khz,
        match mode {
            Mode::X2Apic => "x2apic",
            Mode::XApic => "xapic",
        },
        options.bringup.name(),
        options.kick.name(),
    );
}
