//! Why a memory-map change was refused.

use super::range::GuestRange;

/// The kind of KVM_SET_USER_MEMORY_REGION call, for error messages and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotOpKind {
    /// A new slot.
    Add,
    /// `memory_size` 0.
    Delete,
    /// Same slot, new guest address (KVM_MR_MOVE).
    Move,
    /// Same slot and range, new flags (KVM_MR_FLAGS_ONLY).
    UpdateFlags,
}

impl SlotOpKind {
    /// The verb used in messages.
    fn verb(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Delete => "delete",
            Self::Move => "move",
            Self::UpdateFlags => "update the flags of",
        }
    }
}

/// Why a region operation or a commit failed.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// A region of size zero.
    #[error("the region at guest address {addr:#x} has size zero")]
    ZeroSize { addr: u64 },
    /// An address or size that is not a multiple of the page size.
    #[error("the region at guest address {addr:#x} is not page aligned: its {what} {value:#x} is not a multiple of 4 KiB")]
    Unaligned {
        addr: u64,
        what: &'static str,
        value: u64,
    },
    /// A range past the guest's physical address width.
    #[error("the region {range} ({size:#x} bytes) does not fit in the guest's {bits}-bit physical address space")]
    BeyondAddressWidth {
        range: GuestRange,
        size: u64,
        bits: u32,
    },
    /// The host mapping ends before the region does.
    #[error("the region {range} needs host memory beyond its mapping ({mapping:#x} bytes, region at offset {offset:#x})")]
    BackingTooSmall {
        range: GuestRange,
        offset: u64,
        mapping: u64,
    },
    /// Two regions would share guest-physical addresses.
    #[error("the region {new} overlaps the region {existing} already in the memory map")]
    Overlap {
        new: GuestRange,
        existing: GuestRange,
    },
    /// `remove` or `resize` of an address where no region starts.
    #[error("no region of the memory map starts at guest address {0:#x}")]
    NoRegion(u64),
    /// More slots than KVM allows, even with every mergeable region merged.
    #[error("the memory map needs {needed} KVM memory slots, more than the {limit} this VM allows (KVM_CAP_NR_MEMSLOTS)")]
    SlotLimit { needed: usize, limit: u32 },
    /// KVM refused a KVM_SET_USER_MEMORY_REGION.
    #[error("KVM refused to {} memory slot {slot} at {range}", op.verb())]
    Kvm {
        op: SlotOpKind,
        slot: u32,
        range: GuestRange,
        #[source]
        source: kvm_ioctls::Error,
    },
}

impl MapError {
    /// True for a request the caller got wrong (a bad region, too many slots), false when KVM
    /// refused a valid request (a host problem).
    pub fn is_request_error(&self) -> bool {
        !matches!(self, Self::Kvm { .. })
    }
}
