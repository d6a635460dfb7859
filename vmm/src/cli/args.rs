//! The command line as clap reads it: `vmm` (a boot) and `vmm memslot-burst`, with every flag
//! users' scripts rely on. What the values mean is resolved in [`super::resolve`].

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use firmware::report::{BspPhase, MAX_ROUNDS};

use crate::config::{TscSkew, DEFAULT_KVM_DEVICE};

/// The default guest memory size in MiB.
pub(super) const DEFAULT_MEMORY_MIB: u64 = 256;
/// The smallest guest memory sipi accepts: low memory plus room for a kernel above 1 MiB.
pub(super) const MIN_MEMORY_MIB: u64 = 2;
/// The default vCPU count.
pub(super) const DEFAULT_VCPUS: u32 = 256;
/// The default wall-clock limit for one boot, in seconds.
pub(super) const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// Hotplug-torture's default number of operations.
pub(super) const DEFAULT_TORTURE_OPS: u32 = 1000;
/// Hotplug-torture's largest number of operations.
pub(super) const MAX_TORTURE_OPS: u32 = 1_000_000;
/// Hotplug-torture's default concurrency (operations in flight at once).
pub(super) const DEFAULT_TORTURE_CONCURRENCY: u32 = 1;
/// Hotplug-torture's largest requested concurrency (the guest clamps it to its APs).
pub(super) const MAX_TORTURE_CONCURRENCY: u32 = 4096;
/// Hotplug-torture's fewest vCPUs: the BSP, an AP that stays online as the readers' target,
/// and at least one AP to take offline.
pub(super) const MIN_TORTURE_VCPUS: u32 = 3;
/// Seeds drawn by `vmm` are below 2^53, so that JSON readers that hold numbers as doubles
/// (jq, JavaScript) keep them exact.
pub(super) const DRAWN_SEED_MASK: u64 = (1 << 53) - 1;

/// `--bsp-start` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BspStartArg {
    /// While the other vCPUs are still being created.
    Early,
    /// Once every vCPU is created and configured.
    AllReady,
}

/// Entry modes as clap values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum EntryArg {
    /// The PVH 32-bit entry when the kernel has a PVH note, else the 64-bit ELF entry.
    #[default]
    Auto,
    /// The PVH 32-bit entry (XEN_ELFNOTE_PHYS32_ENTRY); an error if the kernel has none.
    Pvh,
    /// The ELF entry point in 64-bit long mode on identity page tables the VMM builds.
    Long,
}

/// Strategy names as clap values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BringupArg {
    /// Broadcast INIT/SIPI; APs only stamp and mark themselves present (the lower bound).
    Floor,
    /// One AP at a time, waiting for each (Linux before 6.5).
    Serial,
    /// Kick every AP, then wait for all (Linux 6.5+).
    Parallel,
    /// Do not start the APs.
    None,
}

/// Kick styles as clap values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KickArg {
    /// One INIT/SIPI per AP, addressed by APIC ID.
    PerCpu,
    /// The all-excluding-self shorthand.
    Broadcast,
}

/// TSC synchronisation checks as clap values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TscSyncArg {
    /// No check.
    None,
    /// Each AP against the BSP, one at a time, as it comes online (Linux's check).
    Serial,
    /// One warp test of every CPU at once.
    Parallel,
}

/// Scenarios as clap values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioArg {
    /// Bring the APs up once.
    Boot,
    /// After bringup, take every AP offline again (--teardown serial or parallel).
    Teardown,
    /// --cycles rounds of bringing every AP up and taking it down (kexec-like).
    RebootCycles,
    /// --ops random CPU offline/online operations, up to --concurrency at once, while the
    /// online CPUs run reader work whose invariants are checked (needs 3 vCPUs or more).
    HotplugTorture,
    /// --cycles ACPI S3 suspends (default 1), after each of which every AP comes up again;
    /// wakes at once unless --wake-after says otherwise.
    SuspendResume,
}

/// Teardown strategies as clap values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TeardownArg {
    /// One AP at a time, waiting for each to park.
    Serial,
    /// Every AP asked at once, one sync point, one batch of INITs.
    Parallel,
}

/// The longest `--wake-after`: a day, the RTC alarm's own horizon.
pub(crate) const MAX_WAKE_AFTER_SECS: f64 = 86_400.0;

