//! KVM's own counters of a VM and of each vCPU, read from the binary statistics file that
//! `KVM_GET_STATS_FD` opens on a VM or vCPU fd (Linux 5.14+). The file is parsed with every
//! bound checked ([`parse`]); its descriptors are read once when it is opened, and each
//! [`StatsFile::snapshot`] re-reads only the data block with one `pread`. What the counters
//! mean: docs/kvm_stats.md.

pub mod parse;

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};

use kvm_bindings::KVMIO;
use vmm_sys_util::ioctl::ioctl;
use vmm_sys_util::ioctl_io_nr;

pub use parse::{Counter, Kind, Layout, Source, StatsParseError, Unit};

// `_IO(KVMIO, 0xce)` (include/uapi/linux/kvm.h), on a VM or a vCPU fd; kvm-ioctls has no
// wrapper for it.
ioctl_io_nr!(KVM_GET_STATS_FD, KVMIO, 0xce);

/// Why KVM's statistics cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// KVM_GET_STATS_FD failed: this KVM has no binary statistics (before Linux 5.14).
    #[error("this KVM has no binary statistics (KVM_GET_STATS_FD failed)")]
    Unavailable(#[source] std::io::Error),
    /// The statistics file is not what the KVM API describes.
    #[error(transparent)]
    Parse(#[from] StatsParseError),
}

/// An open statistics file and its layout.
#[derive(Debug)]
pub struct StatsFile {
    file: File,
    layout: Layout,
}

/// The values of every counter of a [`StatsFile`] at one moment, as
/// [`Layout::read_values`] lays them out.
pub type Values = Vec<u64>;

impl StatsFile {
    /// Opens the statistics file of the VM or vCPU behind `fd` and reads its layout.
    pub fn open(fd: &impl AsRawFd) -> Result<Self, StatsError> {
        // SAFETY: KVM_GET_STATS_FD takes no argument and only returns a new fd (or -1); `fd`
        // is a valid open descriptor borrowed for the call.
        let ret = unsafe { ioctl(fd, KVM_GET_STATS_FD()) };
        if ret < 0 {
            return Err(StatsError::Unavailable(std::io::Error::last_os_error()));
        }
        // SAFETY: the ioctl returned a new descriptor that nothing else owns.
        let file = unsafe { File::from_raw_fd(ret) };
        let layout = Layout::read(&file)?;
        Ok(Self { file, layout })
    }

    /// The counters this file has.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Every counter's values now: one `pread` of the data block into `buf` (reused between
    /// snapshots).
    pub fn snapshot(&self, buf: &mut Vec<u8>) -> Result<Values, StatsError> {
        Ok(self.layout.read_values(&self.file, buf)?)
    }
}

#[cfg(test)]
mod tests;
