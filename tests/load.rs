//! Kernels load where they ask (issue #15): a multiboot kernel over the places where sipi's
//! boot structures would go boots with them moved elsewhere and its segments intact; kernels
//! over what no kernel may occupy are refused with one error line; boot modules (--initrd,
//! --module) reach a multiboot kernel and a PVH one; and --cmdline takes a value starting
//! with '-'.

mod common;

use common::*;

/// vmm's status when mb_low or pvh_modules passed every check (isa-debug-exit value 0x10).
const MB_LOW_STATUS: i32 = 33;
/// mb_low's status when its check 2 (the multiboot information outside its segments) fails:
/// (0x42 << 1) | 1.
const MB_LOW_INFO_INSIDE_STATUS: i32 = 133;
/// vmm's status for a bad input file (docs/cli.md).
const USAGE: i32 = 2;
/// vmm's status when --timeout ends the VM (docs/cli.md).
const TIMEOUT: i32 = 5;

fn boot_mb_low(kernel: &str, args: &[&str]) -> Boot {
    let mut all = vec!["--vcpus", "1", "--timeout", "60"];
    all.extend_from_slice(args);
    boot_kernel(kernel, &all)
}

#[test]
fn a_low_memory_multiboot_kernel_boots_with_the_boot_structures_moved() {
    if !kvm_available() {
        return;
    }
    let kernel = test_kernel("mb_low.elf");
    // The value starts with '-', as kvm-unit-tests' extra_params often do.
    let b = boot_mb_low(&kernel, &["--cmdline", "-pause_filter_test -x"]);
    b.assert_code(MB_LOW_STATUS, "mb_low.elf");
    for line in [
        "mb-low: multiboot entry\n".to_string(),
        format!("cmdline: {kernel} -pause_filter_test -x\n"),
        "mods: 0\n".to_string(),
        "mb-low: PASS\n".to_string(),
    ] {
        assert!(
            b.console.contains(&line),
            "{line:?} missing in:\n{}",
            b.console
        );
    }
    assert_eq!(b.json["status"], "debug-exit");
}

#[test]
fn the_kernels_check_catches_a_hand_off_inside_its_segments() {
    if !kvm_available() {
        return;
    }
    // mb_low with its 0x6000 segment moved to 0x20000 in the program header: sipi then keeps
    // the multiboot information at its fixed 0x6400, which the kernel (linked for 0x6000)
    // takes for its own: its check must fail.
    let dir = tempdir();
    let mut image = std::fs::read(test_kernel("mb_low.elf")).unwrap();
    let phoff = u32::from_le_bytes(image[28..32].try_into().unwrap()) as usize;
    let ph1 = phoff + 32;
    assert_eq!(
        u32::from_le_bytes(image[ph1 + 12..ph1 + 16].try_into().unwrap()),
        0x6000,
        "mb_low's second PT_LOAD is at 0x6000"
    );
    image[ph1 + 8..ph1 + 12].copy_from_slice(&0x2_0000u32.to_le_bytes());
    image[ph1 + 12..ph1 + 16].copy_from_slice(&0x2_0000u32.to_le_bytes());
    let moved = write_file(dir.path(), "moved.elf", &image);
    let b = boot_mb_low(moved.to_str().unwrap(), &[]);
    b.assert_code(MB_LOW_INFO_INSIDE_STATUS, "mb_low.elf, moved");
    assert!(b.console.contains("mb-low: FAIL 2"), "{}", b.console);
}

#[test]
fn a_multiboot_kernel_reads_its_modules() {
    if !kvm_available() {
        return;
    }
    let dir = tempdir();
    let first = write_file(dir.path(), "env", b"TESTNAME=load\nMORE=1\n");
    let second = write_file(dir.path(), "second.txt", b"second module");
    let first = first.to_str().unwrap();
    let module = format!("{},-z arg", second.to_str().unwrap());
    let b = boot_mb_low(
        &test_kernel("mb_low.elf"),
        &["--initrd", first, "--module", &module],
    );
    b.assert_code(MB_LOW_STATUS, "mb_low.elf");
    for line in [
        "mods: 2\n".to_string(),
        format!("mod: {first} | TESTNAME=load\n"),
        "mod: -z arg | second module\n".to_string(),
        "mb-low: PASS\n".to_string(),
    ] {
        assert!(
            b.console.contains(&line),
            "{line:?} missing in:\n{}",
            b.console
        );
    }
}