/// Parses `--wake-after SECS`: seconds, fractions allowed, from 0 to [`MAX_WAKE_AFTER_SECS`].
pub(crate) fn parse_wake_after(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.0..=MAX_WAKE_AFTER_SECS).contains(&secs) {
        return Err(format!(
            "{s} s is outside 0 to {MAX_WAKE_AFTER_SECS} seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `--test-skew-tsc CPU:CYCLES`.
fn parse_tsc_skew(s: &str) -> Result<TscSkew, String> {
    let (vcpu, cycles) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not CPU:CYCLES"))?;
    let vcpu = vcpu
        .parse()
        .map_err(|_| format!("{vcpu:?} is not a vCPU index"))?;
    let cycles = cycles
        .parse()
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| format!("{cycles:?} is not a positive number of cycles"))?;
    Ok(TscSkew { vcpu, cycles })
}

/// Boot a KVM virtual machine with many vCPUs and report, phase by phase, what bringing every
/// CPU online cost. Without --kernel, boots the guest kernel embedded in this binary.
#[derive(Debug, Parser)]
#[command(name = "vmm", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// A tool other than booting (boot options do not apply to it).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Boot options.
    #[command(flatten)]
    pub boot: BootArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply a burst of small memory-region changes while vCPUs run guest code, one ioctl at a
    /// time (--naive) or through transactions, and report ioctl counts and latencies.
    MemslotBurst(MemslotBurstArgs),
}

/// Options of `vmm memslot-burst`.
#[derive(Debug, Clone, Args)]
pub struct MemslotBurstArgs {
    /// Region changes to apply (each an add or a remove of a small region).
    #[arg(long, default_value_t = 6000, value_parser = clap::value_parser!(u32).range(1..))]
    pub changes: u32,

    /// vCPUs running guest code that keeps touching memory during the burst.
    #[arg(long, default_value_t = 2)]
    pub vcpus: u32,

    /// Issue one KVM_SET_USER_MEMORY_REGION per change, as QEMU does, instead of transactions.
    #[arg(long)]
    pub naive: bool,

    /// Write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// The KVM device to open.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_KVM_DEVICE)]
    pub kvm_device: PathBuf,
}

/// Options of a boot (the default command).
#[derive(Debug, Clone, Args)]
pub struct BootArgs {
    /// Number of vCPUs (1 to KVM's maximum).
    #[arg(long, default_value_t = DEFAULT_VCPUS, value_parser = clap::value_parser!(u32).range(1..))]
    pub vcpus: u32,

    /// Guest kernel: an ELF with a PVH entry note, a multiboot v1 kernel (ELF32, ELF64 or
    /// a.out kludge), or an ELF64 with a 64-bit entry point.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,

    /// Guest memory in MiB.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_MEMORY_MIB,
          value_parser = clap::value_parser!(u64).range(MIN_MEMORY_MIB..))]
    pub memory: u64,

    /// Extra kernel command line, appended after sipi's own options (may start with `-`).
    #[arg(
        long,
        value_name = "STR",
        default_value = "",
        allow_hyphen_values = true
    )]
    pub cmdline: String,

    /// A boot module for a multiboot or PVH kernel, listed first, with its path as its string
    /// (QEMU's -initrd for multiboot kernels).
    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    pub initrd: Option<PathBuf>,

    /// Another boot module (repeatable, up to 64 in all): its string is STRING, or PATH when
    /// no comma follows it.
    #[arg(
        long = "module",
        value_name = "PATH[,STRING]",
        allow_hyphen_values = true
    )]
    pub modules: Vec<String>,

    /// Give up after this many seconds (0: never).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TIMEOUT_SECS)]
    pub timeout: u64,

    /// Wake a VM the guest suspended (ACPI S3) this many seconds after each suspend, unless
    /// the RTC alarm it set comes first (fractions allowed, at most a day).
    #[arg(long, value_name = "SECS", value_parser = parse_wake_after)]
    pub wake_after: Option<Duration>,

    /// Write the guest's console output to this file instead of stderr.
    #[arg(long, value_name = "PATH")]
    pub console: Option<PathBuf>,

    /// Write the report as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// How the BSP enters the kernel.
    #[arg(long, value_enum, default_value_t = EntryArg::Auto)]
    pub entry: EntryArg,

    /// AP bringup strategy (passed to the guest).
    #[arg(long, value_enum, default_value_t = BringupArg::Parallel)]
    pub bringup: BringupArg,

    /// How the guest kicks APs in parallel bringup.
    #[arg(long, value_enum, default_value_t = KickArg::PerCpu)]
    pub kick: KickArg,

    /// When the BSP first runs: early, while the other vCPUs are still being created (sipi's
    /// own guest asks which exist before each kick; other kernels always start all-ready), or
    /// all-ready, once every vCPU is created and configured.
    #[arg(long, value_enum, default_value_t = BspStartArg::Early)]
    pub bsp_start: BspStartArg,

    /// Delay between INIT and SIPI in microseconds (Linux used to wait 10000).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub init_delay_us: u32,

    /// TSC synchronisation check between the APs' per-CPU init and online (passed to the
    /// guest; needs --bringup serial or parallel, or none).
    #[arg(long, value_enum, default_value_t = TscSyncArg::None)]
    pub tsc_sync: TscSyncArg,

    /// What the guest does after bringup (passed to the guest).
    #[arg(long, value_enum, default_value_t = ScenarioArg::Boot)]
    pub scenario: ScenarioArg,

    /// How the guest takes the APs offline (--scenario teardown or reboot-cycles).
    #[arg(long, value_enum)]
    pub teardown: Option<TeardownArg>,

    /// Rounds of --scenario reboot-cycles (1 to 1024), or suspends of --scenario
    /// suspend-resume (1 to 1023; default 1).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_ROUNDS)))]
    pub cycles: Option<u32>,

    /// CPU offline and online operations of --scenario hotplug-torture (1 to 1000000;
    /// default 1000).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_TORTURE_OPS)))]
    pub ops: Option<u32>,

    /// Most operations of --scenario hotplug-torture in flight at once (1 to 4096; default 1;
    /// the guest lowers it to its APs minus one).
    #[arg(long, value_name = "C",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_TORTURE_CONCURRENCY)))]
    pub concurrency: Option<u32>,

    /// Seed of --scenario hotplug-torture's random choices (default: drawn from the clock and
    /// the process ID; the JSON and the summary show the seed used, to repeat a run).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,

    /// The seed drawn when --seed is not given: drawn once, so every use agrees.
    #[arg(skip)]
    pub(super) drawn_seed: OnceLock<u64>,

    /// Print every CPU's line in the report, not only the slowest.
    #[arg(long)]
    pub per_cpu: bool,

    /// Print nothing but errors (the guest console still goes to --console or stderr).
    #[arg(long, short)]
    pub quiet: bool,

    /// The KVM device to open.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_KVM_DEVICE)]
    pub kvm_device: PathBuf,

    /// Test only: the guest leaves the AP with this APIC ID unstarted.
    #[arg(long, value_name = "APIC_ID", hide = true, default_value_t = 0)]
    pub test_lose_apic_id: u32,

    /// Test only: the AP with this APIC ID makes one port write (to port 0x80) inside its
    /// bringup window, which the VMM's check of the timed windows must catch.
    #[arg(long, value_name = "APIC_ID", hide = true, default_value_t = 0)]
    pub test_ap_port_write: u32,

    /// Test only: the guest raises this exception vector after start-up.
    #[arg(long, value_name = "VECTOR", hide = true, default_value_t = 0)]
    pub test_fault_vector: u32,

    /// Test only: before vCPU CPU first runs, move its TSC (IA32_TSC) CYCLES ahead of the
    /// others' (more than a second's worth, or KVM takes the write for a resynchronisation).
    /// On a KVM that ignores TSC writes (kvm_pvm), the guest adds the skew to that CPU's
    /// readings in its TSC check instead. Needs --tsc-sync serial or parallel.
    #[arg(long, value_name = "CPU:CYCLES", hide = true, value_parser = parse_tsc_skew)]
    pub test_skew_tsc: Option<TscSkew>,

    /// Test only: in --scenario hotplug-torture the guest takes CPUs offline without its
    /// grace-period barrier, so its invariant check must find violations.
    #[arg(long, hide = true)]
    pub test_skip_barrier: bool,

    /// Test only: the guest's BSP spins forever once it has reached this phase (acpi_parsed,
    /// bringup_start, all_online), so that --timeout must end the VM.
    #[arg(long, value_name = "PHASE", hide = true, value_parser = parse_bsp_phase)]
    pub test_hang_after: Option<BspPhase>,

    /// Test only: the VMM opens none of KVM's statistics files, as on a host without them
    /// (before Linux 5.14), so the boot must go on and say why it has no counters.
    #[arg(long, hide = true)]
    pub test_no_kvm_stats: bool,
}

/// Parses a BSP phase name for `--test-hang-after`.
fn parse_bsp_phase(s: &str) -> Result<BspPhase, String> {
    BspPhase::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = BspPhase::ALL.iter().map(|p| p.name()).collect();
        format!("{s:?} is not a BSP phase (one of {})", names.join(", "))
    })
}
