//! The devices QEMU's test machine has and kvm-unit-tests use, driven by test kernels of
//! ours (tests/kernels/, built by `make kernels`): pc-testdev (its test register at every
//! size, string I/O split into its accesses, the MMIO test memory, an interrupt line raised
//! through its port and taken from the 8259) and the HPET (found through its ACPI table, its
//! counter stopped, written and running). Each kernel checks what it sees and ends through
//! isa-debug-exit with its pass value, or with 0x40 + the step that failed, so a wrong device
//! shows as a different status.

mod common;

use common::*;

/// Boots `name` at `vcpus` and checks that it ended through isa-debug-exit with `value`,
/// without warnings on stderr: the devices it uses are all there.
fn passes(name: &str, vcpus: u32, value: u64, console: &str) {
    let kernel = test_kernel(name);
    let n = vcpus.to_string();
    let b = boot_kernel(&kernel, &["--vcpus", &n, "--timeout", "30"]);
    let what = format!("{name} at {vcpus} vCPUs");
    let code = i32::try_from((value << 1) | 1).expect("an 8-bit status");
    b.assert_code(code, &what);
    let j = &b.json;
    assert_eq!(j["status"], "debug-exit", "{what}: {j}");
    assert_eq!(j["exit_via"], "isa-debug-exit", "{what}");
    assert_eq!(j["guest_status"].as_u64(), Some(value), "{what}");
    assert!(b.console.contains(console), "{what}: {}", b.console);
    assert!(
        !b.stderr.contains("warning:") && !b.stderr.contains("error:"),
        "{what}: {}",
        b.stderr
    );
}

#[test]
fn pc_testdev_ports_string_io_mmio_memory_and_irq_lines_work() {
    if !kvm_available() {
        return;
    }
    // 0x21: every step held. Step 2 (rep insb of 4 bytes from port 0xe0) fails
    // with 0x42 when a string I/O exit reaches the device as one wide access.
    for vcpus in [1, 4] {
        passes("pvh_testdev.elf", vcpus, 0x21, "pvh-testdev: all good");
    }
}

#[test]
fn the_hpet_is_found_through_acpi_and_its_counter_runs_only_when_enabled() {
    if !kvm_available() {
        return;
    }
    for vcpus in [1, 4] {
        passes("pvh_hpet.elf", vcpus, 0x22, "pvh-hpet: all good");
    }
}
