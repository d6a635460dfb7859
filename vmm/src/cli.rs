//! The command line (clap) and the validated configuration it produces.

use std::path::PathBuf;
use std::sync::OnceLock;

use clap::{Args, Parser, Subcommand, ValueEnum};
use firmware::cmdline::{Bringup, Console, GuestOptions, Kick, Scenario, Teardown, TscSync};
use firmware::report::{BspPhase, MAX_ROUNDS};

use crate::vcpu::TscSkew;

/// The default guest memory size in MiB.
pub const DEFAULT_MEMORY_MIB: u64 = 256;
/// The smallest guest memory sipi accepts: low memory plus room for a kernel above 1 MiB.
pub const MIN_MEMORY_MIB: u64 = 2;
/// The default vCPU count.
pub const DEFAULT_VCPUS: u32 = 256;
/// The default wall-clock limit for one boot, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// Hotplug-torture's default number of operations.
pub const DEFAULT_TORTURE_OPS: u32 = 1000;
/// Hotplug-torture's largest number of operations.
pub const MAX_TORTURE_OPS: u32 = 1_000_000;
/// Hotplug-torture's default concurrency (operations in flight at once).
pub const DEFAULT_TORTURE_CONCURRENCY: u32 = 1;
/// Hotplug-torture's largest requested concurrency (the guest clamps it to its APs).
pub const MAX_TORTURE_CONCURRENCY: u32 = 4096;
/// Hotplug-torture's fewest vCPUs: the BSP, an AP that stays online as the readers' target,
/// and at least one AP to take offline.
pub const MIN_TORTURE_VCPUS: u32 = 3;
/// Seeds drawn by `vmm` are below 2^53, so that JSON readers that hold numbers as doubles
/// (jq, JavaScript) keep them exact.
const DRAWN_SEED_MASK: u64 = (1 << 53) - 1;

/// How the BSP enters the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum EntryMode {
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
}

/// Teardown strategies as clap values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TeardownArg {
    /// One AP at a time, waiting for each to park.
    Serial,
    /// Every AP asked at once, one sync point, one batch of INITs.
    Parallel,
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

/// A hotplug-torture seed from the clock and the process ID (splitmix64 of both), so that
/// runs differ; below 2^53 (see [`DRAWN_SEED_MASK`]).
fn draw_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut z = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) & DRAWN_SEED_MASK
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
    #[arg(long, value_name = "PATH", default_value = "/dev/kvm")]
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

    /// Extra kernel command line, appended after sipi's own options.
    #[arg(long, value_name = "STR", default_value = "")]
    pub cmdline: String,

    /// Give up after this many seconds (0: never).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TIMEOUT_SECS)]
    pub timeout: u64,

    /// Write the guest's console output to this file instead of stderr.
    #[arg(long, value_name = "PATH")]
    pub console: Option<PathBuf>,

    /// Write the report as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// How the BSP enters the kernel.
    #[arg(long, value_enum, default_value_t = EntryMode::Auto)]
    pub entry: EntryMode,

    /// AP bringup strategy (passed to the guest).
    #[arg(long, value_enum, default_value_t = BringupArg::Parallel)]
    pub bringup: BringupArg,

    /// How the guest kicks APs in parallel bringup.
    #[arg(long, value_enum, default_value_t = KickArg::PerCpu)]
    pub kick: KickArg,

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

    /// Rounds of --scenario reboot-cycles (1 to 1024).
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
    drawn_seed: OnceLock<u64>,

    /// Print every CPU's line in the report, not only the slowest.
    #[arg(long)]
    pub per_cpu: bool,

    /// Print nothing but errors (the guest console still goes to --console or stderr).
    #[arg(long, short)]
    pub quiet: bool,

    /// The KVM device to open.
    #[arg(long, value_name = "PATH", default_value = "/dev/kvm")]
    pub kvm_device: PathBuf,

    /// Test only: the guest leaves the AP with this APIC ID unstarted.
    #[arg(long, value_name = "APIC_ID", hide = true, default_value_t = 0)]
    pub test_lose_apic_id: u32,

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
}

/// Parses a BSP phase name for `--test-hang-after`.
fn parse_bsp_phase(s: &str) -> Result<BspPhase, String> {
    BspPhase::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = BspPhase::ALL.iter().map(|p| p.name()).collect();
        format!("{s:?} is not a BSP phase (one of {})", names.join(", "))
    })
}

