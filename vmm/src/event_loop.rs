//! The main thread's event loop (event-manager): it waits for the first of a vCPU's exit
//! event, the `--timeout` timer, or SIGINT/SIGTERM.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_manager::{EventManager, EventOps, EventSet, Events, MutEventSubscriber, SubscriberOps};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::timerfd::TimerFd;

/// Why the loop returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// A vCPU recorded how the VM ended.
    VmExit,
    /// The timeout expired.
    Timeout,
    /// SIGINT or SIGTERM (the signal number).
    Signal(i32),
}

/// Why the event loop failed.
#[derive(Debug, thiserror::Error)]
pub enum EventLoopError {
    /// A file descriptor could not be created.
    #[error("cannot create the {0}")]
    Create(&'static str, #[source] std::io::Error),
    /// epoll failed.
    #[error("the event loop failed: {0:?}")]
    Epoll(event_manager::Error),
}

/// SIGINT and SIGTERM, blocked in the calling thread (and so in threads it starts afterwards)
/// and delivered through a signalfd. The previous signal mask is restored on drop.
pub(crate) struct ShutdownSignals {
    fd: OwnedFd,
    old_mask: libc::sigset_t,
}

impl ShutdownSignals {
    /// Blocks SIGINT and SIGTERM and opens a signalfd for them. Call before starting threads.
    pub(crate) fn block() -> Result<Self, EventLoopError> {
        let err = |what| move |e| EventLoopError::Create(what, e);
        // SAFETY: sigset_t is plain data; sigemptyset initialises it before any other use.
        let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut old_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `mask` is a valid sigset_t owned by this frame; these calls only write it.
        unsafe {
            libc::sigemptyset(&mut mask);
            libc::sigaddset(&mut mask, libc::SIGINT);
            libc::sigaddset(&mut mask, libc::SIGTERM);
        }
        // SAFETY: both pointers are valid sigset_t values owned by this frame.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &mask, &mut old_mask) };
        if rc != 0 {
            return Err(err("signal mask")(std::io::Error::from_raw_os_error(rc)));
        }
        // SAFETY: `mask` is a valid sigset_t; -1 asks for a new signalfd.
        let fd = unsafe { libc::signalfd(-1, &mask, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            // SAFETY: restores the mask saved above.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut()) };
            return Err(err("signalfd")(e));
        }
        // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd, old_mask })
    }

    /// Reads one pending signal number, if any.
    fn read(&self) -> Option<i32> {
        // SAFETY: signalfd_siginfo is plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is a writable buffer of exactly `size` bytes.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        (n == size as isize).then_some(info.ssi_signo as i32)
    }
}

impl Drop for ShutdownSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `block`; the pointer is valid for the call.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut()) };
    }
}

struct Controller {
    exit_evt: RawFd,
    timer: Option<TimerFd>,
    signals: RawFd,
    signals_src: Arc<ShutdownSignals>,
    wake: Option<Wake>,
    error: Option<event_manager::Error>,
}

impl MutEventSubscriber for Controller {
    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        let fd = events.fd();
        if fd == self.exit_evt {
            self.wake.get_or_insert(Wake::VmExit);
        } else if fd == self.signals {
            if let Some(sig) = self.signals_src.read() {
                self.wake.get_or_insert(Wake::Signal(sig));
            }
        } else if self.timer.as_ref().is_some_and(|t| t.as_raw_fd() == fd) {
            self.wake.get_or_insert(Wake::Timeout);
        }
    }

    fn init(&mut self, ops: &mut EventOps) {
        let mut fds = vec![self.exit_evt, self.signals];
        fds.extend(self.timer.as_ref().map(|t| t.as_raw_fd()));
        for fd in fds {
            if let Err(e) = ops.add(Events::new_raw(fd, EventSet::IN)) {
                self.error.get_or_insert(e);
            }
        }
    }
}

/// Waits until the VM exits, `timeout` passes, or a shutdown signal arrives.
pub(crate) fn wait(
    exit_evt: &EventFd,
    timeout: Option<Duration>,
    signals: &Arc<ShutdownSignals>,
) -> Result<Wake, EventLoopError> {
    let timer = match timeout {
        Some(d) => {
            let mut t =
                TimerFd::new().map_err(|e| EventLoopError::Create("timeout timer", e.into()))?;
            t.reset(d, None)
                .map_err(|e| EventLoopError::Create("timeout timer", e.into()))?;
            Some(t)
        }
        None => None,
    };
    let controller = Arc::new(Mutex::new(Controller {
        exit_evt: exit_evt.as_raw_fd(),
        timer,
        signals: signals.fd.as_raw_fd(),
        signals_src: Arc::clone(signals),
        wake: None,
        error: None,
    }));
    let mut em: EventManager<Arc<Mutex<Controller>>> =
        EventManager::new().map_err(EventLoopError::Epoll)?;
    em.add_subscriber(Arc::clone(&controller));
    loop {
        if let Ok(mut c) = controller.lock() {
            if let Some(e) = c.error.take() {
                return Err(EventLoopError::Epoll(e));
            }
            if let Some(w) = c.wake {
                return Ok(w);
            }
        }
        match em.run() {
            Ok(_) => {}
            Err(event_manager::Error::Epoll(e)) if e.errno() == libc::EINTR => {}
            Err(e) => return Err(EventLoopError::Epoll(e)),
        }
    }
}
