//! The vCPU threads of the burst VM: each runs the guest loop on the VMM's one run loop
//! (kicks through `immediate_exit`, the vCPU seccomp filter), and records what went wrong if
//! its memory ever did.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use firmware::layout::EXIT_PORT;
use kvm_ioctls::{VcpuFd, VmFd};
use seccompiler::BpfProgram;

use super::error::BurstError;
use super::guest::{self, STATUS_COUNTER_MISMATCH, STATUS_PATTERN_MISMATCH};
use crate::arch::x86_64::regs::StartState;
use crate::vcpu::set::VCPU_STACK_SIZE;
use crate::vcpu::{kick, run_loop, ExitHandler, Outcome};

/// What a vCPU saw go wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestFailure {
    /// The counter read back differently from what was just written.
    #[error("vCPU {0} read back a different value than it had just written to its counter")]
    CounterMismatch(u32),
    /// The pattern read wrong.
    #[error("vCPU {0} read a wrong pattern from its RAM")]
    PatternMismatch(u32),
    /// An access to RAM found no memory slot.
    #[error("vCPU {vcpu} lost its RAM: an access to {addr:#x} found no memory slot and exited to the VMM")]
    MemoryVanished { vcpu: u32, addr: u64 },
    /// Any other exit or a KVM_RUN error.
    #[error("vCPU {vcpu} stopped: {what}")]
    Stopped { vcpu: u32, what: String },
}

/// The burst VM's exit handler: every exit but a kick is a failure that stops its vCPU.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    failures: Mutex<Vec<GuestFailure>>,
}

impl Shared {
    fn fail(&self, f: GuestFailure) -> ControlFlow<()> {
        if let Ok(mut v) = self.failures.lock() {
            v.push(f);
        }
        ControlFlow::Break(())
    }

    fn unexpected(&self, vcpu: u32, what: String) -> ControlFlow<()> {
        self.fail(GuestFailure::Stopped { vcpu, what })
    }
}

impl ExitHandler for Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn io_out(&self, vcpu: u32, port: u16, data: &[u8]) -> ControlFlow<()> {
        if port != EXIT_PORT {
            return self.unexpected(vcpu, format!("unexpected port write to {port:#x}"));
        }
        let mut status = [0u8; 4];
        let n = data.len().min(4);
        status[..n].copy_from_slice(&data[..n]);
        self.fail(match u32::from_le_bytes(status) {
            STATUS_COUNTER_MISMATCH => GuestFailure::CounterMismatch(vcpu),
            STATUS_PATTERN_MISMATCH => GuestFailure::PatternMismatch(vcpu),
            s => GuestFailure::Stopped {
                vcpu,
                what: format!("unknown status {s} on the exit port"),
            },
        })
    }

    fn io_in(&self, vcpu: u32, port: u16, _data: &mut [u8]) -> ControlFlow<()> {
        self.unexpected(vcpu, format!("unexpected port read of {port:#x}"))
    }

    fn mmio_read(&self, vcpu: u32, addr: u64, _data: &mut [u8]) -> ControlFlow<()> {
        self.fail(GuestFailure::MemoryVanished { vcpu, addr })
    }

    fn mmio_write(&self, vcpu: u32, addr: u64, _data: &[u8]) -> ControlFlow<()> {
        self.fail(GuestFailure::MemoryVanished { vcpu, addr })
    }

    fn ended(&self, outcome: Outcome) -> ControlFlow<()> {
        let (vcpu, what) = match outcome {
            Outcome::VcpuFailed { vcpu, message } => (vcpu, message),
            Outcome::TripleFault { vcpu, rip } => (vcpu, format!("triple fault at RIP {rip:#x}")),
            Outcome::InternalError {
                vcpu,
                suberror,
                rip,
            } => (
                vcpu,
                format!("KVM internal error (suberror {suberror}) at RIP {rip:#x}"),
            ),
            Outcome::FailEntry { vcpu, reason } => {
                (vcpu, format!("VM entry failed (reason {reason:#x})"))
            }
            Outcome::SystemEvent { vcpu, kind } => (vcpu, format!("system event of type {kind}")),
            Outcome::Stop { vcpu, event } => (vcpu, format!("device event {event:?}")),
            Outcome::TooManySuspends { vcpu, limit } => {
                (vcpu, format!("more than {limit} ACPI S3 suspends"))
            }
        };
        self.unexpected(vcpu, what)
    }
}

/// Running vCPU threads.
pub(super) struct GuestVcpus {
    count: u32,
    threads: Vec<JoinHandle<VcpuFd>>,
    shared: Arc<Shared>,
}

impl GuestVcpus {
    /// Creates `count` vCPUs of `vm`, puts each at the start of the guest loop, and starts a
    /// thread running each, confined by `seccomp` when given.
    pub(super) fn start(
        vm: &VmFd,
        count: u32,
        seccomp: Option<&'static BpfProgram>,
    ) -> Result<Self, BurstError> {
        let mut vcpus = Self {
            count,
            threads: Vec::with_capacity(count as usize),
            shared: Arc::default(),
        };
        for index in 0..count {
            let mut vcpu = vm
                .create_vcpu(u64::from(index))
                .map_err(|e| BurstError::Vcpu(index, e))?;
            guest::setup_vcpu(&vcpu, index).map_err(|e| BurstError::Vcpu(index, e))?;
            let shared = Arc::clone(&vcpus.shared);
            let thread = std::thread::Builder::new()
                .name(format!("burst-vcpu{index}"))
                .stack_size(VCPU_STACK_SIZE)
                .spawn(move || {
                    kick::signal();
                    let confined = seccomp.map_or(Ok(()), crate::seccomp::install);
                    match confined {
                        // The burst's guest never suspends: the start state is never used.
                        Ok(()) => {
                            let start = StartState {
                                bsp: index == 0,
                                x2apic: false,
                            };
                            run_loop::run(&mut vcpu, index, start, &*shared)
                        }
                        Err(e) => {
                            let _ = shared.unexpected(
                                index,
                                format!("cannot confine its thread: {}", crate::error_line(&e)),
                            );
                        }
                    }
                    vcpu
                })
                .map_err(|e| BurstError::Spawn(index, e))?;
            vcpus.threads.push(thread);
        }
        Ok(vcpus)
    }

    /// vCPUs started.
    pub(super) fn count(&self) -> u32 {
        self.count
    }

    /// What went wrong so far.
    pub(super) fn failures(&self) -> Vec<GuestFailure> {
        self.shared
            .failures
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// Stops and joins every thread; returns what went wrong.
    pub(super) fn stop(&mut self) -> Vec<GuestFailure> {
        self.shared.stop.store(true, Ordering::Release);
        drop(kick::stop_threads(std::mem::take(&mut self.threads)));
        self.failures()
    }
}

impl Drop for GuestVcpus {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop();
        }
    }
}
