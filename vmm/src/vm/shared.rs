//! What a boot's vCPU threads share with the VM's thread: the devices, the stop flag, the
//! first terminal event and the eventfd that wakes the VM's thread. It is the boot's
//! [`ExitHandler`].

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use vmm_sys_util::eventfd::EventFd;

use firmware::layout::REPORT_PORT;
use kvm_ioctls::VcpuFd;

use super::counters::{BootCounters, Point};
use crate::devices::Devices;
use crate::vcpu::{ExitHandler, Outcome};

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
    /// KVM's counters of the VM and its vCPUs.
    pub counters: BootCounters,
}

impl VmShared {
    /// New shared state around `devices`.
    pub(super) fn new(devices: Devices, counters: BootCounters) -> std::io::Result<Self> {
        Ok(Self {
            stop: AtomicBool::new(false),
            exit_evt: EventFd::new(libc::EFD_NONBLOCK)?,
            outcome: Mutex::new(None),
            devices,
            first_run: OnceLock::new(),
            counters,
        })
    }

    /// Records a terminal event (the first one wins) and stops the VM.
    pub(super) fn finish(&self, outcome: Outcome) {
        if let Ok(mut o) = self.outcome.lock() {
            if o.is_none() {
                *o = Some(outcome);
            }
        }
        self.request_stop();
        // If the eventfd counter is saturated the VM's thread is already awake.
        let _ = self.exit_evt.write(1);
    }

    /// Tells every vCPU thread to stop.
    pub(super) fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
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
    }
    fn vcpu_left(&self, vcpu: u32) {
        self.counters.vcpu(vcpu, Point::Exit);
    }
    fn io_out(&self, vcpu: u32, port: u16, data: &[u8]) -> ControlFlow<()> {
        if let Some(event) = self.devices.pio_out(vcpu, port, data) {
            self.finish(Outcome::Stop { vcpu, event });
        }
        // The guest's timed work is over once it rings the report doorbell.
        if port == REPORT_PORT && self.devices.report.first().is_some() {
            self.counters.doorbell();
        }
        ControlFlow::Continue(())
    }

    fn io_in(&self, _vcpu: u32, port: u16, data: &mut [u8]) -> ControlFlow<()> {
        self.devices.pio_in(port, data);
        ControlFlow::Continue(())
    }

    fn mmio_read(&self, _vcpu: u32, addr: u64, data: &mut [u8]) -> ControlFlow<()> {
        self.devices.mmio_read(addr, data);
        ControlFlow::Continue(())
    }

    fn mmio_write(&self, _vcpu: u32, addr: u64, data: &[u8]) -> ControlFlow<()> {
        self.devices.mmio_write(addr, data);
        ControlFlow::Continue(())
    }

    fn ended(&self, outcome: Outcome) -> ControlFlow<()> {
        self.finish(outcome);
        ControlFlow::Continue(())
    }
}
