//! Kicking vCPU threads out of KVM_RUN: a real-time signal whose handler sets the running
//! vCPU's `immediate_exit`, so that a kick that arrives just before KVM_RUN is not lost
//! (Documentation/virt/kvm/api.rst, `immediate_exit`), and the stop-and-join of a set of
//! vCPU threads.

use std::cell::Cell;
use std::sync::Once;
use std::thread::JoinHandle;
use std::time::Duration;

use kvm_ioctls::VcpuFd;
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

/// How long a vCPU thread may take to leave KVM_RUN after a kick before it is kicked again.
const REKICK_AFTER: Duration = Duration::from_millis(1);
/// How often a stopping thread is polled for having finished.
const JOIN_POLL: Duration = Duration::from_micros(50);

thread_local! {
    /// The `immediate_exit` byte of the kvm_run area of the vCPU this thread is running, or
    /// null.
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
}

/// The kick signal's handler: makes the interrupted or next KVM_RUN return with EINTR.
extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let byte = IMMEDIATE_EXIT.with(Cell::get);
    if !byte.is_null() {
        // SAFETY: the pointer was set by `Running::enter` on this thread to the live kvm_run
        // mapping of the vCPU it is running, and is cleared before that vCPU can be dropped.
        unsafe { byte.write_volatile(1) };
    }
}

/// The real-time signal that kicks vCPU threads out of KVM_RUN (its handler is registered
/// once per process; call this before a seccomp filter forbids rt_sigaction).
pub(crate) fn signal() -> libc::c_int {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // Registering a valid real-time signal does not fail; if it did, the first kick would
        // end the process, which every boot test would show at once.
        let _ = register_signal_handler(SIGRTMIN(), kick_handler);
    });
    SIGRTMIN()
}

/// While alive, kicks of this thread make `vcpu`'s KVM_RUN return.
pub(crate) struct Running;

impl Running {
    /// Points this thread's kick at `vcpu`.
    pub(crate) fn enter(vcpu: &mut VcpuFd) -> Self {
        signal();
        let immediate_exit: *mut u8 = &mut vcpu.get_kvm_run().immediate_exit;
        IMMEDIATE_EXIT.with(|c| c.set(immediate_exit));
        Self
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        IMMEDIATE_EXIT.with(|c| c.set(std::ptr::null_mut()));
    }
}

/// Kicks every thread out of KVM_RUN (its handler says why).
pub(crate) fn kick_threads<T>(threads: &[JoinHandle<T>]) {
    let kick = signal();
    for t in threads {
        let _ = t.kill(kick);
    }
}

/// Kicks every thread (whose VM's stop flag the caller has set), joins them all and returns
/// what each returned (a panicked thread's result is missing).
pub(crate) fn stop_threads<T>(threads: Vec<JoinHandle<T>>) -> Vec<T> {
    let kick = signal();
    for t in &threads {
        let _ = t.kill(kick);
    }
    let mut results = Vec::with_capacity(threads.len());
    for t in threads {
        // A kick cannot be lost (immediate_exit), but keep kicking a thread that is slow to go
        // rather than risk waiting forever.
        let mut waited = Duration::ZERO;
        while !t.is_finished() {
            std::thread::sleep(JOIN_POLL);
            waited += JOIN_POLL;
            if waited >= REKICK_AFTER {
                let _ = t.kill(kick);
                waited = Duration::ZERO;
            }
        }
        results.extend(t.join().ok());
    }
    results
}
