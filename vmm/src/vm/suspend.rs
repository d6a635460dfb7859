//! ACPI S3 as the VM's thread carries it out (ACPI 6.5, 16.1 "Sleeping states" and 7.4.2):
//! when the guest writes S3 to PM1a control, every vCPU thread parks (each kicked out of
//! KVM_RUN; memory and devices stay as they are); the VM sleeps until its wake event, the
//! RTC alarm the guest set (register B's AIE) or `--wake-after`, whichever comes first; then
//! the RTC's alarm flags are set (and IRQ 8 raised when AIE asks for it) and every vCPU
//! resumes on its own thread, the BSP at the FACS waking vector in real mode and the APs
//! waiting for SIPI. `--timeout` and SIGINT/SIGTERM end a sleeping VM as they end a running
//! one; a VM with no wake event sleeps until then. The RTC alarm of a running VM is raised
//! here too ([`Sleeper::rtc_alarm`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use firmware::acpi::facs::FACS_FIRMWARE_WAKING_VECTOR_OFFSET;
use kvm_ioctls::VmFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::shared::VmShared;
use super::VmError;
use crate::devices::cmos::RTC_IRQ;
use crate::devices::irq::IrqLines;
use crate::event_loop::{self, ShutdownSignals, Wake};
use crate::vcpu::VcpuSet;

/// How long the VM's thread waits for the vCPU threads to park before kicking them again (a
/// kick cannot be lost, but a thread may be between two checks of the suspend flag).
const REKICK_AFTER: Duration = Duration::from_millis(1);

/// What wakes a suspended VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WakeSource {
    /// The RTC alarm matched.
    RtcAlarm,
    /// `--wake-after` passed.
    WakeAfter,
}

impl WakeSource {
    fn name(self) -> &'static str {
        match self {
            Self::RtcAlarm => "the RTC alarm",
            Self::WakeAfter => "--wake-after",
        }
    }
}

/// What a suspend needs from the boot.
pub(super) struct Sleeper<'a> {
    /// What the vCPU threads share with this thread.
    pub shared: &'a VmShared,
    /// The vCPU threads, to kick.
    pub vcpus: &'a VcpuSet,
    /// The VM, to raise IRQ 8 on.
    pub vm: &'a VmFd,
    /// Guest RAM, to read the waking vector from.
    pub mem: &'a GuestMemoryMmap,
    /// Where the FACS is.
    pub facs_addr: u64,
    /// `--wake-after`.
    pub wake_after: Option<Duration>,
    /// Suppress the suspend and resume lines.
    pub quiet: bool,
}

/// Waits until the exit event, `deadline` or a shutdown signal; the exit event is consumed.
pub(super) fn until(
    shared: &VmShared,
    deadline: Option<Instant>,
    signals: &Arc<ShutdownSignals>,
) -> Result<Wake, VmError> {
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    // A zero timer would be a disarmed one.
    if left == Some(Duration::ZERO) {
        return Ok(Wake::Timeout);
    }
    let wake = event_loop::wait(&shared.exit_evt, left, signals)?;
    if wake == Wake::VmExit {
        // Consumed, so that the next wait sleeps until the next event (a write from now on
        // makes it readable again).
        let _ = shared.exit_evt.read();
    }
    Ok(wake)
}

impl Sleeper<'_> {
    /// Carries out a suspend the guest asked for: parks every vCPU, sleeps until the wake
    /// event and resumes. Returns how the VM ended instead, if it did (`deadline`, a signal,
    /// or a vCPU's terminal event while the others were parking).
    pub(super) fn sleep(
        &self,
        deadline: Option<Instant>,
        signals: &Arc<ShutdownSignals>,
    ) -> Result<Option<Wake>, VmError> {
        let n = self.shared.suspends();
        let count = self.vcpus.len();
        loop {
            self.vcpus.kick();
            if self.shared.wait_parked(count, REKICK_AFTER) {
                break;
            }
            if self.shared.outcome().is_some() {
                return Ok(Some(Wake::VmExit));
            }
        }
        log::debug!("acpi-s3: suspend {n}: all {count} vCPU threads parked");
        let asleep = Instant::now();
        let rtc = self.shared.devices.rtc_next_alarm();
        let timer = self.wake_after.map(|d| asleep + d);
        let wake = match (rtc, timer) {
            (Some(r), Some(t)) if t < r => Some((t, WakeSource::WakeAfter)),
            (Some(r), _) => Some((r, WakeSource::RtcAlarm)),
            (None, Some(t)) => Some((t, WakeSource::WakeAfter)),
            (None, None) => None,
        };
        self.say(|| match wake {
            Some((at, source)) => format!(
                "acpi-s3: suspend {n}: every vCPU stopped; {} wakes the VM in {} ms",
                source.name(),
                at.saturating_duration_since(asleep).as_millis()
            ),
            None => format!(
                "acpi-s3: suspend {n}: every vCPU stopped; no wake event is set (no RTC alarm, no --wake-after)"
            ),
        });
        let source = loop {
            let until_wake = match (wake, deadline) {
                (Some((w, _)), Some(d)) => Some(w.min(d)),
                (Some((w, _)), None) => Some(w),
                (None, d) => d,
            };
            match until(self.shared, until_wake, signals)? {
                Wake::Signal(s) => return Ok(Some(Wake::Signal(s))),
                // Nothing else runs; a stray event is consumed.
                Wake::VmExit if self.shared.outcome().is_some() => return Ok(Some(Wake::VmExit)),
                Wake::VmExit => {}
                Wake::Timeout => {
                    let now = Instant::now();
                    if deadline.is_some_and(|d| now >= d) {
                        return Ok(Some(Wake::Timeout));
                    }
                    if let Some((at, source)) = wake {
                        if now >= at {
                            break source;
                        }
                    }
                }
            }
        };
        if source == WakeSource::RtcAlarm {
            self.rtc_alarm()?;
        }
        let at = self.facs_addr + FACS_FIRMWARE_WAKING_VECTOR_OFFSET as u64;
        let vector: u32 = self
            .mem
            .read_obj(GuestAddress(at))
            .map_err(|e| VmError::WakingVector(at, e))?;
        log::debug!("acpi-s3: resume {n}: the FACS at {at:#x} holds waking vector {vector:#x}");
        self.say(|| {
            format!(
                "acpi-s3: resume {n}: woken by {} after {} ms; the BSP resumes at waking vector {vector:#x}",
                source.name(),
                asleep.elapsed().as_millis()
            )
        });
        self.shared.resume(vector);
        Ok(None)
    }

    /// The RTC alarm's time came: sets its flags and raises IRQ 8 if AIE asks for it.
    pub(super) fn rtc_alarm(&self) -> Result<(), VmError> {
        if self.shared.devices.rtc_alarm_fired() {
            self.vm
                .pulse(RTC_IRQ)
                .map_err(|e| VmError::VmIoctl("raise the RTC's interrupt line", e))?;
        }
        Ok(())
    }

    /// Prints a suspend or resume line unless quiet.
    fn say(&self, line: impl FnOnce() -> String) {
        if !self.quiet {
            log::info!("{}", line());
        }
    }
}
