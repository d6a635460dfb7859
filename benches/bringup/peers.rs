//! The peer comparison's rows: how each VMM boots each workload, and how each boot must end
//! for its time to count. Every command line here is documented in docs/benchmarks.md, "Peers".

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::guest_console;
use crate::peer_binaries::Binaries;
use crate::process;

/// QEMU's microvm machine takes at most this many vCPUs (QEMU 7.2, `max_cpus` in
/// hw/i386/microvm.c).
pub const MICROVM_MAX_VCPUS: u32 = 288;
/// Cloud Hypervisor's limit on x86-64 with KVM (`MAX_SUPPORTED_CPUS` in its vmm/src/config.rs).
pub const CLOUD_HYPERVISOR_MAX_VCPUS: u32 = 8192;
/// Firecracker's limit (`MAX_SUPPORTED_VCPUS` in its vmm_config/machine_config.rs).
pub const FIRECRACKER_MAX_VCPUS: u32 = 32;
/// The isa-debug-exit value tests/kernels/pvh_exit_now.s writes.
pub const MINIMAL_KERNEL_EXIT_VALUE: u64 = 0x10;
/// Guest RAM of every boot, MiB (sipi's default).
const MEMORY_MIB: u32 = 256;

/// The status QEMU and sipi end with when the guest writes `v` to isa-debug-exit.
pub const fn debug_exit_status(v: u64) -> i32 {
    ((v << 1) | 1) as i32
}

/// One row kind of the peer table: a VMM and what it boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// sipi's bundled guest, parallel bringup with per-CPU kicks: every AP online (the headline).
    SipiBringup,
    /// sipi's bundled guest, the floor strategy (broadcast INIT/SIPI, APs only stamp).
    SipiFloor,
    /// sipi booting the minimal kernel: an idle start.
    SipiIdle,
    /// QEMU `-M microvm` booting the minimal kernel.
    MicrovmIdle,
    /// QEMU `-M microvm` booting sipi's bundled guest, parallel bringup.
    MicrovmGuest,
    /// Cloud Hypervisor booting the minimal kernel.
    CloudHypervisorIdle,
    /// Firecracker booting the minimal kernel.
    FirecrackerIdle,
}

impl Row {
    /// Every row, in the fixed order runs go in and the table lists them.
    pub const ALL: [Row; 7] = [
        Self::SipiBringup,
        Self::SipiFloor,
        Self::SipiIdle,
        Self::MicrovmIdle,
        Self::MicrovmGuest,
        Self::CloudHypervisorIdle,
        Self::FirecrackerIdle,
    ];

    /// Name in the table and the plot.
    pub fn name(self) -> &'static str {
        match self {
            Self::SipiBringup => "sipi, every AP online (parallel)",
            Self::SipiFloor => "sipi, floor",
            Self::SipiIdle => "sipi, idle",
            Self::MicrovmIdle => "QEMU microvm, idle",
            Self::MicrovmGuest => "QEMU microvm, every AP online (sipi's guest, parallel)",
            Self::CloudHypervisorIdle => "Cloud Hypervisor, idle",
            Self::FirecrackerIdle => "Firecracker, idle",
        }
    }

    /// Name in the CSV.
    pub fn key(self) -> &'static str {
        match self {
            Self::SipiBringup => "sipi-parallel",
            Self::SipiFloor => "sipi-floor",
            Self::SipiIdle => "sipi-idle",
            Self::MicrovmIdle => "qemu-microvm-idle",
            Self::MicrovmGuest => "qemu-microvm-parallel",
            Self::CloudHypervisorIdle => "cloud-hypervisor-idle",
            Self::FirecrackerIdle => "firecracker-idle",
        }
    }

    /// The binary that runs this row, if the comparison has it.
    pub fn binary(self, b: &Binaries) -> Option<&Path> {
        match self {
            Self::SipiBringup | Self::SipiFloor | Self::SipiIdle => Some(&b.vmm),
            Self::MicrovmIdle | Self::MicrovmGuest => b.qemu.as_deref(),
            Self::CloudHypervisorIdle => b.cloud_hypervisor.as_deref(),
            Self::FirecrackerIdle => b.firecracker.as_deref(),
        }
    }

    /// The most vCPUs this row's VMM takes (None: no limit of its own, KVM's applies).
    pub fn max_vcpus(self) -> Option<u32> {
        match self {
            Self::SipiBringup | Self::SipiFloor | Self::SipiIdle => None,
            Self::MicrovmIdle | Self::MicrovmGuest => Some(MICROVM_MAX_VCPUS),
            Self::CloudHypervisorIdle => Some(CLOUD_HYPERVISOR_MAX_VCPUS),
            Self::FirecrackerIdle => Some(FIRECRACKER_MAX_VCPUS),
        }
    }

    /// Whether this row runs at `vcpus`.
    pub fn applies_to(self, vcpus: u32) -> bool {
        self.max_vcpus().is_none_or(|m| vcpus <= m)
    }
}

