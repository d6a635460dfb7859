//! The vCPU threads of one boot. The VM's thread creates the vCPUs in APIC ID order and hands
//! each to the spawner thread, which confined itself with the vCPU threads' seccomp filter once
//! and starts each vCPU's thread, which inherits the filter: no vCPU thread pays for installing
//! one ([`crate::seccomp`] has why that is costly). Each vCPU thread configures its own vCPU
//! (the test-only TSC write waits until every vCPU exists), says it is ready, and waits at a
//! gate until it is released (all at once, or as soon as it arrives with `--bsp-start
//! early`), then runs; the threads are stopped and joined together.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use kvm_ioctls::VmFd;
use vmm_sys_util::signal::Killable;

use super::{kick, BootVcpus, ExitHandler, Vcpu, VcpuError};
use crate::seccomp;

/// How long a halting vCPU thread may take to leave KVM_RUN after a kick before it is kicked
/// again.
const REKICK_AFTER: Duration = Duration::from_millis(1);

/// Stack size of a vCPU thread: the run loop needs little, and hundreds of threads exist.
pub(crate) const VCPU_STACK_SIZE: usize = 128 << 10;

/// Where the vCPU threads are, as the VM's thread decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Being set up: a vCPU thread that starts waits.
    Setup,
    /// Running; a thread that left its run loop waits here.
    Run,
    /// Giving up (before running, or after leaving the run loop): the threads end.
    Abort,
}

#[derive(Debug)]
struct State {
    stage: Stage,
    /// Every vCPU exists: the test-only TSC write may be made.
    all_created: bool,
    /// vCPUs set up (configured by their thread, or failed).
    done: usize,
    /// Threads that left their run loop for good (or never entered it).
    left: usize,
    /// Setup errors, for the VM's thread.
    errors: Vec<VcpuError>,
    /// The started threads, for the VM's thread to collect.
    threads: Vec<JoinHandle<Vcpu>>,
}

/// The VM's thread, the pipeline and the vCPU threads meet here. Two condition variables, so
/// that an arrival wakes only the VM's thread and a new stage wakes only the vCPU threads:
/// with one, each of hundreds of arrivals would wake every thread already waiting.
#[derive(Debug)]
struct Gate {
    state: Mutex<State>,
    /// The VM's thread waits here for progress.
    arrived: Condvar,
    /// The vCPU threads wait here for the next stage.
    moved_on: Condvar,
}

