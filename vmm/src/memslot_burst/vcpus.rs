//! The vCPU threads of the burst VM: each runs the guest loop until stopped, and records what
//! went wrong if its memory ever did.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use firmware::layout::EXIT_PORT;
use kvm_ioctls::{VcpuExit, VcpuFd, VmFd};

use super::error::BurstError;
use super::guest::{self, STATUS_COUNTER_MISMATCH, STATUS_PATTERN_MISMATCH};

/// Stack size of a burst vCPU thread (the loop needs little; 64 threads or more may exist).
const VCPU_STACK_SIZE: usize = 128 << 10;

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

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    failures: Mutex<Vec<GuestFailure>>,
}

impl Shared {
    fn fail(&self, f: GuestFailure) {
        if let Ok(mut v) = self.failures.lock() {
            v.push(f);
        }
    }
}

/// Running vCPU threads.
pub struct GuestVcpus {
    count: u32,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl GuestVcpus {
    /// Creates `count` vCPUs of `vm`, puts each at the start of the guest loop, and starts a
    /// thread running each.
    pub fn start(vm: &VmFd, count: u32) -> Result<Self, BurstError> {
        let mut vcpus = Self {
            count,
            threads: Vec::with_capacity(count as usize),
            shared: Arc::default(),
        };
        for index in 0..count {
            let vcpu = vm
                .create_vcpu(u64::from(index))
                .map_err(|e| BurstError::Vcpu(index, e))?;
            guest::setup_vcpu(&vcpu, index).map_err(|e| BurstError::Vcpu(index, e))?;
            let shared = Arc::clone(&vcpus.shared);
            let thread = std::thread::Builder::new()
                .name(format!("burst-vcpu{index}"))
                .stack_size(VCPU_STACK_SIZE)
                .spawn(move || run(vcpu, index, &shared))
                .map_err(|e| BurstError::Spawn(index, e))?;
            vcpus.threads.push(thread);
        }
        Ok(vcpus)
    }

    /// vCPUs started.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// What went wrong so far.
    pub fn failures(&self) -> Vec<GuestFailure> {
        self.shared
            .failures
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// Stops and joins every thread; returns what went wrong.
    pub fn stop(&mut self) -> Vec<GuestFailure> {
        self.shared.stop.store(true, Ordering::Release);
        crate::vcpu::stop_threads(std::mem::take(&mut self.threads));
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

/// The run loop of one vCPU.
fn run(mut vcpu: VcpuFd, index: u32, shared: &Shared) {
    while !shared.stop.load(Ordering::Acquire) {
        let failure = match vcpu.run() {
            Ok(VcpuExit::IoOut(EXIT_PORT, data)) => {
                let mut status = [0u8; 4];
                let n = data.len().min(4);
                status[..n].copy_from_slice(&data[..n]);
                Some(match u32::from_le_bytes(status) {
                    STATUS_COUNTER_MISMATCH => GuestFailure::CounterMismatch(index),
                    STATUS_PATTERN_MISMATCH => GuestFailure::PatternMismatch(index),
                    s => GuestFailure::Stopped {
                        vcpu: index,
                        what: format!("unknown status {s} on the exit port"),
                    },
                })
            }
            Ok(VcpuExit::MmioRead(addr, _)) | Ok(VcpuExit::MmioWrite(addr, _)) => {
                Some(GuestFailure::MemoryVanished { vcpu: index, addr })
            }
            Ok(VcpuExit::Intr) => None,
            Ok(other) => Some(GuestFailure::Stopped {
                vcpu: index,
                what: format!("unexpected VM exit {other:?}"),
            }),
            // EINTR: a kick from stop(); EAGAIN: KVM asks to be called again.
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => None,
            Err(e) => Some(GuestFailure::Stopped {
                vcpu: index,
                what: format!("KVM_RUN failed: {e}"),
            }),
        };
        if let Some(f) = failure {
            shared.fail(f);
            return;
        }
    }
}
