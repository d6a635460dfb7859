//! Helpers shared by the integration tests: run the real `vmm` binary and check /dev/kvm.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The vmm binary cargo built for these tests.
pub const VMM: &str = env!("CARGO_BIN_EXE_vmm");
/// The guest kernel embedded in vmm, as a file.
pub const GUEST_ELF: &str = env!("SIPI_EMBEDDED_GUEST");

/// True if KVM tests may run. Panics with a clear message when /dev/kvm is unusable, unless
/// SIPI_SKIP_KVM=1 is set (then the test returns early and says so).
pub fn kvm_available() -> bool {
    let usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if usable {
        return true;
    }
    if std::env::var("SIPI_SKIP_KVM").as_deref() == Ok("1") {
        eprintln!("SKIPPED: /dev/kvm is not usable and SIPI_SKIP_KVM=1 is set");
        return false;
    }
    panic!(
        "/dev/kvm is missing or not accessible: this test boots a real VM. \
         Give this user access to /dev/kvm, or set SIPI_SKIP_KVM=1 to skip KVM tests."
    );
}

/// Runs vmm with `args`.
pub fn vmm(args: &[&str]) -> Output {
    Command::new(VMM)
        .args(args)
        .output()
        .expect("cannot run the vmm binary")
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("cannot create a temporary directory")
}

/// Reads and parses a JSON report.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no JSON at {}: {e}", path.display()));
    serde_json::from_str(&text).expect("the JSON report does not parse")
}

/// Asserts that a run failed with `code` and exactly one stderr line starting with
/// "error: " and containing `needle`.
pub fn assert_one_line_error(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "wrong exit status; stderr: {stderr}"
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("warning: "))
        .collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {stderr}");
    assert!(
        lines[0].starts_with("error: "),
        "not an error line: {stderr}"
    );
    assert!(
        lines[0].contains(needle),
        "{:?} does not mention {needle:?}",
        lines[0]
    );
}

/// Writes `bytes` to `name` in `dir`.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("cannot write a test file");
    p
}

/// A minimal ELF64 x86-64 executable with one PT_LOAD segment holding `code` at `paddr`, whose
/// entry is `paddr` (System V ABI ELF header and program header layouts).
pub fn tiny_elf(paddr: u64, code: &[u8]) -> Vec<u8> {
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    let mut f = vec![0u8; EHDR + PHDR];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // ELFCLASS64
    f[5] = 1; // ELFDATA2LSB
    f[6] = 1; // EV_CURRENT
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    f[24..32].copy_from_slice(&paddr.to_le_bytes());
    f[32..40].copy_from_slice(&(EHDR as u64).to_le_bytes());
    f[52..54].copy_from_slice(&(EHDR as u16).to_le_bytes());
    f[54..56].copy_from_slice(&(PHDR as u16).to_le_bytes());
    f[56..58].copy_from_slice(&1u16.to_le_bytes());
    let len = code.len() as u64;
    f[EHDR..EHDR + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f[EHDR + 8..EHDR + 16].copy_from_slice(&((EHDR + PHDR) as u64).to_le_bytes());
    f[EHDR + 16..EHDR + 24].copy_from_slice(&paddr.to_le_bytes());
    f[EHDR + 24..EHDR + 32].copy_from_slice(&paddr.to_le_bytes());
    f[EHDR + 32..EHDR + 40].copy_from_slice(&len.to_le_bytes());
    f[EHDR + 40..EHDR + 48].copy_from_slice(&len.to_le_bytes());
    f.extend_from_slice(code);
    f
}

/// A test kernel built by `make kernels` from tests/kernels/ into target/kernels/. Panics with
/// the command to run if it is missing.
pub fn test_kernel(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/kernels")
        .join(name);
    assert!(
        path.is_file(),
        "test kernel {} is missing: build the test kernels with `make kernels` (needs GNU as \
         and ld)",
        path.display()
    );
    path.to_str().expect("utf-8 kernel path").to_string()
}

/// What one boot of a kernel produced: exit code, JSON report, console text, stderr.
pub struct Boot {
    /// The process exit status.
    pub code: Option<i32>,
    /// The JSON report.
    pub json: serde_json::Value,
    /// Everything the guest wrote to its serial console.
    pub console: String,
    /// vmm's stderr.
    pub stderr: String,
    /// vmm's stdout (the summary).
    pub stdout: String,
    /// Wall time of the whole vmm process.
    pub wall: std::time::Duration,
}

impl Boot {
    /// Checks that the process exited with `code`; on failure shows `what`, the guest's
    /// console and vmm's stderr.
    pub fn assert_code(&self, code: i32, what: &str) {
        assert_eq!(
            self.code,
            Some(code),
            "{what}: console:\n{}\nstderr: {}",
            self.console,
            self.stderr
        );
    }
}

/// Boots `kernel` with `args`, the console in a file and a JSON report.
pub fn boot_kernel(kernel: &str, args: &[&str]) -> Boot {
    let dir = tempdir();
    let json = dir.path().join("r.json");
    let console = dir.path().join("console.txt");
    let mut all = vec![
        "--kernel",
        kernel,
        "--json",
        json.to_str().expect("utf-8 temp path"),
        "--console",
        console.to_str().expect("utf-8 temp path"),
    ];
    all.extend_from_slice(args);
    let start = std::time::Instant::now();
    let out = vmm(&all);
    let wall = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        json.exists(),
        "no JSON report; status {:?}, stderr: {stderr}",
        out.status
    );
    Boot {
        code: out.status.code(),
        json: read_json(&json),
        console: std::fs::read_to_string(&console).unwrap_or_default(),
        stderr,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        wall,
    }
}

/// Boots `vcpus` with `extra` options, quietly, the console discarded, and returns the exit
/// code, the JSON report (which must exist) and stderr.
pub fn boot_json(vcpus: u32, extra: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let dir = tempdir();
    let json = dir.path().join("r.json");
    let n = vcpus.to_string();
    let json_arg = json.to_str().expect("utf-8 temp path").to_string();
    let mut args = vec![
        "--vcpus",
        &n,
        "--quiet",
        "--console",
        "/dev/null",
        "--json",
        &json_arg,
    ];
    args.extend_from_slice(extra);
    let out = vmm(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        json.exists(),
        "no JSON for {vcpus} vCPUs {extra:?}: {stderr}"
    );
    (out.status.code(), read_json(&json), stderr)
}
