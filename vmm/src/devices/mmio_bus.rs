//! The MMIO bus: routes a guest access to an address no memory slot backs (a KVM_EXIT_MMIO) to
//! the device whose window holds it, with the offset inside that window. Windows are fixed
//! when the bus is built, sorted and disjoint, and found by binary search, as on the port bus.
//!
//! An access that starts in a window is the device's, whatever its size: each device checks
//! the sizes and offsets it takes. An access to no window is the caller's (logged as unmapped).

use std::sync::Arc;

/// A device on the MMIO bus. Accesses come from many vCPU threads at once: a device with
/// state locks it itself.
pub(crate) trait MmioDevice: Send + Sync {
    /// The guest-physical base and length of the device's window.
    fn window(&self) -> (u64, u64);

    /// A read of `data.len()` bytes at `offset` into the window: fills all of `data`.
    fn read(&self, offset: u64, data: &mut [u8]);

    /// A write of `data` at `offset` into the window by vCPU `vcpu`.
    fn write(&self, vcpu: u32, offset: u64, data: &[u8]);
}

/// Why a set of MMIO devices cannot share a bus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MmioBusError {
    /// Two windows overlap.
    #[error("the MMIO windows at {0:#x} and {1:#x} overlap")]
    Overlap(u64, u64),
    /// A window is empty or runs past the end of the address space.
    #[error("the MMIO window at {0:#x} of {1:#x} bytes is empty or wraps")]
    Bad(u64, u64),
}

/// The bus: windows sorted by base, disjoint, each with its device.
pub(crate) struct MmioBus {
    /// (base, end exclusive) of each window.
    windows: Vec<(u64, u64)>,
    /// `devices[i]` decodes `windows[i]`.
    devices: Vec<Arc<dyn MmioDevice>>,
}

impl MmioBus {
    /// A bus with `devices` on it; an error if two windows overlap or one is empty or wraps.
    pub(crate) fn new(devices: Vec<Arc<dyn MmioDevice>>) -> Result<Self, MmioBusError> {
        let mut slots = Vec::with_capacity(devices.len());
        for device in devices {
            let (base, len) = device.window();
            let end = base
                .checked_add(len)
                .filter(|_| len > 0)
                .ok_or(MmioBusError::Bad(base, len))?;
            slots.push(((base, end), device));
        }
        slots.sort_unstable_by_key(|(w, _)| *w);
        if let Some(w) = slots.windows(2).find(|w| w[1].0 .0 < w[0].0 .1) {
            return Err(MmioBusError::Overlap(w[0].0 .0, w[1].0 .0));
        }
        let (windows, devices) = slots.into_iter().unzip();
        Ok(Self { windows, devices })
    }

    /// The device whose window holds `addr`, and the offset of `addr` in it.
    pub(crate) fn device(&self, addr: u64) -> Option<(&dyn MmioDevice, u64)> {
        let i = self
            .windows
            .partition_point(|&(base, _)| base <= addr)
            .checked_sub(1)?;
        let (base, end) = self.windows[i];
        (addr < end).then(|| (&*self.devices[i], addr - base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window that answers reads with its tag.
    struct Tagged(u8, u64, u64);

    impl MmioDevice for Tagged {
        fn window(&self) -> (u64, u64) {
            (self.1, self.2)
        }
        fn read(&self, _offset: u64, data: &mut [u8]) {
            data.fill(self.0);
        }
        fn write(&self, _vcpu: u32, _offset: u64, _data: &[u8]) {}
    }

    fn bus(windows: &[(u64, u64)]) -> Result<MmioBus, MmioBusError> {
        MmioBus::new(
            windows
                .iter()
                .enumerate()
                .map(|(i, &(b, l))| Arc::new(Tagged(i as u8, b, l)) as Arc<dyn MmioDevice>)
                .collect(),
        )
    }

    #[test]
    fn accesses_reach_the_window_that_holds_them_with_their_offset() {
        let b = bus(&[(0xFF00_0000, 0x1_0000), (0xFED0_0000, 0x400)]).unwrap();
        let at = |addr: u64| {
            b.device(addr).map(|(d, off)| {
                let mut t = [0u8];
                d.read(off, &mut t);
                (t[0], off)
            })
        };
        assert_eq!(at(0xFED0_0000), Some((1, 0)));
        assert_eq!(at(0xFED0_03FF), Some((1, 0x3FF)));
        assert_eq!(at(0xFED0_0400), None);
        assert_eq!(at(0xFECF_FFFF), None);
        assert_eq!(at(0xFF00_FFFF), Some((0, 0xFFFF)));
        assert_eq!(at(0xFF01_0000), None);
        assert_eq!(at(0), None);
        assert_eq!(at(u64::MAX), None);
    }

    #[test]
    fn overlapping_empty_and_wrapping_windows_are_refused() {
        assert_eq!(
            bus(&[(0x1000, 0x1000), (0x1FFF, 1)]).err(),
            Some(MmioBusError::Overlap(0x1000, 0x1FFF))
        );
        assert!(bus(&[(0x1000, 0x1000), (0x2000, 1)]).is_ok(), "adjacent");
        assert_eq!(
            bus(&[(0x1000, 0)]).err(),
            Some(MmioBusError::Bad(0x1000, 0))
        );
        assert_eq!(
            bus(&[(u64::MAX, 2)]).err(),
            Some(MmioBusError::Bad(u64::MAX, 2))
        );
    }
}
