//! Guest RAM: the region layout around the 32-bit MMIO hole, the host mapping, and its
//! registration with KVM.

use firmware::layout::{MMIO_HOLE_END, MMIO_HOLE_START};
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// Why guest memory could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// More than the host has.
    #[error("{requested} MiB of guest memory is more than this host's {host} MiB of RAM")]
    MoreThanHost { requested: u64, host: u64 },
    /// Beyond what the guest can address.
    #[error("{requested} MiB of guest memory does not fit in the guest's {bits}-bit physical address space")]
    BeyondAddressWidth { requested: u64, bits: u32 },
    /// The host refused the mapping.
    #[error("cannot map {0} MiB of guest memory on the host")]
    Map(u64, #[source] vm_memory::mmap::FromRangesError),
    /// A region's host address could not be found.
    #[error("guest memory region at {0:#x} has no host mapping")]
    NoHostAddress(u64),
    /// KVM refused a memory slot.
    #[error("KVM refused memory slot {slot} at {addr:#x}")]
    Register {
        slot: u32,
        addr: u64,
        #[source]
        source: kvm_ioctls::Error,
    },
}

/// The RAM ranges for `size` bytes of guest memory: below the MMIO hole, and the rest above
/// 4 GiB.
pub fn ram_ranges(size: u64) -> Vec<(GuestAddress, usize)> {
    let low = size.min(MMIO_HOLE_START);
    let mut ranges = vec![(GuestAddress(0), low as usize)];
    if size > low {
        ranges.push((GuestAddress(MMIO_HOLE_END), (size - low) as usize));
    }
    ranges
}

/// The host's physical RAM in bytes.
fn host_ram_bytes() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions; it only reads system configuration.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    // SAFETY: as above.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(pages)
        .unwrap_or(0)
        .saturating_mul(u64::try_from(page_size).unwrap_or(0))
}

/// Checks `size` bytes against the host and the guest address width, then maps it.
pub fn create(size: u64, phys_bits: u32) -> Result<GuestMemoryMmap, MemoryError> {
    let mib = size >> 20;
    let host = host_ram_bytes();
    if host > 0 && size > host {
        return Err(MemoryError::MoreThanHost {
            requested: mib,
            host: host >> 20,
        });
    }
    let ranges = ram_ranges(size);
    let top = ranges.last().map(|(a, l)| a.0 + *l as u64).unwrap_or(0);
    if phys_bits < 64 && top > (1u64 << phys_bits) {
        return Err(MemoryError::BeyondAddressWidth {
            requested: mib,
            bits: phys_bits,
        });
    }
    GuestMemoryMmap::from_ranges(&ranges).map_err(|e| MemoryError::Map(mib, e))
}

/// Registers every region of `mem` with KVM, one slot per region.
pub fn register(vm: &VmFd, mem: &GuestMemoryMmap) -> Result<(), MemoryError> {
    for (slot, region) in mem.iter().enumerate() {
        let slot = slot as u32;
        let addr = region.start_addr().0;
        let host = mem
            .get_host_address(region.start_addr())
            .map_err(|_| MemoryError::NoHostAddress(addr))?;
        let r = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: addr,
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: the host range [userspace_addr, +memory_size) is a live mapping owned by
        // `mem`, which the caller keeps alive for as long as the VM exists (the VM is torn down
        // before the memory is dropped).
        unsafe { vm.set_user_memory_region(r) }.map_err(|source| MemoryError::Register {
            slot,
            addr,
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_is_split_around_the_mmio_hole() {
        assert_eq!(ram_ranges(256 << 20), vec![(GuestAddress(0), 256 << 20)]);
        let r = ram_ranges(4 << 30);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0], (GuestAddress(0), MMIO_HOLE_START as usize));
        assert_eq!(
            r[1],
            (
                GuestAddress(MMIO_HOLE_END),
                (4 << 30) - MMIO_HOLE_START as usize
            )
        );
    }

    #[test]
    fn refuses_more_than_the_host_and_the_address_width() {
        let e = create(1 << 50, 52).unwrap_err();
        assert!(matches!(e, MemoryError::MoreThanHost { .. }), "{e}");
        let e = create(64 << 20, 20).unwrap_err();
        assert!(matches!(e, MemoryError::BeyondAddressWidth { .. }), "{e}");
        assert!(create(4 << 20, 36).is_ok());
    }
}
