//! PCI configuration mechanism #1 with no devices behind it (PCI Local Bus Specification 3.0,
//! 3.2.2.3.2): CONFIG_ADDRESS at 0xCF8 keeps what is written so a probe finds the mechanism,
//! and every CONFIG_DATA read returns all ones, a vendor ID of 0xFFFF: "no device". The
//! byte at 0xCF9 is the PIIX/ICH Reset Control Register: setting RST_CPU resets the machine,
//! which ends the VM (as QEMU's PIIX does, it is one of Linux's reboot methods).

use std::ops::RangeInclusive;
use std::sync::Mutex;

use firmware::layout::{PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_DATA_PORT, RESET_CONTROL_PORT};

use super::bus::PortDevice;
use super::unknown::UnknownAccessLog;
use super::{lock, DeviceEvent, ResetSource};

/// CONFIG_DATA is a dword register: its bytes are at 0xCFC-0xCFF.
const CONFIG_DATA_LEN: u16 = 4;
/// CONFIG_ADDRESS's and CONFIG_DATA's eight ports (the Reset Control Register among them).
const PORTS: &[RangeInclusive<u16>] =
    &[PCI_CONFIG_ADDRESS_PORT..=PCI_CONFIG_DATA_PORT + (CONFIG_DATA_LEN - 1)];

/// Reset Control Register bit 2: reset the CPU (Intel 82371AB PIIX4 data sheet, 4.1.5 "RC").
pub(crate) const RCR_RST_CPU: u8 = 1 << 2;
/// Reset Control Register bits the guest can set and read back (SRST bit 1, FULL_RST bit 3).
const RCR_MASK: u8 = 0x0A;

/// What a write asks of the VMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PciEvent {
    /// The guest set RST_CPU in the Reset Control Register.
    Reset,
}

/// CONFIG_ADDRESS and the Reset Control Register.
#[derive(Debug, Default)]
pub(crate) struct PciConfig {
    address: u32,
    rcr: u8,
}

impl PciConfig {
    /// A write of `data` at `port`. A dword at 0xCF8 sets CONFIG_ADDRESS; a byte at 0xCF9 is
    /// the Reset Control Register; CONFIG_DATA writes go to no device.
    pub(crate) fn write(&mut self, port: u16, data: &[u8]) -> Option<PciEvent> {
        match (port, data) {
            (PCI_CONFIG_ADDRESS_PORT, &[a, b, c, d]) => {
                self.address = u32::from_le_bytes([a, b, c, d]);
            }
            (RESET_CONTROL_PORT, &[v]) => {
                self.rcr = v & RCR_MASK;
                if v & RCR_RST_CPU != 0 {
                    return Some(PciEvent::Reset);
                }
            }
            _ => {}
        }
        None
    }

    /// A read of `data.len()` bytes at `port`.
    pub(crate) fn read(&self, port: u16, data: &mut [u8]) {
        match (port, data.len()) {
            (PCI_CONFIG_ADDRESS_PORT, 4) => data.copy_from_slice(&self.address.to_le_bytes()),
            (RESET_CONTROL_PORT, 1) => data[0] = self.rcr,
            _ => data.fill(0xFF),
        }
    }
}

/// The mechanism on the port bus. Every size reaches it: the registers themselves take only
/// their own size (see [`PciConfig::write`] and [`PciConfig::read`]), and nothing is logged.
impl PortDevice for Mutex<PciConfig> {
    fn ports(&self) -> &[RangeInclusive<u16>] {
        PORTS
    }

    fn read(&self, port: u16, data: &mut [u8], _log: &UnknownAccessLog) {
        lock(self).read(port, data);
    }

    fn write(
        &self,
        _vcpu: u32,
        port: u16,
        data: &[u8],
        _log: &UnknownAccessLog,
    ) -> Option<DeviceEvent> {
        lock(self)
            .write(port, data)
            .map(|PciEvent::Reset| DeviceEvent::Reset(ResetSource::ResetControl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::bus::covers;

    #[test]
    fn the_mechanism_is_found_and_no_device_answers() {
        let mut p = PciConfig::default();
        // Linux's pci_check_type1(): write 0x80000000, read it back.
        assert_eq!(p.write(0xCF8, &0x8000_0000u32.to_le_bytes()), None);
        let mut a = [0u8; 4];
        p.read(0xCF8, &mut a);
        assert_eq!(u32::from_le_bytes(a), 0x8000_0000);
        for (port, len) in [(0xCFC, 4), (0xCFC, 2), (0xCFE, 2), (0xCFF, 1)] {
            let mut d = vec![0u8; len];
            p.read(port, &mut d);
            assert!(d.iter().all(|b| *b == 0xFF), "{port:#x}/{len}: {d:?}");
        }
        assert_eq!(p.write(0xCFC, &[0; 4]), None);
        let mut b = [0u8];
        p.read(0xCF8, &mut b);
        assert_eq!(b, [0xFF], "CONFIG_ADDRESS is dword-only");
        let claims = |port| covers(PORTS, port);
        assert!(claims(0xCF8) && claims(0xCFF) && !claims(0xD00) && !claims(0xCF7));
    }

    #[test]
    fn reset_control_resets_on_rst_cpu() {
        let mut p = PciConfig::default();
        assert_eq!(p.write(RESET_CONTROL_PORT, &[0x02]), None);
        let mut b = [0u8];
        p.read(RESET_CONTROL_PORT, &mut b);
        assert_eq!(b, [0x02]);
        assert_eq!(p.write(RESET_CONTROL_PORT, &[0x06]), Some(PciEvent::Reset));
        assert_eq!(
            p.write(RESET_CONTROL_PORT, &[0x06, 0]),
            None,
            "only byte writes reach the register"
        );
    }
}
