//! QEMU's isa-debug-exit device (hw/misc/debugexit.c): a write of value `v` to its port ends
//! the VM, and QEMU exits with status `(v << 1) | 1`. Test kernels built for QEMU (kvm-unit-
//! tests among them) end this way; sipi keeps the same status so their scripts work unchanged.

use std::ops::RangeInclusive;

use firmware::layout::DEBUG_EXIT_PORT;

use super::bus::PortDevice;
use super::unknown::UnknownAccessLog;
use super::DeviceEvent;

/// The device's port.
const PORTS: &[RangeInclusive<u16>] = &[DEBUG_EXIT_PORT..=DEBUG_EXIT_PORT];
/// Access sizes QEMU's device takes (its `iosize` property: 1, 2 or 4 bytes).
const ACCESS_SIZES: [usize; 3] = [1, 2, 4];

/// The device on the port bus. It has no state.
pub(crate) struct DebugExit;

impl PortDevice for DebugExit {
    fn ports(&self) -> &[RangeInclusive<u16>] {
        PORTS
    }

    fn read(&self, _port: u16, data: &mut [u8], _log: &UnknownAccessLog) {
        read(data);
    }

    fn write(
        &self,
        _vcpu: u32,
        port: u16,
        data: &[u8],
        log: &UnknownAccessLog,
    ) -> Option<DeviceEvent> {
        let value = write(data);
        if value.is_none() {
            log.bad_size(port, data.len(), "1, 2 or 4 bytes");
        }
        value.map(DeviceEvent::DebugExit)
    }
}

/// The value of a write to the port, or `None` for an access size the device does not take.
fn write(data: &[u8]) -> Option<u32> {
    if !ACCESS_SIZES.contains(&data.len()) {
        return None;
    }
    let mut v = [0u8; 4];
    v[..data.len()].copy_from_slice(data);
    Some(u32::from_le_bytes(v))
}

/// A read of the port: QEMU's device returns zero.
fn read(data: &mut [u8]) {
    data.fill(0);
}

/// The process exit status for value `v`: `(v << 1) | 1`, truncated to the 8 bits a process
/// status has (as QEMU's `exit()` is).
pub(crate) fn exit_code(v: u32) -> u8 {
    ((v << 1) | 1) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_statuses_match_qemu() {
        assert_eq!(write(&[0]), Some(0));
        assert_eq!(write(&[0x10, 0]), Some(0x10));
        assert_eq!(write(&0x1234_5678u32.to_le_bytes()), Some(0x1234_5678));
        assert_eq!(write(&[1, 2, 3]), None, "3-byte accesses do not exist");
        assert_eq!(write(&[]), None);
        assert_eq!(exit_code(0), 1, "kvm-unit-tests' pass");
        assert_eq!(exit_code(1), 3, "kvm-unit-tests' fail");
        assert_eq!(exit_code(0x10), 33);
        assert_eq!(exit_code(0x7F), 255);
        assert_eq!(exit_code(0x80), 1, "only 8 bits reach the parent");
        let mut b = [0xFF; 4];
        read(&mut b);
        assert_eq!(b, [0; 4]);
    }
}