/// One boot of one row.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerSample {
    /// Whole process, spawn to reap.
    pub wall_us: f64,
    /// Peak RSS of the VMM process (KiB).
    pub max_rss_kb: f64,
    /// The guest's bringup (BringupStart to AllOnline), microseconds; NaN without one.
    pub guest_bringup_us: f64,
    /// The TSC frequency KVM reported to sipi (0 for other VMMs).
    pub tsc_khz: f64,
}

/// Files one boot writes, in a directory of its own that is removed after the boot: the
/// VMM's output, sipi's JSON, Firecracker's configuration.
struct Scratch {
    dir: PathBuf,
    output: PathBuf,
    json: PathBuf,
    config: PathBuf,
}

/// Numbers the scratch directories of one process.
static SCRATCH_SEQ: AtomicU64 = AtomicU64::new(0);

impl Scratch {
    fn new() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "sipi-bench-peers-{}-{}",
            std::process::id(),
            SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Scratch {
            output: dir.join("output.txt"),
            json: dir.join("report.json"),
            config: dir.join("firecracker.json"),
            dir,
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The command line of `row` at `n` vCPUs.
fn command(row: Row, exe: &Path, b: &Binaries, n: u32, scratch: &Scratch) -> Command {
    let n_s = n.to_string();
    let mut c = Command::new(exe);
    match row {
        Row::SipiBringup | Row::SipiFloor | Row::SipiIdle => {
            c.args([
                "--vcpus",
                &n_s,
                "--quiet",
                "--console",
                "/dev/null",
                "--json",
            ])
            .arg(&scratch.json);
            match row {
                Row::SipiBringup => c.args(["--bringup", "parallel", "--kick", "per-cpu"]),
                Row::SipiFloor => c.args(["--bringup", "floor"]),
                _ => c.arg("--kernel").arg(&b.minimal_kernel),
            };
        }
        Row::MicrovmIdle | Row::MicrovmGuest => {
            c.args([
                "-M",
                "microvm",
                "-accel",
                "kvm",
                "-cpu",
                "host,-arch-capabilities",
                "-m",
                &MEMORY_MIB.to_string(),
                "-smp",
                &n_s,
                "-nographic",
                "-no-reboot",
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=0x4",
                "-kernel",
            ]);
            if row == Row::MicrovmIdle {
                c.arg(&b.minimal_kernel);
            } else {
                c.arg(&b.guest).args(["-append", "sipi.bringup=parallel"]);
            }
        }
        Row::CloudHypervisorIdle => {
            c.arg("--kernel")
                .arg(&b.minimal_kernel)
                .arg("--cpus")
                .arg(format!("boot={n}"))
                .arg("--memory")
                .arg(format!("size={MEMORY_MIB}M"))
                .args(["--console", "off", "--serial", "tty"]);
        }
        Row::FirecrackerIdle => {
            c.args(["--no-api", "--config-file"]).arg(&scratch.config);
        }
    }
    c
}

/// Firecracker's configuration: the minimal kernel, no drives (the list is required), `n`
/// vCPUs.
fn firecracker_config(kernel: &Path, n: u32) -> String {
    serde_json::json!({
        "boot-source": { "kernel_image_path": kernel },
        "drives": [],
        "machine-config": { "vcpu_count": n, "mem_size_mib": MEMORY_MIB },
    })
    .to_string()
}

/// The last non-empty line of what the VMM printed (for failure messages).
fn last_line(output: &str) -> String {
    let line = output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output");
    line.chars().take(200).collect()
}

/// The exit status `row` must end with.
pub fn expected_status(row: Row) -> i32 {
    match row {
        Row::SipiBringup | Row::SipiFloor | Row::CloudHypervisorIdle | Row::FirecrackerIdle => 0,
        Row::SipiIdle | Row::MicrovmIdle => debug_exit_status(MINIMAL_KERNEL_EXIT_VALUE),
        // The guest's exit status 0 through isa-debug-exit.
        Row::MicrovmGuest => debug_exit_status(0),
    }
}

/// Checks sipi's JSON report of `row` at `n` vCPUs; returns (guest bringup us, TSC kHz).
pub fn check_sipi_report(row: Row, n: u32, v: &Value) -> Result<(f64, f64), String> {
    let tsc_khz = v["tsc_khz"].as_f64().unwrap_or(0.0);
    if row == Row::SipiIdle {
        if v["status"] != "debug-exit"
            || v["guest_status"].as_u64() != Some(MINIMAL_KERNEL_EXIT_VALUE)
            || v["online"].as_u64() != Some(0)
        {
            return Err(format!(
                "the minimal kernel did not end through isa-debug-exit: status {}, guest_status {}, error {}",
                v["status"], v["guest_status"], v["error"]
            ));
        }
        return Ok((f64::NAN, tsc_khz));
    }
    if v["status"] != "ok" || v["online"].as_u64() != Some(u64::from(n)) {
        return Err(format!(
            "status {}, {} of {n} CPUs online, error {}",
            v["status"], v["online"], v["error"]
        ));
    }
    Ok((v["bringup_us"].as_f64().unwrap_or(f64::NAN), tsc_khz))
}

/// Boots `row` once at `n` vCPUs and checks it ended the expected way. `tsc_khz` (from a
/// sipi boot of the same run) converts the guest's cycles under QEMU into microseconds.
pub fn run(row: Row, b: &Binaries, n: u32, tsc_khz: Option<f64>) -> Result<PeerSample, String> {
    let exe = row
        .binary(b)
        .ok_or_else(|| format!("{} is not available", row.name()))?;
    let scratch = Scratch::new()?;
    if row == Row::FirecrackerIdle {
        std::fs::write(&scratch.config, firecracker_config(&b.minimal_kernel, n))
            .map_err(|e| format!("cannot write {}: {e}", scratch.config.display()))?;
    }
    let out = File::create(&scratch.output)
        .map_err(|e| format!("cannot create {}: {e}", scratch.output.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = command(row, exe, b, n, &scratch);
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let f = process::run(&mut cmd)?;
    let output = std::fs::read(&scratch.output).unwrap_or_default();
    let output = String::from_utf8_lossy(&output);
    let want = expected_status(row);
    if f.code != want {
        return Err(format!(
            "{} exited with status {} (expected {want}): {}",
            exe.display(),
            f.code,
            last_line(&output)
        ));
    }
    let mut s = PeerSample {
        wall_us: f.wall_us,
        max_rss_kb: f.max_rss_kb,
        guest_bringup_us: f64::NAN,
        tsc_khz: 0.0,
    };
    match row {
        Row::SipiBringup | Row::SipiFloor | Row::SipiIdle => {
            let text = std::fs::read_to_string(&scratch.json)
                .map_err(|e| format!("no JSON report: {e}"))?;
            let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            (s.guest_bringup_us, s.tsc_khz) = check_sipi_report(row, n, &v)?;
        }
        Row::MicrovmGuest => {
            guest_console::all_online(&output, n)?;
            s.guest_bringup_us = guest_console::bringup_us(&output, tsc_khz);
        }
        Row::MicrovmIdle | Row::CloudHypervisorIdle | Row::FirecrackerIdle => {}
    }
    Ok(s)
}
