//! Hostile and broken guests on real KVM: each tiny kernel below abuses the report port,
//! pokes unknown ports and MMIO, or triple-faults, and `vmm` must end with a clear status and
//! one `error:` line, never a panic or a hang.
//!
//! The kernels are x86-64 machine code entered in long mode (`--entry long`, on the VMM's
//! identity map) with their report bytes in the same segment.

mod common;

use common::*;
use firmware::report::encode::{write_boot_summary, write_cpu_record, write_scenario};
use firmware::report::{ApPhase, BootSummary, CpuRecord, CpuState, CPU_FLAG_BSP, REPORT_MAX_LEN};

/// Where the kernel is loaded.
const BASE: u64 = 0x10_0000;
/// Offset of the report bytes in the segment (8-byte aligned).
const REPORT_OFFSET: usize = 0x100;
/// sipi's report doorbell and exit port (firmware::layout).
const REPORT_PORT: u16 = firmware::layout::REPORT_PORT;
const EXIT_PORT: u16 = firmware::layout::EXIT_PORT;

/// Machine-code builder (Intel SDM Vol. 2 encodings, 64-bit mode).
#[derive(Default)]
struct Code(Vec<u8>);

impl Code {
    /// mov eax, imm32
    fn mov_eax(mut self, v: u32) -> Self {
        self.0.push(0xB8);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// mov ecx, imm32
    fn mov_ecx(mut self, v: u32) -> Self {
        self.0.push(0xB9);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// mov dx, imm16
    fn mov_dx(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&[0x66, 0xBA]);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// out dx, eax
    fn out(mut self) -> Self {
        self.0.push(0xEF);
        self
    }
    /// in eax, dx
    fn inp(mut self) -> Self {
        self.0.push(0xED);
        self
    }
    /// `out dx, eax` ECX times (out; loop back to it).
    fn out_loop(mut self) -> Self {
        self.0.extend_from_slice(&[0xEF, 0xE2, 0xFD]);
        self
    }
    /// mov dword [abs32], imm32 (the address must be below 2 GiB: it is sign-extended).
    fn store(mut self, addr: u32, v: u32) -> Self {
        self.0.extend_from_slice(&[0xC7, 0x04, 0x25]);
        self.0.extend_from_slice(&addr.to_le_bytes());
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// ud2
    fn ud2(mut self) -> Self {
        self.0.extend_from_slice(&[0x0F, 0x0B]);
        self
    }
    /// Rings the doorbell with the report at REPORT_OFFSET.
    fn ring(self) -> Self {
        self.mov_eax((BASE as u32) + REPORT_OFFSET as u32)
            .mov_dx(REPORT_PORT)
            .out()
    }
    /// Writes `status` to sipi's exit port, then halts forever.
    fn exit(mut self, status: u32) -> Self {
        self = self.mov_eax(status).mov_dx(EXIT_PORT).out();
        self.0.extend_from_slice(&[0xF4, 0xEB, 0xFD]); // hlt; jmp back to hlt
        self
    }
    /// The kernel image: this code, then `report` at REPORT_OFFSET.
    fn with_report(self, report: &[u8]) -> Vec<u8> {
        assert!(self.0.len() <= REPORT_OFFSET, "code overlaps the report");
        let mut seg = self.0;
        seg.resize(REPORT_OFFSET, 0x90);
        seg.extend_from_slice(report);
        tiny_elf(BASE, &seg)
    }
}

/// A boot report for a 1-vCPU VM: the BSP online. `edit` may corrupt it.
fn report(edit: impl FnOnce(&mut BootSummary, &mut Vec<CpuRecord>)) -> Vec<u8> {
    let mut s = BootSummary {
        bringup: 3,
        ..Default::default()
    };
    let mut bsp = CpuRecord {
        state: CpuState::Online as u8,
        flags: CPU_FLAG_BSP,
        last_phase: 5,
        ..Default::default()
    };
    bsp.stamps[ApPhase::Online as usize] = 1000;
    let mut cpus = vec![bsp];
    edit(&mut s, &mut cpus);
    s.cpu_count = cpus.len() as u32;
    let mut buf = vec![0u8; 4096];
    write_boot_summary(&mut buf, &s).expect("the report fits");
    for (i, r) in cpus.iter().enumerate() {
        write_cpu_record(&mut buf, i, r).expect("the record fits");
    }
    let len = write_scenario(
        &mut buf,
        cpus.len(),
        &Default::default(),
        &Default::default(),
    )
    .expect("the scenario block fits");
    buf.truncate(len);
    buf
}

/// Boots `image` with 1 vCPU, quietly; returns the output.
fn run(image: &[u8]) -> std::process::Output {
    run_with(image, &["--quiet"])
}

/// Boots `image` with 1 vCPU and `extra` options; returns the output.
fn run_with(image: &[u8], extra: &[&str]) -> std::process::Output {
    let dir = tempdir();
    let k = write_file(dir.path(), "k.elf", image);
    let mut args = vec![
        "--kernel",
        k.to_str().unwrap(),
        "--entry",
        "long",
        "--vcpus",
        "1",
        "--timeout",
        "20",
    ];
    args.extend_from_slice(extra);
    vmm(&args)
}

#[test]
fn a_well_formed_foreign_report_is_accepted() {
    if !kvm_available() {
        return;
    }
    // The baseline the broken variants below differ from: it must pass.
    let out = run(&Code::default()
        .ring()
        .exit(0)
        .with_report(&report(|_, _| {})));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn report_port_abuse_is_a_bad_report() {
    if !kvm_available() {
        return;
    }
    let outside = Code::default()
        .mov_eax(0xFFFF_FFF8)
        .mov_dx(REPORT_PORT)
        .out()
        .exit(0)
        .with_report(&[]);
    assert_one_line_error(&run(&outside), 6, "outside guest memory");
    let misaligned = Code::default()
        .mov_eax(BASE as u32 + 0x101)
        .mov_dx(REPORT_PORT)
        .out()
        .exit(0)
        .with_report(&[]);
    assert_one_line_error(&run(&misaligned), 6, "aligned");

    let mut huge = report(|_, _| {});
    huge[8..12].copy_from_slice(&(REPORT_MAX_LEN + 1).to_le_bytes());
    assert_one_line_error(
        &run(&Code::default().ring().exit(0).with_report(&huge)),
        6,
        "length",
    );

    let bad_cpu = report(|_, cpus| cpus[0].apic_id = 7);
    assert_one_line_error(
        &run(&Code::default().ring().exit(0).with_report(&bad_cpu)),
        6,
        "APIC ID 7",
    );

    let backwards = report(|_, cpus| {
        let mut ap = CpuRecord {
            apic_id: 1,
            state: CpuState::Online as u8,
            ..Default::default()
        };
        ap.stamps[ApPhase::Kick as usize] = 900;
        ap.stamps[ApPhase::Online as usize] = 800;
        cpus.push(ap);
    });
    let dir = tempdir();
    let k = write_file(
        dir.path(),
        "k.elf",
        &Code::default().ring().exit(0).with_report(&backwards),
    );
    let out = vmm(&[
        "--kernel",
        k.to_str().unwrap(),
        "--entry",
        "long",
        "--vcpus",
        "2",
        "--quiet",
    ]);
    assert_one_line_error(&out, 6, "out of order");

    let twice = Code::default()
        .ring()
        .ring()
        .exit(0)
        .with_report(&report(|_, _| {}));
    assert_one_line_error(&run(&twice), 6, "2 times");
}

#[test]
fn console_doorbell_abuse_is_refused_logged_once_and_survived() {
    if !kvm_available() {
        return;
    }
    const CONSOLE_PORT: u16 = firmware::layout::CONSOLE_PORT;
    let record = |off: usize| BASE as u32 + (REPORT_OFFSET + off) as u32;
    let ring = |code: Code, addr: u32| code.mov_eax(addr).mov_dx(CONSOLE_PORT).out();
    // Outside memory, misaligned, too long; then a good record, which must still be printed.
    let mut code = ring(Code::default(), 0xFFFF_FFF0);
    code = ring(code, record(2));
    code = ring(code, record(0));
    code = ring(code, record(16));
    let mut data = (firmware::layout::CONSOLE_MAX_LEN + 1)
        .to_le_bytes()
        .to_vec();
    data.resize(16, 0);
    data.extend_from_slice(&9u32.to_le_bytes());
    data.extend_from_slice(b"console!\n");
    let dir = tempdir();
    let console = dir.path().join("console.txt");
    let out = run_with(
        &code.exit(0).with_report(&data),
        &["--console", console.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let refused: Vec<&str> = stderr.lines().filter(|l| l.contains("0x708")).collect();
    assert_eq!(refused.len(), 1, "logged once: {stderr}");
    assert!(refused[0].contains("refused"), "{stderr}");
    let text = std::fs::read_to_string(&console).expect("console file");
    assert_eq!(
        text, "console!\n",
        "only the good record reaches the console"
    );
}

#[test]
fn a_doorbell_flood_is_counted_not_obeyed() {
    if !kvm_available() {
        return;
    }
    let flood = Code::default()
        .mov_eax(BASE as u32 + REPORT_OFFSET as u32)
        .mov_dx(REPORT_PORT)
        .mov_ecx(2000)
        .out_loop()
        .exit(0)
        .with_report(&report(|_, _| {}));
    assert_one_line_error(&run(&flood), 6, "2000 times");
}

#[test]
fn unknown_ports_and_mmio_are_logged_once_and_ignored() {
    if !kvm_available() {
        return;
    }
    let k = Code::default()
        .mov_dx(0x1234)
        .mov_ecx(500)
        .out_loop()
        .inp()
        .store(0x7000_0000, 0xDEAD_BEEF) // not RAM with 256 MiB: an MMIO exit
        .store(0x7000_0000, 0xDEAD_BEEF)
        .ring()
        .exit(0)
        .with_report(&report(|_, _| {}));
    let dir = tempdir();
    let kp = write_file(dir.path(), "k.elf", &k);
    let out = vmm(&[
        "--kernel",
        kp.to_str().unwrap(),
        "--entry",
        "long",
        "--vcpus",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the guest still ends normally: {stderr}"
    );
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(
        warnings.len(),
        3,
        "one line per unknown port direction and MMIO page: {stderr}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("wrote to unknown I/O port 0x1234")),
        "{stderr}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("read from unknown I/O port 0x1234")),
        "{stderr}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("MMIO address 0x70000000")),
        "{stderr}"
    );
}

#[test]
fn a_triple_fault_is_reported_with_vcpu_and_rip() {
    if !kvm_available() {
        return;
    }
    // No IDT: #UD cannot be delivered, which becomes a double and then a triple fault.
    let out = run(&Code::default().ud2().exit(0).with_report(&[]));
    assert_one_line_error(&out, 4, "vCPU 0 triple-faulted at RIP 0x");
}
