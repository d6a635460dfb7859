//! What a boot's vCPU threads share with the VM's thread: the devices, the stop flag, the
//! first terminal event, the eventfd that wakes the VM's thread, and the ACPI S3 rendezvous
//! (the vCPU threads park there while the VM is suspended). It is the boot's [`ExitHandler`].

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use kvm_ioctls::{VcpuFd, VmFd};
use vmm_sys_util::eventfd::EventFd;

use firmware::layout::{REPORT_PORT, VCPUS_READY_PORT};

use super::counters::{BootCounters, Point};
use super::ready::{Readiness, ReadyStats};
use super::window::WindowExits;
use crate::arch::x86_64::topology::Topology;
use crate::devices::{DeviceEvent, Devices};
use crate::vcpu::{ExitHandler, Outcome};

/// How many times a guest may suspend the VM (ACPI S3) in one boot; the next suspend ends it
/// (a guest that suspends in a loop would otherwise run until `--timeout`).
pub(crate) const MAX_SUSPENDS: u32 = 1000;

/// Where the vCPU threads are in a suspend, under [`VmShared`]'s `sleep` lock.
#[derive(Debug, Default)]
struct Sleep {
    /// vCPU threads parked in the current suspend.
    parked: usize,
    /// Bumped by each resume: a parked thread waits for it to change.
    resumes: u64,
    /// The FACS waking vector of the last resume.
    waking_vector: u32,
    /// Suspends so far.
    suspends: u32,
}

/// State shared by a boot's vCPU threads and its VM thread.
pub(super) struct VmShared {
    /// Set once the VM must stop; every vCPU thread checks it before each KVM_RUN.
    stop: AtomicBool,
    /// Written when `outcome` is set, to wake the VM's thread.
    pub exit_evt: EventFd,
    /// The first terminal event.
    outcome: Mutex<Option<Outcome>>,
    /// The devices.
    pub devices: Devices,
    /// When the BSP first entered KVM_RUN.
    first_run: OnceLock<Instant>,
    /// Set from a suspend until the resume: every vCPU thread parks before its next KVM_RUN.
    pausing: AtomicBool,
    /// The suspend rendezvous.
    sleep: Mutex<Sleep>,
    /// The VM's thread waits here for the vCPU threads to park.
    parked: Condvar,
    /// Parked vCPU threads wait here for the resume (or the stop).
    resumed: Condvar,
    /// KVM's counters of the VM and its vCPUs.
    pub counters: BootCounters,
    /// Each vCPU's exits to the VMM before the report doorbell.
    pub window: WindowExits,
    /// The vCPUs ready to be kicked, and the guest's questions about them.
    readiness: Readiness,
}

impl VmShared {
    /// New shared state around `devices`.
    pub(super) fn new(
        devices: Devices,
        counters: BootCounters,
        topology: Topology,
    ) -> std::io::Result<Self> {
        let vcpus = topology.vcpus();
        Ok(Self {
            stop: AtomicBool::new(false),
            exit_evt: EventFd::new(libc::EFD_NONBLOCK)?,
            outcome: Mutex::new(None),
            devices,
            first_run: OnceLock::new(),
            pausing: AtomicBool::new(false),
            sleep: Mutex::new(Sleep::default()),
            parked: Condvar::new(),
            resumed: Condvar::new(),
            counters,
            window: WindowExits::new(vcpus),
            readiness: Readiness::new(topology),
        })
    }

    fn sleep(&self) -> MutexGuard<'_, Sleep> {
        self.sleep
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// vCPU `vcpu` wrote S3 to PM1a control: every vCPU is to park and the VM's thread to
    /// handle the suspend; past [`MAX_SUSPENDS`], the VM ends instead.
    fn suspend(&self, vcpu: u32) {
        let mut s = self.sleep();
        s.suspends += 1;
        if s.suspends > MAX_SUSPENDS {
            drop(s);
            self.finish(Outcome::TooManySuspends {
                vcpu,
                limit: MAX_SUSPENDS,
            });
            return;
        }
        self.pausing.store(true, Ordering::Release);
        drop(s);
        let _ = self.exit_evt.write(1);
    }

    /// True from a guest's suspend until the VM's thread resumes the vCPUs.
    pub(super) fn suspending(&self) -> bool {
        self.pausing.load(Ordering::Acquire)
    }

    /// Suspends so far.
    pub(super) fn suspends(&self) -> u32 {
        self.sleep().suspends
    }

    /// Waits up to `for_at_most` for `count` vCPU threads to be parked; true if they are.
    pub(super) fn wait_parked(&self, count: usize, for_at_most: Duration) -> bool {
        let s = self.sleep();
        let (s, _) = self
            .parked
            .wait_timeout_while(s, for_at_most, |s| s.parked < count)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.parked >= count
    }

