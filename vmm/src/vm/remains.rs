//! What a boot leaves once the VM has ended: its vCPU threads (those still in KVM_RUN, such as
//! a guest's idle APs, and those parked after leaving their run loop, each holding its vCPU),
//! the KVM memory slots, and through them the VM. Dropping [`Remains`] tears it all down in
//! order: the threads are kicked out of KVM_RUN, end and are joined, the vCPUs close, the
//! slots go, the VM closes. A process about to exit can [`Remains::abandon`] it instead: the
//! kernel then ends the threads and closes every file descriptor at exit without any of them
//! returning to user space, and frees the slots with the VM rather than one grace period at a
//! time (docs/benchmarks.md has what that saves).

use std::sync::Arc;

use kvm_ioctls::VmFd;

use crate::memory::{KvmMemslots, MemoryMap};
use crate::vcpu::VcpuSet;

/// An ended VM, torn down when dropped.
pub struct Remains {
    /// The vCPU threads; None once dismissed.
    vcpus: Option<VcpuSet>,
    /// Guest RAM's slots, held for their drop, which deletes them (after the vCPUs).
    _memory_map: MemoryMap<KvmMemslots<Arc<VmFd>>>,
}

impl Remains {
    /// The remains of an ended VM with vCPU threads `vcpus`.
    pub(super) fn new(vcpus: VcpuSet, memory_map: MemoryMap<KvmMemslots<Arc<VmFd>>>) -> Self {
        Self {
            vcpus: Some(vcpus),
            _memory_map: memory_map,
        }
    }

    /// Leaves everything to the kernel: for a process that exits next. The vCPU threads stay
    /// where they are and nothing is closed until the process ends.
    pub fn abandon(self) {
        let threads = self.vcpus.as_ref().map_or(0, VcpuSet::len);
        log::debug!(
            "{threads} vCPU threads, their vCPUs, the memory slots and the VM left to the kernel at exit"
        );
        std::mem::forget(self);
    }
}

impl Drop for Remains {
    fn drop(&mut self) {
        if let Some(v) = self.vcpus.take() {
            v.halt();
            v.dismiss();
        }
        // `_memory_map` drops next, deleting the slots; the VM closes with its last reference.
    }
}