impl BootArgs {
    /// The options the guest reads from its command line.
    pub fn guest_options(&self) -> GuestOptions {
        GuestOptions {
            bringup: match self.bringup {
                BringupArg::Floor => Bringup::Floor,
                BringupArg::Serial => Bringup::Serial,
                BringupArg::Parallel => Bringup::Parallel,
                BringupArg::None => Bringup::None,
            },
            kick: match self.kick {
                KickArg::PerCpu => Kick::PerCpu,
                KickArg::Broadcast => Kick::Broadcast,
            },
            init_delay_us: self.init_delay_us,
            tsc_sync: match self.tsc_sync {
                TscSyncArg::None => TscSync::None,
                TscSyncArg::Serial => TscSync::Serial,
                TscSyncArg::Parallel => TscSync::Parallel,
            },
            lose_apic_id: self.test_lose_apic_id,
            fault_vector: self.test_fault_vector,
            // Set by `vcpu::plan_tsc_skew` when the VMM cannot skew the TSC itself.
            test_tsc_skew: None,
            scenario: match self.scenario {
                ScenarioArg::Boot => Scenario::Boot,
                ScenarioArg::Teardown => Scenario::Teardown,
                ScenarioArg::RebootCycles => Scenario::RebootCycles,
                ScenarioArg::HotplugTorture => Scenario::HotplugTorture,
            },
            teardown: match self.teardown {
                None | Some(TeardownArg::Serial) => Teardown::Serial,
                Some(TeardownArg::Parallel) => Teardown::Parallel,
            },
            cycles: match self.scenario {
                ScenarioArg::RebootCycles => self.cycles.unwrap_or(1),
                _ => 0,
            },
            ops: self.torture(self.ops.unwrap_or(DEFAULT_TORTURE_OPS)),
            concurrency: self.torture(self.concurrency.unwrap_or(DEFAULT_TORTURE_CONCURRENCY)),
            seed: self.torture(self.seed()),
            test_skip_barrier: self.test_skip_barrier,
            test_hang: self.test_hang_after,
            // sipi's console doorbell: a line per VM exit instead of a byte.
            console: Console::Port,
        }
    }

    /// `value` with --scenario hotplug-torture, else 0 (the guest's "not used").
    fn torture<T: Default>(&self, value: T) -> T {
        if self.scenario == ScenarioArg::HotplugTorture {
            value
        } else {
            T::default()
        }
    }

    /// Hotplug-torture's seed: --seed, or one drawn the first time it is asked for.
    pub fn seed(&self) -> u64 {
        self.seed
            .unwrap_or_else(|| *self.drawn_seed.get_or_init(draw_seed))
    }

    /// Checks the options that depend on each other; the error is a sentence for the usage
    /// error line.
    pub fn validate(&self) -> Result<(), String> {
        if self.scenario != ScenarioArg::HotplugTorture {
            let torture_only = [
                ("--ops", self.ops.is_some()),
                ("--concurrency", self.concurrency.is_some()),
                ("--seed", self.seed.is_some()),
                ("--test-skip-barrier", self.test_skip_barrier),
            ];
            if let Some((flag, _)) = torture_only.iter().find(|(_, given)| *given) {
                return Err(format!("{flag} needs --scenario hotplug-torture"));
            }
        }
        match self.scenario {
            ScenarioArg::Boot if self.teardown.is_some() || self.cycles.is_some() => {
                return Err(
                    "--teardown and --cycles need a scenario: add --scenario teardown or reboot-cycles"
                        .into(),
                );
            }
            ScenarioArg::Teardown if self.cycles.is_some() => {
                return Err("--cycles needs --scenario reboot-cycles".into());
            }
            ScenarioArg::Teardown | ScenarioArg::RebootCycles => {
                if self.teardown.is_none() {
                    return Err(format!(
                        "--scenario {} needs --teardown serial or parallel",
                        self.scenario_name()
                    ));
                }
                if self.scenario == ScenarioArg::RebootCycles && self.cycles.is_none() {
                    return Err("--scenario reboot-cycles needs --cycles K".into());
                }
                self.check_scenario_bringup()?;
            }
            ScenarioArg::HotplugTorture => {
                if self.teardown.is_some() {
                    return Err("--teardown needs --scenario teardown or reboot-cycles".into());
                }
                if self.cycles.is_some() {
                    return Err("--cycles needs --scenario reboot-cycles".into());
                }
                self.check_scenario_bringup()?;
                if self.vcpus < MIN_TORTURE_VCPUS {
                    return Err(format!(
                        "--scenario hotplug-torture needs at least {MIN_TORTURE_VCPUS} vCPUs \
                         (it keeps one AP online for the readers), not --vcpus {}",
                        self.vcpus
                    ));
                }
            }
            ScenarioArg::Boot => {}
        }
        if self.tsc_sync != TscSyncArg::None && self.bringup == BringupArg::Floor {
            return Err(
                "--tsc-sync needs APs that run the kernel: use --bringup serial, parallel or none, \
                 not floor"
                    .into(),
            );
        }
        if let Some(skew) = self.test_skew_tsc {
            if self.tsc_sync == TscSyncArg::None {
                return Err(
                    "--test-skew-tsc needs a TSC check: add --tsc-sync serial or parallel".into(),
                );
            }
            if skew.vcpu >= self.vcpus {
                return Err(format!(
                    "--test-skew-tsc names vCPU {}, but the VM has {} (0 to {})",
                    skew.vcpu,
                    self.vcpus,
                    self.vcpus - 1
                ));
            }
        }
        Ok(())
    }

