//! Guest options carried on the kernel command line as `sipi.<key>=<value>` words.
//!
//! The VMM writes them with [`GuestOptions::write`]; the guest reads them back with
//! [`GuestOptions::parse`]. Words that do not start with `sipi.` belong to the user
//! (`--cmdline`) and are ignored here.

use core::fmt::{self, Write};

/// The prefix of sipi's own words on the kernel command line.
pub const SIPI_OPTION_PREFIX: &str = "sipi.";

use crate::word_enum::word_enum;

word_enum! {
    /// How the guest brings the APs up.
    #[derive(Default)]
    pub enum Bringup: u8 {
        /// Broadcast INIT/SIPI; each AP only stamps and marks itself present: the lower bound.
        Floor = 0 => "floor",
        /// One AP at a time, waiting for each (Linux before 6.5).
        Serial = 1 => "serial",
        /// Kick every AP, then wait for all (Linux 6.5+).
        #[default]
        Parallel = 2 => "parallel",
        /// Do not start the APs at all.
        None = 3 => "none",
    }
}

word_enum! {
    /// Where the guest writes its console text (`sipi.console`).
    #[derive(Default)]
    pub enum Console: u8 {
        /// COM1's transmit register, one VM exit per byte (any VMM with a 16550).
        #[default]
        Uart = 0 => "uart",
        /// sipi's console doorbell ([`crate::layout::CONSOLE_PORT`]), one exit per line.
        Port = 1 => "port",
    }
}

word_enum! {
    /// How the BSP sends INIT/SIPI in parallel bringup.
    #[derive(Default)]
    pub enum Kick: u8 {
        /// One INIT/SIPI sequence per AP, addressed by APIC ID.
        #[default]
        PerCpu = 0 => "per-cpu",
        /// The all-excluding-self shorthand.
        Broadcast = 1 => "broadcast",
    }
}

word_enum! {
    /// How the guest checks that the CPUs' TSCs agree, between per-CPU init and online.
    #[derive(Default)]
    pub enum TscSync: u8 {
        /// No check.
        #[default]
        None = 0 => "none",
        /// One AP at a time against the BSP, as each comes online (Linux's
        /// `check_tsc_sync_target`).
        Serial = 1 => "serial",
        /// One warp test of every CPU at once.
        Parallel = 2 => "parallel",
    }
}

word_enum! {
    /// What the guest does after bringup (`sipi.scenario`).
    #[derive(Default)]
    pub enum Scenario: u8 {
        /// Bring the APs up once and report.
        #[default]
        Boot = 0 => "boot",
        /// After bringup, take every AP offline again (serially or in parallel, `sipi.teardown`).
        Teardown = 1 => "teardown",
        /// `sipi.cycles` rounds of bringing every AP up and taking it down again.
        RebootCycles = 2 => "reboot-cycles",
        /// `sipi.ops` random CPU offline and online operations, up to `sipi.concurrency` at
        /// once, while the online CPUs run reader work whose invariants are checked.
        HotplugTorture = 3 => "hotplug-torture",
        /// `sipi.cycles` ACPI S3 suspends after bringup: after each resume, bring every AP
        /// up again.
        SuspendResume = 4 => "suspend-resume",
    }
}

word_enum! {
    /// How the guest takes the APs offline (`sipi.teardown`).
    #[derive(Default)]
    pub enum Teardown: u8 {
        /// One AP at a time: ask it, wait until it has parked, INIT it, then the next.
        #[default]
        Serial = 0 => "serial",
        /// Ask every AP at once, wait for all at one sync point, INIT all in one batch.
        Parallel = 1 => "parallel",
    }
}

/// Test only (`sipi.test_tsc_skew=APIC_ID:CYCLES`): the CPU with this APIC ID adds `cycles` to
/// every TSC reading it takes in the TSC check, as if its TSC were that far ahead. For KVMs
/// that ignore a VMM's TSC writes (kvm_pvm runs guest RDTSC on the host's TSC), where the VMM
/// cannot skew a vCPU's TSC itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestTscSkew {
    /// The CPU whose readings are skewed.
    pub apic_id: u32,
    /// Cycles added to each of its readings.
    pub cycles: u64,
}