#[test]
fn bad_modules_are_refused_with_one_error_line() {
    let dir = tempdir();
    let d = dir.path();
    let kernel = test_kernel("mb_low.elf");
    let empty = write_file(d, "empty", b"");
    let ok = write_file(d, "ok", b"x");
    let run = |args: &[&str]| {
        let mut all = vec!["--kernel", kernel.as_str(), "--vcpus", "1"];
        all.extend_from_slice(args);
        vmm(&all)
    };
    assert_one_line_error(
        &run(&["--initrd", empty.to_str().unwrap()]),
        USAGE,
        "is empty",
    );
    let missing = d.join("missing");
    assert_one_line_error(
        &run(&["--initrd", missing.to_str().unwrap()]),
        USAGE,
        "cannot read boot module",
    );
    assert_one_line_error(
        &run(&["--module", d.to_str().unwrap()]),
        USAGE,
        "is a directory",
    );
    let ok = ok.to_str().unwrap();
    let mut many = Vec::new();
    for _ in 0..65 {
        many.extend(["--module", ok]);
    }
    assert_one_line_error(&run(&many), USAGE, "at most 64");
    // More module bytes than guest memory: a sparse file, nothing is read.
    let big = d.join("big");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(300 << 20).unwrap();
    assert_one_line_error(
        &run(&["--memory", "256", "--initrd", big.to_str().unwrap()]),
        USAGE,
        "more than the 268435456 bytes of guest memory",
    );
    // Fits in guest memory but not above 1 MiB, after the kernel.
    let f = std::fs::File::create(&big).unwrap();
    f.set_len((15 << 20) + 1).unwrap();
    assert_one_line_error(
        &run(&["--memory", "16", "--initrd", big.to_str().unwrap()]),
        USAGE,
        "does not fit",
    );
    // sipi's own guest takes no modules.
    assert_one_line_error(
        &vmm(&["--vcpus", "1", "--initrd", ok]),
        USAGE,
        "need a multiboot or PVH kernel",
    );
}

#[test]
fn kernels_over_what_no_kernel_may_occupy_are_refused() {
    let dir = tempdir();
    let d = dir.path();
    for (name, paddr, needle) in [
        ("ivt", 0x400, "interrupt vector table"),
        ("ebda", 0x9_FC00, "EBDA, VGA and BIOS area"),
        ("rom", 0xF_0000, "EBDA, VGA and BIOS area"),
        ("mmio", 0xC000_0000, "the MMIO hole"),
    ] {
        let p = write_file(d, name, &tiny_elf(paddr, &[0xF4]));
        let out = vmm(&["--kernel", p.to_str().unwrap(), "--vcpus", "1"]);
        assert_one_line_error(&out, USAGE, needle);
    }
    // The first byte after the BIOS data area is the kernel's to ask for: the same kernel
    // there loads and runs (an ELF64 without PVH note or multiboot header, entered in long
    // mode with the boot GDT moved out of its way; it halts, so the boot ends at --timeout).
    let p = write_file(d, "low", &tiny_elf(0x500, &[0xF4]));
    if kvm_available() {
        let out = vmm(&[
            "--kernel",
            p.to_str().unwrap(),
            "--vcpus",
            "1",
            "--timeout",
            "1",
        ]);
        assert_eq!(
            out.status.code(),
            Some(TIMEOUT),
            "a kernel at 0x500 runs until the timeout: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_pvh_kernel_reads_its_modlist() {
    if !kvm_available() {
        return;
    }
    let dir = tempdir();
    let first = write_file(dir.path(), "initrd", b"initrd bytes\nmore\n");
    let first = first.to_str().unwrap();
    let module = format!("{first},-root=/dev/x");
    let b = boot_kernel(
        &test_kernel("pvh_modules.elf"),
        &[
            "--vcpus",
            "1",
            "--timeout",
            "60",
            "--initrd",
            first,
            "--module",
            &module,
        ],
    );
    b.assert_code(MB_LOW_STATUS, "mb_low.elf");
    for line in [
        "modules: 2\n".to_string(),
        format!("module: {first} | initrd bytes\n"),
        "module: -root=/dev/x | initrd bytes\n".to_string(),
        "pvh-modules: PASS\n".to_string(),
    ] {
        assert!(
            b.console.contains(&line),
            "{line:?} missing in:\n{}",
            b.console
        );
    }
}
