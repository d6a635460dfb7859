//! Port I/O and MMIO devices, dispatched from the vCPU threads.
//!
//! | ports | device | file |
//! |---|---|---|
//! | 0x3F8-0x3FF | 16550A UART (COM1), the console | [`serial`] |
//! | 0x510, 0x511 | QEMU fw_cfg (selector, data) | [`fw_cfg`] |
//! | 0xF4 | QEMU isa-debug-exit | [`debug_exit`] |
//! | 0x60, 0x64 | 8042 keyboard controller (idle; 0xFE resets) | [`i8042`] |
//! | 0x70, 0x71 | MC146818 RTC and CMOS RAM | [`cmos`] |
//! | 0x80 | POST code (I/O delay) | [`post_code`] |
//! | 0x92 | System Control Port A (A20, fast reset) | [`system_control`] |
//! | 0xCF8-0xCFF | PCI configuration mechanism #1, no devices; 0xCF9 reset control | [`pci_config`] |
//! | 0x600-0x601, 0x604-0x607 | ACPI PM1a control and event blocks (S5 powers off) | [`acpi_pm`] |
//! | 0x700, 0x704 | sipi's report doorbell and exit port | [`sipi_ports`] |
//! | 0x708 | sipi's console doorbell (a line per exit) | [`console_port`] |
//!
//! The PIC, PIT and speaker port (0x20/0xA0, 0x40-0x43, 0x61, 0x4D0) and the local APIC and
//! IOAPIC are KVM's in-kernel devices and never reach this dispatcher.
//!
//! The guest is untrusted: accesses of the wrong size are ignored (and logged once), unknown
//! ports and MMIO are logged once each (bounded) and otherwise ignored, reads of nothing
//! return all ones as on a PC bus.

pub mod acpi_pm;
pub mod cmos;
pub mod console_port;
pub mod debug_exit;
pub mod fw_cfg;
pub mod i8042;
pub mod pci_config;
pub mod post_code;
pub mod serial;
pub mod sipi_ports;
pub mod system_control;
mod unknown;

use std::io::Write;
use std::sync::{Mutex, MutexGuard};

use firmware::layout::{
    CMOS_DATA_PORT, CMOS_INDEX_PORT, COM1_PORT, COM1_PORT_COUNT, DEBUG_EXIT_PORT, EXIT_PORT,
    FW_CFG_PORT_DATA, FW_CFG_PORT_SEL, POST_CODE_PORT, REPORT_PORT, SYSTEM_CONTROL_A_PORT,
};

pub use sipi_ports::{Doorbell, ReportPort};
use unknown::UnknownAccessLog;
use vm_memory::GuestMemoryMmap;

/// Which reset line the guest pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetSource {
    /// The 8042's reset line (command 0xFE, or an output port write with bit 0 clear).
    I8042,
    /// System Control Port A bit 0.
    Port92,
    /// The Reset Control Register at 0xCF9.
    ResetControl,
}

/// What a device access asks the VMM to do: each ends the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceEvent {
    /// The guest wrote this status to sipi's exit port.
    SipiExit(u32),
    /// The guest wrote this value to isa-debug-exit.
    DebugExit(u32),
    /// The guest reset the machine; sipi does not reboot, so the VM ends (as in Firecracker).
    Reset(ResetSource),
    /// The guest entered ACPI S5 (soft off).
    PowerOff,
}

impl DeviceEvent {
    /// The name of the way the guest ended the VM, as the JSON report's `exit_via` has it.
    pub fn exit_via(self) -> &'static str {
        match self {
            Self::SipiExit(_) => "sipi-exit-port",
            Self::DebugExit(_) => "isa-debug-exit",
            Self::Reset(ResetSource::I8042) => "i8042-reset",
            Self::Reset(ResetSource::Port92) => "port92-reset",
            Self::Reset(ResetSource::ResetControl) => "cf9-reset",
            Self::PowerOff => "acpi-s5",
        }
    }
}

