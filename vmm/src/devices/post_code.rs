//! The POST diagnostic port (0x80), which is also Cloud Hypervisor's debug port. Kernels write
//! it as an I/O delay (Linux's `outb_p`); on a PC a POST card shows the value. Cloud Hypervisor
//! defines the byte written as a boot progress code (its docs/debug-port.md: 0x00-0x1f
//! firmware, 0x20-0x3f bootloader, 0x40-0x5f kernel, 0x60-0x7f userspace, 0x80-0xff custom):
//! sipi puts each byte written on the boot timeline. The timeline is bounded and, once full,
//! costs one atomic add per write, so a kernel that uses the port as a delay is not slowed
//! down. Reads float high, as on a bus with no card; neither is logged: both are routine.

use std::ops::RangeInclusive;
use std::sync::Arc;

use firmware::layout::POST_CODE_PORT;

use super::bus::PortDevice;
use super::timeline::{Timeline, TimelineSource};
use super::unknown::UnknownAccessLog;
use super::DeviceEvent;

/// The port.
const PORTS: &[RangeInclusive<u16>] = &[POST_CODE_PORT..=POST_CODE_PORT];

/// The port on the bus, recording the bytes written into the boot's timeline.
pub(crate) struct PostCode {
    timeline: Arc<Timeline>,
}

impl PostCode {
    /// The port, recording into `timeline`.
    pub(crate) fn new(timeline: Arc<Timeline>) -> Self {
        Self { timeline }
    }
}

impl PortDevice for PostCode {
    fn ports(&self) -> &[RangeInclusive<u16>] {
        PORTS
    }

    /// A read: all ones.
    fn read(&self, _port: u16, data: &mut [u8], _log: &UnknownAccessLog) {
        data.fill(0xFF);
    }

    /// A write: its first byte goes on the timeline (a wider write is taken as its low byte,
    /// as an 8-bit port decodes it).
    fn write(&self, vcpu: u32, _: u16, data: &[u8], _: &UnknownAccessLog) -> Option<DeviceEvent> {
        if let Some(&code) = data.first() {
            self.timeline.record(vcpu, TimelineSource::DebugPort, code);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_reach_the_timeline_and_reads_float_high() {
        let log = UnknownAccessLog::new(true);
        let t = Arc::new(Timeline::default());
        let p = PostCode::new(t.clone());
        assert_eq!(p.write(3, POST_CODE_PORT, &[0x42], &log), None);
        assert_eq!(p.write(1, POST_CODE_PORT, &[0x61, 0x00], &log), None);
        let mut b = [0u8; 1];
        p.read(POST_CODE_PORT, &mut b, &log);
        assert_eq!(b, [0xFF]);
        assert_eq!(log.count(), 0, "routine: not logged");
        let e: Vec<_> = t
            .events()
            .iter()
            .map(|e| (e.vcpu, e.source, e.code))
            .collect();
        assert_eq!(
            e,
            [
                (3, TimelineSource::DebugPort, 0x42),
                (1, TimelineSource::DebugPort, 0x61)
            ]
        );
    }
}