/// The byte the AP of `sipi.test_port_write` writes to the POST/debug port (0x80) inside its
/// bringup window: in Cloud Hypervisor's custom range, so that the timeline shows it too.
pub const TEST_PORT_WRITE_CODE: u8 = 0xA9;

/// Options the VMM passes to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GuestOptions {
    /// Bringup strategy.
    pub bringup: Bringup,
    /// Kick style.
    pub kick: Kick,
    /// Delay between INIT and SIPI, in microseconds (Linux used to wait 10 ms).
    pub init_delay_us: u32,
    /// TSC synchronisation check.
    pub tsc_sync: TscSync,
    /// Test only: the AP with this APIC ID ignores its start-up (0 = none; the BSP is never lost).
    pub lose_apic_id: u32,
    /// Test only: raise this exception vector on the BSP after start-up (0 = none).
    pub fault_vector: u32,
    /// Test only: the AP with this APIC ID writes [`TEST_PORT_WRITE_CODE`] to port 0x80 once,
    /// between its PerCpuInit and Online stamps (0 = none; the BSP never does), so that the
    /// VMM's check of the timed windows has an exit to find.
    pub test_port_write: u32,
    /// Test only: a skew the guest adds to one CPU's readings in the TSC check.
    pub test_tsc_skew: Option<TestTscSkew>,
    /// What to do after bringup.
    pub scenario: Scenario,
    /// How to take the APs offline (teardown and reboot-cycles).
    pub teardown: Teardown,
    /// Rounds of reboot-cycles (the first bringup is round 1's "up"), or suspends of
    /// suspend-resume.
    pub cycles: u32,
    /// Hotplug-torture: offline and online operations to run.
    pub ops: u32,
    /// Hotplug-torture: most operations in flight at once.
    pub concurrency: u32,
    /// Hotplug-torture: the seed of the guest's pseudo-random choices.
    pub seed: u64,
    /// Test only (hotplug-torture): take CPUs offline without waiting for a grace period, so
    /// that the invariant check must find violations.
    pub test_skip_barrier: bool,
    /// Test only: the BSP spins forever once it has stamped this phase (a hung guest, for the
    /// VMM's timeout).
    pub test_hang: Option<crate::report::BspPhase>,
    /// Where the console text goes.
    pub console: Console,
    /// The VMM runs the BSP while it is still creating the other vCPUs (`sipi.early_start`):
    /// ask sipi's vCPU-readiness port ([`crate::layout::VCPUS_READY_PORT`]) before kicking an
    /// AP whose vCPU may not exist yet.
    pub early_start: bool,
}

/// Why the guest options could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    /// A `sipi.` key this version does not know.
    #[error("unknown guest option sipi.{0}")]
    UnknownKey(KeyName),
    /// A value that does not parse for its key.
    #[error("invalid value for guest option sipi.{0}")]
    BadValue(KeyName),
}

/// Most bytes of an option key a [`KeyName`] keeps (longer keys are cut at a UTF-8 boundary).
const KEY_NAME_MAX: usize = 24;

/// A bounded copy of an option key, for error messages without allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyName {
    bytes: [u8; KEY_NAME_MAX],
    len: u8,
}

