//! Third-party style multiboot v1 kernels (tests/kernels/, built by `make kernels`) boot
//! unmodified: the ELF32 kernel that reads fw_cfg, drives the UART, pokes the legacy devices,
//! takes IOAPIC interrupts and starts every AP, at 1, 4 and 64 vCPUs; the flat a.out-kludge
//! kernel; a kernel that goes back to real mode on the BIOS state sipi leaves it; and broken
//! headers are refused with one error line.

mod common;

use common::*;

/// mb_smp's isa-debug-exit value when every check passed, and vmm's status for it.
const MB_SMP_PASS: u64 = 0x10;
const MB_SMP_STATUS: i32 = 33;

fn mb_smp(vcpus: u32) {
    if !kvm_available() {
        return;
    }
    let kernel = test_kernel("mb_smp.elf");
    let n = vcpus.to_string();
    let b = boot_kernel(
        &kernel,
        &["--vcpus", &n, "--cmdline", "hello world", "--timeout", "60"],
    );
    b.assert_code(MB_SMP_STATUS, "mb_smp.elf");
    assert!(
        b.stdout
            .contains("no report, the guest ended via isa-debug-exit"),
        "the summary says how a kernel without a report ended: {}",
        b.stdout
    );
    // The kernel checks what holds on any PC-like VMM and prints what is sipi's own.
    for line in [
        "mb-smp: multiboot entry".to_string(),
        format!("multiboot: loader sipi {}", env!("CARGO_PKG_VERSION")),
        format!("cmdline {kernel} hello world\n"),
        // 640 KiB below the VGA hole; 255 MiB from 1 MiB, all of it in the memory map.
        "multiboot: mem_lower 640 KiB, mem_upper 261120 KiB, mmap 261120 KiB available above 1 MiB"
            .to_string(),
        // Traditional interface without DMA, an empty file directory.
        format!("fw_cfg: QEMU, ID 0x00000001, {vcpus} CPUs, RAM 256 MiB, 0 files"),
        "rtc: 20".to_string(),
        "pci: 00:00.0 reads 0xffffffff".to_string(),
        format!("acpi: MADT lists {vcpus} CPUs, IOAPIC at 0xfec00000, timer GSI 2"),
        "irq: PIT timer interrupts through the IOAPIC".to_string(),
        format!("smp: {vcpus}/{vcpus} CPUs online"),
        "mb-smp: PASS".to_string(),
    ] {
        assert!(
            b.console.contains(&line),
            "{line:?} missing in:\n{}",
            b.console
        );
    }
    assert!(
        !b.console.contains("sipi."),
        "sipi's own options are not passed to a multiboot kernel: {}",
        b.console
    );
    let j = &b.json;
    assert_eq!(j["status"], "debug-exit");
    assert_eq!(j["exit_code"], MB_SMP_STATUS);
    assert_eq!(j["guest_status"], MB_SMP_PASS);
    assert_eq!(j["exit_via"], "isa-debug-exit");
    assert!(j["error"].is_null());
    assert_eq!(j["vcpus"], vcpus);
    assert!(
        !b.stderr.contains("warning"),
        "no access of this kernel is to an unknown port: {}",
        b.stderr
    );
    println!("mb_smp at {vcpus} vCPUs: {:?} (whole process)", b.wall);
}

#[test]
fn mb_smp_at_1_vcpu() {
    mb_smp(1);
}

#[test]
fn mb_smp_at_4_vcpus() {
    mb_smp(4);
}

#[test]
fn mb_smp_at_64_vcpus() {
    mb_smp(64);
}

#[test]
fn a_flat_kernel_loads_through_the_address_fields() {
    if !kvm_available() {
        return;
    }
    let kernel = test_kernel("mb_aout.bin");
    let b = boot_kernel(&kernel, &["--vcpus", "2", "--cmdline", "x=1", "-q"]);
    assert_eq!(b.code, Some(35), "console:\n{}\n{}", b.console, b.stderr);
    assert!(b
        .console
        .contains(&format!("mb-aout: cmdline {kernel} x=1")));
    assert!(b.console.contains("mb-aout: PASS"), "{}", b.console);
    assert_eq!(b.json["guest_status"], 0x11);
}

/// Offset of the multiboot header's magic in the first 8 KiB of `image`.
fn header_offset(image: &[u8]) -> usize {
    (0..8192.min(image.len()) - 4)
        .step_by(4)
        .find(|&o| image[o..o + 4] == 0x1BAD_B002u32.to_le_bytes())
        .expect("a multiboot header")
}

