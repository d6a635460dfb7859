//! The SIGSYS handler: a filtered thread made a forbidden system call. It prints one line
//! naming the call and ends the process with the host-error status, using only
//! async-signal-safe operations (formatting on the stack, write(2), _exit(2)).

use std::os::raw::{c_int, c_uint, c_void};

use crate::status::Status;

/// `si_code` of a SIGSYS raised by a seccomp filter (include/uapi/asm-generic/siginfo.h).
const SYS_SECCOMP: c_int = 1;

/// The kernel's `siginfo_t` as it is for SIGSYS on x86_64: three ints and the padding that
/// aligns the union to 8 bytes, then `struct { void *_call_addr; int _syscall; unsigned int
/// _arch; } _sigsys`. The libc crate does not expose `si_syscall`.
#[repr(C)]
#[allow(dead_code)] // The layout needs every field; the handler reads two.
struct SigsysInfo {
    signo: c_int,
    errno: c_int,
    code: c_int,
    _pad: c_int,
    call_addr: *mut c_void,
    syscall: c_int,
    arch: c_uint,
}

const _: () = assert!(std::mem::size_of::<SigsysInfo>() <= std::mem::size_of::<libc::siginfo_t>());

/// Start of the message for a forbidden system call; its number follows.
const FORBIDDEN_HEAD: &[u8] = b"error: a vCPU thread made system call ";
/// End of that message.
const FORBIDDEN_TAIL: &[u8] =
    b", which the vCPU seccomp filter forbids (SIPI_NO_SECCOMP=1 turns the filter off)\n";
/// The message for a SIGSYS that no filter raised.
const OTHER_SIGSYS: &[u8] = b"error: received SIGSYS\n";
/// Decimal digits of the largest `c_int`.
const MAX_DIGITS: usize = 10;
/// Room for the message: the head, a sign and the digits, the tail.
const MESSAGE_CAP: usize = 160;
const _: () = assert!(FORBIDDEN_HEAD.len() + 1 + MAX_DIGITS + FORBIDDEN_TAIL.len() <= MESSAGE_CAP);

/// Registers the handler (process-wide; every signal is blocked while it runs).
pub(super) fn register() -> Result<(), vmm_sys_util::errno::Error> {
    vmm_sys_util::signal::register_signal_handler(libc::SIGSYS, handler)
}

/// Writes the line for system call `nr` (`None`: a SIGSYS no filter raised) into `buf`,
/// without allocating; returns its length.
fn message(nr: Option<c_int>, buf: &mut [u8; MESSAGE_CAP]) -> usize {
    let Some(nr) = nr else {
        buf[..OTHER_SIGSYS.len()].copy_from_slice(OTHER_SIGSYS);
        return OTHER_SIGSYS.len();
    };
    let mut len = FORBIDDEN_HEAD.len();
    buf[..len].copy_from_slice(FORBIDDEN_HEAD);
    if nr < 0 {
        buf[len] = b'-';
        len += 1;
    }
    let mut digits = [0u8; MAX_DIGITS];
    let mut n = nr.unsigned_abs();
    let mut count = 0;
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for d in digits[..count].iter().rev() {
        buf[len] = *d;
        len += 1;
    }
    buf[len..len + FORBIDDEN_TAIL.len()].copy_from_slice(FORBIDDEN_TAIL);
    len + FORBIDDEN_TAIL.len()
}

extern "C" fn handler(_: c_int, info: *mut libc::siginfo_t, _: *mut c_void) {
    let nr = if info.is_null() {
        None
    } else {
        // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler; SigsysInfo is
        // a prefix of it (checked above), whose `syscall` is meaningful when `code` is
        // SYS_SECCOMP.
        let info = unsafe { &*info.cast::<SigsysInfo>() };
        (info.code == SYS_SECCOMP).then_some(info.syscall)
    };
    let mut buf = [0u8; MESSAGE_CAP];
    let len = message(nr, &mut buf);
    // SAFETY: write(2) of a live stack buffer of `len` bytes; async-signal-safe.
    unsafe { libc::write(libc::STDERR_FILENO, buf.as_ptr().cast(), len) };
    // SAFETY: _exit(2) is async-signal-safe and ends the process without running anything
    // else (the filter allows exit_group).
    unsafe { libc::_exit(c_int::from(Status::Host.code())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_one_line_naming_the_system_call() {
        let mut buf = [0u8; MESSAGE_CAP];
        let len = message(Some(41), &mut buf);
        let text = std::str::from_utf8(&buf[..len]).unwrap();
        assert!(text.starts_with("error: a vCPU thread made system call 41, which"));
        assert!(text.ends_with("SIPI_NO_SECCOMP=1 turns the filter off)\n"));
        assert_eq!(text.lines().count(), 1);
        for (nr, shown) in [
            (0, "call 0,"),
            (c_int::MAX, "call 2147483647,"),
            (c_int::MIN, "call -2147483648,"),
        ] {
            let len = message(Some(nr), &mut buf);
            assert!(std::str::from_utf8(&buf[..len]).unwrap().contains(shown));
        }
        let len = message(None, &mut buf);
        assert_eq!(&buf[..len], OTHER_SIGSYS);
    }
}
