//! Guest RAM of a boot: the layout around the 32-bit MMIO hole, the host mapping, and its
//! registration with KVM through the memory map.

use std::borrow::Borrow;
use std::sync::Arc;

use firmware::layout::{
    BIOS_AREA_END, BIOS_AREA_START, LOW_RAM_END, MMIO_HOLE_END, MMIO_HOLE_START,
};
use kvm_ioctls::VmFd;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use super::error::MapError;
use super::map::{MapLimits, MemoryMap};
use super::region::{Backing, Region, RegionFlags};
use super::sink::KvmMemslots;
use crate::kvm::KvmHost;

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
    /// The memory map refused the layout, or KVM refused a slot.
    #[error("cannot register guest memory with KVM")]
    Slots(#[from] MapError),
}

/// The RAM ranges for `size` bytes of guest memory: below the MMIO hole, and the rest above
/// 4 GiB.
pub(crate) fn ram_ranges(size: u64) -> Vec<(GuestAddress, usize)> {
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
pub(crate) fn create(size: u64, phys_bits: u32) -> Result<GuestMemoryMmap, MemoryError> {
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

/// The VMM's own memory areas inside a RAM mapping that starts at guest address `start` and
/// is `len` bytes long: the pieces between the boundaries of firmware::layout (low memory, the
/// legacy video/option-ROM hole, the BIOS area holding the RSDP and ACPI tables, RAM from
/// 1 MiB), as `(guest address, size)`.
fn areas(start: u64, len: u64) -> Vec<(u64, u64)> {
    let end = start + len;
    let mut cuts: Vec<u64> = [LOW_RAM_END, BIOS_AREA_START, BIOS_AREA_END]
        .into_iter()
        .filter(|c| *c > start && *c < end)
        .collect();
    cuts.insert(0, start);
    cuts.push(end);
    cuts.windows(2).map(|w| (w[0], w[1] - w[0])).collect()
}

/// Registers guest RAM with KVM through one memory-map transaction: every area of
/// [`areas`] is its own region, and the commit merges them (same mapping, same flags) into one
/// slot below the MMIO hole and one above 4 GiB. The returned map must live as long as the
/// vCPUs run: dropping it deletes the slots.
pub(crate) fn register<V: Borrow<VmFd>>(
    vm: V,
    host: &KvmHost,
    mem: &GuestMemoryMmap,
) -> Result<MemoryMap<KvmMemslots<V>>, MemoryError> {
    let mut map = MemoryMap::new(KvmMemslots::new(vm), MapLimits::of(host));
    let mut txn = map.begin();
    for region in mem.iter() {
        let base = region.start_addr().0;
        let mapping = region.get_mmap();
        for (addr, size) in areas(base, region.len()) {
            let backing = Backing::new(Arc::clone(&mapping), addr - base);
            txn.add(Region::new(addr, size, backing, RegionFlags::NONE))?;
        }
    }
    txn.commit()?;
    Ok(map)
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

    #[test]
    fn the_low_megabyte_is_cut_at_the_firmware_areas() {
        assert_eq!(
            areas(0, 2 << 20),
            vec![
                (0, LOW_RAM_END),
                (LOW_RAM_END, BIOS_AREA_START - LOW_RAM_END),
                (BIOS_AREA_START, BIOS_AREA_END - BIOS_AREA_START),
                (BIOS_AREA_END, (2 << 20) - BIOS_AREA_END),
            ]
        );
        assert_eq!(
            areas(MMIO_HOLE_END, 1 << 30),
            vec![(MMIO_HOLE_END, 1 << 30)]
        );
    }
}