/// What the devices need to know about the VM.
#[derive(Debug, Clone, Copy)]
pub struct DeviceConfig {
    /// vCPUs (fw_cfg's CPU counts, CMOS).
    pub vcpus: u32,
    /// Guest RAM in bytes (fw_cfg, CMOS).
    pub memory: u64,
    /// Suppress warnings about unknown device accesses.
    pub quiet: bool,
}

/// Every device of the VM.
pub struct Devices {
    serial: Mutex<serial::Serial>,
    /// The report doorbell.
    pub report: ReportPort,
    fw_cfg: Mutex<fw_cfg::FwCfg>,
    i8042: Mutex<i8042::I8042>,
    cmos: Mutex<cmos::Cmos>,
    pci: Mutex<pci_config::PciConfig>,
    pm: Mutex<acpi_pm::AcpiPm>,
    port92: Mutex<system_control::SystemControlA>,
    unknown: UnknownAccessLog,
    /// Guest memory, for the console doorbell's records (None: the doorbell is ignored).
    memory: Option<GuestMemoryMmap>,
}

/// Locks a device. A vCPU thread that panicked while holding it leaves plain register state
/// behind, which is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// True if `port` is one of COM1's registers.
fn is_com1(port: u16) -> bool {
    (COM1_PORT..COM1_PORT + COM1_PORT_COUNT).contains(&port)
}

impl Devices {
    /// Devices for a VM as `cfg` describes, with the console writing to `console`.
    pub fn new(console: Box<dyn Write + Send>, cfg: &DeviceConfig) -> Self {
        Self {
            serial: Mutex::new(serial::Serial::new(console)),
            report: ReportPort::default(),
            fw_cfg: Mutex::new(fw_cfg::FwCfg::new(cfg.vcpus, cfg.memory)),
            i8042: Mutex::new(i8042::I8042::default()),
            cmos: Mutex::new(cmos::Cmos::new(cfg.memory, cfg.vcpus)),
            pci: Mutex::new(pci_config::PciConfig::default()),
            pm: Mutex::new(acpi_pm::AcpiPm::default()),
            port92: Mutex::new(system_control::SystemControlA::default()),
            unknown: UnknownAccessLog::new(cfg.quiet),
            memory: None,
        }
    }

    /// Lets the console doorbell read its records from `memory`.
    pub fn with_memory(mut self, memory: GuestMemoryMmap) -> Self {
        self.memory = Some(memory);
        self
    }

    /// A port write by vCPU `vcpu`.
    pub fn pio_out(&self, vcpu: u32, port: u16, data: &[u8]) -> Option<DeviceEvent> {
        match port {
            p if is_com1(p) => {
                // A string write (`rep outsb`, as a driver fills the 16-byte transmit FIFO)
                // arrives as one exit carrying every byte.
                let mut s = lock(&self.serial);
                for byte in data {
                    s.write(p - COM1_PORT, *byte);
                }
                None
            }
            console_port::PORT => {
                match (as_u32(data), &self.memory) {
                    (Some(addr), Some(mem)) => match console_port::read_record(mem, addr) {
                        Ok(text) => lock(&self.serial).transmit(&text),
                        Err(e) => self.unknown.refused(port, &e),
                    },
                    (Some(_), None) => self.unknown.port(port, true),
                    (None, _) => self.unknown.bad_size(port, data.len(), "4 bytes"),
                }
                None
            }
            REPORT_PORT => {
                match as_u32(data) {
                    Some(addr) => self.report.ring(vcpu, addr),
                    None => self.unknown.bad_size(port, data.len(), "4 bytes"),
                }
                None
            }
            EXIT_PORT => {
                let status = as_u32(data);
                if status.is_none() {
                    self.unknown.bad_size(port, data.len(), "4 bytes");
                }
                status.map(DeviceEvent::SipiExit)
            }
            DEBUG_EXIT_PORT => {
                let value = debug_exit::write(data);
                if value.is_none() {
                    self.unknown.bad_size(port, data.len(), "1, 2 or 4 bytes");
                }
                value.map(DeviceEvent::DebugExit)
            }
            FW_CFG_PORT_SEL | FW_CFG_PORT_DATA => {
                if !lock(&self.fw_cfg).write(port, data) {
                    self.unknown
                        .bad_size(port, data.len(), "a 16-bit write of the selector");
                }
                None
            }
            p if i8042::claims(p) => match data {
                &[v] => lock(&self.i8042)
                    .write(p, v)
                    .map(|i8042::I8042Event::Reset| DeviceEvent::Reset(ResetSource::I8042)),
                _ => {
                    self.unknown.bad_size(port, data.len(), "1 byte");
                    None
                }
            },
            CMOS_INDEX_PORT | CMOS_DATA_PORT => {
                // `outw` to 0x70 sets the index and writes the data port at once.
                let mut c = lock(&self.cmos);
                for (p, v) in (port..).zip(data).take_while(|(p, _)| *p <= CMOS_DATA_PORT) {
                    c.write(p, *v);
                }
                None
            }
            POST_CODE_PORT => {
                post_code::write(data);
                None
            }
            SYSTEM_CONTROL_A_PORT => match data {
                &[v] => lock(&self.port92)
                    .write(v)
                    .map(|system_control::Port92Event::Reset| {
                        DeviceEvent::Reset(ResetSource::Port92)
                    }),
                _ => {
                    self.unknown.bad_size(port, data.len(), "1 byte");
                    None
                }
            },
            p if pci_config::claims(p) => lock(&self.pci)
                .write(p, data)
                .map(|pci_config::PciEvent::Reset| DeviceEvent::Reset(ResetSource::ResetControl)),
            p if acpi_pm::claims(p) => lock(&self.pm)
                .write(p, data)
                .map(|acpi_pm::PmEvent::PowerOff| DeviceEvent::PowerOff),
            _ => {
                self.unknown.port(port, true);
                None
            }
        }
    }

