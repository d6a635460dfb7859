//! System Control Port A (port 0x92, the "fast A20 and reset" port of PS/2 and every later PC
//! chipset; Intel 82371AB PIIX4 data sheet, "Port 92h"): bit 1 gates A20, which under KVM is
//! always enabled and reads as set; bit 0 going from 0 to 1 resets the machine, which ends the
//! VM, as in QEMU.

use std::ops::RangeInclusive;
use std::sync::Mutex;

use firmware::layout::SYSTEM_CONTROL_A_PORT;

use super::bus::PortDevice;
use super::unknown::UnknownAccessLog;
use super::{lock, DeviceEvent, ResetSource};

/// The port.
const PORTS: &[RangeInclusive<u16>] = &[SYSTEM_CONTROL_A_PORT..=SYSTEM_CONTROL_A_PORT];

/// Port 92 bit 0: fast reset (INIT), on a 0-to-1 transition.
pub(crate) const PORT92_RESET: u8 = 1 << 0;
/// Port 92 bit 1: A20 gate.
pub(crate) const PORT92_A20: u8 = 1 << 1;

/// What a write asks of the VMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Port92Event {
    /// The guest set the fast reset bit.
    Reset,
}

/// The register.
#[derive(Debug, Default)]
pub(crate) struct SystemControlA {
    value: u8,
}

impl SystemControlA {
    /// A byte read: the last value written, with A20 on.
    pub(crate) fn read(&self) -> u8 {
        self.value | PORT92_A20
    }

    /// A byte write.
    pub(crate) fn write(&mut self, v: u8) -> Option<Port92Event> {
        let rising = v & PORT92_RESET != 0 && self.value & PORT92_RESET == 0;
        self.value = v & !PORT92_RESET;
        rising.then_some(Port92Event::Reset)
    }
}

/// The register on the port bus: a byte wide. A wider write is logged once and ignored; a
/// wider read floats high.
impl PortDevice for Mutex<SystemControlA> {
    fn ports(&self) -> &[RangeInclusive<u16>] {
        PORTS
    }

    fn read(&self, _port: u16, data: &mut [u8], _log: &UnknownAccessLog) {
        match data {
            [b] => *b = lock(self).read(),
            _ => data.fill(0xFF),
        }
    }

    fn write(
        &self,
        _vcpu: u32,
        port: u16,
        data: &[u8],
        log: &UnknownAccessLog,
    ) -> Option<DeviceEvent> {
        match data {
            &[v] => lock(self)
                .write(v)
                .map(|Port92Event::Reset| DeviceEvent::Reset(ResetSource::Port92)),
            _ => {
                log.bad_size(port, data.len(), "1 byte");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a20_is_on_and_bit_0_resets() {
        let mut p = SystemControlA::default();
        assert_eq!(p.read(), PORT92_A20);
        // The usual fast-A20 sequence: read, set bit 1, clear bit 0, write.
        assert_eq!(p.write((p.read() | PORT92_A20) & !PORT92_RESET), None);
        assert_eq!(p.read(), PORT92_A20);
        assert_eq!(p.write(PORT92_A20 | PORT92_RESET), Some(Port92Event::Reset));
    }
}
