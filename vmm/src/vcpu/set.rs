//! The vCPU threads of one boot: created in APIC ID order on the calling thread, each
//! configured on its own thread, held until every one is ready (and any test-only TSC write
//! is made), released together, and stopped and joined together.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use kvm_ioctls::VmFd;
use vmm_sys_util::signal::Killable;

use super::{kick, BootVcpus, ExitHandler, Vcpu, VcpuError};

/// How long a halting vCPU thread may take to leave KVM_RUN after a kick before it is kicked
/// again.
const REKICK_AFTER: Duration = Duration::from_millis(1);

/// Stack size of a vCPU thread: the run loop needs little, and hundreds of threads exist.
pub(crate) const VCPU_STACK_SIZE: usize = 128 << 10;

/// Where the vCPU threads are in their start-up, as the VM's thread decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Configuring their vCPUs.
    Configure,
    /// Every vCPU exists: test-only TSC writes.
    BeforeRun,
    /// Running; a thread that left its run loop waits here.
    Run,
    /// Giving up (before running, or after leaving the run loop): the threads end.
    Abort,
}

#[derive(Debug)]
struct State {
    stage: Stage,
    /// Threads done configuring.
    configured: usize,
    /// Threads done with [`Stage::BeforeRun`].
    prepared: usize,
    /// Threads that left their run loop for good (or never entered it).
    left: usize,
    /// Setup errors, for the VM's thread.
    errors: Vec<VcpuError>,
}