impl KeyName {
    fn new(s: &str) -> Self {
        let mut bytes = [0u8; KEY_NAME_MAX];
        let mut n = s.len().min(bytes.len());
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        bytes[..n].copy_from_slice(&s.as_bytes()[..n]);
        Self {
            bytes,
            len: n as u8,
        }
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("?")
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl GuestOptions {
    /// Parses the `sipi.` words of a command line.
    pub fn parse(cmdline: &str) -> Result<Self, CmdlineError> {
        let mut o = Self::default();
        for word in cmdline.split_ascii_whitespace() {
            let Some(opt) = word.strip_prefix(SIPI_OPTION_PREFIX) else {
                continue;
            };
            let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
            let bad = || CmdlineError::BadValue(KeyName::new(key));
            match key {
                "bringup" => o.bringup = Bringup::from_name(value).ok_or_else(bad)?,
                "kick" => o.kick = Kick::from_name(value).ok_or_else(bad)?,
                "init_delay_us" => o.init_delay_us = value.parse().map_err(|_| bad())?,
                "tsc_sync" => o.tsc_sync = TscSync::from_name(value).ok_or_else(bad)?,
                "lose_apic_id" => o.lose_apic_id = value.parse().map_err(|_| bad())?,
                "fault_vector" => o.fault_vector = value.parse().map_err(|_| bad())?,
                "test_port_write" => o.test_port_write = value.parse().map_err(|_| bad())?,
                "scenario" => o.scenario = Scenario::from_name(value).ok_or_else(bad)?,
                "teardown" => o.teardown = Teardown::from_name(value).ok_or_else(bad)?,
                "cycles" => o.cycles = value.parse().map_err(|_| bad())?,
                "ops" => o.ops = value.parse().map_err(|_| bad())?,
                "concurrency" => o.concurrency = value.parse().map_err(|_| bad())?,
                "seed" => o.seed = value.parse().map_err(|_| bad())?,
                "console" => o.console = Console::from_name(value).ok_or_else(bad)?,
                "test_hang" => {
                    o.test_hang = Some(crate::report::BspPhase::from_name(value).ok_or_else(bad)?)
                }
                "early_start" => {
                    o.early_start = match value {
                        "" | "1" => true,
                        "0" => false,
                        _ => return Err(bad()),
                    }
                }
                "test_skip_barrier" => {
                    o.test_skip_barrier = match value {
                        "" | "1" => true,
                        "0" => false,
                        _ => return Err(bad()),
                    }
                }
                "test_tsc_skew" => {
                    let (id, cycles) = value.split_once(':').ok_or_else(bad)?;
                    o.test_tsc_skew = Some(TestTscSkew {
                        apic_id: id.parse().map_err(|_| bad())?,
                        cycles: cycles.parse().map_err(|_| bad())?,
                    });
                }
                _ => return Err(CmdlineError::UnknownKey(KeyName::new(key))),
            }
        }
        Ok(o)
    }

    /// Writes the options as `sipi.` words (defaults included, so the guest never guesses).
    pub fn write(&self, out: &mut impl Write) -> fmt::Result {
        write!(
            out,
            "sipi.bringup={} sipi.kick={} sipi.init_delay_us={} sipi.tsc_sync={}",
            self.bringup.name(),
            self.kick.name(),
            self.init_delay_us,
            self.tsc_sync.name()
        )?;
        if self.lose_apic_id != 0 {
            write!(out, " sipi.lose_apic_id={}", self.lose_apic_id)?;
        }
        if self.fault_vector != 0 {
            write!(out, " sipi.fault_vector={}", self.fault_vector)?;
        }
        if self.test_port_write != 0 {
            write!(out, " sipi.test_port_write={}", self.test_port_write)?;
        }
        if let Some(s) = self.test_tsc_skew {
            write!(out, " sipi.test_tsc_skew={}:{}", s.apic_id, s.cycles)?;
        }
        if self.scenario != Scenario::Boot {
            write!(
                out,
                " sipi.scenario={} sipi.teardown={} sipi.cycles={}",
                self.scenario.name(),
                self.teardown.name(),
                self.cycles
            )?;
        }
        if self.scenario == Scenario::HotplugTorture {
            write!(
                out,
                " sipi.ops={} sipi.concurrency={} sipi.seed={}",
                self.ops, self.concurrency, self.seed
            )?;
        }
        if self.test_skip_barrier {
            out.write_str(" sipi.test_skip_barrier=1")?;
        }
        if let Some(phase) = self.test_hang {
            write!(out, " sipi.test_hang={}", phase.name())?;
        }
        if self.console != Console::Uart {
            write!(out, " sipi.console={}", self.console.name())?;
        }
        if self.early_start {
            out.write_str(" sipi.early_start=1")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    #[test]
    fn options_round_trip_with_user_words_around_them() {
        let o = GuestOptions {
            bringup: Bringup::Serial,
            kick: Kick::Broadcast,
            init_delay_us: 10_000,
            tsc_sync: TscSync::Parallel,
            lose_apic_id: 3,
            fault_vector: 0,
            test_tsc_skew: Some(TestTscSkew {
                apic_id: 7,
                cycles: 10_000_000_000,
            }),
            scenario: Scenario::RebootCycles,
            teardown: Teardown::Parallel,
            cycles: 5,
            ..GuestOptions::default()
        };
        let mut s = String::from("console=ttyS0 ");
        o.write(&mut s).unwrap();
        s.push_str(" quiet");
        assert!(s.contains("sipi.tsc_sync=parallel"), "{s}");
        assert!(s.contains("sipi.test_tsc_skew=7:10000000000"), "{s}");
        assert_eq!(GuestOptions::parse(&s), Ok(o));
        assert_eq!(GuestOptions::parse(""), Ok(GuestOptions::default()));
    }

    #[test]
    fn every_tsc_sync_strategy_round_trips() {
        for t in TscSync::ALL {
            let o = GuestOptions {
                tsc_sync: t,
                ..GuestOptions::default()
            };
            let mut s = String::new();
            o.write(&mut s).unwrap();
            assert_eq!(GuestOptions::parse(&s).map(|p| p.tsc_sync), Ok(t), "{s}");
            assert_eq!(TscSync::from_u8(t as u8), Some(t));
            assert_eq!(TscSync::from_name(t.name()), Some(t));
        }
        assert_eq!(TscSync::default(), TscSync::None);
        assert_eq!(TscSync::from_u8(3), None);
        let e = GuestOptions::parse("sipi.tsc_sync=sometimes").unwrap_err();
        assert_eq!(e, CmdlineError::BadValue(KeyName::new("tsc_sync")));
        for bad in ["7", "7:", ":5", "x:5", "7:-5", "7:5:5"] {
            let e = GuestOptions::parse(&std::format!("sipi.test_tsc_skew={bad}")).unwrap_err();
            assert_eq!(
                e,
                CmdlineError::BadValue(KeyName::new("test_tsc_skew")),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_scenario_and_teardown_round_trips() {
        for scenario in Scenario::ALL {
            for teardown in Teardown::ALL {
                let o = GuestOptions {
                    scenario,
                    teardown,
                    cycles: 3,
                    ..GuestOptions::default()
                };
                let mut s = String::new();
                o.write(&mut s).unwrap();
                let back = GuestOptions::parse(&s).unwrap();
                assert_eq!(back.scenario, scenario, "{s}");
                if scenario != Scenario::Boot {
                    assert_eq!(back, o, "{s}");
                }
                assert_eq!(Scenario::from_u8(scenario as u8), Some(scenario));
                assert_eq!(Teardown::from_name(teardown.name()), Some(teardown));
            }
        }
        assert_eq!(Scenario::from_u8(9), None);
        assert_eq!(Teardown::from_u8(2), None);
        for bad in [
            "sipi.scenario=torture",
            "sipi.teardown=all",
            "sipi.cycles=-1",
            "sipi.ops=many",
            "sipi.concurrency=-2",
            "sipi.seed=0x10",
            "sipi.test_skip_barrier=yes",
            "sipi.early_start=yes",
            "sipi.test_hang=forever",
            "sipi.console=vga",
        ] {
            assert!(GuestOptions::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn torture_options_round_trip() {
        let o = GuestOptions {
            scenario: Scenario::HotplugTorture,
            ops: 1000,
            concurrency: 8,
            seed: u64::MAX,
            test_skip_barrier: true,
            test_hang: Some(crate::report::BspPhase::AllOnline),
            test_port_write: 5,
            console: Console::Port,
            early_start: true,
            ..GuestOptions::default()
        };
        let mut s = String::new();
        o.write(&mut s).unwrap();
        assert!(s.contains("sipi.seed=18446744073709551615"), "{s}");
        assert!(s.contains("sipi.early_start=1"), "{s}");
        assert!(s.contains("sipi.test_port_write=5"), "{s}");
        assert_eq!(GuestOptions::parse(&s), Ok(o));
        let o = GuestOptions::parse("sipi.test_skip_barrier sipi.ops=5").unwrap();
        assert!(o.test_skip_barrier);
        assert_eq!(o.ops, 5);
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        let e = GuestOptions::parse("sipi.bringup=sideways").unwrap_err();
        assert_eq!(e, CmdlineError::BadValue(KeyName::new("bringup")));
        let e = GuestOptions::parse("sipi.frobnicate=1").unwrap_err();
        assert_eq!(std::format!("{e}"), "unknown guest option sipi.frobnicate");
        assert!(GuestOptions::parse("sipi.init_delay_us=-1").is_err());
    }
}
