//! What the BSP does after bringup (`sipi.scenario`): taking the APs offline again
//! (`teardown`), rounds of bringing them all up and taking them all down (`reboot-cycles`,
//! kexec-like), and ACPI S3 suspends after each of which every AP comes up again
//! (`suspend-resume`). Each teardown is [`teardown::run`] (see [`crate::teardown`] for both
//! sides of it), each suspend [`resume::suspend`], each later bringup [`bringup::again`];
//! `hotplug-torture` is [`crate::torture`]'s, and what an AP does once online is
//! [`crate::ap`]'s.

use firmware::acpi::fadt::SleepControl;
use firmware::cmdline::{GuestOptions, Scenario};
use firmware::report::{CpuState, Round};

use crate::apic::{LocalApic, Mode};
use crate::bringup;
use crate::cpu;
use crate::cpus::{self, CAPACITY};
use crate::global::Global;
use crate::resume;
use crate::teardown::{self, Down};
use crate::trampoline::{self, Trampoline};
use crate::tsc::Tsc;

/// The slots of the APs the scenario takes down and brings up (BSP only).
static ONLINE: Global<[u16; CAPACITY]> = Global::new([0; CAPACITY]);
/// The rounds of the scenario (BSP only).
static ROUNDS: Global<[Round; firmware::report::MAX_ROUNDS as usize]> = Global::new(
    [Round {
        up_cycles: 0,
        down_cycles: 0,
    }; firmware::report::MAX_ROUNDS as usize],
);

/// What the whole scenario did, for the report.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Outcome {
    /// Rounds completed.
    pub(crate) rounds: u32,
    /// Offline and online transitions.
    pub(crate) ops: u32,
    /// The last teardown.
    pub(crate) last: Down,
    /// APs that failed to park, or to come online again, over every round.
    pub(crate) failed: u32,
    /// APs taken down in the last teardown: the slots of the teardown records to report.
    pub(crate) slots: &'static [u16],
}

/// Runs the scenario of `options` after bringup: of `started`, the slots that came online take
/// part.
/// `up_cycles` is the boot bringup's BSP time (round 1's "up"). `stamp_bringup` is called with
/// the BSP's BringupStart and AllOnline stamps of each later bringup. `sleep` is the FADT's
/// sleep controls, which suspend-resume needs.
pub(crate) fn run(
    options: &GuestOptions,
    apic: LocalApic,
    tsc: Tsc,
    started: &[u16],
    up_cycles: u64,
    sleep: Option<SleepControl>,
    mut stamp_bringup: impl FnMut(u64, u64),
) -> Outcome {
    let rounds_wanted = match options.scenario {
        Scenario::Boot => return Outcome::default(),
        Scenario::Teardown => 1,
        Scenario::RebootCycles => options.cycles.clamp(1, firmware::report::MAX_ROUNDS),
        Scenario::SuspendResume => options.cycles.clamp(1, firmware::report::MAX_ROUNDS - 1),
        // Run by crate::torture instead.
        Scenario::HotplugTorture => return Outcome::default(),
    };
    // SAFETY: only the BSP uses ROUNDS, and only here and in `rounds`.
    let rounds = unsafe { &mut *ROUNDS.get() };
    // SAFETY: only the BSP uses ONLINE, and only here.
    let buf = unsafe { &mut *ONLINE.get() };
    let mut n = 0;
    for slot in started {
        if cpus::state(usize::from(*slot)) == CpuState::Online as u8 {
            buf[n] = *slot;
            n += 1;
        }
    }
    let online: &'static [u16] = &buf[..n];
    let mut o = Outcome {
        slots: online,
        ..Outcome::default()
    };
    if options.scenario == Scenario::SuspendResume {
        let control = sleep.expect("suspend-resume needs the FADT's sleep controls");
        return suspend_resume(
            options,
            tsc,
            online,
            up_cycles,
            control,
            rounds_wanted,
            stamp_bringup,
        );
    }
    let mut up = up_cycles;
    for round in 0..rounds_wanted {
        if round > 0 {
            let begin = cpu::rdtsc();
            let again = bringup::again(options, apic, tsc, online);
            let end = cpu::rdtsc();
            stamp_bringup(begin, end);
            up = end - begin;
            o.failed += again.missing;
            o.ops += online.len() as u32;
        }
        let down = teardown::run(apic, tsc, options.teardown, online);
        o.failed += down.failed;
        o.ops += online.len() as u32;
        rounds[round as usize] = Round {
            up_cycles: up,
            down_cycles: down.end - down.start,
        };
        o.last = down;
        o.rounds = round + 1;
        crate::live::progress(o.ops, o.rounds);
    }
    o
}

/// Suspend-resume: round 1 is the boot bringup; each of `suspends` S3 suspends ends a round
/// (its "down" is the suspend stamp to the resume stamp) and starts the next, whose "up" is the
/// resume stamp to every AP of `online` online again, brought up as at boot. A suspend that
/// does not happen ends the scenario with one failure.
fn suspend_resume(
    options: &GuestOptions,
    tsc: Tsc,
    online: &'static [u16],
    up_cycles: u64,
    control: SleepControl,
    suspends: u32,
    mut stamp_bringup: impl FnMut(u64, u64),
) -> Outcome {
    // SAFETY: only the BSP uses ROUNDS, and only here, in `run` and in `rounds`.
    let rounds = unsafe { &mut *ROUNDS.get() };
    let mut o = Outcome {
        rounds: 1,
        ..Outcome::default()
    };
    rounds[0] = Round {
        up_cycles,
        down_cycles: 0,
    };
    for round in 0..suspends as usize {
        let Some(sleep) = resume::suspend(control) else {
            o.failed += 1;
            break;
        };
        rounds[round].down_cycles = sleep.resume.saturating_sub(sleep.suspend);
        // As at boot: the local APIC in x2APIC mode when the CPU has it, then the APs'
        // trampoline back in its page before any SIPI.
        let apic = LocalApic::enable();
        trampoline::install(Trampoline::Full {
            x2apic: apic.mode() == Mode::X2Apic,
        });
        let again = bringup::again(options, apic, tsc, online);
        let end = cpu::rdtsc();
        stamp_bringup(sleep.resume, end);
        rounds[round + 1] = Round {
            up_cycles: end - sleep.resume,
            down_cycles: 0,
        };
        o.failed += again.missing;
        o.ops += online.len() as u32;
        o.rounds = round as u32 + 2;
        crate::live::progress(o.ops, o.rounds);
    }
    o
}

/// The rounds recorded by [`run`].
pub(crate) fn rounds(n: u32) -> &'static [Round] {
    // SAFETY: only the BSP uses ROUNDS; `run` is over.
    unsafe { &(&(*ROUNDS.get()))[..n as usize] }
}