    /// Resumes every parked vCPU thread: the BSP at `waking_vector`, the APs waiting for SIPI.
    pub(super) fn resume(&self, waking_vector: u32) {
        let mut s = self.sleep();
        s.parked = 0;
        s.resumes += 1;
        s.waking_vector = waking_vector;
        self.pausing.store(false, Ordering::Release);
        drop(s);
        self.resumed.notify_all();
    }

    /// Records a terminal event (the first one wins) and stops the VM.
    pub(super) fn finish(&self, outcome: Outcome) {
        if let Ok(mut o) = self.outcome.lock() {
            if o.is_none() {
                log::debug!("the VM stops: {outcome:?}");
                *o = Some(outcome);
            }
        }
        self.request_stop();
        // If the eventfd counter is saturated the VM's thread is already awake.
        let _ = self.exit_evt.write(1);
    }

    /// Tells every vCPU thread to stop, parked ones and one waiting for a vCPU to become
    /// ready included.
    pub(super) fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        // Under the lock, so that a thread about to park sees the flag or gets the wake-up.
        drop(self.sleep());
        self.resumed.notify_all();
        self.readiness.wake_all();
    }

    /// What the vCPU-readiness port saw.
    pub(super) fn readiness(&self) -> ReadyStats {
        self.readiness.stats()
    }

    /// The first terminal event, if any.
    pub(super) fn outcome(&self) -> Option<Outcome> {
        self.outcome.lock().ok().and_then(|o| o.clone())
    }

    /// When the BSP first entered KVM_RUN, if it did.
    pub(super) fn first_run(&self) -> Option<Instant> {
        self.first_run.get().copied()
    }
}

impl ExitHandler for VmShared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn pausing(&self) -> bool {
        self.suspending()
    }

    fn park(&self, _vcpu: u32) -> Option<u32> {
        let mut s = self.sleep();
        let resumes = s.resumes;
        s.parked += 1;
        self.parked.notify_one();
        while s.resumes == resumes && !self.stopping() {
            s = self
                .resumed
                .wait(s)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        (!self.stopping()).then_some(s.waking_vector)
    }

    fn bsp_created(&self, vm: &VmFd, bsp: &VcpuFd) {
        self.devices.coalesce_console(vm, bsp);
    }

    fn first_run(&self, vcpu: u32) {
        if vcpu == 0 {
            let _ = self.first_run.set(Instant::now());
        }
    }

    fn vcpu_started(&self, vcpu: u32, fd: &VcpuFd) {
        self.counters.open_vcpu(vcpu, fd);
    }
    fn vcpu_ready(&self, vcpu: u32) {
        self.counters.vcpu(vcpu, Point::Setup);
        self.readiness.mark(vcpu);
    }
    fn vcpu_left(&self, vcpu: u32) {
        self.counters.vcpu(vcpu, Point::Exit);
    }
    fn userspace_exit(&self, vcpu: u32) {
        self.window.exit(vcpu);
    }
    fn io_out(&self, vcpu: u32, port: u16, data: &[u8]) -> ControlFlow<()> {
        if port == VCPUS_READY_PORT {
            if let Ok(apic_id) = <[u8; 4]>::try_from(data) {
                self.readiness.ask(u32::from_le_bytes(apic_id));
            }
            return ControlFlow::Continue(());
        }
        let event = self.devices.pio_out(vcpu, port, data);
        if let Some(e) = event {
            log::debug!(
                "vCPU {vcpu}'s write of {data:x?} to port {port:#x} is a device event: {e:?}"
            );
        }
        match event {
            Some(DeviceEvent::Suspend) => self.suspend(vcpu),
            Some(event) => self.finish(Outcome::Stop { vcpu, event }),
            None => {}
        }
        // The guest's timed work is over once it rings the report doorbell.
        if port == REPORT_PORT && self.devices.report.first().is_some() {
            self.window.close();
            self.counters.doorbell();
        }
        ControlFlow::Continue(())
    }

    fn io_in(&self, _vcpu: u32, port: u16, data: &mut [u8]) -> ControlFlow<()> {
        if port == VCPUS_READY_PORT {
            // A read of another width gets all ones, as from an unassigned port.
            data.fill(0xff);
            if data.len() == 4 {
                let bound = self.readiness.answer(|| self.stopping());
                data.copy_from_slice(&bound.to_le_bytes());
            }
            return ControlFlow::Continue(());
        }
        self.devices.pio_in(port, data);
        ControlFlow::Continue(())
    }

    fn mmio_read(&self, _vcpu: u32, addr: u64, data: &mut [u8]) -> ControlFlow<()> {
        self.devices.mmio_read(addr, data);
        ControlFlow::Continue(())
    }

    fn mmio_write(&self, vcpu: u32, addr: u64, data: &[u8]) -> ControlFlow<()> {
        self.devices.mmio_write(vcpu, addr, data);
        ControlFlow::Continue(())
    }

    fn ended(&self, outcome: Outcome) -> ControlFlow<()> {
        self.finish(outcome);
        ControlFlow::Continue(())
    }
}
