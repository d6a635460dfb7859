//! The seccomp-BPF allowlist of vCPU threads, installed with the `seccompiler` crate as
//! Firecracker does.
//!
//! The filter is built once per process, on the main thread ([`vcpu_filter`]), and installed
//! once: by the thread that starts the vCPU threads, before it starts any, so that every vCPU
//! thread inherits it from its first instruction (vcpu/set.rs). Installing a filter costs the
//! kernel a JIT compilation and a run of the program for every system call number, under a
//! lock the whole process shares; one installation per vCPU thread cost more than any other
//! part of the VMM's own work at 256 vCPUs. The vCPUs are configured beforehand, on a setup
//! thread that is not confined, so a vCPU thread never needs the setup ioctls. The program
//! is laid out as a binary search on the system call number (bpf.rs), which makes that one
//! installation cheaper too. docs/security.md, "Seccomp", describes the filter;
//! docs/benchmarks.md, "Seccomp", has the measurements.
//!
//! [`ALLOWLIST`] says what a vCPU thread may still do and why. Its entries come from `strace -f`
//! of boots of 16 to 256 vCPUs (sipi's guest, every test kernel, every way a VM ends, the
//! scenarios, `--timeout`, SIGTERM) and from reading std, glibc and the devices. Anything else
//! (opening files, sockets, `clone` and `fork`, `execve`, `ptrace`, other KVM ioctls, executable
//! or file mappings, signal handlers, prctl other than naming the thread) raises SIGSYS, whose handler prints one line naming the system
//! call and ends the process with status 3 (host error): a clear message rather than a silent
//! kill, since the likeliest cause is a change to sipi that this list missed.
//!
//! The `ioctl` rule compares the low 32 bits of the request (the kernel's `cmd` is an
//! `unsigned int`), as Firecracker's filters do, and not the fd: one filter serves every vCPU.
//! A vCPU thread's panic still prints its message and unwinds, but printing a backtrace
//! (`RUST_BACKTRACE` set) needs `getcwd` and `openat`, so the process then ends with the
//! SIGSYS line after the panic message: debug with `SIPI_NO_SECCOMP=1`, which turns the
//! filter off.

mod bpf;
mod sigsys;

use std::os::raw::{c_int, c_uint};
use std::sync::OnceLock;

use kvm_bindings::{
    kvm_cpuid2, kvm_fpu, kvm_irq_level, kvm_lapic_state, kvm_mp_state, kvm_msrs, kvm_regs,
    kvm_sregs, KVMIO,
};
use seccompiler::BpfProgram;
use vmm_sys_util::ioctl::{ioctl_expr, _IOC_NONE, _IOC_READ, _IOC_WRITE};

pub use bpf::ProgramError;

/// The environment variable that turns the filter off when set to `1`.
pub const OPT_OUT_VAR: &str = "SIPI_NO_SECCOMP";

/// A KVM ioctl's request as the kernel's 32-bit `cmd`: `_IOC(dir, KVMIO, nr, sizeof(T))`
/// (include/uapi/linux/kvm.h), `T` = `()` for `_IO`.
const fn kvm_ioctl<T>(dir: c_uint, nr: c_uint) -> u32 {
    ioctl_expr(dir, KVMIO, nr, std::mem::size_of::<T>() as c_uint) as u32
}

