//! tests/kut/run.sh, the kvm-unit-tests runner, against a fake KUT tree: an x86/unittests.cfg
//! whose entries all boot the test kernel mb_kut (tests/kernels/mb_kut.s), which ends with the
//! verdict its command line asks for. KUT itself cannot be fetched at test time. The runner
//! must read each verdict as KUT's runner does: PASS, FAIL (a failed test, and a kernel that
//! ends without isa-debug-exit), SKIP (status 77, another arch, `nodefault`, a missing file),
//! TIMEOUT; honour `smp`, `test_args`, `extra_params` with `-append '-x ...'` and `-m`.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use common::*;

const CFG: &str = r#"# A fake kvm-unit-tests x86/unittests.cfg: every entry boots mb_kut.
[pass]
file = mb_kut.flat
test_args = kut-pass

[pass_smp]
file = mb_kut.flat
smp = 2
test_args = 'kut-pass'

[fail]
file = mb_kut.flat
test_args = kut-fail

[skip]
file = mb_kut.flat
test_args = kut-skip

[dash]
file = mb_kut.flat
extra_params = -append '-x kut-dash' -m 128

[dash_in_qemu_params]
file = mb_kut.flat
test_args = '-x kut-dash'
qemu_params = -cpu qemu64,+x2apic

[no_debug_exit]
file = mb_kut.flat
test_args = kut-reset

[hang]
file = mb_kut.flat
test_args = kut-hang
timeout = 1

[i386_only]
file = mb_kut.flat
arch = i386

[manual]
file = mb_kut.flat
test_args = kut-pass
groups = nodefault

[missing]
file = nothing.flat
"#;

/// One row of the runner's CSV.
#[derive(Debug)]
struct Row {
    vcpus: String,
    sipi: String,
    detail: String,
    notes: String,
}

/// Splits one CSV line (fields quoted when they hold a comma or a quote).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// Builds the fake tree in `dir` and runs the runner on it with `extra` arguments.
fn run_runner(dir: &Path, extra: &[&str]) -> (HashMap<String, Row>, String) {
    let x86 = dir.join("kut/x86");
    std::fs::create_dir_all(&x86).unwrap();
    std::fs::write(x86.join("unittests.cfg"), CFG).unwrap();
    std::fs::copy(test_kernel("mb_kut.elf"), x86.join("mb_kut.flat")).unwrap();
    let out = dir.join("out");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/kut/run.sh");
    let run = Command::new("bash")
        .arg(&script)
        .args(["--vmm", VMM, "--out"])
        .arg(&out)
        .arg(dir.join("kut"))
        .args(extra)
        .output()
        .expect("cannot run bash");
    let stdout = String::from_utf8_lossy(&run.stdout).to_string();
    assert_eq!(
        run.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let csv = std::fs::read_to_string(out.join("results.csv")).expect("no results.csv");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("test,vcpus,sipi,sipi_s,qemu,qemu_s,sipi_detail,qemu_detail,notes")
    );
    let mut rows = HashMap::new();
    for line in lines {
        let f = csv_fields(line);
        assert_eq!(f.len(), 9, "{line}");
        assert_eq!(f[4], "-", "QEMU was not asked for: {line}");
        rows.insert(
            f[0].clone(),
            Row {
                vcpus: f[1].clone(),
                sipi: f[2].clone(),
                detail: f[6].clone(),
                notes: f[8].clone(),
            },
        );
    }
    let md = std::fs::read_to_string(out.join("results.md")).expect("no results.md");
    assert_eq!(
        md.lines().count(),
        rows.len() + 2,
        "one markdown row per CSV row:\n{md}"
    );
    (rows, stdout)
}

#[test]
fn verdicts_as_kvm_unit_tests_reads_them() {
    if !kvm_available() {
        return;
    }
    let dir = tempdir();
    let (rows, stdout) = run_runner(dir.path(), &[]);
    let verdict = |name: &str| -> &Row {
        rows.get(name)
            .unwrap_or_else(|| panic!("no row for {name}: {rows:?}\n{stdout}"))
    };
    for (name, want) in [
        ("pass", "PASS"),
        ("pass_smp", "PASS"),
        ("fail", "FAIL"),
        ("skip", "SKIP"),
        ("dash", "PASS"),
        ("dash_in_qemu_params", "PASS"),
        ("no_debug_exit", "FAIL"),
        ("hang", "TIMEOUT"),
        ("i386_only", "SKIP"),
        ("manual", "SKIP"),
        ("missing", "SKIP"),
    ] {
        assert_eq!(verdict(name).sipi, want, "{name}: {:?}", verdict(name));
    }
    assert_eq!(rows.len(), 11);
    assert_eq!(verdict("pass_smp").vcpus, "2");
    assert_eq!(verdict("pass").vcpus, "1");
    assert!(
        verdict("fail").detail.contains("1 unexpected failures"),
        "the SUMMARY line is kept: {:?}",
        verdict("fail")
    );
    assert!(
        verdict("no_debug_exit")
            .detail
            .contains("i8042-reset, not isa-debug-exit"),
        "{:?}",
        verdict("no_debug_exit")
    );
    assert_eq!(verdict("dash").notes, "", "-m maps to --memory");
    assert!(
        verdict("dash_in_qemu_params")
            .notes
            .contains("-cpu qemu64,+x2apic"),
        "what sipi cannot honour is noted: {:?}",
        verdict("dash_in_qemu_params")
    );
    assert_eq!(verdict("i386_only").detail, "i386 only");
}

#[test]
fn runs_only_the_tests_named() {
    if !kvm_available() {
        return;
    }
    let dir = tempdir();
    let (rows, _) = run_runner(dir.path(), &["fail", "manual"]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows["fail"].sipi, "FAIL");
    assert_eq!(rows["manual"].sipi, "PASS", "a nodefault test named runs");
}
