//! A region of the guest memory map: a page-aligned guest-physical range, the host memory
//! behind it, and the KVM slot flags it needs.

use std::fmt;
use std::sync::Arc;

use firmware::layout::PAGE_SIZE;
use kvm_bindings::{KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY};
use vm_memory::MmapRegion;

use super::error::MapError;
use super::range::GuestRange;

/// The `flags` of KVM_SET_USER_MEMORY_REGION a region carries (Documentation/virt/kvm/api.rst,
/// 4.35). Regions merge into one slot only if their flags are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RegionFlags(u32);

impl RegionFlags {
    /// Plain read/write memory.
    pub const NONE: Self = Self(0);
    /// KVM_MEM_LOG_DIRTY_PAGES: KVM records guest writes for KVM_GET_DIRTY_LOG. Can be turned
    /// on and off on a live slot (a flags-only update).
    pub const LOG_DIRTY_PAGES: Self = Self(KVM_MEM_LOG_DIRTY_PAGES);
    /// KVM_MEM_READONLY: guest writes exit to userspace as MMIO (needs KVM_CAP_READONLY_MEM).
    /// KVM cannot toggle it on a live slot: the slot is deleted and re-added.
    pub const READONLY: Self = Self(KVM_MEM_READONLY);

    /// The raw KVM flag bits.
    pub(crate) const fn bits(self) -> u32 {
        self.0
    }

    /// True if KVM can change a live slot's flags from `self` to `other` in place (a
    /// KVM_MR_FLAGS_ONLY change): everything but KVM_MEM_READONLY may change.
    pub(crate) const fn updatable_to(self, other: Self) -> bool {
        (self.0 ^ other.0) & KVM_MEM_READONLY == 0
    }
}

/// The host memory behind a region: a mapping and a byte offset into it. The memory map holds
/// a reference to the mapping for as long as a KVM slot points into it, so the host memory
/// cannot be unmapped under the guest.
#[derive(Clone)]
pub struct Backing {
    mapping: Arc<MmapRegion>,
    offset: u64,
}

impl Backing {
    /// The memory at `offset` bytes into `mapping`.
    pub fn new(mapping: Arc<MmapRegion>, offset: u64) -> Self {
        Self { mapping, offset }
    }

    /// The mapping.
    pub(crate) fn mapping(&self) -> &Arc<MmapRegion> {
        &self.mapping
    }

    /// The offset into the mapping.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The host virtual address of the first byte (what KVM calls `userspace_addr`).
    pub(crate) fn host_addr(&self) -> u64 {
        (self.mapping.as_ptr() as u64).wrapping_add(self.offset)
    }

    /// Bytes of the mapping from the offset to its end (0 if the offset is past the end).
    pub(crate) fn available(&self) -> u64 {
        (self.mapping.size() as u64).saturating_sub(self.offset)
    }
}

impl fmt::Debug for Backing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backing")
            .field("mapping", &self.mapping.as_ptr())
            .field("mapping_size", &self.mapping.size())
            .field("offset", &self.offset)
            .finish()
    }
}

/// One region of the guest memory map.
#[derive(Debug, Clone)]
pub struct Region {
    /// Guest-physical address of the first byte (page aligned).
    pub guest_addr: u64,
    /// Size in bytes (a non-zero multiple of the page size).
    pub size: u64,
    /// The host memory behind it (its address page aligned, `size` bytes available).
    pub backing: Backing,
    /// KVM slot flags.
    pub flags: RegionFlags,
}

impl Region {
    /// A region of `size` bytes at `guest_addr` backed by `backing`.
    pub fn new(guest_addr: u64, size: u64, backing: Backing, flags: RegionFlags) -> Self {
        Self {
            guest_addr,
            size,
            backing,
            flags,
        }
    }

    /// The guest-physical range.
    pub(crate) fn range(&self) -> GuestRange {
        GuestRange::new(self.guest_addr, self.size)
    }

    /// The host address of the first byte.
    pub(crate) fn host_addr(&self) -> u64 {
        self.backing.host_addr()
    }

    /// Checks what KVM requires of one slot (api.rst 4.35: `guest_phys_addr`, `memory_size` and
    /// `userspace_addr` page aligned, a non-empty range) and that the range lies inside the
    /// guest's `phys_bits`-bit physical address space and the backing mapping.
    pub(crate) fn validate(&self, phys_bits: u32) -> Result<(), MapError> {
        let addr = self.guest_addr;
        if self.size == 0 {
            return Err(MapError::ZeroSize { addr });
        }
        let unaligned = |what, value| MapError::Unaligned { addr, what, value };
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(unaligned("guest address", addr));
        }
        if !self.size.is_multiple_of(PAGE_SIZE) {
            return Err(unaligned("size", self.size));
        }
        if !self.host_addr().is_multiple_of(PAGE_SIZE) {
            return Err(unaligned("host address", self.host_addr()));
        }
        let limit = phys_limit(phys_bits);
        match addr.checked_add(self.size) {
            Some(end) if end <= limit => {}
            _ => {
                return Err(MapError::BeyondAddressWidth {
                    range: self.range(),
                    size: self.size,
                    bits: phys_bits,
                })
            }
        }
        if self.size > self.backing.available() {
            return Err(MapError::BackingTooSmall {
                range: self.range(),
                offset: self.backing.offset(),
                mapping: self.backing.mapping().size() as u64,
            });
        }
        Ok(())
    }
}

/// One past the highest guest-physical address a `phys_bits`-bit guest can use.
pub fn phys_limit(phys_bits: u32) -> u64 {
    if phys_bits >= 64 {
        u64::MAX
    } else {
        1u64 << phys_bits
    }
}
