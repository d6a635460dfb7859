//! The configuration of one boot, validated and resolved once by the CLI (or a test) and read
//! by every layer below it. Nothing here knows about clap.

mod hooks;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use firmware::cmdline::GuestOptions;

pub use crate::arch::x86_64::topology::Topology;
pub use hooks::{TestHooks, TscSkew};

use crate::loader::{EntryMode, ModuleSpec};

/// The kernel to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// The guest built into this binary.
    Embedded,
    /// A file.
    Path(PathBuf),
}

/// When the BSP first runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BspStart {
    /// As soon as guest memory is registered and the BSP is configured, while the VM's thread
    /// goes on creating the other vCPUs; the guest asks sipi's vCPU-readiness port before it
    /// kicks an AP. Only sipi's own guest knows the port: any other kernel starts all-ready.
    #[default]
    Early,
    /// Once every vCPU is created and configured.
    AllReady,
}

impl BspStart {
    /// The name on the command line and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Early => "early",
            Self::AllReady => "all-ready",
        }
    }
}

/// Everything one boot needs.
pub struct VmConfig {
    /// The vCPUs and how they are addressed.
    pub topology: Topology,
    /// Guest memory in bytes.
    pub memory: u64,
    /// The kernel.
    pub kernel: KernelSource,
    /// How the BSP enters the kernel.
    pub entry: EntryMode,
    /// What sipi's guest is asked to do (its `sipi.*` command-line options).
    pub guest: GuestOptions,
    /// The user's own command-line words (`--cmdline`), after sipi's options.
    pub user_cmdline: String,
    /// Boot modules (`--initrd`, then each `--module`), in the order the kernel lists them.
    pub modules: Vec<ModuleSpec>,
    /// Where guest console output goes.
    pub console: Box<dyn Write + Send>,
    /// Wall-clock limit (None: none).
    pub timeout: Option<Duration>,
    /// How long after each ACPI S3 suspend the VM wakes, if its RTC alarm does not wake it
    /// first (None: only the alarm wakes it).
    pub wake_after: Option<Duration>,
    /// Suppress warnings (unknown device accesses, test-hook notes).
    pub quiet: bool,
    /// The KVM device.
    pub kvm_device: PathBuf,
    /// Confine every vCPU thread with the seccomp filter (off with `SIPI_NO_SECCOMP=1`).
    pub seccomp: bool,
    /// When the BSP first runs (`--bsp-start`).
    pub bsp_start: BspStart,
    /// What the VMM itself does only for tests.
    pub hooks: TestHooks,
}

impl VmConfig {
    /// A configuration with sipi's defaults for `vcpus` vCPUs booting the embedded guest, with
    /// the console discarded: what a test or a library user starts from.
    pub fn new(vcpus: u32, memory: u64) -> Self {
        Self {
            topology: Topology::new(vcpus),
            memory,
            kernel: KernelSource::Embedded,
            entry: EntryMode::Auto,
            guest: GuestOptions::default(),
            user_cmdline: String::new(),
            modules: Vec::new(),
            console: Box::new(std::io::sink()),
            timeout: None,
            wake_after: None,
            quiet: true,
            kvm_device: PathBuf::from(DEFAULT_KVM_DEVICE),
            seccomp: true,
            bsp_start: BspStart::default(),
            hooks: TestHooks::default(),
        }
    }

    /// The kernel command line: `guest`'s words, then the user's. Written here and nowhere
    /// else; nothing parses it back.
    pub fn cmdline(&self, guest: &GuestOptions) -> String {
        let mut line = String::new();
        // Writing to a String cannot fail.
        let _ = guest.write(&mut line);
        if !self.user_cmdline.is_empty() {
            line.push(' ');
            line.push_str(&self.user_cmdline);
        }
        line
    }
}

/// The KVM device a VMM opens unless told otherwise.
pub const DEFAULT_KVM_DEVICE: &str = "/dev/kvm";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_sipis_words_then_the_users() {
        let mut cfg = VmConfig::new(2, 64 << 20);
        let plain = cfg.cmdline(&cfg.guest);
        assert!(plain.starts_with("sipi.bringup=parallel"), "{plain}");
        assert_eq!(GuestOptions::parse(&plain), Ok(cfg.guest));
        cfg.user_cmdline = "quiet x=1".into();
        let line = cfg.cmdline(&cfg.guest);
        assert_eq!(line, format!("{plain} quiet x=1"));
    }
}
