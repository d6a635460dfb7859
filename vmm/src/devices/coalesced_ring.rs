//! KVM's coalesced I/O ring (Documentation/virt/kvm/api.rst, KVM_REGISTER_COALESCED_MMIO and
//! KVM_CAP_COALESCED_PIO): for a registered zone, KVM appends the guest's writes to a page it
//! shares with the VMM and resumes the guest instead of exiting to userspace. The VMM reads them
//! back later, oldest first. The page belongs to the VM; it is mapped through a vCPU's file at
//! page KVM_COALESCED_MMIO_PAGE_OFFSET. Reads never exit: a device whose writes are coalesced
//! must drain the ring before it answers any other access, so that it sees every write in order.

use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use kvm_bindings::{kvm_coalesced_mmio, kvm_coalesced_mmio_ring, KVM_COALESCED_MMIO_PAGE_OFFSET};

/// One queued write, as KVM recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueuedWrite {
    /// The port (for a port I/O zone) or guest-physical address written.
    pub(crate) addr: u64,
    /// A port write rather than an MMIO write.
    pub(crate) pio: bool,
    /// The bytes written (at most 8).
    pub(crate) data: [u8; 8],
    /// How many of `data` were written.
    pub(crate) len: usize,
}

/// The VM's coalesced I/O ring, mapped. One reader at a time: the owner drains it under its
/// own lock.
#[derive(Debug)]
pub(crate) struct CoalescedRing {
    ring: NonNull<kvm_coalesced_mmio_ring>,
    page_size: usize,
    /// Entries the page holds (KVM_COALESCED_MMIO_MAX).
    capacity: u32,
}

// SAFETY: the mapping is plain shared memory that stays valid until drop; `&mut self` on
// every access makes this process's reader exclusive, and KVM synchronises its side through
// `first` and `last` as `drain` does.
unsafe impl Send for CoalescedRing {}

impl CoalescedRing {
    /// Maps the VM's ring through vCPU file `vcpu` (any vCPU of the VM: the page is shared).
    pub(crate) fn map(vcpu: &impl AsRawFd) -> std::io::Result<Self> {
        // SAFETY: sysconf has no preconditions.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let page_size = usize::try_from(page_size).map_err(|_| std::io::Error::last_os_error())?;
        let header = std::mem::size_of::<kvm_coalesced_mmio_ring>();
        let entry = std::mem::size_of::<kvm_coalesced_mmio>();
        let capacity = u32::try_from(page_size.saturating_sub(header) / entry)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        if capacity < 2 {
            return Err(std::io::ErrorKind::InvalidInput.into());
        }
        let offset =
            libc::off_t::try_from(u64::from(KVM_COALESCED_MMIO_PAGE_OFFSET) * page_size as u64)
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: a new shared mapping of one page of the vCPU file at the offset KVM defines
        // for the ring; it overlaps nothing in this process, and the result is checked.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page_size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                vcpu.as_raw_fd(),
                offset,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ring = NonNull::new(addr.cast()).ok_or_else(std::io::Error::last_os_error)?;
        Ok(Self {
            ring,
            page_size,
            capacity,
        })
    }

    /// Hands every queued write to `f`, oldest first, and frees its slot. Stops at an index KVM
    /// could not have written (the ring's fields are outside this process's control).
    pub(crate) fn drain(&mut self, mut f: impl FnMut(QueuedWrite)) {
        let header = self.ring.as_ptr();
        // SAFETY: `first` and `last` are u32 fields of the mapped, 4-byte-aligned header, valid
        // for the mapping's life; KVM updates `last` concurrently, so both are accessed
        // atomically, as the kernel's READ_ONCE/smp_wmb protocol on the ring expects.
        let (first, last) = unsafe {
            (
                AtomicU32::from_ptr(std::ptr::addr_of_mut!((*header).first)),
                AtomicU32::from_ptr(std::ptr::addr_of_mut!((*header).last)),
            )
        };
        let end = last.load(Ordering::Acquire);
        let mut at = first.load(Ordering::Relaxed);
        if end >= self.capacity {
            return;
        }
        while at != end {
            if at >= self.capacity {
                return;
            }
            // SAFETY: `at` is below `capacity`, so the entry lies inside the mapped page, after
            // the header; KVM wrote it before publishing `last` (the Acquire load above), and
            // does not touch it again until `first` moves past it.
            let e: kvm_coalesced_mmio = unsafe {
                std::ptr::addr_of!((*header).coalesced_mmio)
                    .cast::<kvm_coalesced_mmio>()
                    .add(at as usize)
                    .read_volatile()
            };
            // SAFETY: both members of the union are u32; `pio` is the one KVM writes.
            let pio = unsafe { e.__bindgen_anon_1.pio } != 0;
            let len = (e.len as usize).min(e.data.len());
            f(QueuedWrite {
                addr: e.phys_addr,
                pio,
                data: e.data,
                len,
            });
            at = (at + 1) % self.capacity;
            first.store(at, Ordering::Release);
        }
    }
}

