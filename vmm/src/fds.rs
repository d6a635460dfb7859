//! Growing the process's file-descriptor table before threads exist.
//!
//! When a process with more than one thread needs a larger fd table, the kernel copies it and
//! waits for an RCU grace period before freeing the old one (fs/file.c, expand_fdtable). The
//! table doubles from 64 entries, so creating 1024 vCPU fds while vCPU threads run pays about
//! five grace periods. Growing it once, while the process is still single-threaded, costs none.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Why the table could not be grown.
#[derive(Debug, thiserror::Error)]
pub enum FdError {
    /// fcntl(F_DUPFD) failed, e.g. RLIMIT_NOFILE is lower than the fds the VM needs.
    #[error("cannot reserve {0} file descriptors (is the open-file limit, ulimit -n, too low?)")]
    Reserve(usize, #[source] std::io::Error),
}

/// Makes room for descriptors up to at least `count` by duplicating `fd` to that number and
/// closing the copy.
pub(crate) fn reserve(fd: &impl AsRawFd, count: usize) -> Result<(), FdError> {
    let target = libc::c_int::try_from(count).unwrap_or(libc::c_int::MAX);
    // SAFETY: F_DUPFD_CLOEXEC only creates a new descriptor; `fd` stays valid and unchanged.
    let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, target) };
    if dup < 0 {
        return Err(FdError::Reserve(count, std::io::Error::last_os_error()));
    }
    // SAFETY: `dup` is a new descriptor owned by nobody else; dropping it closes it.
    drop(unsafe { OwnedFd::from_raw_fd(dup) });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_and_releases_the_slot() {
        let f = std::fs::File::open("/dev/null").unwrap();
        reserve(&f, 200).unwrap();
        // The copy was closed: the next descriptor is a low one again.
        let g = std::fs::File::open("/dev/null").unwrap();
        assert!(g.as_raw_fd() < 200);
        let e = reserve(&f, usize::MAX).unwrap_err();
        assert!(e.to_string().contains("open-file limit"), "{e}");
    }
}
