//! An AP's Rust code, at CPL 3 on its own user stack: entered from the CPL-0 entry in
//! [`crate::trampoline`] once the AP runs in long mode with its own GDT, TSS and local APIC,
//! the shared IDT and SSE enabled. It stamps its remaining phases into its record, takes part
//! in the TSC check when there is one ([`crate::tsc_sync`]), marks itself online and halts, or,
//! in a scenario ([`set_scenario`]), waits to be taken offline ([`crate::teardown`]) or runs
//! hotplug-torture's reader work ([`crate::torture`]); it never returns.

use core::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use firmware::cmdline::{Scenario, TEST_PORT_WRITE_CODE, TscSync};
use firmware::layout::POST_CODE_PORT;
use firmware::report::{ApPhase, CpuState};

use crate::cpu;
use crate::cpus;
use crate::supervisor;
use crate::teardown;
use crate::torture;
use crate::tsc_sync;

/// The scenario (set by the BSP before any AP runs, read by every AP once online).
static SCENARIO: AtomicU8 = AtomicU8::new(Scenario::Boot as u8);

/// Records the scenario for the APs (BSP only, before bringup).
pub(crate) fn set_scenario(scenario: Scenario) {
    SCENARIO.store(scenario as u8, Ordering::Release);
}

/// Test only (`sipi.test_port_write`): the APIC ID of the AP that makes one port write inside
/// its bringup window (0: none). Set by the BSP before any AP runs.
static TEST_PORT_WRITE: AtomicU32 = AtomicU32::new(0);

/// Records which AP makes the test port write (BSP only, before bringup; 0 = none).
pub(crate) fn set_test_port_write(apic_id: u32) {
    TEST_PORT_WRITE.store(apic_id, Ordering::Release);
}

/// The AP's Rust entry: `slot` is its record in [`cpus`], found by the trampoline from
/// `apic_id`, the ID it read from its local APIC.
///
/// Stamps LongMode on entry. The per-CPU setup that PerCpuInit stands for (GDT, TSS, IDT,
/// local APIC) is done by then, at CPL 0, where it costs a few emulated instructions instead
/// of supervisor calls; here the AP checks that it got the right slot, stamps PerCpuInit, runs
/// its part of the TSC check (stamping TscSync when it is done; with the test option
/// `sipi.test_port_write`, the AP it names first writes port 0x80 once, a deliberate exit
/// inside its bringup window for the VMM's check to catch), and marks itself online with
/// the Online stamp, then halts for good (or goes on with the scenario).
pub(crate) extern "sysv64" fn ap_main(slot: u32, apic_id: u32) -> ! {
    let long_mode = cpu::rdtsc();
    let slot = slot as usize;
    cpus::set_stamp(slot, ApPhase::LongMode, long_mode);
    let recorded = cpus::apic_id(slot);
    assert!(
        recorded == apic_id,
        "the AP with APIC ID {apic_id} was sent to the record of APIC ID {recorded}"
    );
    cpus::set_stamp(slot, ApPhase::PerCpuInit, cpu::rdtsc());
    if apic_id != 0 && TEST_PORT_WRITE.load(Ordering::Acquire) == apic_id {
        // SAFETY: the POST/debug port only records the byte (IOPL 3 lets CPL 3 write it). This
        // is the deliberate violation of the protocol's promise that an AP makes no exit in its
        // bringup window, for the VMM's check to catch.
        unsafe { cpu::outb(POST_CODE_PORT, TEST_PORT_WRITE_CODE) };
    }
    if tsc_sync::strategy() != TscSync::None {
        tsc_sync::ap(slot);
        cpus::set_stamp(slot, ApPhase::TscSync, cpu::rdtsc());
    }
    cpus::set_stamp(slot, ApPhase::Online, cpu::rdtsc());
    // After the stamps (x86 keeps stores in order): a BSP that sees Online sees every stamp.
    cpus::set_state(slot, CpuState::Online);
    // In a scenario other than boot the AP does not halt for good.
    let scenario = SCENARIO.load(Ordering::Acquire);
    if scenario == Scenario::HotplugTorture as u8 {
        torture::ap(slot)
    }
    // Suspend-resume takes no AP offline: the S3 suspend stops them where they halt.
    if scenario != Scenario::Boot as u8 && scenario != Scenario::SuspendResume as u8 {
        teardown::ap(slot)
    }
    supervisor::halt()
}