impl Drop for CoalescedRing {
    fn drop(&mut self) {
        // SAFETY: the page was mapped by `map` with this size and is used by nothing else.
        unsafe { libc::munmap(self.ring.as_ptr().cast(), self.page_size) };
    }
}

#[cfg(test)]
impl CoalescedRing {
    /// A ring on an anonymous page, standing in for KVM's.
    pub(crate) fn anonymous() -> Self {
        // SAFETY: a new private anonymous mapping of one page; the result is checked.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(addr, libc::MAP_FAILED);
        let header = std::mem::size_of::<kvm_coalesced_mmio_ring>();
        let entry = std::mem::size_of::<kvm_coalesced_mmio>();
        Self {
            ring: NonNull::new(addr.cast()).unwrap(),
            page_size: 4096,
            capacity: ((4096 - header) / entry) as u32,
        }
    }

    /// Queues what KVM would for a one-byte write of `byte` to port `port`.
    pub(crate) fn push(&mut self, port: u64, byte: u8) {
        let mut e = kvm_coalesced_mmio {
            phys_addr: port,
            len: 1,
            ..Default::default()
        };
        e.__bindgen_anon_1.pio = 1;
        e.data[0] = byte;
        let last = self.indices().1;
        // SAFETY: `last` is below the capacity, so the entry is inside the page.
        unsafe {
            std::ptr::addr_of_mut!((*self.ring.as_ptr()).coalesced_mmio)
                .cast::<kvm_coalesced_mmio>()
                .add(last as usize)
                .write(e);
        }
        let first = self.indices().0;
        self.set_indices(first, (last + 1) % self.capacity);
    }

    /// `first` and `last`.
    pub(crate) fn indices(&self) -> (u32, u32) {
        // SAFETY: the header is inside the page.
        unsafe { ((*self.ring.as_ptr()).first, (*self.ring.as_ptr()).last) }
    }

    /// Sets `first` and `last`.
    pub(crate) fn set_indices(&mut self, first: u32, last: u32) {
        // SAFETY: the header is inside the page.
        unsafe {
            (*self.ring.as_ptr()).first = first;
            (*self.ring.as_ptr()).last = last;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drained(r: &mut CoalescedRing) -> Vec<u8> {
        let mut out = Vec::new();
        r.drain(|w| {
            assert!(w.pio);
            assert_eq!(w.addr, 0x3f8);
            out.extend_from_slice(&w.data[..w.len]);
        });
        out
    }

    #[test]
    fn drains_in_order_across_the_wrap() {
        let mut r = CoalescedRing::anonymous();
        let cap = r.capacity;
        assert!(cap > 100, "KVM_COALESCED_MMIO_MAX on 4 KiB pages is 170");
        r.set_indices(cap - 2, cap - 2);
        for b in b"abc" {
            r.push(0x3f8, *b);
        }
        assert_eq!(r.indices(), (cap - 2, 1));
        assert_eq!(drained(&mut r), b"abc");
        assert_eq!(r.indices(), (1, 1), "every slot freed");
        assert!(drained(&mut r).is_empty(), "an empty ring yields nothing");
    }

    #[test]
    fn indices_kvm_could_not_have_written_stop_the_drain() {
        let mut r = CoalescedRing::anonymous();
        let cap = r.capacity;
        r.push(0x3f8, b'x');
        r.set_indices(0, cap);
        assert!(drained(&mut r).is_empty(), "`last` beyond the ring");
        r.set_indices(cap + 5, 1);
        assert!(drained(&mut r).is_empty(), "`first` beyond the ring");
    }
}
