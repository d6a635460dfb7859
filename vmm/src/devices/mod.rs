//! Port I/O and MMIO devices, dispatched from the vCPU threads.
//!
//! The guest is untrusted: accesses of the wrong size are ignored, unknown ports and MMIO are
//! logged once each (bounded) and otherwise ignored, reads of nothing return all ones as on a
//! PC bus.

pub mod serial;
pub mod sipi_ports;
mod unknown;

use std::io::Write;
use std::sync::Mutex;

use firmware::layout::{COM1_PORT, COM1_PORT_COUNT, EXIT_PORT, REPORT_PORT};

pub use sipi_ports::{Doorbell, ReportPort};
use unknown::UnknownAccessLog;

/// What a device access asks the VMM to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceEvent {
    /// The guest wrote this status to the exit port: end the VM.
    Exit(u32),
}

/// Every device of the VM.
pub struct Devices {
    serial: Mutex<serial::Serial>,
    /// The report doorbell.
    pub report: ReportPort,
    unknown: UnknownAccessLog,
}

impl Devices {
    /// Devices with the console writing to `console`.
    pub fn new(console: Box<dyn Write + Send>, quiet_warnings: bool) -> Self {
        Self {
            serial: Mutex::new(serial::Serial::new(console)),
            report: ReportPort::default(),
            unknown: UnknownAccessLog::new(quiet_warnings),
        }
    }

    /// A port write by vCPU `vcpu`.
    pub fn pio_out(&self, vcpu: u32, port: u16, data: &[u8]) -> Option<DeviceEvent> {
        match port {
            p if (COM1_PORT..COM1_PORT + COM1_PORT_COUNT).contains(&p) => {
                // A string write (`rep outsb`, as a driver fills the 16-byte transmit FIFO)
                // arrives as one exit carrying every byte.
                if let Ok(mut s) = self.serial.lock() {
                    for byte in data {
                        s.write(p - COM1_PORT, *byte);
                    }
                }
                None
            }
            REPORT_PORT => match as_u32(data) {
                Some(addr) => {
                    self.report.ring(vcpu, addr);
                    None
                }
                None => {
                    self.unknown.bad_size(port, data.len());
                    None
                }
            },
            EXIT_PORT => match as_u32(data) {
                Some(status) => Some(DeviceEvent::Exit(status)),
                None => {
                    self.unknown.bad_size(port, data.len());
                    None
                }
            },
            _ => {
                self.unknown.port(port, true);
                None
            }
        }
    }

    /// A port read by a vCPU; fills `data`.
    pub fn pio_in(&self, port: u16, data: &mut [u8]) {
        match port {
            p if (COM1_PORT..COM1_PORT + COM1_PORT_COUNT).contains(&p) && data.len() == 1 => {
                data[0] = self
                    .serial
                    .lock()
                    .map(|s| s.read(p - COM1_PORT))
                    .unwrap_or(0xFF);
            }
            _ => {
                if !(COM1_PORT..COM1_PORT + COM1_PORT_COUNT).contains(&port) {
                    self.unknown.port(port, false);
                }
                data.fill(0xFF);
            }
        }
    }

    /// An MMIO read no device claims.
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        self.unknown.mmio(addr, false);
        data.fill(0xFF);
    }

    /// An MMIO write no device claims.
    pub fn mmio_write(&self, addr: u64) {
        self.unknown.mmio(addr, true);
    }

    /// Flushes the console.
    pub fn flush(&self) {
        if let Ok(mut s) = self.serial.lock() {
            s.flush();
        }
    }
}

/// A 4-byte little-endian access.
fn as_u32(data: &[u8]) -> Option<u32> {
    data.try_into().ok().map(u32::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_and_doorbell_need_32_bit_accesses() {
        let d = Devices::new(Box::new(std::io::sink()), true);
        assert_eq!(
            d.pio_out(0, EXIT_PORT, &7u32.to_le_bytes()),
            Some(DeviceEvent::Exit(7))
        );
        assert_eq!(d.pio_out(0, EXIT_PORT, &[7]), None);
        assert_eq!(d.pio_out(2, REPORT_PORT, &[0, 0x10]), None);
        assert_eq!(d.report.first(), None, "a 16-bit doorbell is ignored");
        d.pio_out(2, REPORT_PORT, &0x1000u32.to_le_bytes());
        d.pio_out(3, REPORT_PORT, &0x2000u32.to_le_bytes());
        let first = d.report.first().unwrap();
        assert_eq!((first.vcpu, first.addr), (2, 0x1000));
        assert_eq!(d.report.extra_rings(), 1);
    }

    #[test]
    fn unknown_reads_float_high() {
        let d = Devices::new(Box::new(std::io::sink()), true);
        let mut b = [0u8; 2];
        d.pio_in(0x1234, &mut b);
        assert_eq!(b, [0xFF, 0xFF]);
    }
}
