//! From what the user typed to a validated [`VmConfig`]: the options that depend on each
//! other are checked here, once, and the guest's options are built here, once.

use std::time::Duration;

use firmware::cmdline::{
    Bringup, Console, GuestOptions, Kick, Scenario, Teardown, TscSync, SIPI_OPTION_PREFIX,
};

use super::args::*;
use crate::arch::x86_64::topology::Topology;
use crate::config::{BspStart, KernelSource, TestHooks, VmConfig};
use crate::loader::modules::MAX_MODULES;
use crate::loader::{EntryMode, ModuleSpec};
use firmware::report::MAX_ROUNDS;

/// The options sipi's guest will act on: `options`, overridden by any `sipi.*` words the
/// user put in `--cmdline` (the guest reads the whole line, and later words win). Words that
/// do not parse leave `options` as they are: the guest rejects them itself.
fn with_user_words(options: GuestOptions, user: &str) -> GuestOptions {
    if !user
        .split_ascii_whitespace()
        .any(|w| w.starts_with(SIPI_OPTION_PREFIX))
    {
        return options;
    }
    let mut line = String::new();
    // Writing to a String cannot fail.
    let _ = options.write(&mut line);
    line.push(' ');
    line.push_str(user);
    GuestOptions::parse(&line).unwrap_or(options)
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

impl BootArgs {
    /// The validated configuration of this boot; the error is a sentence for the usage error
    /// line. The console is stderr: `--console` is opened by the caller.
    pub fn resolve(&self) -> Result<VmConfig, String> {
        self.validate()?;
        let memory = self
            .memory_bytes()
            .ok_or_else(|| format!("--memory {} MiB is too large", self.memory))?;
        Ok(VmConfig {
            topology: Topology::new(self.vcpus),
            memory,
            kernel: self
                .kernel
                .clone()
                .map_or(KernelSource::Embedded, KernelSource::Path),
            entry: match self.entry {
                EntryArg::Auto => EntryMode::Auto,
                EntryArg::Pvh => EntryMode::Pvh,
                EntryArg::Long => EntryMode::Long,
            },
            guest: with_user_words(self.guest_options(), &self.cmdline),
            user_cmdline: self.cmdline.clone(),
            modules: self.module_specs(),
            console: Box::new(std::io::stderr()),
            timeout: (self.timeout > 0).then(|| Duration::from_secs(self.timeout)),
            // suspend-resume needs a wake event: at once, unless --wake-after says when.
            wake_after: match (self.wake_after, self.scenario) {
                (None, ScenarioArg::SuspendResume) => Some(Duration::ZERO),
                (w, _) => w,
            },
            quiet: self.quiet,
            kvm_device: self.kvm_device.clone(),
            seccomp: !crate::seccomp::disabled(),
            bsp_start: match self.bsp_start {
                BspStartArg::Early => BspStart::Early,
                BspStartArg::AllReady => BspStart::AllReady,
            },
            hooks: TestHooks {
                tsc_skew: self.test_skew_tsc,
                no_kvm_stats: self.test_no_kvm_stats,
            },
        })
    }

    /// The boot modules: `--initrd` (its path as its string), then each `--module PATH[,STRING]`
    /// (split at the first comma; without one, the path is the string).
    pub fn module_specs(&self) -> Vec<ModuleSpec> {
        let initrd = self.initrd.iter().map(|p| ModuleSpec {
            path: p.clone(),
            string: p.to_string_lossy().into_owned(),
        });
        let modules = self.modules.iter().map(|m| match m.split_once(',') {
            Some((path, string)) => ModuleSpec {
                path: path.into(),
                string: string.into(),
            },
            None => ModuleSpec {
                path: m.into(),
                string: m.clone(),
            },
        });
        initrd.chain(modules).collect()
    }

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
            test_port_write: self.test_ap_port_write,
            // Set by `vcpu::plan_tsc_skew` when the VMM cannot skew the TSC itself.
            test_tsc_skew: None,
            // Set by `vm::create` when it starts the BSP early.
            early_start: false,
            scenario: match self.scenario {
                ScenarioArg::Boot => Scenario::Boot,
                ScenarioArg::Teardown => Scenario::Teardown,
                ScenarioArg::RebootCycles => Scenario::RebootCycles,
                ScenarioArg::HotplugTorture => Scenario::HotplugTorture,
                ScenarioArg::SuspendResume => Scenario::SuspendResume,
            },
            teardown: match self.teardown {
                None | Some(TeardownArg::Serial) => Teardown::Serial,
                Some(TeardownArg::Parallel) => Teardown::Parallel,
            },
            cycles: match self.scenario {
                ScenarioArg::RebootCycles | ScenarioArg::SuspendResume => self.cycles.unwrap_or(1),
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
        let modules = usize::from(self.initrd.is_some()) + self.modules.len();
        if modules > MAX_MODULES {
            return Err(format!(
                "{modules} boot modules were given (--initrd, --module); sipi takes at most {MAX_MODULES}"
            ));
        }
        if let Some(m) = self
            .modules
            .iter()
            .find(|m| m.split(',').next() == Some(""))
        {
            return Err(format!("--module {m:?} names no file"));
        }
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
                return Err("--cycles needs --scenario reboot-cycles or suspend-resume".into());
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
                    return Err("--cycles needs --scenario reboot-cycles or suspend-resume".into());
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
            ScenarioArg::SuspendResume => {
                if self.teardown.is_some() {
                    return Err("--teardown needs --scenario teardown or reboot-cycles".into());
                }
                // Round 1 is the boot's bringup; each suspend adds a round.
                if self.cycles.is_some_and(|k| k >= MAX_ROUNDS) {
                    return Err(format!(
                        "--scenario suspend-resume takes at most {} suspends (--cycles), not {}",
                        MAX_ROUNDS - 1,
                        self.cycles.unwrap_or(0)
                    ));
                }
                self.check_scenario_bringup()?;
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
