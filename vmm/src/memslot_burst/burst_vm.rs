//! The burst VM: 1 MiB of RAM holding the guest loop, a window of small regions after it (one
//! pool mapping backs both), the memory map every slot goes through, and vCPUs running the
//! loop. Public so that the regression tests can drive the map while vCPUs run.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use firmware::layout::KVM_TSS_ADDR;
use kvm_ioctls::VmFd;
use vm_memory::{Bytes, MmapRegion, VolatileMemory};

use super::error::BurstError;
use super::guest::{self, BURST_RAM_SIZE, GUEST_MAX_VCPUS};
use super::vcpus::{GuestFailure, GuestVcpus};
use super::workload::BURST_POOL_SIZE;
use crate::kvm::KvmHost;
use crate::memory::{Backing, KvmMemslots, MapLimits, MemoryMap, Region, RegionFlags};

/// Shadow-MMU pages KVM may use per vCPU of the burst VM (KVM_SET_NR_MMU_PAGES). KVM's
/// default is 2% of the guest's memory and at least 64 pages: far too few for dozens of vCPUs
/// on a 1 MiB guest when every slot change zaps the shadow pages and all vCPUs rebuild theirs
/// at once: KVM_RUN then fails with ENOSPC (docs/host.md, "KVM quirks"). It is a cap, not an
/// allocation.
const BURST_MMU_PAGES_PER_VCPU: u64 = 32;
/// The cap for few vCPUs.
const BURST_MMU_PAGES_MIN: u64 = 1024;

vmm_sys_util::ioctl_io_nr!(KVM_SET_NR_MMU_PAGES, kvm_bindings::KVMIO, 0x44);

/// How long vCPUs may take to show progress in their counters.
pub const PROGRESS_TIMEOUT: Duration = Duration::from_secs(60);

/// The memory map of the burst VM, its slots going to the counting wrapper on its VM fd.
pub type BurstMap = MemoryMap<KvmMemslots<Arc<VmFd>>>;

/// A VM whose vCPUs keep touching their RAM while its memory map changes.
pub struct BurstVm {
    // Fields drop in this order: the vCPU threads are stopped and joined (closing the vCPU
    // fds), the map deletes its slots and closes the VM fd (it holds the last reference), and
    // only then is the pool unmapped.
    vcpus: GuestVcpus,
    /// The memory map: RAM's region, and whatever the burst adds.
    pub map: BurstMap,
    pool: Arc<MmapRegion>,
    nr_memslots: u32,
}

impl BurstVm {
    /// Opens `kvm_device`, creates the VM, maps RAM through the memory map (one transaction,
    /// one slot), and starts `vcpus` vCPUs; returns once every vCPU has run its loop. The
    /// sink's statistics are cleared, so they count from here.
    pub fn new(kvm_device: &Path, vcpus: u32, seccomp: bool) -> Result<Self, BurstError> {
        let host = KvmHost::open(kvm_device)?;
        let max = host.max_vcpus.min(GUEST_MAX_VCPUS);
        if vcpus > max {
            return Err(BurstError::TooManyVcpus {
                requested: vcpus,
                max,
            });
        }
        let vm = Arc::new(
            host.kvm
                .create_vm()
                .map_err(|e| BurstError::VmIoctl("create the VM", e))?,
        );
        vm.set_tss_address(KVM_TSS_ADDR as usize)
            .map_err(|e| BurstError::VmIoctl("set the TSS address", e))?;
        let mmu_pages = BURST_MMU_PAGES_MIN.max(BURST_MMU_PAGES_PER_VCPU * u64::from(vcpus));
        // SAFETY: KVM_SET_NR_MMU_PAGES takes its argument by value and touches no user memory.
        let ret =
            unsafe { vmm_sys_util::ioctl::ioctl_with_val(&*vm, KVM_SET_NR_MMU_PAGES(), mmu_pages) };
        if ret < 0 {
            return Err(BurstError::VmIoctl(
                "set the shadow MMU page limit",
                kvm_ioctls::Error::last(),
            ));
        }
        let pool = Arc::new(
            MmapRegion::new(BURST_POOL_SIZE as usize)
                .map_err(|e| BurstError::Pool(BURST_POOL_SIZE >> 10, e))?,
        );
        let ram = pool.as_volatile_slice();
        ram.write_slice(guest::code(), guest::GUEST_CODE_ADDR as usize)
            .and_then(|()| ram.write_obj(guest::GUEST_PATTERN, guest::GUEST_PATTERN_ADDR as usize))
            .map_err(BurstError::GuestWrite)?;
        let mut map = MemoryMap::new(KvmMemslots::new(Arc::clone(&vm)), MapLimits::of(&host));
        let mut txn = map.begin();
        txn.add(Region::new(
            0,
            BURST_RAM_SIZE,
            Backing::new(Arc::clone(&pool), 0),
            RegionFlags::NONE,
        ))?;
        txn.commit()?;
        let filter = match seccomp {
            true => Some(crate::seccomp::vcpu_filter()?),
            false => None,
        };
        let vcpus = GuestVcpus::start(&vm, vcpus, filter)?;
        let burst = Self {
            vcpus,
            map,
            pool,
            nr_memslots: host.nr_memslots,
        };
        burst.wait_for_progress(&vec![0; burst.vcpu_count()], PROGRESS_TIMEOUT)?;
        let mut burst = burst;
        burst.map.sink_mut().stats_mut().clear();
        Ok(burst)
    }

    /// The host mapping behind RAM and the burst window.
    pub fn pool(&self) -> &Arc<MmapRegion> {
        &self.pool
    }

    /// KVM_CAP_NR_MEMSLOTS.
    pub fn nr_memslots(&self) -> u32 {
        self.nr_memslots
    }

    /// vCPUs running.
    pub fn vcpu_count(&self) -> usize {
        self.counters().len()
    }

    /// Each vCPU's loop counter, read from guest RAM.
    pub fn counters(&self) -> Vec<u32> {
        let ram = self.pool.as_volatile_slice();
        (0..self.vcpus.count())
            .map(|i| {
                ram.load::<u32>(guest::counter_addr(i) as usize, Ordering::Relaxed)
                    .unwrap_or(0)
            })
            .collect()
    }

    /// What the vCPUs saw go wrong so far.
    pub fn failures(&self) -> Vec<GuestFailure> {
        self.vcpus.failures()
    }

    /// Waits until every vCPU's counter differs from `since` (each has run its loop again), or
    /// a vCPU reported a failure (returned by [`BurstVm::failures`]), or `timeout` passes.
    pub fn wait_for_progress(&self, since: &[u32], timeout: Duration) -> Result<(), BurstError> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.counters();
            let behind = now.iter().zip(since).position(|(n, s)| n == s);
            let Some(vcpu) = behind else { return Ok(()) };
            if !self.failures().is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BurstError::Stalled {
                    vcpu: vcpu as u32,
                    secs: timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Stops the vCPUs; returns what they saw go wrong. The VM stays usable (its map too).
    pub fn stop_vcpus(&mut self) -> Vec<GuestFailure> {
        self.vcpus.stop()
    }

    /// Stops the vCPUs and tears the VM down; returns what the vCPUs saw go wrong.
    pub fn stop(mut self) -> Vec<GuestFailure> {
        self.stop_vcpus()
    }
}