/// KVM_RUN's number within KVMIO.
const KVM_RUN_NR: c_uint = 0x80;
/// KVM_GET_REGS's number within KVMIO.
const KVM_GET_REGS_NR: c_uint = 0x81;
/// KVM_IRQ_LINE's number within KVMIO.
const KVM_IRQ_LINE_NR: c_uint = 0x61;
/// KVM_SET_REGS's number within KVMIO.
const KVM_SET_REGS_NR: c_uint = 0x82;
/// KVM_SET_SREGS's number within KVMIO.
const KVM_SET_SREGS_NR: c_uint = 0x84;
/// KVM_SET_MP_STATE's number within KVMIO.
const KVM_SET_MP_STATE_NR: c_uint = 0x99;
/// KVM_GET_SREGS's number within KVMIO.
const KVM_GET_SREGS_NR: c_uint = 0x83;
/// KVM_GET_MSRS's number within KVMIO.
const KVM_GET_MSRS_NR: c_uint = 0x88;
/// KVM_SET_MSRS's number within KVMIO.
const KVM_SET_MSRS_NR: c_uint = 0x89;
/// KVM_SET_FPU's number within KVMIO.
const KVM_SET_FPU_NR: c_uint = 0x8d;
/// KVM_GET_LAPIC's number within KVMIO.
const KVM_GET_LAPIC_NR: c_uint = 0x8e;
/// KVM_SET_LAPIC's number within KVMIO.
const KVM_SET_LAPIC_NR: c_uint = 0x8f;
/// KVM_SET_CPUID2's number within KVMIO.
const KVM_SET_CPUID2_NR: c_uint = 0x90;
/// KVM_GET_STATS_FD's number within KVMIO.
const KVM_GET_STATS_FD_NR: c_uint = 0xce;
/// `_IO(KVMIO, 0x80)`.
const KVM_RUN: u32 = kvm_ioctl::<()>(_IOC_NONE, KVM_RUN_NR);
/// `_IOR(KVMIO, 0x83, struct kvm_sregs)`: the BSP's entry state.
const KVM_GET_SREGS: u32 = kvm_ioctl::<kvm_sregs>(_IOC_READ, KVM_GET_SREGS_NR);
/// `_IOWR(KVMIO, 0x88, struct kvm_msrs)`: the test-only TSC write reads the TSC back.
const KVM_GET_MSRS: u32 = kvm_ioctl::<kvm_msrs>(_IOC_READ | _IOC_WRITE, KVM_GET_MSRS_NR);
/// `_IOW(KVMIO, 0x89, struct kvm_msrs)`: the MSRs a vCPU starts with.
const KVM_SET_MSRS: u32 = kvm_ioctl::<kvm_msrs>(_IOC_WRITE, KVM_SET_MSRS_NR);
/// `_IOW(KVMIO, 0x8d, struct kvm_fpu)`: the BSP's FPU state.
const KVM_SET_FPU: u32 = kvm_ioctl::<kvm_fpu>(_IOC_WRITE, KVM_SET_FPU_NR);
/// `_IOR(KVMIO, 0x8e, struct kvm_lapic_state)` and `_IOW(KVMIO, 0x8f, ...)`: an xAPIC vCPU
/// published in KVM's APIC map.
const KVM_GET_LAPIC: u32 = kvm_ioctl::<kvm_lapic_state>(_IOC_READ, KVM_GET_LAPIC_NR);
const KVM_SET_LAPIC: u32 = kvm_ioctl::<kvm_lapic_state>(_IOC_WRITE, KVM_SET_LAPIC_NR);
/// `_IOW(KVMIO, 0x90, struct kvm_cpuid2)`: the vCPU's CPUID.
const KVM_SET_CPUID2: u32 = kvm_ioctl::<kvm_cpuid2>(_IOC_WRITE, KVM_SET_CPUID2_NR);
/// `_IO(KVMIO, 0xce)`: the vCPU's statistics file.
const KVM_GET_STATS_FD: u32 = kvm_ioctl::<()>(_IOC_NONE, KVM_GET_STATS_FD_NR);
/// `_IOR(KVMIO, 0x81, struct kvm_regs)`.
const KVM_GET_REGS: u32 = kvm_ioctl::<kvm_regs>(_IOC_READ, KVM_GET_REGS_NR);
/// `_IOW(KVMIO, 0x61, struct kvm_irq_level)`: pc-testdev's interrupt line ports.
const KVM_IRQ_LINE: u32 = kvm_ioctl::<kvm_irq_level>(_IOC_WRITE, KVM_IRQ_LINE_NR);
/// `_IOW(KVMIO, 0x82, struct kvm_regs)`: a vCPU's registers at a resume from ACPI S3.
const KVM_SET_REGS: u32 = kvm_ioctl::<kvm_regs>(_IOC_WRITE, KVM_SET_REGS_NR);
/// `_IOW(KVMIO, 0x84, struct kvm_sregs)`.
const KVM_SET_SREGS: u32 = kvm_ioctl::<kvm_sregs>(_IOC_WRITE, KVM_SET_SREGS_NR);
/// `_IOW(KVMIO, 0x99, struct kvm_mp_state)`.
const KVM_SET_MP_STATE: u32 = kvm_ioctl::<kvm_mp_state>(_IOC_WRITE, KVM_SET_MP_STATE_NR);

