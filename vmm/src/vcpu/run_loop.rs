//! The one vCPU run loop of the VMM: KVM_RUN until the VM stops, each exit handed to an
//! [`ExitHandler`] (a boot's devices, or memslot-burst's checks), kicks honoured through
//! `immediate_exit`. A VM that suspends (ACPI S3) parks every loop ([`ExitHandler::park`]);
//! on resume each thread puts its own vCPU in the state of a resumed machine before it runs
//! again.

use std::ops::ControlFlow;

use kvm_bindings::{KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN};
use kvm_ioctls::{VcpuExit, VcpuFd, VmFd};

use super::kick::Running;
use super::outcome::Outcome;
use crate::arch::x86_64::regs::StartState;
use crate::arch::x86_64::reset;

/// What a VM does with its vCPUs' exits. `Break` stops this vCPU's loop; a VM that ends
/// stops every loop through [`ExitHandler::stopping`].
pub(crate) trait ExitHandler: Sync {
    /// True once the VM is stopping; checked before every KVM_RUN.
    fn stopping(&self) -> bool;
    /// True while the VM is suspending or suspended: the loop parks before its next KVM_RUN.
    fn pausing(&self) -> bool {
        false
    }
    /// Parks vCPU `vcpu`'s thread until the VM resumes; returns the FACS waking vector to
    /// resume at, or None if the VM is stopping instead.
    fn park(&self, _vcpu: u32) -> Option<u32> {
        None
    }
    /// vCPU 0 of `vm` was created, on the VM's thread, before any vCPU thread exists: the time
    /// to set up what KVM shares through a vCPU's file (the coalesced I/O ring).
    fn bsp_created(&self, _vm: &VmFd, _bsp: &VcpuFd) {}
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
    /// vCPU `vcpu` exited to the VMM for port I/O or MMIO (once per exit, before the exit's
    /// accesses are handed over).
    fn userspace_exit(&self, _vcpu: u32) {}
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

/// Runs vCPU `index` (which starts as `start` says) until `handler` says the VM is stopping
/// or breaks the loop.
pub(crate) fn run(vcpu: &mut VcpuFd, index: u32, start: StartState, handler: &impl ExitHandler) {
    let _kicks = Running::enter(vcpu);
    handler.first_run(index);
    while !handler.stopping() {
        if handler.pausing() {
            if let Some(vector) = handler.park(index) {
                if let Err(e) = reset::after_resume(vcpu, start, vector) {
                    let message = format!("cannot resume from S3: {}", crate::error_line(&e));
                    if handler
                        .ended(Outcome::VcpuFailed {
                            vcpu: index,
                            message,
                        })
                        .is_break()
                    {
                        break;
                    }
                }
            }
            continue;
        }
        let exit = vcpu.run();
        if matches!(
            exit,
            Ok(VcpuExit::IoOut(..)
                | VcpuExit::IoIn(..)
                | VcpuExit::MmioRead(..)
                | VcpuExit::MmioWrite(..))
        ) {
            handler.userspace_exit(index);
        }
        let flow = match exit {
            Ok(VcpuExit::IoOut(port, data)) => {
                let data: *const [u8] = data;
                let size = io_size(vcpu);
                // SAFETY: `data` is this exit's data area in the vCPU's kvm_run mapping, which
                // lives as long as `vcpu` and which nothing else touches until the next
                // KVM_RUN. Reading the access size above borrowed only the `kvm_run` struct at
                // the start of the mapping; KVM puts port I/O data on the page after it
                // (KVM_PIO_PAGE_OFFSET), so the two never overlap.
                let data = unsafe { &*data };
                each_access(data.chunks(size), |d| handler.io_out(index, port, d))
            }
            Ok(VcpuExit::IoIn(port, data)) => {
                let data: *mut [u8] = data;
                let size = io_size(vcpu);
                // SAFETY: as for IoOut; KVM reads the data area back on the next KVM_RUN.
                let data = unsafe { &mut *data };
                each_access(data.chunks_mut(size), |d| handler.io_in(index, port, d))
            }
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
            // An AP waiting for SIPI returns EAGAIN when woken.
            Err(e) if e.errno() == libc::EAGAIN => ControlFlow::Continue(()),
            // A kick from the VMM: clear `immediate_exit` so that the next KVM_RUN runs (the
            // loop checks why it was kicked before that; a kick from now on sets it again).
            Err(e) if e.errno() == libc::EINTR => {
                vcpu.set_kvm_immediate_exit(0);
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

/// The size of each access of the port I/O exit KVM just returned. A string instruction
/// (`rep insb`, `rep outsw`) can bring several accesses in one exit, `count` of them back to
/// back in the data area (Documentation/virt/kvm/api.rst, KVM_EXIT_IO): each must reach the
/// device as the access it is, not as one wide access. Never 0, so it can size chunks.
fn io_size(vcpu: &mut VcpuFd) -> usize {
    // SAFETY: the exit reason is KVM_EXIT_IO (the caller matched VcpuExit::IoIn or IoOut), so
    // `io` is the union member KVM filled in; it is plain integers.
    let io = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.io };
    usize::from(io.size).max(1)
}

/// Hands each access of a string I/O exit to `access` in order, stopping at the first that
/// breaks the loop.
fn each_access<T>(
    accesses: impl Iterator<Item = T>,
    mut access: impl FnMut(T) -> ControlFlow<()>,
) -> ControlFlow<()> {
    for a in accesses {
        access(a)?;
    }
    ControlFlow::Continue(())
}

/// The vCPU's RIP, or 0 if it cannot be read.
fn rip(vcpu: &VcpuFd) -> u64 {
    vcpu.get_regs().map(|r| r.rip).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_exit_reaches_the_handler_as_its_accesses_in_order() {
        // `rep outsw` of three words: three 2-byte accesses.
        let data = [1u8, 2, 3, 4, 5, 6];
        let mut seen = Vec::new();
        let flow = each_access(data.chunks(2), |d| {
            seen.push(d.to_vec());
            ControlFlow::Continue(())
        });
        assert_eq!(flow, ControlFlow::Continue(()));
        assert_eq!(seen, [vec![1, 2], vec![3, 4], vec![5, 6]]);
        // `rep insb` of four bytes: each read fills its own byte.
        let mut buf = [0u8; 4];
        let mut next = 0x10;
        let _ = each_access(buf.chunks_mut(1), |d| {
            d[0] = next;
            next += 1;
            ControlFlow::Continue(())
        });
        assert_eq!(buf, [0x10, 0x11, 0x12, 0x13]);
    }

    #[test]
    fn an_access_that_stops_the_loop_ends_the_string() {
        let data = [0u8; 8];
        let mut calls = 0;
        let flow = each_access(data.chunks(1), |_| {
            calls += 1;
            if calls == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!((flow, calls), (ControlFlow::Break(()), 3));
    }
}
