//! The one vCPU run loop of the VMM: KVM_RUN until the VM stops, each exit handed to an
//! [`ExitHandler`] (a boot's devices, or memslot-burst's checks), kicks honoured through
//! `immediate_exit`.

use std::ops::ControlFlow;

use kvm_bindings::{KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN};
use kvm_ioctls::{VcpuExit, VcpuFd};

use super::kick::Running;
use super::outcome::Outcome;

/// What a VM does with its vCPUs' exits. `Break` stops this vCPU's loop; a VM that ends
/// stops every loop through [`ExitHandler::stopping`].
pub(crate) trait ExitHandler: Sync {
    /// True once the VM is stopping; checked before every KVM_RUN.
    fn stopping(&self) -> bool;
    /// vCPU `vcpu` is about to enter KVM_RUN for the first time.
    fn first_run(&self, _vcpu: u32) {}
    /// vCPU `vcpu`'s thread has started, before the vCPU's setup and the thread's seccomp
    /// filter: the moment to open what the thread will read later.
    fn vcpu_started(&self, _vcpu: u32, _fd: &VcpuFd) {}
    /// vCPU `vcpu` is set up and about to wait for the others; it has not run.
    fn vcpu_ready(&self, _vcpu: u32) {}
    /// vCPU `vcpu` has left its run loop for good (or, released after the VM began to stop,
    /// never entered it).
    fn vcpu_left(&self, _vcpu: u32) {}
    /// A port write.
    fn io_out(&self, vcpu: u32, port: u16, data: &[u8]) -> ControlFlow<()>;
    /// A port read; fills `data`.
    fn io_in(&self, vcpu: u32, port: u16, data: &mut [u8]) -> ControlFlow<()>;
    /// An MMIO read no memory slot backs; fills `data`.
    fn mmio_read(&self, vcpu: u32, addr: u64, data: &mut [u8]) -> ControlFlow<()>;
    /// An MMIO write no memory slot backs.
    fn mmio_write(&self, vcpu: u32, addr: u64, data: &[u8]) -> ControlFlow<()>;
    /// An exit that ends the VM as this vCPU sees it (a triple fault, an internal error, an
    /// exit sipi does not handle, a failed KVM_RUN).
    fn ended(&self, outcome: Outcome) -> ControlFlow<()>;
}

/// Runs vCPU `index` until `handler` says the VM is stopping or breaks the loop.
pub(crate) fn run(vcpu: &mut VcpuFd, index: u32, handler: &impl ExitHandler) {
    let _kicks = Running::enter(vcpu);
    handler.first_run(index);
    while !handler.stopping() {
        let flow = match vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) => handler.io_out(index, port, data),
            Ok(VcpuExit::IoIn(port, data)) => handler.io_in(index, port, data),
            Ok(VcpuExit::MmioRead(addr, data)) => handler.mmio_read(index, addr, data),
            Ok(VcpuExit::MmioWrite(addr, data)) => handler.mmio_write(index, addr, data),
            Ok(VcpuExit::Shutdown) => handler.ended(Outcome::TripleFault {
                vcpu: index,
                rip: rip(vcpu),
            }),
            Ok(VcpuExit::InternalError) => {
                // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so `internal` is the
                // union member KVM filled in.
                let suberror = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.internal.suberror };
                handler.ended(Outcome::InternalError {
                    vcpu: index,
                    suberror,
                    rip: rip(vcpu),
                })
            }
            Ok(VcpuExit::FailEntry(reason, _)) => handler.ended(Outcome::FailEntry {
                vcpu: index,
                reason,
            }),
            Ok(VcpuExit::SystemEvent(kind, _))
                if kind == KVM_SYSTEM_EVENT_SHUTDOWN || kind == KVM_SYSTEM_EVENT_RESET =>
            {
                handler.ended(Outcome::SystemEvent { vcpu: index, kind })
            }
            // Only without an in-kernel LAPIC; sipi always has one.
            Ok(VcpuExit::Hlt) => ControlFlow::Continue(()),
            Ok(VcpuExit::Intr) => ControlFlow::Continue(()),
            Ok(other) => handler.ended(Outcome::VcpuFailed {
                vcpu: index,
                message: format!("unexpected VM exit {other:?}"),
            }),
            // An AP waiting for SIPI returns EAGAIN when woken; EINTR is a kick from the VMM.
            Err(e) if e.errno() == libc::EAGAIN || e.errno() == libc::EINTR => {
                ControlFlow::Continue(())
            }
            Err(e) => handler.ended(Outcome::VcpuFailed {
                vcpu: index,
                message: format!("KVM_RUN failed: {e}"),
            }),
        };
        if flow.is_break() {
            break;
        }
    }
}

/// The vCPU's RIP, or 0 if it cannot be read.
fn rip(vcpu: &VcpuFd) -> u64 {
    vcpu.get_regs().map(|r| r.rip).unwrap_or(0)
}
