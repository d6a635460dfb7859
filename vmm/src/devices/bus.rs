//! The port I/O bus: every device names the ports it decodes once, as [`PortDevice::ports`],
//! and the bus routes each access to the device whose range holds the port. The routing table
//! is built once, checked for overlaps, and never changes, so a lookup takes no lock: it is a
//! binary search of a few sorted, disjoint ranges (sixteen fit in one cache line), on every
//! port exit of every vCPU.
//!
//! The bus does not look at access sizes: each device checks its own and reports the ones it
//! does not take to the unknown-access log it is handed.

use std::ops::RangeInclusive;
use std::sync::Arc;

use super::unknown::UnknownAccessLog;
use super::DeviceEvent;

/// A device on the port bus. Accesses come from many vCPU threads at once: a device with
/// state locks it itself.
pub(crate) trait PortDevice: Send + Sync {
    /// The ports the device decodes. Every access to one of them, of any size, comes to the
    /// device.
    fn ports(&self) -> &[RangeInclusive<u16>];

    /// A read of `data.len()` bytes at `port`: fills all of `data`. A write-only device reads
    /// as nothing: all ones, and logged once as an unknown access.
    fn read(&self, port: u16, data: &mut [u8], log: &UnknownAccessLog) {
        read_nothing(port, data, log);
    }

    /// A write of `data` at `port` by vCPU `vcpu`; what it asks of the VMM, if anything.
    fn write(
        &self,
        vcpu: u32,
        port: u16,
        data: &[u8],
        log: &UnknownAccessLog,
    ) -> Option<DeviceEvent>;
}

/// Why a set of devices cannot share a bus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BusError {
    /// Two registrations claim the same port.
    #[error("port ranges {0:#x}-{1:#x} and {2:#x}-{3:#x} overlap")]
    Overlap(u16, u16, u16, u16),
    /// A registration holds no port.
    #[error("the port range {0:#x}-{1:#x} is empty")]
    Empty(u16, u16),
}

/// The bus: sorted, disjoint port ranges and the device of each.
pub(crate) struct PortBus {
    /// (first, last) port of each range, sorted by first port, disjoint.
    ranges: Vec<(u16, u16)>,
    /// `devices[i]` decodes `ranges[i]` (a device with several ranges appears several times).
    devices: Vec<Arc<dyn PortDevice>>,
}

impl PortBus {
    /// A bus with `devices` on it, each at its [`PortDevice::ports`]; an error if two of the
    /// ranges overlap or one is empty.
    pub(crate) fn new(devices: Vec<Arc<dyn PortDevice>>) -> Result<Self, BusError> {
        let mut slots: Vec<((u16, u16), Arc<dyn PortDevice>)> = Vec::new();
        for device in devices {
            for range in device.ports() {
                let (first, last) = (*range.start(), *range.end());
                if first > last {
                    return Err(BusError::Empty(first, last));
                }
                slots.push(((first, last), Arc::clone(&device)));
            }
        }
        slots.sort_unstable_by_key(|(range, _)| *range);
        if let Some(w) = slots.windows(2).find(|w| w[1].0 .0 <= w[0].0 .1) {
            let ((a, b), (c, d)) = (w[0].0, w[1].0);
            return Err(BusError::Overlap(a, b, c, d));
        }
        let (ranges, devices) = slots.into_iter().unzip();
        Ok(Self { ranges, devices })
    }

    /// The device that decodes `port`, if any.
    #[inline]
    pub(crate) fn device(&self, port: u16) -> Option<&dyn PortDevice> {
        let i = self
            .ranges
            .partition_point(|&(first, _)| first <= port)
            .checked_sub(1)?;
        (port <= self.ranges[i].1).then(|| &*self.devices[i])
    }

    /// Every registered range, in port order.
    #[cfg(test)]
    pub(crate) fn ranges(&self) -> &[(u16, u16)] {
        &self.ranges
    }
}

/// A read of a port no device decodes, or of a write-only port: logged once as an access to
/// an unknown port, and all ones, as a PC bus with nothing on it returns.
pub(crate) fn read_nothing(port: u16, data: &mut [u8], log: &UnknownAccessLog) {
    log.port(port, false);
    data.fill(0xFF);
}

/// A 4-byte little-endian access, or `None` for any other size.
pub(crate) fn as_u32(data: &[u8]) -> Option<u32> {
    data.try_into().ok().map(u32::from_le_bytes)
}

