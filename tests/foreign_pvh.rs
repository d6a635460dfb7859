//! Foreign PVH kernels (tests/kernels/, built by `make kernels`) that know nothing of sipi's
//! report: each ends the VM one standard way, at 1 and at 64 vCPUs, and vmm exits with the
//! status README documents for it; one reads hvm_start_info and checks its fields.

mod common;

use common::*;

/// The ELF class byte of a kernel file (1: ELF32, 2: ELF64).
fn elf_class(kernel: &str) -> u8 {
    std::fs::read(kernel).expect("kernel file")[4]
}

/// Boots `name` at 1 and 64 vCPUs; checks the exit status, the JSON outcome fields and that
/// no report was expected of it. Returns the boots.
fn ends_with(
    name: &str,
    class: u8,
    code: i32,
    status: &str,
    exit_via: &str,
    guest_status: Option<u64>,
) -> Vec<Boot> {
    if !kvm_available() {
        return Vec::new();
    }
    let kernel = test_kernel(name);
    assert_eq!(elf_class(&kernel), class, "{name}'s ELF class");
    [1, 64]
        .into_iter()
        .map(|vcpus: u32| {
            let n = vcpus.to_string();
            let b = boot_kernel(
                &kernel,
                &["--vcpus", &n, "--timeout", "30", "--cmdline", "hello=world"],
            );
            let what = format!("{name} at {vcpus} vCPUs");
            b.assert_code(code, &what);
            let j = &b.json;
            assert_eq!(j["status"], status, "{what}: {j}");
            assert_eq!(j["exit_code"], code, "{what}");
            assert_eq!(j["exit_via"], exit_via, "{what}");
            assert_eq!(j["guest_status"].as_u64(), guest_status, "{what}");
            assert_eq!(j["vcpus"], vcpus);
            assert_eq!(j["online"], 0, "{what}: a foreign kernel reports nothing");
            // It does not know sipi's vCPU-readiness port: every vCPU exists before it runs.
            assert_eq!(j["bsp_start"]["mode"], "all-ready", "{what}");
            assert!(j.get("cpus").is_none(), "{what}: no report fields");
            if code == 0 || status == "debug-exit" {
                assert!(j["error"].is_null(), "{what}: {j}");
                assert!(
                    !b.stderr.lines().any(|l| l.starts_with("error:")),
                    "{what}: {}",
                    b.stderr
                );
            }
            b
        })
        .collect()
}

#[test]
fn isa_debug_exit_ends_with_qemus_status() {
    // Value 0x2a: (0x2a << 1) | 1 = 85.
    for b in ends_with(
        "pvh_debug_exit.elf",
        2,
        85,
        "debug-exit",
        "isa-debug-exit",
        Some(0x2a),
    ) {
        assert!(b.console.contains("pvh-debug-exit: writing 0x2a"));
    }
}

#[test]
fn an_i8042_reset_is_a_clean_end() {
    for b in ends_with("pvh_i8042.elf", 1, 0, "ok", "i8042-reset", None) {
        assert!(
            b.console.contains("pulsing the reset line"),
            "{}",
            b.console
        );
    }
}

#[test]
fn acpi_s5_is_a_clean_power_off() {
    for b in ends_with("pvh_s5.elf", 1, 0, "ok", "acpi-s5", None) {
        assert!(
            b.console
                .contains("pvh-s5: PM1a_CNT 0x00000600, \\_S5 SLP_TYPa 5"),
            "{}",
            b.console
        );
    }
}

#[test]
fn sipis_exit_port_without_a_report_is_clean_for_a_foreign_kernel() {
    ends_with("pvh_sipi_exit.elf", 2, 0, "ok", "sipi-exit-port", Some(0));
}

#[test]
fn a_triple_fault_names_the_vcpu_and_rip() {
    for b in ends_with(
        "pvh_triple_fault.elf",
        2,
        4,
        "guest-fault",
        "triple-fault",
        None,
    ) {
        // The kernel printed where its UD2 is; the VMM must report that RIP.
        let at = b
            .console
            .split("empty IDT at 0x")
            .nth(1)
            .and_then(|s| s.get(..8))
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .unwrap_or_else(|| panic!("no fault address in {:?}", b.console));
        let want = format!("vCPU 0 triple-faulted at RIP {at:#x}");
        assert_eq!(b.json["error"], want.as_str());
        let errors: Vec<&str> = b
            .stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(errors, [format!("error: {want}")]);
    }
}

#[test]
fn a_pvh_kernel_finds_memory_acpi_and_its_command_line_in_start_info() {
    for b in ends_with(
        "pvh_start_info.elf",
        1,
        65,
        "debug-exit",
        "isa-debug-exit",
        Some(0x20),
    ) {
        for line in [
            "start_info: version 1, flags 0x00000000",
            "hello=world\n",
            "start_info: RSDP at 0x000e0000",
            // 640 KiB below the VGA hole plus 255 MiB from 1 MiB (the default 256 MiB).
            "start_info: memmap 3 entries, RAM 261760 KiB",
            "pvh-start-info: PASS",
        ] {
            assert!(
                b.console.contains(line),
                "{line:?} missing in:\n{}",
                b.console
            );
        }
    }
}
