//! Where memory-slot changes go: [`MemslotSink`] is one KVM_SET_USER_MEMORY_REGION call, and
//! [`KvmMemslots`] the real one, a thin wrapper around the VM fd that counts and times every
//! call (the figures `vmm memslot-burst`, its tests and its benchmark report).

use std::borrow::Borrow;
use std::time::{Duration, Instant};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;

/// Receives KVM_SET_USER_MEMORY_REGION calls.
pub trait MemslotSink {
    /// Creates, moves, updates or (with `memory_size` 0) deletes one slot.
    ///
    /// # Safety
    ///
    /// Unless `region.memory_size` is 0, the host range `[userspace_addr, userspace_addr +
    /// memory_size)` must stay mapped, readable and writable (readable for a read-only slot),
    /// and used for nothing but this guest memory, until the slot is deleted or the VM is
    /// destroyed.
    unsafe fn set_user_memory_region(
        &mut self,
        region: kvm_userspace_memory_region,
    ) -> Result<(), kvm_ioctls::Error>;
}

/// One KVM_SET_USER_MEMORY_REGION as issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoctlCall {
    /// Slot number.
    pub slot: u32,
    /// Guest address.
    pub guest_phys_addr: u64,
    /// Size (0: a delete).
    pub memory_size: u64,
    /// Flags.
    pub flags: u32,
    /// Wall-clock time of the call.
    pub latency: Duration,
    /// True if KVM accepted it.
    pub ok: bool,
}

/// The ioctls a sink issued, in order.
#[derive(Debug, Clone, Default)]
pub struct IoctlStats {
    calls: Vec<IoctlCall>,
}

impl IoctlStats {
    /// Ioctls issued (successful or not).
    pub(crate) fn count(&self) -> u64 {
        self.calls.len() as u64
    }

    /// Every call, in issue order.
    pub fn calls(&self) -> &[IoctlCall] {
        &self.calls
    }

    /// The wall-clock time of each call, in issue order.
    pub(crate) fn latencies(&self) -> Vec<Duration> {
        self.calls.iter().map(|c| c.latency).collect()
    }

    /// Forgets everything recorded so far.
    pub fn clear(&mut self) {
        self.calls.clear();
    }
}

/// The real sink: KVM_SET_USER_MEMORY_REGION on a VM fd (`&VmFd`, `Arc<VmFd>`, or an owned
/// one), each call counted and timed.
pub struct KvmMemslots<V> {
    vm: V,
    stats: IoctlStats,
}

impl<V: Borrow<VmFd>> KvmMemslots<V> {
    /// Wraps `vm`.
    pub fn new(vm: V) -> Self {
        Self {
            vm,
            stats: IoctlStats::default(),
        }
    }

    /// What was issued so far.
    pub fn stats(&self) -> &IoctlStats {
        &self.stats
    }

    /// Mutable statistics (to clear them between measurements).
    pub fn stats_mut(&mut self) -> &mut IoctlStats {
        &mut self.stats
    }
}

impl<V: Borrow<VmFd>> MemslotSink for KvmMemslots<V> {
    unsafe fn set_user_memory_region(
        &mut self,
        region: kvm_userspace_memory_region,
    ) -> Result<(), kvm_ioctls::Error> {
        let t = Instant::now();
        // SAFETY: the caller upholds this trait method's contract, which is the ioctl's.
        let result = unsafe { self.vm.borrow().set_user_memory_region(region) };
        self.stats.calls.push(IoctlCall {
            slot: region.slot,
            guest_phys_addr: region.guest_phys_addr,
            memory_size: region.memory_size,
            flags: region.flags,
            latency: t.elapsed(),
            ok: result.is_ok(),
        });
        result
    }
}
