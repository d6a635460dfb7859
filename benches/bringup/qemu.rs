//! The QEMU peer: the same guest.elf booted by `qemu-system-x86_64 -kernel` through its PVH
//! entry, its results read from the serial console (the guest prints its summary there).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::guest_console::{self, field};
use crate::stats::median;

/// QEMU's pc machine supports at most this many vCPUs with our guest's xAPIC-era ACPI.
pub const MAX_VCPUS: u32 = 255;

/// The vCPU count QEMU boots to compare with sipi at `vcpus`: the same, or [`MAX_VCPUS`] for
/// 256 (the closest QEMU's pc machine comes); None above that.
pub fn peer_count(vcpus: u32) -> Option<u32> {
    match vcpus {
        n if n <= MAX_VCPUS => Some(n),
        256 => Some(MAX_VCPUS),
        _ => None,
    }
}

/// One QEMU boot.
#[derive(Debug, Clone, Default)]
pub struct QemuSample {
    pub wall_us: f64,
    pub bringup_us: f64,
}

/// One vCPU count under QEMU.
#[derive(Debug, Clone)]
pub struct QemuCell {
    /// The sipi count it is compared with.
    pub vcpus: u32,
    /// The count QEMU booted (see [`peer_count`]).
    pub qemu_vcpus: u32,
    pub wall_us: f64,
    pub bringup_us: f64,
}

impl QemuCell {
    /// Medians over runs; None without samples.
    pub fn from_samples(vcpus: u32, qemu_vcpus: u32, s: &[QemuSample]) -> Option<Self> {
        (!s.is_empty()).then(|| QemuCell {
            vcpus,
            qemu_vcpus,
            wall_us: median(&s.iter().map(|x| x.wall_us).collect::<Vec<_>>()),
            bringup_us: median(&s.iter().map(|x| x.bringup_us).collect::<Vec<_>>()),
        })
    }
}

/// The QEMU binary, if installed.
pub fn find() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("qemu-system-x86_64"))
        .find(|p| p.is_file())
}

/// Boots `guest` under QEMU with `n` vCPUs, parallel bringup. QEMU does not give the guest
/// the TSC frequency, so `tsc_khz` (what KVM reported to sipi on this host) converts cycles.
pub fn run(qemu: &Path, guest: &Path, n: u32, tsc_khz: Option<f64>) -> Result<QemuSample, String> {
    let start = Instant::now();
    let out = Command::new(qemu)
        .args([
            "-accel",
            "kvm",
            "-cpu",
            "host,-arch-capabilities",
            "-m",
            "256",
            "-smp",
        ])
        .arg(n.to_string())
        .args([
            "-nographic",
            "-no-reboot",
            "-nodefaults",
            "-serial",
            "stdio",
            "-kernel",
        ])
        .arg(guest)
        .args([
            "-append",
            "sipi.bringup=parallel",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=4",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", qemu.display()))?;
    let wall_us = start.elapsed().as_secs_f64() * 1e6;
    let console = String::from_utf8_lossy(&out.stdout);
    let online = field(&console, "online")
        .ok_or_else(|| format!("no summary on the console (status {:?})", out.status))?;
    if online as u32 != n {
        return Err(format!("{online} of {n} CPUs online under QEMU"));
    }
    let bringup_us = guest_console::bringup_us(&console, tsc_khz);
    Ok(QemuSample {
        wall_us,
        bringup_us,
    })
}