    /// A port read by a vCPU; fills `data`.
    pub fn pio_in(&self, port: u16, data: &mut [u8]) {
        match port {
            p if is_com1(p) => match data {
                [b] => *b = lock(&self.serial).read(p - COM1_PORT),
                _ => data.fill(0xFF),
            },
            DEBUG_EXIT_PORT => debug_exit::read(data),
            FW_CFG_PORT_SEL | FW_CFG_PORT_DATA => {
                if !lock(&self.fw_cfg).read(port, data) {
                    self.unknown
                        .bad_size(port, data.len(), "8-bit reads of the data port");
                }
            }
            p if i8042::claims(p) => match data {
                [b] => *b = lock(&self.i8042).read(p),
                _ => {
                    self.unknown.bad_size(port, data.len(), "1 byte");
                    data.fill(0xFF);
                }
            },
            CMOS_INDEX_PORT | CMOS_DATA_PORT => {
                let mut c = lock(&self.cmos);
                for (i, b) in data.iter_mut().enumerate() {
                    let p = port.wrapping_add(i as u16);
                    *b = if p <= CMOS_DATA_PORT { c.read(p) } else { 0xFF };
                }
            }
            POST_CODE_PORT => post_code::read(data),
            SYSTEM_CONTROL_A_PORT => match data {
                [b] => *b = lock(&self.port92).read(),
                _ => data.fill(0xFF),
            },
            p if pci_config::claims(p) => lock(&self.pci).read(p, data),
            p if acpi_pm::claims(p) => lock(&self.pm).read(p, data),
            _ => {
                self.unknown.port(port, false);
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
        lock(&self.serial).flush();
    }

    /// Ports whose accesses were logged as unknown, for tests.
    #[cfg(test)]
    fn logged(&self) -> usize {
        self.unknown.count()
    }
}

/// A 4-byte little-endian access.
fn as_u32(data: &[u8]) -> Option<u32> {
    data.try_into().ok().map(u32::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware::layout::{
        ACPI_PM1A_CNT_PORT, ACPI_SLP_TYP_S5, I8042_COMMAND_PORT, PCI_CONFIG_ADDRESS_PORT,
        PCI_CONFIG_DATA_PORT, RESET_CONTROL_PORT,
    };

    fn devices() -> Devices {
        let cfg = DeviceConfig {
            vcpus: 64,
            memory: 256 << 20,
            quiet: true,
        };
        Devices::new(Box::new(std::io::sink()), &cfg)
    }

    #[test]
    fn exit_and_doorbell_need_32_bit_accesses() {
        let d = devices();
        assert_eq!(
            d.pio_out(0, EXIT_PORT, &7u32.to_le_bytes()),
            Some(DeviceEvent::SipiExit(7))
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
    fn every_standard_way_to_end_the_vm() {
        let d = devices();
        assert_eq!(
            d.pio_out(0, DEBUG_EXIT_PORT, &[0x10]),
            Some(DeviceEvent::DebugExit(0x10))
        );
        assert_eq!(
            d.pio_out(0, DEBUG_EXIT_PORT, &3u32.to_le_bytes()),
            Some(DeviceEvent::DebugExit(3))
        );
        assert_eq!(
            d.pio_out(0, I8042_COMMAND_PORT, &[0xFE]),
            Some(DeviceEvent::Reset(ResetSource::I8042))
        );
        assert_eq!(d.pio_out(0, I8042_COMMAND_PORT, &[0xFE, 0]), None);
        let s5 = (u16::from(ACPI_SLP_TYP_S5) << 10) | 1 << 13;
        assert_eq!(
            d.pio_out(0, ACPI_PM1A_CNT_PORT, &s5.to_le_bytes()),
            Some(DeviceEvent::PowerOff)
        );
        assert_eq!(
            d.pio_out(0, SYSTEM_CONTROL_A_PORT, &[0x03]),
            Some(DeviceEvent::Reset(ResetSource::Port92))
        );
        assert_eq!(
            d.pio_out(0, RESET_CONTROL_PORT, &[0x06]),
            Some(DeviceEvent::Reset(ResetSource::ResetControl))
        );
        let names = [
            DeviceEvent::SipiExit(0),
            DeviceEvent::DebugExit(0),
            DeviceEvent::Reset(ResetSource::I8042),
            DeviceEvent::Reset(ResetSource::Port92),
            DeviceEvent::Reset(ResetSource::ResetControl),
            DeviceEvent::PowerOff,
        ]
        .map(DeviceEvent::exit_via);
        let mut unique = names.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }

    #[test]
    fn routine_pokes_are_answered_and_not_logged() {
        let d = devices();
        d.pio_out(0, POST_CODE_PORT, &[0]);
        let mut b = [0u8; 1];
        d.pio_in(SYSTEM_CONTROL_A_PORT, &mut b);
        assert_eq!(b[0] & 2, 2, "A20 is on");
        d.pio_out(0, CMOS_INDEX_PORT, &[0x0D]);
        d.pio_in(CMOS_DATA_PORT, &mut b);
        assert_eq!(b[0], 0x80, "CMOS valid");
        // outw to 0x70: index 0x0A and a write of register A in one access.
        d.pio_out(0, CMOS_INDEX_PORT, &[0x0A, 0x26]);
        d.pio_in(CMOS_DATA_PORT, &mut b);
        assert_eq!(b[0], 0x26);
        d.pio_out(0, PCI_CONFIG_ADDRESS_PORT, &0x8000_0000u32.to_le_bytes());
        let mut w = [0u8; 4];
        d.pio_in(PCI_CONFIG_DATA_PORT, &mut w);
        assert_eq!(w, [0xFF; 4], "no PCI device");
        d.pio_out(0, FW_CFG_PORT_SEL, &fw_cfg::FW_CFG_NB_CPUS.to_le_bytes());
        d.pio_in(FW_CFG_PORT_DATA, &mut b);
        assert_eq!(b[0], 64);
        d.pio_in(I8042_COMMAND_PORT, &mut b);
        assert_eq!(b[0] & 1, 0, "keyboard controller idle");
        d.pio_in(COM1_PORT + 5, &mut b);
        assert_eq!(b[0] & 0x60, 0x60, "UART transmitter empty");
        assert_eq!(d.logged(), 0, "none of these is an unknown access");
        d.pio_out(0, 0x1234, &[0]);
        assert_eq!(d.logged(), 1);
    }

    #[test]
    fn unknown_reads_float_high() {
        let d = devices();
        let mut b = [0u8; 2];
        d.pio_in(0x1234, &mut b);
        assert_eq!(b, [0xFF, 0xFF]);
    }
}
