//! Running one child process to its end: its exit status, whole-process wall time (spawn to
//! reap) and peak RSS (`wait4`'s `ru_maxrss`).

use std::process::Command;
use std::time::Instant;

/// How a measured child ended.
#[derive(Debug, Clone, Copy)]
pub struct Finished {
    /// The exit status, or -1 when a signal ended it.
    pub code: i32,
    /// Spawn to reap, microseconds.
    pub wall_us: f64,
    /// Peak resident set (KiB).
    pub max_rss_kb: f64,
}

/// Peak RSS (KiB) and exit status (-1 when a signal ended it) of a finished child, via wait4.
pub fn wait_with_rusage(pid: libc::pid_t) -> Result<(i32, f64), String> {
    let mut status = 0;
    // SAFETY: rusage is plain data, fully written by wait4 on success.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `status` and `usage` are valid for writes; `pid` is our own child.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if rc != pid {
        return Err(format!("wait4 failed: {}", std::io::Error::last_os_error()));
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((code, usage.ru_maxrss as f64))
}

/// Spawns `cmd` (its stdio as the caller set it) and waits for it.
pub fn run(cmd: &mut Command) -> Result<Finished, String> {
    let what = cmd.get_program().to_string_lossy().into_owned();
    let start = Instant::now();
    let child = cmd.spawn().map_err(|e| format!("cannot run {what}: {e}"))?;
    let pid = libc::pid_t::try_from(child.id()).map_err(|e| e.to_string())?;
    let (code, max_rss_kb) = wait_with_rusage(pid)?;
    Ok(Finished {
        code,
        wall_us: start.elapsed().as_secs_f64() * 1e6,
        max_rss_kb,
    })
}
