//! Guest memory: the RAM of a boot (the `ram` module) and the memory-slot transaction layer
//! every KVM_SET_USER_MEMORY_REGION of the VMM goes through.
//!
//! # Why transactions
//!
//! Each KVM_SET_USER_MEMORY_REGION that adds, deletes or moves a slot waits for an SRCU grace
//! period (expedited) in the kernel, and with vCPUs running guest code some calls wait much
//! longer. KVM has no batched form. A VMM that applies thousands of small region changes one
//! at a time pays that thousands of times. The measured figures are in docs/benchmarks.md,
//! "Memory slots".
//!
//! # The model
//!
//! - A [`Region`] is a guest-physical range, the host memory behind it ([`Backing`]: a mapping
//!   and an offset) and KVM slot flags ([`RegionFlags`]). Regions never overlap.
//! - A [`MemoryMap`] holds the committed regions and the slots KVM has for them. Regions change
//!   only inside a [`Transaction`] ([`MemoryMap::begin`]): `add`, `remove`, `resize`,
//!   `set_flags`, each checked at once (zero size, alignment, address width, backing size,
//!   overlap: [`MapError`]), then `commit`.
//! - `commit` computes the final flat view, merges regions contiguous in guest-physical and
//!   host addresses with equal flags, diffs that against the slots KVM has, and issues the
//!   minimal ordered sequence of ioctls (the `plan` module documents the algorithm, its
//!   ordering, and the one window in which memory that stays in the view is briefly unmapped).
//!   Slots that still hold are never touched.
//! - Slot numbers come from `0..KVM_CAP_NR_MEMSLOTS` and are recycled; a commit that would need
//!   more slots fails before its first ioctl ([`MapError::SlotLimit`]).
//! - Ioctls go to a [`MemslotSink`]; [`KvmMemslots`] is the real one, which counts and times
//!   each call on the VM fd.
//!
//! # Example
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use vmm::memory::*;
//! # fn f(vm: &kvm_ioctls::VmFd, host: &vmm::kvm::KvmHost) -> Result<(), MapError> {
//! let pool = Arc::new(vm_memory::MmapRegion::new(1 << 20).unwrap());
//! let mut map = MemoryMap::new(KvmMemslots::new(vm), MapLimits::of(host));
//! let mut txn = map.begin();
//! for page in 0..256u64 {
//!     let backing = Backing::new(Arc::clone(&pool), page << 12);
//!     txn.add(Region::new(page << 12, 1 << 12, backing, RegionFlags::NONE))?;
//! }
//! let stats = txn.commit()?; // 256 adjacent pages: one slot, one ioctl
//! assert_eq!(stats.ioctls, 1);
//! # Ok(()) }
//! ```

mod error;
mod map;
mod plan;
mod ram;
mod range;
mod region;
mod sink;
mod slot_ids;
mod transaction;

pub use error::{MapError, SlotOpKind};
pub use map::{CommitStats, MapLimits, MemoryMap, SlotInfo};
#[cfg(test)]
pub(crate) use ram::ram_ranges;
pub use ram::MemoryError;
pub(crate) use ram::{create, register};
pub use range::GuestRange;
pub use region::{phys_limit, Backing, Region, RegionFlags};
pub use sink::{IoctlCall, IoctlStats, KvmMemslots, MemslotSink};
pub(crate) use slot_ids::SlotIds;
pub use transaction::Transaction;