/// The VM's thread and the vCPU threads meet here. Two condition variables, so that an
/// arrival wakes only the VM's thread and a new stage wakes only the vCPU threads: with one,
/// each of hundreds of arrivals would wake every thread already waiting.
#[derive(Debug)]
struct Gate {
    state: Mutex<State>,
    /// The VM's thread waits here for arrivals.
    arrived: Condvar,
    /// The vCPU threads wait here for the next stage.
    moved_on: Condvar,
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a vCPU thread's step (and its error), then waits until the VM's thread moves
    /// past `stage`; returns the stage it moved to.
    fn arrive(&self, stage: Stage, result: Result<(), VcpuError>) -> Stage {
        let mut s = self.lock();
        if let Err(e) = result {
            s.errors.push(e);
        }
        match stage {
            Stage::Configure => s.configured += 1,
            _ => s.prepared += 1,
        }
        self.arrived.notify_one();
        while s.stage == stage {
            s = self.moved_on.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.stage
    }

    /// Waits until `count` threads are done with `stage`; returns the first error, if any.
    fn wait_for(&self, stage: Stage, count: usize) -> Option<VcpuError> {
        let mut s = self.lock();
        loop {
            let done = match stage {
                Stage::Configure => s.configured,
                _ => s.prepared,
            };
            if done >= count {
                return (!s.errors.is_empty()).then(|| s.errors.remove(0));
            }
            s = self.arrived.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Records that a vCPU thread left its run loop, then holds it until the VM's thread
    /// lets the threads end ([`Stage::Abort`]).
    fn leave(&self) {
        let mut s = self.lock();
        s.left += 1;
        self.arrived.notify_one();
        while s.stage == Stage::Run {
            s = self.moved_on.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits up to `for_at_most` until `count` threads left their run loop; true if they did.
    fn wait_left(&self, count: usize, for_at_most: Duration) -> bool {
        let s = self.lock();
        let (s, _) = self
            .arrived
            .wait_timeout_while(s, for_at_most, |s| s.left < count)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.left >= count
    }

    fn set(&self, stage: Stage) {
        self.lock().stage = stage;
        self.moved_on.notify_all();
    }
}

/// The vCPU threads of a boot.
pub(crate) struct VcpuSet {
    threads: Vec<JoinHandle<Vcpu>>,
    gate: Arc<Gate>,
    tsc_khz: Option<u32>,
}

impl VcpuSet {
    /// Creates the topology's vCPUs (in APIC ID order: KVM maps not-yet-x2APIC IDs above 255
    /// onto the first vCPU it finds with the truncated ID) and starts a thread for each, which
    /// configures its vCPU and waits. The TSC frequency is read once, from the BSP's vCPU,
    /// before any thread exists: every vCPU has the same. Never fails here: a vCPU that cannot
    /// be created or started ends the creation, and [`VcpuSet::wait_configured`] returns its
    /// error.
    ///
    /// `after_each` runs on the calling thread after each vCPU's thread is started: the moment
    /// to [`VcpuSet::release`] the vCPUs created so far, while the others are still being
    /// created (`--bsp-start early`).
    pub(crate) fn spawn<H: ExitHandler + Send + Sync + 'static>(
        vm: &VmFd,
        mut boot: BootVcpus,
        handler: &Arc<H>,
        mut after_each: impl FnMut(&Self),
    ) -> Self {
        let count = boot.topology.vcpus();
        let gate = Arc::new(Gate {
            state: Mutex::new(State {
                stage: Stage::Configure,
                configured: 0,
                prepared: 0,
                left: 0,
                errors: Vec::new(),
            }),
            arrived: Condvar::new(),
            moved_on: Condvar::new(),
        });
        let mut set = Self {
            threads: Vec::with_capacity(count as usize),
            gate,
            tsc_khz: None,
        };
        let first = match vm.create_vcpu(0) {
            Ok(fd) => fd,
            Err(e) => {
                set.fail(VcpuError::Create(0, e));
                return set;
            }
        };
        handler.bsp_created(vm, &first);
        boot.tsc_khz = first.get_tsc_khz().ok().filter(|k| *k > 0);
        set.tsc_khz = boot.tsc_khz;
        let boot = Arc::new(boot);
        let mut next = Some(first);
        for index in 0..count {
            let fd = match next
                .take()
                .map_or_else(|| vm.create_vcpu(u64::from(index)), Ok)
            {
                Ok(fd) => fd,
                Err(e) => {
                    set.fail(VcpuError::Create(index, e));
                    break;
                }
            };
            let vcpu = Vcpu::new(fd, index, Arc::clone(&boot));
            let (gate, handler) = (Arc::clone(&set.gate), Arc::clone(handler));
            let spawned = std::thread::Builder::new()
                .name(format!("vcpu{index}"))
                .stack_size(VCPU_STACK_SIZE)
                .spawn(move || thread_main(vcpu, &gate, &*handler));
            match spawned {
                Ok(t) => set.threads.push(t),
                Err(e) => {
                    set.fail(VcpuError::Spawn(index, e));
                    break;
                }
            }
            after_each(&set);
        }
        set
    }

    /// Records an error of the VM's thread for [`VcpuSet::wait_configured`].
    fn fail(&self, e: VcpuError) {
        self.gate.lock().errors.push(e);
    }

    /// The TSC frequency KVM gives the vCPUs, if it told.
    pub(crate) fn tsc_khz(&self) -> Option<u32> {
        self.tsc_khz
    }

    /// Waits until every vCPU is configured and ready to run. On any vCPU's error, stops and
    /// joins them all and returns the first error.
    /// Already released ([`VcpuSet::release`] before every vCPU was configured), the vCPUs
    /// that are configured may be running: on an error `stop_vm` tells the handler the VM is
    /// stopping, then every vCPU is stopped.
    pub(crate) fn wait_configured(self, stop_vm: impl FnOnce()) -> Result<Self, VcpuError> {
        let n = self.threads.len();
        let mut failed = self.gate.wait_for(Stage::Configure, n);
        if failed.is_none() {
            if !self.released() {
                self.gate.set(Stage::BeforeRun);
            }
            failed = self.gate.wait_for(Stage::BeforeRun, n);
        }
        match failed {
            None => Ok(self),
            Some(e) => {
                stop_vm();
                self.abort();
                Err(e)
            }
        }
    }

    /// Stops the vCPUs (for a failure elsewhere while they were configuring): those still
    /// waiting to run give up, and those already released are kicked out of KVM_RUN, which
    /// they leave for good once the handler says the VM is stopping.
    pub(crate) fn abort(self) {
        let released = self.released();
        self.gate.set(Stage::Abort);
        match released {
            true => drop(kick::stop_threads(self.threads)),
            false => {
                for t in self.threads {
                    let _ = t.join();
                }
            }
        }
    }

    /// Lets every vCPU run: those configured at once, the others as soon as they are.
    pub(crate) fn release(&self) {
        self.gate.set(Stage::Run);
    }

    /// True once [`VcpuSet::release`] was called.
    pub(crate) fn released(&self) -> bool {
        self.gate.lock().stage == Stage::Run
    }

    /// How many vCPU threads there are.
    pub(crate) fn len(&self) -> usize {
        self.threads.len()
    }

    /// Kicks every vCPU thread out of KVM_RUN (the handler says why: a suspend).
    pub(crate) fn kick(&self) {
        kick::kick_threads(&self.threads);
    }

    /// Kicks every vCPU thread out of KVM_RUN (the handler already says the VM is stopping)
    /// and waits until each has left its run loop for good; the threads then wait, holding
    /// their vCPUs, for [`VcpuSet::dismiss`]. No vCPU runs any more, but nothing is torn down
    /// yet: a process about to exit can leave that to the kernel, which ends the threads and
    /// closes the vCPUs without returning to user space.
    pub(crate) fn halt(&self) {
        let kick = kick::signal();
        let n = self.threads.len();
        kick::kick_threads(&self.threads);
        // A kick cannot be lost (immediate_exit), but keep kicking rather than risk waiting
        // forever on a thread that is slow to go.
        while !self.gate.wait_left(n, REKICK_AFTER) {
            for t in &self.threads {
                if !t.is_finished() {
                    let _ = t.kill(kick);
                }
            }
        }
    }

    /// Lets the halted threads end, joins them and closes their vCPUs. The vCPUs close only
    /// after the last thread is gone: an munmap of a kvm_run area while hundreds of threads
    /// share the address space makes the kernel flush the TLB of every CPU running one of
    /// them, once per munmap, where the same munmaps from a lone thread need no such flush
    /// (docs/benchmarks.md, "Where the time goes", has the figures).
    pub(crate) fn dismiss(self) {
        self.gate.set(Stage::Abort);
        let vcpus: Vec<Vcpu> = self
            .threads
            .into_iter()
            .filter_map(|t| t.join().ok())
            .collect();
        drop(vcpus);
    }
}

/// The body of a vCPU thread; returns the vCPU for the VM's thread to close.
fn thread_main(mut vcpu: Vcpu, gate: &Gate, handler: &impl ExitHandler) -> Vcpu {
    log::debug!("vCPU {} thread started", vcpu.index);
    handler.vcpu_started(vcpu.index, &vcpu.fd);
    let configured = vcpu.configure();
    let ok = configured.is_ok();
    if gate.arrive(Stage::Configure, configured) == Stage::Abort {
        return vcpu;
    }
    let prepared = if ok { vcpu.before_run() } else { Ok(()) };
    handler.vcpu_ready(vcpu.index);
    if gate.arrive(Stage::BeforeRun, prepared) == Stage::Run {
        if !handler.stopping() {
            log::debug!("vCPU {} runs", vcpu.index);
            vcpu.run(handler);
        }
        handler.vcpu_left(vcpu.index);
        gate.leave();
    }
    log::debug!("vCPU {} thread stops", vcpu.index);
    vcpu
}