    /// A scenario needs APs that run the kernel, and no TSC check.
    fn check_scenario_bringup(&self) -> Result<(), String> {
        if matches!(self.bringup, BringupArg::Floor | BringupArg::None) {
            return Err(format!(
                "--scenario {} needs APs that run the kernel: use --bringup serial or parallel",
                self.scenario_name()
            ));
        }
        if self.tsc_sync != TscSyncArg::None {
            return Err(format!(
                "--scenario {} cannot be combined with --tsc-sync",
                self.scenario_name()
            ));
        }
        Ok(())
    }

    /// The scenario's name, as on the command line.
    fn scenario_name(&self) -> &'static str {
        self.guest_options().scenario.name()
    }

    /// Guest memory in bytes (clap bounds the MiB value from below; the product is checked).
    pub fn memory_bytes(&self) -> Option<u64> {
        self.memory.checked_mul(1 << 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_guest_options() {
        let cli = Cli::try_parse_from(["vmm"]).unwrap().boot;
        assert_eq!(cli.vcpus, DEFAULT_VCPUS);
        assert_eq!(cli.memory_bytes(), Some(DEFAULT_MEMORY_MIB << 20));
        // The defaults, but the console through sipi's doorbell.
        assert_eq!(
            cli.guest_options(),
            GuestOptions {
                console: Console::Port,
                ..GuestOptions::default()
            }
        );
        let cli = Cli::try_parse_from(["vmm", "--bringup", "serial", "--kick", "broadcast"])
            .unwrap()
            .boot;
        assert_eq!(cli.guest_options().bringup, Bringup::Serial);
        assert_eq!(cli.guest_options().kick, Kick::Broadcast);
        assert_eq!(cli.guest_options().tsc_sync, TscSync::None);
        assert_eq!(cli.test_skew_tsc, None);
        assert_eq!(cli.validate(), Ok(()));
    }

    #[test]
    fn tsc_sync_and_the_skew_test_option() {
        let parse = |args: &[&str]| {
            let mut v = vec!["vmm"];
            v.extend_from_slice(args);
            Cli::try_parse_from(v).map(|c| c.boot)
        };
        for (arg, want) in [
            ("none", TscSync::None),
            ("serial", TscSync::Serial),
            ("parallel", TscSync::Parallel),
        ] {
            let cli = parse(&["--tsc-sync", arg]).unwrap();
            assert_eq!(cli.guest_options().tsc_sync, want);
        }
        assert!(parse(&["--tsc-sync", "sometimes"]).is_err());
        let floor = parse(&["--tsc-sync", "serial", "--bringup", "floor"]).unwrap();
        assert!(floor.validate().unwrap_err().contains("--bringup"));
        let unchecked = parse(&["--vcpus", "4", "--test-skew-tsc", "3:1000"]).unwrap();
        assert!(unchecked.validate().unwrap_err().contains("--tsc-sync"));
        let cli = parse(&[
            "--vcpus",
            "4",
            "--tsc-sync",
            "parallel",
            "--test-skew-tsc",
            "3:10000000000",
        ])
        .unwrap();
        assert_eq!(
            cli.test_skew_tsc,
            Some(TscSkew {
                vcpu: 3,
                cycles: 10_000_000_000
            })
        );
        assert_eq!(cli.validate(), Ok(()));
        let beyond = parse(&[
            "--vcpus",
            "4",
            "--tsc-sync",
            "serial",
            "--test-skew-tsc",
            "4:1000",
        ])
        .unwrap();
        assert!(beyond.validate().unwrap_err().contains("vCPU 4"));
        for bad in ["3", "x:1", "3:0", "3:-5", "3:many"] {
            assert!(parse(&["--test-skew-tsc", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn scenarios_and_their_combinations() {
        let parse = |args: &[&str]| {
            let mut v = vec!["vmm"];
            v.extend_from_slice(args);
            Cli::try_parse_from(v).map(|c| c.boot)
        };
        let cli = parse(&["--scenario", "teardown", "--teardown", "parallel"]).unwrap();
        assert_eq!(cli.validate(), Ok(()));
        let o = cli.guest_options();
        assert_eq!(
            (o.scenario, o.teardown, o.cycles),
            (Scenario::Teardown, Teardown::Parallel, 0)
        );
        let cli = parse(&[
            "--scenario",
            "reboot-cycles",
            "--teardown",
            "serial",
            "--cycles",
            "4",
        ])
        .unwrap();
        assert_eq!(cli.validate(), Ok(()));
        assert_eq!(cli.guest_options().cycles, 4);
        assert_eq!(cli.guest_options().scenario, Scenario::RebootCycles);
        for (args, needle) in [
            (&["--teardown", "serial"][..], "--scenario"),
            (&["--cycles", "3"][..], "--scenario"),
            (&["--scenario", "teardown"][..], "--teardown"),
            (
                &["--scenario", "reboot-cycles", "--teardown", "serial"][..],
                "--cycles",
            ),
            (
                &[
                    "--scenario",
                    "teardown",
                    "--teardown",
                    "serial",
                    "--cycles",
                    "2",
                ][..],
                "--cycles",
            ),
            (
                &[
                    "--scenario",
                    "teardown",
                    "--teardown",
                    "serial",
                    "--bringup",
                    "floor",
                ][..],
                "--bringup",
            ),
            (
                &[
                    "--scenario",
                    "teardown",
                    "--teardown",
                    "serial",
                    "--tsc-sync",
                    "serial",
                ][..],
                "--tsc-sync",
            ),
        ] {
            let cli = parse(args).unwrap();
            let e = cli.validate().unwrap_err();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
        assert!(parse(&["--scenario", "torture"]).is_err());
        assert!(parse(&["--scenario", "hotplug-torture"]).is_ok());
        assert!(parse(&["--cycles", "0"]).is_err());
        assert!(parse(&["--cycles", "1025"]).is_err());
    }

    #[test]
    fn hotplug_torture_and_its_options() {
        // 8 vCPUs unless `args` say otherwise.
        let parse = |args: &[&str]| {
            let mut v = vec!["vmm"];
            if !args.contains(&"--vcpus") {
                v.extend_from_slice(&["--vcpus", "8"]);
            }
            v.extend_from_slice(args);
            Cli::try_parse_from(v).map(|c| c.boot)
        };
        // Defaults: 1000 operations, one at a time, a drawn seed that stays the same.
        let cli = parse(&["--scenario", "hotplug-torture"]).unwrap();
        assert_eq!(cli.validate(), Ok(()));
        let o = cli.guest_options();
        assert_eq!(o.scenario, Scenario::HotplugTorture);
        assert_eq!((o.ops, o.concurrency), (1000, 1));
        assert_eq!(
            (o.teardown, o.cycles, o.test_skip_barrier),
            (Teardown::Serial, 0, false)
        );
        assert_eq!(cli.guest_options().seed, o.seed, "the seed is drawn once");
        assert_eq!(cli.seed(), o.seed);
        assert!(o.seed < 1 << 53, "a drawn seed survives JSON doubles");
        let mut words = String::new();
        o.write(&mut words).unwrap();
        assert!(
            words.contains(&format!(
                "sipi.ops=1000 sipi.concurrency=1 sipi.seed={}",
                o.seed
            )),
            "{words}"
        );
        // Everything given.
        let cli = parse(&[
            "--scenario",
            "hotplug-torture",
            "--ops",
            "1000000",
            "--concurrency",
            "4096",
            "--seed",
            &u64::MAX.to_string(),
            "--test-skip-barrier",
            "--bringup",
            "serial",
        ])
        .unwrap();
        assert_eq!(cli.validate(), Ok(()));
        let o = cli.guest_options();
        assert_eq!(
            (o.ops, o.concurrency, o.seed, o.test_skip_barrier),
            (1_000_000, 4096, u64::MAX, true)
        );
        assert_eq!(
            firmware::cmdline::GuestOptions::parse(&{
                let mut w = String::new();
                o.write(&mut w).unwrap();
                w
            }),
            Ok(o)
        );
        // Other scenarios pass none of it to the guest.
        let o = parse(&["--scenario", "teardown", "--teardown", "serial"])
            .unwrap()
            .guest_options();
        assert_eq!(
            (o.ops, o.concurrency, o.seed, o.test_skip_barrier),
            (0, 0, 0, false)
        );
        // Out of range values are parse errors.
        for bad in [
            &["--ops", "0"][..],
            &["--ops", "1000001"],
            &["--ops", "-1"],
            &["--concurrency", "0"],
            &["--concurrency", "4097"],
            &["--seed", "-1"],
            &["--seed", "18446744073709551616"],
            &["--seed", "0x10"],
            &["--test-skip-barrier", "1"],
        ] {
            let mut args = vec!["--scenario", "hotplug-torture"];
            args.extend_from_slice(bad);
            assert!(parse(&args).is_err(), "{bad:?}");
        }
        // Combinations.
        for (args, needle) in [
            (
                &["--ops", "5"][..],
                "--ops needs --scenario hotplug-torture",
            ),
            (
                &["--concurrency", "2"],
                "--concurrency needs --scenario hotplug-torture",
            ),
            (&["--seed", "7"], "--seed needs --scenario hotplug-torture"),
            (
                &["--test-skip-barrier"],
                "--test-skip-barrier needs --scenario hotplug-torture",
            ),
            (
                &[
                    "--scenario",
                    "teardown",
                    "--teardown",
                    "serial",
                    "--ops",
                    "5",
                ],
                "--ops needs --scenario hotplug-torture",
            ),
            (
                &[
                    "--scenario",
                    "reboot-cycles",
                    "--teardown",
                    "serial",
                    "--cycles",
                    "2",
                    "--seed",
                    "1",
                ],
                "--seed needs --scenario hotplug-torture",
            ),
            (
                &["--scenario", "hotplug-torture", "--teardown", "parallel"],
                "--teardown needs --scenario teardown or reboot-cycles",
            ),
            (
                &["--scenario", "hotplug-torture", "--cycles", "3"],
                "--cycles needs --scenario reboot-cycles",
            ),
            (
                &["--scenario", "hotplug-torture", "--bringup", "floor"],
                "--bringup serial or parallel",
            ),
            (
                &["--scenario", "hotplug-torture", "--bringup", "none"],
                "--bringup serial or parallel",
            ),
            (
                &["--scenario", "hotplug-torture", "--tsc-sync", "parallel"],
                "cannot be combined with --tsc-sync",
            ),
            (
                &["--scenario", "hotplug-torture", "--vcpus", "2"],
                "at least 3 vCPUs",
            ),
            (
                &["--scenario", "hotplug-torture", "--vcpus", "1"],
                "at least 3 vCPUs",
            ),
        ] {
            let cli = parse(args).unwrap();
            let e = cli.validate().unwrap_err();
            assert!(e.contains(needle), "{args:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        let three = parse(&["--scenario", "hotplug-torture", "--vcpus", "3"]).unwrap();
        assert_eq!(three.validate(), Ok(()));
    }

    #[test]
    fn rejects_bad_values() {
        assert!(Cli::try_parse_from(["vmm", "--vcpus", "0"]).is_err());
        assert!(Cli::try_parse_from(["vmm", "--vcpus", "many"]).is_err());
        assert!(Cli::try_parse_from(["vmm", "--memory", "0"]).is_err());
        assert!(Cli::try_parse_from(["vmm", "--bogus"]).is_err());
        let huge = Cli::try_parse_from(["vmm", "--memory", &u64::MAX.to_string()]).unwrap();
        assert_eq!(huge.boot.memory_bytes(), None);
    }

    #[test]
    fn memslot_burst_is_a_subcommand_with_its_own_options() {
        let args = [
            "vmm",
            "memslot-burst",
            "--changes",
            "10",
            "--vcpus",
            "3",
            "--naive",
        ];
        let cli = Cli::try_parse_from(args).unwrap();
        let Some(Command::MemslotBurst(a)) = cli.command else {
            panic!("not parsed as memslot-burst")
        };
        assert_eq!((a.changes, a.vcpus, a.naive), (10, 3, true));
        assert!(Cli::try_parse_from(["vmm", "memslot-burst", "--changes", "0"]).is_err());
        assert!(Cli::try_parse_from(["vmm", "--memory", "64", "memslot-burst"]).is_err());
    }
}
