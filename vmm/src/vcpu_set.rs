//! The set of vCPU threads of one VM: created in APIC ID order on the calling thread, each
//! configured on its own thread, held at a barrier until every one is ready, released together,
//! and stopped and joined together.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;

use kvm_bindings::CpuId;
use kvm_ioctls::{VcpuFd, VmFd};
use seccompiler::BpfProgram;

use crate::loader::Entry;
use crate::vcpu::{self, VcpuError, VcpuSpec, VmShared};

/// Stack size of a vCPU thread: the run loop needs little, and hundreds of threads exist.
const VCPU_STACK_SIZE: usize = 128 << 10;

/// Running vCPU threads waiting to be released.
pub struct VcpuSet {
    threads: Vec<JoinHandle<Option<VcpuFd>>>,
    configured: Arc<Barrier>,
    start: Arc<Barrier>,
    errors: Arc<Mutex<Vec<VcpuError>>>,
    shared: Arc<VmShared>,
}

impl VcpuSet {
    /// Creates `count` vCPUs (APIC IDs 0..count, in order: KVM maps not-yet-x2APIC IDs above
    /// 255 onto the first vCPU it finds with the truncated ID) and starts a thread for each,
    /// which configures its vCPU and waits. Never fails: a vCPU that cannot be created or
    /// started records its error, and a stand-in thread keeps the barriers' counts right.
    pub fn spawn(
        vm: &VmFd,
        count: u32,
        entry: Entry,
        cpuid: &Arc<CpuId>,
        shared: &Arc<VmShared>,
    ) -> Self {
        let configured = Arc::new(Barrier::new(count as usize + 1));
        let start = Arc::new(Barrier::new(count as usize + 1));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::with_capacity(count as usize);
        let record = |e: VcpuError| {
            if let Ok(mut v) = errors.lock() {
                v.push(e);
            }
        };
        // Built here, on the calling thread, once per process; shared by every vCPU thread.
        // A filter that cannot be built fails the VM as a vCPU that cannot be created does.
        let (seccomp, mut failed) = match crate::seccomp::vcpu_filter() {
            Ok(filter) => (filter, false),
            Err(e) => {
                record(e.into());
                shared.stop.store(true, Ordering::Release);
                (None, true)
            }
        };
        for index in 0..count {
            if !failed {
                match spawn_one(
                    vm,
                    index,
                    count,
                    entry,
                    cpuid,
                    shared,
                    &configured,
                    &start,
                    &errors,
                    seccomp,
                ) {
                    Ok(t) => {
                        threads.push(t);
                        continue;
                    }
                    Err(e) => {
                        record(e);
                        failed = true;
                        shared.stop.store(true, Ordering::Release);
                    }
                }
            }
            // A stand-in: waits at both barriers so that they still open.
            let (c, s) = (Arc::clone(&configured), Arc::clone(&start));
            match std::thread::Builder::new()
                .stack_size(VCPU_STACK_SIZE)
                .spawn(move || {
                    c.wait();
                    s.wait();
                    None
                }) {
                Ok(t) => threads.push(t),
                // Without threads at all, the barriers cannot open; nothing sensible remains
                // but to end the process with the error.
                Err(e) => {
                    eprintln!("error: cannot start a thread for vCPU {index}: {e}");
                    std::process::exit(i32::from(crate::exit::Status::Host.code()));
                }
            }
        }
        Self {
            threads,
            configured,
            start,
            errors,
            shared: Arc::clone(shared),
        }
    }

    /// Waits until every vCPU is configured. On any vCPU's error, stops and joins them all and
    /// returns the first error.
    pub fn wait_configured(self) -> Result<Self, VcpuError> {
        self.configured.wait();
        let first = self
            .errors
            .lock()
            .ok()
            .and_then(|mut e| (!e.is_empty()).then(|| e.remove(0)));
        match first {
            None => Ok(self),
            Some(e) => {
                self.abort_after_configured();
                Err(e)
            }
        }
    }

    /// Stops the vCPUs before they ran (for a failure elsewhere while they were configuring).
    pub fn abort(self) {
        self.shared.stop.store(true, Ordering::Release);
        self.configured.wait();
        self.abort_after_configured();
    }

    fn abort_after_configured(self) {
        self.shared.stop.store(true, Ordering::Release);
        self.start.wait();
        for t in self.threads {
            let _ = t.join();
        }
    }

    /// Lets every vCPU run.
    pub fn release(&self) {
        self.start.wait();
    }

    /// Stops every vCPU thread and joins them (the caller set `stop`, or sets it now).
    pub fn stop(self) {
        self.shared.stop.store(true, Ordering::Release);
        // The vCPUs close after the last thread is gone (see `vcpu::thread_main`).
        drop(vcpu::stop_threads(self.threads));
    }
}

#[allow(clippy::too_many_arguments)]
fn spawn_one(
    vm: &VmFd,
    index: u32,
    count: u32,
    entry: Entry,
    cpuid: &Arc<CpuId>,
    shared: &Arc<VmShared>,
    configured: &Arc<Barrier>,
    start: &Arc<Barrier>,
    errors: &Arc<Mutex<Vec<VcpuError>>>,
    seccomp: Option<&'static BpfProgram>,
) -> Result<JoinHandle<Option<VcpuFd>>, VcpuError> {
    let vcpu = vm
        .create_vcpu(u64::from(index))
        .map_err(|e| VcpuError::Create(index, e))?;
    if index == 0 {
        // Every vCPU has the same TSC frequency: one ioctl instead of one per vCPU. Stored
        // before any vCPU thread exists (spawning orders it before their loads).
        let khz = vcpu.get_tsc_khz().unwrap_or(0);
        shared.tsc_khz.store(khz, Ordering::Relaxed);
    }
    let spec = VcpuSpec {
        index,
        count,
        entry: (index == 0).then_some(entry),
        vcpu,
        cpuid: Arc::clone(cpuid),
        shared: Arc::clone(shared),
        configured: Arc::clone(configured),
        start: Arc::clone(start),
        errors: Arc::clone(errors),
        seccomp,
    };
    std::thread::Builder::new()
        .name(format!("vcpu{index}"))
        .stack_size(VCPU_STACK_SIZE)
        .spawn(move || Some(vcpu::thread_main(spec)))
        .map_err(|e| VcpuError::Spawn(index, e))
}
