//! The POST diagnostic port (0x80). Kernels write it as an I/O delay (Linux's `outb_p`); on a
//! PC a POST card shows the value. sipi ignores writes and reads float high, as on a bus with
//! no card, without logging either: both are routine.

use std::ops::RangeInclusive;

use firmware::layout::POST_CODE_PORT;

use super::bus::PortDevice;
use super::unknown::UnknownAccessLog;
use super::DeviceEvent;

/// The port.
const PORTS: &[RangeInclusive<u16>] = &[POST_CODE_PORT..=POST_CODE_PORT];

/// The port on the bus, with no card behind it. Any size is routine.
pub(crate) struct PostCode;

impl PortDevice for PostCode {
    fn ports(&self) -> &[RangeInclusive<u16>] {
        PORTS
    }

    /// A read: all ones.
    fn read(&self, _port: u16, data: &mut [u8], _log: &UnknownAccessLog) {
        data.fill(0xFF);
    }

    /// A write: ignored.
    fn write(&self, _: u32, _: u16, _: &[u8], _: &UnknownAccessLog) -> Option<DeviceEvent> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_float_high() {
        let log = UnknownAccessLog::new(true);
        assert_eq!(PostCode.write(0, POST_CODE_PORT, &[0x42], &log), None);
        let mut b = [0u8; 1];
        PostCode.read(POST_CODE_PORT, &mut b, &log);
        assert_eq!(b, [0xFF]);
        assert_eq!(log.count(), 0, "routine: not logged");
    }
}
