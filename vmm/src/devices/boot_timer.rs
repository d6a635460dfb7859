//! Firecracker's boot timer on x86: a byte written at the start of its MMIO window marks the
//! guest's boot complete, and sipi puts it on the boot timeline with the time since the boot
//! began and the process's CPU time (Firecracker's `Guest-boot-time` line). As in Firecracker,
//! only a one-byte write of [`BOOT_TIMER_MAGIC`] at offset 0 counts; any other write is ignored
//! and reads return zero.

use std::sync::Arc;

use firmware::layout::{BOOT_TIMER_BASE, BOOT_TIMER_LEN, BOOT_TIMER_MAGIC};

use super::mmio_bus::MmioDevice;
use super::timeline::{Timeline, TimelineSource};

/// The boot timer, recording into the boot's timeline.
pub(crate) struct BootTimer {
    timeline: Arc<Timeline>,
}

impl BootTimer {
    /// A boot timer that records into `timeline`.
    pub(crate) fn new(timeline: Arc<Timeline>) -> Self {
        Self { timeline }
    }
}

impl MmioDevice for BootTimer {
    fn window(&self) -> (u64, u64) {
        (BOOT_TIMER_BASE, BOOT_TIMER_LEN)
    }

    fn read(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&self, vcpu: u32, offset: u64, data: &[u8]) {
        if offset == 0 && data == [BOOT_TIMER_MAGIC] {
            self.timeline
                .record(vcpu, TimelineSource::BootTimer, BOOT_TIMER_MAGIC);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_magic_byte_at_offset_zero_counts() {
        let t = Arc::new(Timeline::default());
        let b = BootTimer::new(t.clone());
        b.write(1, 0, &[122]);
        b.write(1, 1, &[BOOT_TIMER_MAGIC]);
        b.write(1, 0, &[BOOT_TIMER_MAGIC, 0]);
        b.write(1, 0, &u32::from(BOOT_TIMER_MAGIC).to_le_bytes());
        assert!(t.events().is_empty());
        b.write(2, 0, &[BOOT_TIMER_MAGIC]);
        let e = t.events();
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].vcpu, e[0].source, e[0].code),
            (2, TimelineSource::BootTimer, 123)
        );
        let mut d = [0xAAu8; 4];
        b.read(0, &mut d);
        assert_eq!(d, [0; 4]);
    }
}