impl Gate {
    fn new() -> Self {
        Self {
            state: Mutex::new(State {
                stage: Stage::Setup,
                all_created: false,
                done: 0,
                left: 0,
                errors: Vec::new(),
                threads: Vec::new(),
            }),
            arrived: Condvar::new(),
            moved_on: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The spawner started a vCPU's thread.
    fn started(&self, thread: JoinHandle<Vcpu>) {
        self.lock().threads.push(thread);
    }

    /// A vCPU is set up: its thread configured it (`result`), or could not be started.
    fn set_up(&self, result: Result<(), VcpuError>) {
        let mut s = self.lock();
        if let Err(e) = result {
            s.errors.push(e);
        }
        s.done += 1;
        self.arrived.notify_one();
    }

    /// Every vCPU exists (or creation stopped).
    fn all_created(&self) {
        self.lock().all_created = true;
        self.moved_on.notify_all();
    }

    /// Holds the thread of the vCPU given a test-only TSC write until every vCPU exists;
    /// false if the VM's thread gave up first.
    fn wait_all_created(&self) -> bool {
        let mut s = self.lock();
        while !s.all_created && s.stage != Stage::Abort {
            s = self.moved_on.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.stage != Stage::Abort
    }

    /// Waits until `count` vCPUs are set up; returns the first error, if any.
    fn wait_done(&self, count: usize) -> Option<VcpuError> {
        let mut s = self.lock();
        while s.done < count {
            s = self.arrived.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        (!s.errors.is_empty()).then(|| s.errors.remove(0))
    }

    /// Holds a vCPU thread until the VM's thread releases or gives up; returns which.
    fn wait_release(&self) -> Stage {
        let mut s = self.lock();
        while s.stage == Stage::Setup {
            s = self.moved_on.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.stage
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

/// The spawner thread, while vCPUs are still being created.
struct Pipeline {
    /// To the spawner thread; dropped once every vCPU is created.
    to_spawner: Option<Sender<Vcpu>>,
    spawner: Option<JoinHandle<()>>,
    /// vCPUs handed to the spawner.
    sent: usize,
}

/// The vCPU threads of a boot.
pub(crate) struct VcpuSet {
    threads: Vec<JoinHandle<Vcpu>>,
    gate: Arc<Gate>,
    tsc_khz: Option<u32>,
    pipeline: Pipeline,
}

impl VcpuSet {
    /// Creates the topology's vCPUs (in APIC ID order: KVM maps not-yet-x2APIC IDs above 255
    /// onto the first vCPU it finds with the truncated ID) and hands each to the spawner,
    /// which starts its thread, which configures it and waits. The TSC frequency is read once,
    /// from the BSP's vCPU, before anything else: every vCPU has the same. Never fails here: a
    /// vCPU that cannot be created, started or configured ends the creation, and
    /// [`VcpuSet::wait_configured`] returns its error.
    ///
    /// `after_each` runs on the calling thread after each vCPU is created: the moment to
    /// [`VcpuSet::release`] the vCPUs, while the others are still being created
    /// (`--bsp-start early`).
    pub(crate) fn spawn<H: ExitHandler + Send + Sync + 'static>(
        vm: &VmFd,
        mut boot: BootVcpus,
        handler: &Arc<H>,
        mut after_each: impl FnMut(&Self),
    ) -> Self {
        let count = boot.topology.vcpus();
        let mut set = Self {
            threads: Vec::new(),
            gate: Arc::new(Gate::new()),
            tsc_khz: None,
            pipeline: Pipeline {
                to_spawner: None,
                spawner: None,
                sent: 0,
            },
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
        // While the process may still do so: the filter forbids rt_sigaction and opening files.
        kick::signal();
        seccomp::prepare_process();
        if let Err(e) = set.start_spawner(boot.seccomp, handler) {
            set.fail(e);
            return set;
        }
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
            let sent = set
                .pipeline
                .to_spawner
                .as_ref()
                .is_some_and(|tx| tx.send(vcpu).is_ok());
            if !sent {
                // The spawner is gone (it only ends early by panicking).
                set.fail(VcpuError::SetupThread(std::io::Error::other(
                    "the vCPU spawner thread is gone",
                )));
                break;
            }
            set.pipeline.sent += 1;
            after_each(&set);
        }
        // Every vCPU exists: the test-only TSC write may now be made.
        set.pipeline.to_spawner = None;
        set.gate.all_created();
        set
    }

    /// Starts the spawner thread, which confines itself with `filter`.
    fn start_spawner<H: ExitHandler + Send + Sync + 'static>(
        &mut self,
        filter: Option<&'static seccompiler::BpfProgram>,
        handler: &Arc<H>,
    ) -> Result<(), VcpuError> {
        let (to_spawner, vcpus) = mpsc::channel::<Vcpu>();
        let (gate, h) = (Arc::clone(&self.gate), Arc::clone(handler));
        let spawner = std::thread::Builder::new()
            .name("vcpu-spawner".into())
            .spawn(move || spawner_main(&vcpus, filter, &gate, &h))
            .map_err(VcpuError::SetupThread)?;
        self.pipeline.to_spawner = Some(to_spawner);
        self.pipeline.spawner = Some(spawner);
        Ok(())
    }

    /// Records an error of the VM's thread for [`VcpuSet::wait_configured`].
    fn fail(&self, e: VcpuError) {
        self.gate.lock().errors.push(e);
    }

    /// The TSC frequency KVM gives the vCPUs, if it told.
    pub(crate) fn tsc_khz(&self) -> Option<u32> {
        self.tsc_khz
    }

    /// Waits until every vCPU handed to the spawner is set up, joins the spawner and takes the
    /// vCPU threads it started.
    fn finish_pipeline(&mut self) -> Option<VcpuError> {
        self.pipeline.to_spawner = None;
        let failed = self.gate.wait_done(self.pipeline.sent);
        if let Some(t) = self.pipeline.spawner.take() {
            let _ = t.join();
        }
        let mut s = self.gate.lock();
        self.threads.append(&mut s.threads);
        failed
    }

    /// Waits until every vCPU is configured and its thread started. On any vCPU's error,
    /// stops and joins them all and returns the first error. Already released
    /// ([`VcpuSet::release`] before every vCPU was ready), the vCPUs that are ready may be
    /// running: on an error `stop_vm` tells the handler the VM is stopping, then every vCPU
    /// is stopped.
    pub(crate) fn wait_configured(mut self, stop_vm: impl FnOnce()) -> Result<Self, VcpuError> {
        match self.finish_pipeline() {
            None => Ok(self),
            Some(e) => {
                stop_vm();
                self.abort();
                Err(e)
            }
        }
    }

    /// Stops the vCPUs (for a failure elsewhere while they were being set up): those still
    /// waiting to run give up, and those already released are kicked out of KVM_RUN, which
    /// they leave for good once the handler says the VM is stopping.
    pub(crate) fn abort(mut self) {
        let released = self.released();
        self.gate.set(Stage::Abort);
        self.gate.all_created();
        let _ = self.finish_pipeline();
        match released {
            true => drop(kick::stop_threads(self.threads)),
            false => {
                for t in self.threads {
                    let _ = t.join();
                }
            }
        }
    }

    /// Lets every vCPU run: those ready at once, the others as soon as they are.
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
    /// their vCPUs, for [`VcpuSet::dismiss`].
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

/// The spawner thread: confines itself with `filter` (once), then starts each vCPU's thread,
/// which inherits the filter.
fn spawner_main<H: ExitHandler + Send + Sync + 'static>(
    vcpus: &Receiver<Vcpu>,
    filter: Option<&'static seccompiler::BpfProgram>,
    gate: &Arc<Gate>,
    handler: &Arc<H>,
) {
    if let Some(e) = filter.and_then(|f| seccomp::install(f).err()) {
        let mut first = Some(VcpuError::Seccomp(e));
        for vcpu in vcpus {
            gate.set_up(Err(first.take().unwrap_or(VcpuError::Spawn(
                vcpu.index,
                std::io::Error::other("the vCPU threads could not be confined"),
            ))));
        }
        return;
    }
    for vcpu in vcpus {
        let index = vcpu.index;
        let (g, h) = (Arc::clone(gate), Arc::clone(handler));
        let spawned = std::thread::Builder::new()
            .name(format!("vcpu{index}"))
            .stack_size(VCPU_STACK_SIZE)
            .spawn(move || thread_main(vcpu, &g, &*h));
        match spawned {
            Ok(t) => gate.started(t),
            Err(e) => gate.set_up(Err(VcpuError::Spawn(index, e))),
        }
    }
}

/// The body of a vCPU thread (confined from its start): configures its vCPU, waits to be
/// released, runs; returns the vCPU for the VM's thread to close.
fn thread_main(mut vcpu: Vcpu, gate: &Gate, handler: &impl ExitHandler) -> Vcpu {
    log::debug!("vCPU {} thread started", vcpu.index);
    handler.vcpu_started(vcpu.index, &vcpu.fd);
    let mut result = vcpu.configure();
    if result.is_ok() && vcpu.tsc_skew().is_some() {
        if !gate.wait_all_created() {
            // The VM's thread gave up while the others were created.
            gate.set_up(Ok(()));
            return vcpu;
        }
        result = vcpu.before_run();
    }
    if result.is_ok() {
        handler.vcpu_ready(vcpu.index);
    }
    gate.set_up(result);
    if gate.wait_release() == Stage::Run {
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