/// True if one of `ranges` holds `port`.
#[cfg(test)]
pub(crate) fn covers(ranges: &[RangeInclusive<u16>], port: u16) -> bool {
    ranges.iter().any(|r| r.contains(&port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device at fixed ranges that answers reads with its tag.
    struct Tagged(u8, Vec<RangeInclusive<u16>>);

    impl PortDevice for Tagged {
        fn ports(&self) -> &[RangeInclusive<u16>] {
            &self.1
        }
        fn read(&self, _port: u16, data: &mut [u8], _log: &UnknownAccessLog) {
            data.fill(self.0);
        }
        fn write(&self, _: u32, _: u16, _: &[u8], _: &UnknownAccessLog) -> Option<DeviceEvent> {
            Some(DeviceEvent::SipiExit(u32::from(self.0)))
        }
    }

    fn tagged(tag: u8, ranges: &[RangeInclusive<u16>]) -> Arc<dyn PortDevice> {
        Arc::new(Tagged(tag, ranges.to_vec()))
    }

    fn tag(bus: &PortBus, port: u16) -> Option<u8> {
        let mut b = [0u8];
        bus.device(port)
            .map(|d| d.read(port, &mut b, &UnknownAccessLog::new(true)))
            .map(|()| b[0])
    }

    #[test]
    fn accesses_reach_the_device_whose_range_holds_the_port() {
        let bus = PortBus::new(vec![
            tagged(1, &[0x60..=0x60, 0x64..=0x64]),
            tagged(2, &[0x3F8..=0x3FF]),
            tagged(3, &[0..=0]),
            tagged(4, &[0xFFFF..=0xFFFF]),
            tagged(5, &[0x61..=0x63]),
        ])
        .unwrap();
        let expect = [
            (0, Some(3)),
            (1, None),
            (0x5F, None),
            (0x60, Some(1)),
            (0x61, Some(5)),
            (0x63, Some(5)),
            (0x64, Some(1)),
            (0x65, None),
            (0x3F7, None),
            (0x3F8, Some(2)),
            (0x3FC, Some(2)),
            (0x3FF, Some(2)),
            (0x400, None),
            (0xFFFE, None),
            (0xFFFF, Some(4)),
        ];
        for (port, want) in expect {
            assert_eq!(tag(&bus, port), want, "port {port:#x}");
        }
        let event = bus.device(0x64).and_then(|d| {
            let log = UnknownAccessLog::new(true);
            d.write(0, 0x64, &[0], &log)
        });
        assert_eq!(event, Some(DeviceEvent::SipiExit(1)));
        assert_eq!(bus.ranges().len(), 6);
    }

    #[test]
    fn an_empty_bus_decodes_nothing() {
        let bus = PortBus::new(Vec::new()).unwrap();
        assert!(bus.device(0).is_none() && bus.device(0xFFFF).is_none());
    }

    #[test]
    fn overlapping_and_empty_registrations_are_refused() {
        let overlap = |a: &[RangeInclusive<u16>], b: &[RangeInclusive<u16>]| {
            PortBus::new(vec![tagged(1, a), tagged(2, b)]).err()
        };
        assert_eq!(
            overlap(&[0x3F8..=0x3FF], &[0x3FF..=0x400]),
            Some(BusError::Overlap(0x3F8, 0x3FF, 0x3FF, 0x400))
        );
        assert_eq!(
            overlap(&[0x70..=0x71], &[0x71..=0x71]),
            Some(BusError::Overlap(0x70, 0x71, 0x71, 0x71))
        );
        assert_eq!(
            overlap(&[0x600..=0x607], &[0x604..=0x604]),
            Some(BusError::Overlap(0x600, 0x607, 0x604, 0x604)),
            "one range inside another"
        );
        assert!(
            overlap(&[0x60..=0x60], &[0x60..=0x60]).is_some(),
            "the same port twice"
        );
        assert!(
            PortBus::new(vec![tagged(1, &[0x60..=0x60, 0x60..=0x60])]).is_err(),
            "one device, the same port twice"
        );
        assert_eq!(
            overlap(&[0x70..=0x71], &[0x72..=0x72]),
            None,
            "adjacent is fine"
        );
        #[allow(clippy::reversed_empty_ranges)]
        let empty = 0x71..=0x70;
        assert_eq!(
            PortBus::new(vec![tagged(1, &[empty])]).err(),
            Some(BusError::Empty(0x71, 0x70))
        );
    }
}