/// `ioctl(fd, request, ...)`: the request.
const IOCTL_REQUEST_ARG: u8 = 1;
/// `mmap(addr, len, prot, ...)` and `mprotect(addr, len, prot)`: the protection.
const PROT_ARG: u8 = 2;
/// `mmap(addr, len, prot, flags, ...)`: the flags.
const MMAP_FLAGS_ARG: u8 = 3;

/// `prctl(option, ...)`: the option.
const PRCTL_OPTION_ARG: u8 = 0;
/// PR_SET_NAME as the filter compares it.
const PR_SET_NAME: u32 = libc::PR_SET_NAME as u32;

/// PROT_EXEC as the filter compares it.
const PROT_EXEC: u32 = libc::PROT_EXEC as u32;
/// MAP_ANONYMOUS as the filter compares it.
const MAP_ANONYMOUS: u32 = libc::MAP_ANONYMOUS as u32;

/// When a system call is allowed. Arguments are compared on their low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// Whatever its arguments.
    Always,
    /// When argument `arg` is one of `values`.
    OneOf { arg: u8, values: &'static [u32] },
    /// When, for every `(arg, mask, value)`, argument `arg` masked with `mask` is `value`.
    Masked(&'static [(u8, u32, u32)]),
}

/// What a vCPU thread may do once filtered: system call number and condition.
pub const ALLOWLIST: &[(i64, Allow)] = &[
    // The run loop, the RIP of a triple fault or an internal error, pc-testdev's interrupt
    // lines (on the VM's fd), the state of a vCPU resumed from ACPI S3, which its own thread
    // sets, and the vCPU's own setup before it first runs (CPUID, MSRs, the BSP's registers
    // and FPU, an xAPIC vCPU's LAPIC written back, its statistics file): no other request.
    (
        libc::SYS_ioctl,
        Allow::OneOf {
            arg: IOCTL_REQUEST_ARG,
            values: &[
                KVM_RUN,
                KVM_GET_REGS,
                KVM_IRQ_LINE,
                KVM_SET_REGS,
                KVM_SET_SREGS,
                KVM_SET_MP_STATE,
                KVM_GET_SREGS,
                KVM_GET_MSRS,
                KVM_SET_MSRS,
                KVM_SET_FPU,
                KVM_GET_LAPIC,
                KVM_SET_LAPIC,
                KVM_SET_CPUID2,
                KVM_GET_STATS_FD,
            ],
        },
    ),
    // The console (stderr or the --console file), warnings on stderr, the exit eventfd, a
    // panic's message.
    (libc::SYS_write, Allow::Always),
    // Device and outcome mutexes, the stderr lock, the barriers, `Once`.
    (libc::SYS_futex, Allow::Always),
    // The allocator (arena growth and trimming, large blocks), glibc's and std's thread exit
    // (stack advice, the alternate signal stack): anonymous, never executable memory.
    (
        libc::SYS_mmap,
        Allow::Masked(&[
            (PROT_ARG, PROT_EXEC, 0),
            (MMAP_FLAGS_ARG, MAP_ANONYMOUS, MAP_ANONYMOUS),
        ]),
    ),
    (
        libc::SYS_mprotect,
        Allow::Masked(&[(PROT_ARG, PROT_EXEC, 0)]),
    ),
    (libc::SYS_munmap, Allow::Always),
    (libc::SYS_mremap, Allow::Always),
    (libc::SYS_brk, Allow::Always),
    (libc::SYS_madvise, Allow::Always),
    // Dropping the vCPU fd at thread exit (and the devices' fds, with the last reference).
    (libc::SYS_close, Allow::Always),
    // Returning from the kick signal's handler.
    (libc::SYS_rt_sigreturn, Allow::Always),
    // Thread exit: glibc blocks signals, std removes its stack-overflow alternate stack.
    (libc::SYS_rt_sigprocmask, Allow::Always),
    (libc::SYS_sigaltstack, Allow::Always),
    (libc::SYS_exit, Allow::Always),
    // The SIGSYS handler's `_exit`, `std::process::exit`.
    (libc::SYS_exit_group, Allow::Always),
    // `abort()` raising SIGABRT (a panic while panicking, an allocation failure).
    (libc::SYS_getpid, Allow::Always),
    (libc::SYS_gettid, Allow::Always),
    (libc::SYS_tgkill, Allow::Always),
    // `Instant::now` and the RTC when the vDSO falls back to the system call (a clock source
    // without vDSO support).
    (libc::SYS_clock_gettime, Allow::Always),
    // std's hash-map keys, drawn on a thread's first `HashMap::new`.
    (libc::SYS_getrandom, Allow::Always),
    // KVM's counters: the vCPU's own statistics file once set up and when it leaves its run
    // loop, and every vCPU's at the report doorbell (vm/counters.rs).
    (libc::SYS_pread64, Allow::Always),
    // Starting vCPU threads: the spawner thread confines itself once and every vCPU thread
    // inherits its filter (vcpu/set.rs), so the filter allows what glibc's pthread_create and
    // a new thread's start need. clone3's flags are in memory, where a filter cannot look: a
    // confined thread can start threads (or processes), which inherit the same filter and can
    // do no more than it can. Plain clone, which fork uses, stays forbidden.
    (libc::SYS_clone3, Allow::Always),
    (libc::SYS_set_robust_list, Allow::Always),
    (libc::SYS_rseq, Allow::Always),
    // std naming the thread ("vcpu7"), and nothing else prctl does.
    (
        libc::SYS_prctl,
        Allow::OneOf {
            arg: PRCTL_OPTION_ARG,
            values: &[PR_SET_NAME],
        },
    ),
    // glibc sizing a new thread's malloc arena.
    (libc::SYS_sched_getaffinity, Allow::Always),
    // std's channel backing off before it parks (the spawner thread waiting for the next
    // vCPU): a machine busy enough makes its spin end in yields.
    (libc::SYS_sched_yield, Allow::Always),
];

/// Why the filter cannot be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The allowlist does not make a valid program (a bug in [`ALLOWLIST`]).
    #[error("cannot build the vCPU seccomp filter")]
    Build(#[source] ProgramError),
    /// The SIGSYS handler could not be registered.
    #[error("cannot register the SIGSYS handler of the vCPU seccomp filter")]
    Handler(#[source] vmm_sys_util::errno::Error),
    /// PR_SET_NO_NEW_PRIVS failed.
    #[error("cannot set no_new_privs, which the vCPU seccomp filter needs")]
    NoNewPrivs(#[source] std::io::Error),
    /// The seccomp system call refused the filter.
    #[error("cannot install the vCPU seccomp filter")]
    Install(#[source] std::io::Error),
    /// seccompiler refused the program for another reason.
    #[error("cannot install the vCPU seccomp filter: {0}")]
    Other(seccompiler::Error),
}

/// The filter built once per process, with the SIGSYS handler registered.
fn shared_filter() -> Result<&'static BpfProgram, SeccompError> {
    static FILTER: OnceLock<BpfProgram> = OnceLock::new();
    if let Some(f) = FILTER.get() {
        return Ok(f);
    }
    let program = bpf::program(ALLOWLIST).map_err(SeccompError::Build)?;
    sigsys::register().map_err(SeccompError::Handler)?;
    Ok(FILTER.get_or_init(|| program))
}

/// True if `SIPI_NO_SECCOMP=1` turns the filter off.
pub fn disabled() -> bool {
    std::env::var_os(OPT_OUT_VAR).is_some_and(|v| v == "1")
}

/// The filter for vCPU threads, built on the first call (make it on the main thread, before
/// starting them). Whether to use it is the configuration's choice (see [`disabled`]).
pub fn vcpu_filter() -> Result<&'static BpfProgram, SeccompError> {
    shared_filter()
}

/// glibc's malloc arenas per CPU (malloc/arena.c, `NARENAS_FROM_NCORES`).
const GLIBC_ARENAS_PER_CPU: usize = 8;

/// Readies the process for threads confined from their start: glibc's malloc works out its
/// arena limit, the first time a thread needs a new arena beyond the eighth, by opening
/// /sys/devices/system/cpu/online, which the filter forbids. Setting the limit it would
/// compute (M_ARENA_MAX, eight per CPU) on this unconfined thread leaves it nothing to read.
pub fn prepare_process() {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let arenas = c_int::try_from(cpus.saturating_mul(GLIBC_ARENAS_PER_CPU)).unwrap_or(c_int::MAX);
    // SAFETY: mallopt(3) takes two integers; M_ARENA_MAX only bounds arenas made later.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
}

/// Installs `filter` on the calling thread, for the rest of its life.
pub fn install(filter: &BpfProgram) -> Result<(), SeccompError> {
    seccompiler::apply_filter(filter).map_err(|e| match e {
        seccompiler::Error::Prctl(io) => SeccompError::NoNewPrivs(io),
        seccompiler::Error::Seccomp(io) => SeccompError::Install(io),
        other => SeccompError::Other(other),
    })
}

#[cfg(test)]
mod tests {
    use std::os::raw::{c_int, c_ulong};

    use super::*;
    use crate::status::Status;

    #[test]
    fn the_allowlist_keeps_out_what_a_vcpu_thread_never_needs() {
        let allowed: Vec<i64> = ALLOWLIST.iter().map(|(nr, _)| *nr).collect();
        for nr in [
            libc::SYS_openat,
            libc::SYS_open,
            libc::SYS_socket,
            libc::SYS_connect,
            libc::SYS_clone,
            libc::SYS_fork,
            libc::SYS_vfork,
            libc::SYS_execve,
            libc::SYS_ptrace,
            libc::SYS_rt_sigaction,
            libc::SYS_seccomp,
        ] {
            assert!(
                !allowed.contains(&nr),
                "system call {nr} must stay forbidden"
            );
        }
    }

    #[test]
    fn kvm_request_numbers_match_the_kernel_abi() {
        // Documentation/virt/kvm/api.rst: KVM_RUN is _IO(KVMIO, 0x80), KVM_GET_REGS
        // _IOR(KVMIO, 0x81, struct kvm_regs) with a 144-byte struct kvm_regs.
        assert_eq!(KVM_RUN, 0xAE80);
        assert_eq!(KVM_GET_REGS, 0x8090_AE81);
        // _IOW(KVMIO, 0x61, struct kvm_irq_level), an 8-byte struct.
        assert_eq!(KVM_IRQ_LINE, 0x4008_AE61);
        // _IOW: a 144-byte kvm_regs, a 312-byte kvm_sregs, a 4-byte kvm_mp_state.
        assert_eq!(KVM_SET_REGS, 0x4090_AE82);
        assert_eq!(KVM_SET_SREGS, 0x4138_AE84);
        assert_eq!(KVM_SET_MP_STATE, 0x4004_AE99);
    }

    #[test]
    fn the_opt_out_needs_exactly_1() {
        // Only reads the variable: the tests run in parallel in one process.
        assert_eq!(disabled(), std::env::var(OPT_OUT_VAR).as_deref() == Ok("1"));
    }

    /// A child's status when it could not install the filter.
    const CHILD_CANNOT_INSTALL: c_int = 99;

    /// Forks a child that installs the filter, runs `body` and exits 0 if it survives; returns
    /// the child's wait status and what it wrote on stderr.
    fn confined(body: fn()) -> (c_int, String) {
        let filter = shared_filter().unwrap();
        let mut fds = [0 as c_int; 2];
        // SAFETY: pipe(2) fills the two-element array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let [read_end, write_end] = fds;
        // SAFETY: the child only makes async-signal-safe calls (dup2, the prctl and seccomp
        // system calls of `install`, raw system calls in `body`, _exit), as a child of a
        // multi-threaded process must.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: in the child, making its stderr the pipe; async-signal-safe.
            unsafe { libc::dup2(write_end, libc::STDERR_FILENO) };
            let status = match install(filter) {
                Ok(()) => {
                    body();
                    0
                }
                Err(_) => CHILD_CANNOT_INSTALL,
            };
            // SAFETY: ends the child without running the parent's test harness again.
            unsafe { libc::_exit(status) };
        }
        // SAFETY: closing the parent's copy of the write end, which it owns.
        unsafe { libc::close(write_end) };
        let mut out = Vec::new();
        let mut chunk = [0u8; 256];
        loop {
            // SAFETY: read(2) into a live buffer of its length.
            let n = unsafe { libc::read(read_end, chunk.as_mut_ptr().cast(), chunk.len()) };
            let Ok(n) = usize::try_from(n) else { break };
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
        // SAFETY: closing the read end, which the parent owns.
        unsafe { libc::close(read_end) };
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid status pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        (status, String::from_utf8_lossy(&out).into_owned())
    }

    fn assert_trapped(body: fn(), nr: i64) {
        let (status, stderr) = confined(body);
        assert!(
            libc::WIFEXITED(status),
            "the child did not exit (wait status {status:#x}); stderr: {stderr}"
        );
        assert_eq!(
            libc::WEXITSTATUS(status),
            c_int::from(Status::Host.code()),
            "stderr: {stderr}"
        );
        assert_eq!(
            stderr,
            format!(
                "error: a vCPU thread made system call {nr}, which the vCPU seccomp filter \
                 forbids (SIPI_NO_SECCOMP=1 turns the filter off)\n"
            )
        );
    }

    /// Size of the test mappings.
    const PAGE: usize = 4096;

    /// KVM_CREATE_VM: a KVM ioctl vCPU threads never make.
    const KVM_CREATE_VM: c_ulong = ioctl_expr(_IOC_NONE, KVMIO, 0x01, 0);

    fn open_a_file() {
        // SAFETY: openat(2) of a NUL-terminated path; stopped by the filter anyway.
        unsafe {
            libc::syscall(
                libc::SYS_openat,
                libc::AT_FDCWD,
                c"/etc/hostname".as_ptr(),
                0,
            )
        };
    }

    fn open_a_socket() {
        // SAFETY: socket(2) takes no pointers.
        unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0) };
    }

    fn another_kvm_ioctl() {
        // SAFETY: an ioctl on no fd, with no argument.
        unsafe { libc::syscall(libc::SYS_ioctl, -1, KVM_CREATE_VM, 0) };
    }

    fn kvm_run_with_high_bits() {
        // The kernel's `cmd` is 32 bits, so this is KVM_RUN and passes; the filter agrees.
        let request = (1 << 32) | c_ulong::from(KVM_RUN);
        // SAFETY: an ioctl on no fd, with no argument.
        unsafe { libc::syscall(libc::SYS_ioctl, -1, request, 0) };
    }

    fn map_executable_memory() {
        let prot = libc::PROT_READ | libc::PROT_EXEC;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        // SAFETY: a fresh anonymous mapping, never used (and stopped by the filter).
        unsafe { libc::syscall(libc::SYS_mmap, 0, PAGE, prot, flags, -1, 0) };
    }

    fn map_a_file() {
        // SAFETY: a mapping of stdin, never used (and stopped by the filter).
        unsafe {
            libc::syscall(
                libc::SYS_mmap,
                0,
                PAGE,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                0,
                0,
            )
        };
    }

    fn make_memory_executable() {
        let mut word = 0u64;
        // SAFETY: mprotect of a stack address; stopped by the filter before the kernel
        // looks at it.
        unsafe {
            libc::syscall(
                libc::SYS_mprotect,
                &mut word as *mut u64,
                PAGE,
                libc::PROT_READ | libc::PROT_EXEC,
            )
        };
    }

    fn fork_with_clone() {
        // SAFETY: clone(2) with fork's flags (SIGCHLD) and no pointers; stopped by the filter
        // before the kernel would create a process.
        unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) };
    }

    fn another_prctl() {
        // SAFETY: prctl(2) with an integer argument; stopped by the filter.
        unsafe { libc::syscall(libc::SYS_prctl, libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    }

    #[test]
    fn forbidden_system_calls_end_the_process_with_one_line_and_status_3() {
        assert_trapped(fork_with_clone, libc::SYS_clone);
        assert_trapped(another_prctl, libc::SYS_prctl);
        assert_trapped(open_a_file, libc::SYS_openat);
        assert_trapped(open_a_socket, libc::SYS_socket);
        assert_trapped(another_kvm_ioctl, libc::SYS_ioctl);
        assert_trapped(map_executable_memory, libc::SYS_mmap);
        assert_trapped(map_a_file, libc::SYS_mmap);
        assert_trapped(make_memory_executable, libc::SYS_mprotect);
    }

    /// What a vCPU thread does: console output, allocator traffic, a futex wake, the clock,
    /// KVM_RUN, KVM_GET_REGS and KVM_IRQ_LINE (which fail here, on no fd, after passing the filter).
    fn vcpu_thread_work() {
        let line = b"console\n";
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        let word = 0u32;
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: raw system calls on a live stack buffer, a fresh anonymous mapping (used
        // only if it was made), a local futex word, a local timespec, and no fd.
        unsafe {
            libc::write(libc::STDERR_FILENO, line.as_ptr().cast(), line.len());
            let p = libc::mmap(std::ptr::null_mut(), 64 * PAGE, prot, flags, -1, 0);
            if p != libc::MAP_FAILED {
                libc::mprotect(p, PAGE, libc::PROT_NONE);
                libc::madvise(p, 64 * PAGE, libc::MADV_DONTNEED);
                libc::munmap(p, 64 * PAGE);
            }
            libc::syscall(libc::SYS_futex, &word, libc::FUTEX_WAKE, 1);
            libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, &mut ts);
            libc::syscall(libc::SYS_ioctl, -1, c_ulong::from(KVM_RUN), 0);
            libc::syscall(libc::SYS_ioctl, -1, c_ulong::from(KVM_GET_REGS), 0);
            for request in [KVM_IRQ_LINE, KVM_SET_REGS, KVM_SET_SREGS, KVM_SET_MP_STATE] {
                libc::syscall(libc::SYS_ioctl, -1, c_ulong::from(request), 0);
            }
        }
        kvm_run_with_high_bits();
        start_a_thread_s_calls();
    }

    /// What starting a thread takes (the spawner thread's clone3 and its channel's
    /// sched_yield, and the new thread's rseq, set_robust_list, prctl(PR_SET_NAME) and
    /// sched_getaffinity), each made so that the
    /// kernel refuses it after the filter let it pass: a forked child of the multi-threaded
    /// test process may not start a real thread.
    fn start_a_thread_s_calls() {
        let mut cpus = [0u8; 128];
        // SAFETY: clone3 with a size of 0 (EINVAL), rseq and set_robust_list with a null
        // area (EINVAL), the thread's name from a NUL-terminated string, and
        // sched_getaffinity into a live buffer of its length.
        unsafe {
            libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0);
            libc::syscall(libc::SYS_rseq, std::ptr::null::<u8>(), 0, 0, 0);
            libc::syscall(libc::SYS_set_robust_list, std::ptr::null::<u8>(), 0);
            libc::syscall(
                libc::SYS_prctl,
                libc::PR_SET_NAME,
                c"vcpu7".as_ptr(),
                0,
                0,
                0,
            );
            libc::syscall(
                libc::SYS_sched_getaffinity,
                0,
                cpus.len(),
                cpus.as_mut_ptr(),
            );
            libc::syscall(libc::SYS_sched_yield);
        }
    }

    #[test]
    fn what_vcpu_threads_do_is_allowed() {
        let (status, stderr) = confined(vcpu_thread_work);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "wait status {status:#x}; stderr: {stderr}"
        );
        assert_eq!(stderr, "console\n");
    }
}