#[test]
fn broken_multiboot_headers_are_refused() {
    let dir = tempdir();
    let d = dir.path();
    let good = std::fs::read(test_kernel("mb_smp.elf")).unwrap();
    let at = header_offset(&good);
    let run = |name: &str, bytes: &[u8]| {
        let p = write_file(d, name, bytes);
        vmm(&["--kernel", p.to_str().unwrap(), "--vcpus", "1"])
    };
    let mut bad = good.clone();
    bad[at + 8] ^= 1;
    assert_one_line_error(&run("checksum.elf", &bad), 2, "bad checksum");
    // A required feature sipi lacks (flag 3), with a correct checksum.
    let mut bad = good.clone();
    let flags = u32::from_le_bytes(bad[at + 4..at + 8].try_into().unwrap()) | 1 << 3;
    let checksum = 0u32.wrapping_sub(0x1BAD_B002).wrapping_sub(flags);
    bad[at + 4..at + 8].copy_from_slice(&flags.to_le_bytes());
    bad[at + 8..at + 12].copy_from_slice(&checksum.to_le_bytes());
    assert_one_line_error(&run("flags.elf", &bad), 2, "requires features sipi lacks");
    // A flat image cut short: its address fields ask for more than the file has.
    let flat = std::fs::read(test_kernel("mb_aout.bin")).unwrap();
    assert_one_line_error(
        &run("short.bin", &flat[..64]),
        2,
        "more bytes than the file has",
    );
    // No header left at all: neither ELF nor multiboot.
    assert_one_line_error(&run("none.bin", &flat[12..64]), 2, "no multiboot header");
}

/// mb_realmode's isa-debug-exit value when every check passed, and vmm's status for it.
const MB_REALMODE_PASS: u64 = 0x10;
const MB_REALMODE_STATUS: i32 = 33;

/// A multiboot kernel finds what a PC BIOS leaves (QEMU boots multiboot kernels through
/// SeaBIOS), and kvm-unit-tests' `realmode` relies on: back in real mode, the BIOS's IVT
/// takes the PIT's 18.2 Hz tick at vector 0x08 and EOIs it, and IRQ 11, raised by a 4-byte
/// write to pc-testdev's line port 0x200b (split into one byte per line, as QEMU does),
/// arrives at vector 0x73 once the kernel unmasks it.
#[test]
fn a_multiboot_kernel_finds_a_bios_s_pic_pit_and_ivt_in_real_mode() {
    if !kvm_available() {
        return;
    }
    let kernel = test_kernel("mb_realmode.elf");
    let b = boot_kernel(&kernel, &["--vcpus", "1", "--timeout", "60"]);
    b.assert_code(MB_REALMODE_STATUS, "mb_realmode.elf");
    for line in [
        // Open: timer, keyboard, cascade; RTC, mouse, FPU error (docs/boot.md).
        "mb-realmode: 8259 masks 0x000000f8/0x000000ce\n",
        "mb-realmode: real mode, the timer wakes hlt through the BIOS's vector 0x08",
        "mb-realmode: IRQ 11 from port 0x200b taken at vector 0x73",
        "mb-realmode: PASS",
    ] {
        assert!(
            b.console.contains(line),
            "{line:?} missing in:\n{}",
            b.console
        );
    }
    assert_eq!(b.json["guest_status"], MB_REALMODE_PASS);
    assert!(
        !b.stderr.contains("warning"),
        "the 4-byte line write is taken, not refused: {}",
        b.stderr
    );
}

/// The broken input: told not to raise IRQ 11, the kernel's last `hlt` (timer masked) has
/// nothing to wake it, so the VM runs into --timeout: the wake-up above came from the line.
#[test]
fn without_the_line_raised_the_real_mode_hlt_is_never_woken() {
    if !kvm_available() {
        return;
    }
    let kernel = test_kernel("mb_realmode.elf");
    let b = boot_kernel(
        &kernel,
        &["--vcpus", "1", "--timeout", "3", "--cmdline", "no-irq11"],
    );
    assert_eq!(b.code, Some(5), "console:\n{}\n{}", b.console, b.stderr);
    assert!(
        b.console
            .contains("mb-realmode: real mode, the timer wakes hlt"),
        "{}",
        b.console
    );
    assert!(!b.console.contains("PASS"), "{}", b.console);
    assert_eq!(b.json["status"], "timeout");
}
