//! The naive burst: one KVM_SET_USER_MEMORY_REGION per change, as a VMM without transactions
//! does (and QEMU, which commits its transaction after every change of this kind).

use std::collections::HashMap;

use kvm_bindings::kvm_userspace_memory_region;

use super::burst_vm::BurstVm;
use super::error::BurstError;
use super::workload::{self, Change, BURST_REGION_SIZE};
use crate::memory::{GuestRange, MapError, MemslotSink, SlotIds, SlotOpKind};

/// Slots the naive burst created and has not deleted yet. Their numbers lie above every slot
/// of the memory map (which the naive burst leaves alone).
pub struct NaiveSlots {
    base: u32,
    ids: SlotIds,
    /// Region number -> slot number.
    live: HashMap<u64, u32>,
}

impl NaiveSlots {
    /// Slot numbers from just above the map's highest to KVM's limit.
    pub fn new(vm: &BurstVm) -> Self {
        let base = vm.map.slots().iter().map(|s| s.id + 1).max().unwrap_or(0);
        Self {
            base,
            ids: SlotIds::new(vm.nr_memslots().saturating_sub(base)),
            live: HashMap::new(),
        }
    }

    /// Slots alive.
    pub fn live(&self) -> usize {
        self.live.len()
    }

    /// Applies the first `n` changes of the burst, one ioctl each.
    pub fn apply(&mut self, vm: &mut BurstVm, n: u64) -> Result<(), BurstError> {
        for c in workload::changes(n) {
            match c {
                Change::Add(k) => {
                    let id = self.ids.alloc().ok_or(MapError::SlotLimit {
                        needed: self.live.len() + 1,
                        limit: self.ids.limit(),
                    })?;
                    let slot = self.base + id;
                    self.ioctl(vm, SlotOpKind::Add, slot, k, BURST_REGION_SIZE)
                        .inspect_err(|_| self.ids.release(id))?;
                    self.live.insert(k, slot);
                }
                Change::Remove(k) => {
                    let slot = self.live[&k];
                    self.ioctl(vm, SlotOpKind::Delete, slot, k, 0)?;
                    self.live.remove(&k);
                    self.ids.release(slot - self.base);
                }
            }
        }
        Ok(())
    }

    /// Deletes every slot still alive (best effort: a slot KVM refuses to delete stays until
    /// the VM is destroyed, which happens before the pool is unmapped).
    pub fn clear(mut self, vm: &mut BurstVm) {
        let live = std::mem::take(&mut self.live);
        for (k, slot) in live {
            let _ = self.ioctl(vm, SlotOpKind::Delete, slot, k, 0);
        }
    }

    fn ioctl(
        &self,
        vm: &mut BurstVm,
        op: SlotOpKind,
        slot: u32,
        k: u64,
        memory_size: u64,
    ) -> Result<(), MapError> {
        let addr = workload::guest_addr(k);
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: addr,
            memory_size,
            userspace_addr: vm.pool().as_ptr() as u64 + addr,
        };
        // SAFETY: the host range is region k's page of the pool mapping (guest address and pool
        // offset are equal and inside the pool, see workload.rs); BurstVm keeps the pool mapped
        // until after its VM fd is closed, so the page stays mapped while the slot can exist.
        unsafe { vm.map.sink_mut().set_user_memory_region(region) }.map_err(|source| {
            MapError::Kvm {
                op,
                slot,
                range: GuestRange::new(addr, BURST_REGION_SIZE),
                source,
            }
        })
    }
}
