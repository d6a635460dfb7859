//! Port I/O and MMIO devices, dispatched from the vCPU threads.
//!
//! | ports | device | file |
//! |---|---|---|
//! | 0x3F8-0x3FF | 16550A UART (COM1), the console | `serial.rs` |
//! | 0x510, 0x511 | QEMU fw_cfg (selector, data) | `fw_cfg.rs` |
//! | 0xF4 | QEMU isa-debug-exit | `debug_exit.rs` |
//! | 0x60, 0x64 | 8042 keyboard controller (idle; 0xFE resets) | `i8042.rs` |
//! | 0x70, 0x71 | MC146818 RTC and CMOS RAM | `cmos.rs` |
//! | 0x80 | POST code (I/O delay), Cloud Hypervisor's debug port (boot timeline) | `post_code.rs` |
//! | 0x92 | System Control Port A (A20, fast reset) | `system_control.rs` |
//! | 0xCF8-0xCFF | PCI configuration mechanism #1, no devices; 0xCF9 reset control | `pci_config.rs` |
//! | 0x600-0x601, 0x604-0x607 | ACPI PM1a control and event blocks (S3 suspends, S5 powers off) | `acpi_pm.rs` |
//! | 0x700 | sipi's report doorbell | `sipi_ports.rs` |
//! | 0x704 | sipi's exit port | `sipi_ports.rs` |
//! | 0x708 | sipi's console doorbell (a line per exit) | `console_port.rs` |
//! | 0xE0-0xEB, 0x2000-0x2017 | QEMU pc-testdev (test register, flush page, IRQ lines) | `pc_testdev.rs` |
//!
//! | MMIO window | device | file |
//! |---|---|---|
//! | 0xD0000000-0xD0000FFF | Firecracker's boot timer (boot timeline) | `boot_timer.rs` |
//! | 0xFED00000-0xFED003FF | HPET (main counter, no timer interrupts) | `hpet.rs` |
//! | 0xFF000000-0xFF00FFFF | QEMU pc-testdev's MMIO test memory | `pc_testdev.rs` |
//!
//! The PIC, PIT and speaker port (0x20/0xA0, 0x40-0x43, 0x61, 0x4D0) and the local APIC and
//! IOAPIC are KVM's in-kernel devices and never reach this dispatcher.
//!
//! Each device names its ports once, in its `PortDevice::ports` (the numbers live in
//! `firmware::layout`), and the port bus (`bus.rs`) routes every access to one of them to it;
//! a unit test checks the table above against those registrations. MMIO devices name their
//! window in `MmioDevice::window` (numbers from `firmware::layout` too) and the MMIO bus
//! (`mmio_bus.rs`) routes each KVM_EXIT_MMIO to the one whose window holds the address.
//!
//! The guest is untrusted: each device checks the size of every access itself and ignores the
//! sizes it does not take (logging them once); unknown ports and MMIO are logged once each
//! (bounded) and otherwise ignored; reads of nothing return all ones as on a PC bus.

pub(crate) mod acpi_pm;
mod boot_timer;
mod bus;
pub(crate) mod cmos;
mod coalesced_ring;
pub mod console_port;
pub(crate) mod debug_exit;
mod fw_cfg;
pub(crate) mod hpet;
pub(crate) mod i8042;
pub(crate) mod irq;
mod mmio_bus;
pub(crate) mod pc_testdev;
mod pci_config;
mod post_code;
mod serial;
mod sipi_ports;
mod system_control;
pub mod timeline;
mod unknown;

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bus::{PortBus, PortDevice};
use coalesced_ring::CoalescedRing;
use console_port::ConsolePort;
use firmware::layout::COM1_PORT;
use irq::IrqLines;
use kvm_ioctls::{Cap, IoEventAddress, VcpuFd, VmFd};
use mmio_bus::{MmioBus, MmioDevice};
use pc_testdev::PcTestdev;
use serial::Serial;
pub use sipi_ports::{Doorbell, ReportPort};
use timeline::Timeline;
use unknown::UnknownAccessLog;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

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

/// What a device access asks the VMM to do: each but [`DeviceEvent::Suspend`] ends the VM.
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
    /// The guest entered ACPI S3 (suspend to RAM): the VM sleeps until a wake event.
    Suspend,
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
            Self::Suspend => "acpi-s3",
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
    /// The report doorbell (the port bus holds a handle to the same doorbell).
    pub report: ReportPort,
    /// The port devices, by port.
    bus: PortBus,
    /// The UART, also written by the console doorbell and flushed at the end.
    serial: Arc<Mutex<Serial>>,
    /// The console doorbell, which needs guest memory.
    console: Arc<ConsolePort>,
    /// pc-testdev's ports, which need the VM's interrupt lines.
    testdev: Arc<PcTestdev>,
    /// The MMIO devices, by address.
    mmio: MmioBus,
    /// The RTC, whose alarm wakes a suspended VM.
    rtc: Arc<Mutex<cmos::Cmos>>,
    /// The boot timeline the boot timer and the debug port record into.
    timeline: Arc<Timeline>,
    unknown: UnknownAccessLog,
}

/// Locks a device. A vCPU thread that panicked while holding it leaves plain register state
/// behind, which is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Devices {
    /// Devices for a VM as `cfg` describes, with the console writing to `console`.
    pub fn new(console: Box<dyn Write + Send>, cfg: &DeviceConfig) -> Self {
        let serial = Arc::new(Mutex::new(Serial::new(console)));
        let console = Arc::new(ConsolePort::new(Arc::clone(&serial)));
        let report = ReportPort::default();
        let testdev = Arc::new(PcTestdev::new());
        let rtc = Arc::new(Mutex::new(cmos::Cmos::new(cfg.memory, cfg.vcpus)));
        let timeline = Arc::new(Timeline::default());
        let on_bus: Vec<Arc<dyn PortDevice>> = vec![
            serial.clone(),
            Arc::new(Mutex::new(fw_cfg::FwCfg::new(cfg.vcpus, cfg.memory))),
            Arc::new(debug_exit::DebugExit),
            Arc::new(Mutex::new(i8042::I8042::default())),
            rtc.clone(),
            Arc::new(post_code::PostCode::new(timeline.clone())),
            Arc::new(Mutex::new(system_control::SystemControlA::default())),
            Arc::new(Mutex::new(pci_config::PciConfig::default())),
            Arc::new(Mutex::new(acpi_pm::AcpiPm::default())),
            Arc::new(report.handle()),
            Arc::new(sipi_ports::ExitPort),
            console.clone(),
            testdev.clone(),
        ];
        let on_mmio: Vec<Arc<dyn MmioDevice>> = vec![
            Arc::new(boot_timer::BootTimer::new(timeline.clone())),
            Arc::new(hpet::Hpet::new()),
            Arc::new(pc_testdev::TestdevIomem::new()),
        ];
        Self {
            report,
            bus: PortBus::new(on_bus).expect("sipi's devices claim disjoint ports"),
            serial,
            console,
            testdev,
            mmio: MmioBus::new(on_mmio).expect("sipi's MMIO devices claim disjoint windows"),
            rtc,
            timeline,
            unknown: UnknownAccessLog::new(cfg.quiet),
        }
    }

    /// Lets the console doorbell read its records from `memory` (the first memory given is
    /// kept: the VM's memory does not change).
    pub fn with_memory(self, memory: GuestMemoryMmap) -> Self {
        self.console.set_memory(memory);
        self
    }

    /// Lets pc-testdev's line ports set the VM's interrupt lines through `irq` (the first set
    /// is kept).
    pub(crate) fn with_irq_lines(self, irq: Arc<dyn IrqLines>) -> Self {
        self.testdev.set_irq_lines(irq);
        self
    }

    /// Lets KVM queue the guest's single-byte writes to COM1's transmitter in the VM's
    /// coalesced I/O ring instead of exiting for each (mapped through `vcpu`, before any vCPU
    /// runs); the UART applies them in order before it answers any other access and when the
    /// console is flushed. Without KVM_CAP_COALESCED_PIO, or if the ring cannot be mapped or
    /// the zone registered, every write exits as before.
    pub(crate) fn coalesce_console(&self, vm: &VmFd, vcpu: &VcpuFd) {
        if !vm.check_extension(Cap::CoalescedPio) {
            return;
        }
        let Ok(ring) = CoalescedRing::map(vcpu) else {
            return;
        };
        let mut serial = lock(&self.serial);
        // The ring is read before the zone exists, so no queued write is ever missed.
        serial.attach_ring(ring);
        if vm
            .register_coalesced_mmio(IoEventAddress::Pio(u64::from(COM1_PORT)), 1)
            .is_err()
        {
            serial.detach_ring();
        }
    }

    /// A port write by vCPU `vcpu`.
    pub fn pio_out(&self, vcpu: u32, port: u16, data: &[u8]) -> Option<DeviceEvent> {
        match self.bus.device(port) {
            Some(device) => device.write(vcpu, port, data, &self.unknown),
            None => {
                self.unknown.port(port, true);
                None
            }
        }
    }

    /// A port read by a vCPU; fills `data`.
    pub fn pio_in(&self, port: u16, data: &mut [u8]) {
        match self.bus.device(port) {
            Some(device) => device.read(port, data, &self.unknown),
            None => bus::read_nothing(port, data, &self.unknown),
        }
    }

    /// An MMIO read no memory slot backs: the device whose window holds `addr` fills `data`;
    /// with none, it reads as all ones and is logged once per page.
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        match self.mmio.device(addr) {
            Some((device, offset)) => device.read(offset, data),
            None => {
                self.unknown.mmio(addr, false);
                data.fill(0xFF);
            }
        }
    }

    /// An MMIO write by vCPU `vcpu` no memory slot backs: to the device whose window holds
    /// `addr`; with none, ignored and logged once per page.
    pub fn mmio_write(&self, vcpu: u32, addr: u64, data: &[u8]) {
        match self.mmio.device(addr) {
            Some((device, offset)) => device.write(vcpu, offset, data),
            None => self.unknown.mmio(addr, true),
        }
    }

    /// When the RTC's alarm next matches, if register B's AIE is set.
    pub(crate) fn rtc_next_alarm(&self) -> Option<Instant> {
        lock(&self.rtc).next_alarm().map(|d| Instant::now() + d)
    }

    /// Has `evt` written whenever the guest may have moved the RTC's next alarm.
    pub(crate) fn notify_rtc_alarm_changes(&self, evt: EventFd) {
        lock(&self.rtc).notify_alarm_changes(evt);
    }

    /// The RTC's alarm matched: true if IRQ 8 is to be raised.
    pub(crate) fn rtc_alarm_fired(&self) -> bool {
        lock(&self.rtc).alarm_fired()
    }

    /// The boot timeline (Firecracker's boot timer, Cloud Hypervisor's debug port).
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    use firmware::layout::{
        ACPI_PM1A_CNT_PORT, ACPI_PM1A_EVT_PORT, ACPI_SLP_TYP_S5, CMOS_DATA_PORT, CMOS_INDEX_PORT,
        COM1_PORT, CONSOLE_PORT, DEBUG_EXIT_PORT, EXIT_PORT, FW_CFG_PORT_DATA, FW_CFG_PORT_SEL,
        I8042_COMMAND_PORT, I8042_DATA_PORT, PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_DATA_PORT,
        POST_CODE_PORT, REPORT_PORT, RESET_CONTROL_PORT, SYSTEM_CONTROL_A_PORT,
    };
    use vm_memory::GuestAddress;

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
            DeviceEvent::Suspend,
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

    #[test]
    fn wrong_sizes_are_each_devices_own_business() {
        let d = devices();
        let mut w = [0u8; 2];
        let mut dw = [0u8; 4];
        // Sizes a device takes in its own way: answered, not logged.
        d.pio_in(COM1_PORT, &mut w);
        assert_eq!(w, [0xFF; 2], "UART registers are a byte wide");
        d.pio_out(0, COM1_PORT + 7, &[1, 2]);
        d.pio_in(SYSTEM_CONTROL_A_PORT, &mut w);
        assert_eq!(w, [0xFF; 2]);
        d.pio_in(CMOS_INDEX_PORT, &mut dw);
        assert_eq!(
            (dw[0], dw[2], dw[3]),
            (0xFF, 0xFF, 0xFF),
            "past the data port"
        );
        d.pio_in(PCI_CONFIG_ADDRESS_PORT, &mut w);
        assert_eq!(w, [0xFF; 2], "CONFIG_ADDRESS is dword-only");
        d.pio_out(0, ACPI_PM1A_EVT_PORT, &[0; 4]);
        d.pio_in(POST_CODE_PORT, &mut dw);
        assert_eq!(dw, [0xFF; 4]);
        d.pio_in(DEBUG_EXIT_PORT, &mut dw);
        assert_eq!(dw, [0; 4]);
        assert_eq!(d.logged(), 0);
        // Sizes a device does not take: ignored and logged, once each.
        let bad: [(u16, usize); 7] = [
            (EXIT_PORT, 2),
            (REPORT_PORT, 1),
            (CONSOLE_PORT, 2),
            (DEBUG_EXIT_PORT, 3),
            (FW_CFG_PORT_SEL, 1),
            (I8042_DATA_PORT, 2),
            (SYSTEM_CONTROL_A_PORT, 2),
        ];
        for (port, len) in bad {
            for _ in 0..2 {
                assert_eq!(d.pio_out(0, port, &vec![1; len]), None, "{port:#x}/{len}");
            }
        }
        assert_eq!(d.logged(), bad.len());
        d.pio_in(I8042_COMMAND_PORT, &mut w);
        assert_eq!(w, [0xFF; 2]);
        d.pio_in(FW_CFG_PORT_SEL, &mut dw);
        assert_eq!(dw, [0xFF; 4]);
        assert_eq!(d.logged(), bad.len() + 2);
        // sipi's ports are write-only: a read is an access to nothing.
        for port in [REPORT_PORT, EXIT_PORT, CONSOLE_PORT] {
            d.pio_in(port, &mut dw);
            assert_eq!(dw, [0xFF; 4], "{port:#x}");
        }
        assert_eq!(d.logged(), bad.len() + 5);
        assert_eq!(d.report.first(), None);
    }

    #[test]
    fn the_console_doorbell_needs_memory_and_a_sound_record() {
        let d = devices();
        d.pio_out(0, CONSOLE_PORT, &0x1000u32.to_le_bytes());
        assert_eq!(d.logged(), 1, "no memory: an unknown port");
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let d = devices().with_memory(mem);
        d.pio_out(0, CONSOLE_PORT, &0x1000u32.to_le_bytes());
        assert_eq!(d.logged(), 0, "an empty record");
        d.pio_out(0, CONSOLE_PORT, &0x1002u32.to_le_bytes());
        d.pio_out(0, CONSOLE_PORT, &0x1006u32.to_le_bytes());
        assert_eq!(d.logged(), 1, "refusals are logged once per port");
    }

    /// The header row of the module doc's MMIO table, which follows the port table.
    const MMIO_TABLE_HEADER: &str = "//! | MMIO window |";

    #[test]
    fn the_mmio_table_documents_the_windows() {
        let d = devices();
        let parse = |s: &str| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap();
        let rows: Vec<(u64, u64, String)> = include_str!("mod.rs")
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .skip_while(|l| !l.starts_with(MMIO_TABLE_HEADER))
            .filter_map(|l| l.strip_prefix("//! | 0x"))
            .map(|row| {
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                let (first, last) = cells[0].split_once('-').unwrap();
                (
                    parse(first),
                    parse(last),
                    cells[2].trim_matches('`').to_string(),
                )
            })
            .collect();
        assert_eq!(rows.len(), 3);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/devices");
        for (first, last, file) in &rows {
            assert!(dir.join(file).is_file(), "{file}");
            let (device, offset) = d.mmio.device(*first).expect("a documented window");
            assert_eq!(offset, 0, "{first:#x} starts a window");
            assert_eq!(device.window(), (*first, last - first + 1), "{file}");
        }
        let mut b = [0u8; 4];
        d.mmio_read(firmware::layout::HPET_BASE, &mut b);
        assert_eq!(u32::from_le_bytes(b) >> 16, 0x8086, "the HPET answers");
        d.mmio_read(0xFEB0_0000, &mut b);
        assert_eq!(b, [0xFF; 4], "nothing there");
        assert_eq!(d.logged(), 1);
        d.mmio_write(0, firmware::layout::PC_TESTDEV_IOMEM_BASE + 8, &[7]);
        d.mmio_read(firmware::layout::PC_TESTDEV_IOMEM_BASE + 8, &mut b[..1]);
        assert_eq!(b[0], 7, "the test memory keeps a write");
        assert_eq!(d.logged(), 1);
        d.mmio_write(5, firmware::layout::BOOT_TIMER_BASE, &[123]);
        d.pio_out(6, POST_CODE_PORT, &[0x41]);
        let e: Vec<_> = d
            .timeline()
            .events()
            .iter()
            .map(|e| (e.vcpu, e.code))
            .collect();
        assert_eq!(e, [(5, 123), (6, 0x41)], "both reach the timeline");
        assert_eq!(d.logged(), 1);
    }

    /// The module doc's port table, as (ports, file) rows.
    fn documented_rows() -> Vec<(Vec<u16>, String)> {
        let parse = |s: &str| u16::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap();
        include_str!("mod.rs")
            .lines()
            .take_while(|l| l.starts_with("//!") && !l.starts_with(MMIO_TABLE_HEADER))
            .filter_map(|l| l.strip_prefix("//! | 0x"))
            .map(|row| {
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                let mut ports = Vec::new();
                for item in format!("0x{}", cells[0]).split(',') {
                    let (first, last) = item.split_once('-').unwrap_or((item, item));
                    ports.extend(parse(first)..=parse(last));
                }
                (ports, cells[2].trim_matches('`').to_string())
            })
            .collect()
    }

    #[test]
    fn the_port_table_documents_the_registrations() {
        let d = devices();
        let rows = documented_rows();
        let documented: BTreeSet<u16> = rows.iter().flat_map(|(p, _)| p.clone()).collect();
        let registered: BTreeSet<u16> = d
            .bus
            .ranges()
            .iter()
            .flat_map(|&(first, last)| first..=last)
            .collect();
        assert_eq!(documented, registered);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/devices");
        for (ports, file) in &rows {
            assert!(dir.join(file).is_file(), "{file}");
            let device = |p: u16| d.bus.device(p).map(|dev| dev as *const dyn PortDevice);
            assert!(
                ports
                    .iter()
                    .all(|p| std::ptr::addr_eq(device(*p).unwrap(), device(ports[0]).unwrap())),
                "{file}: one row, one device"
            );
        }
        for port in [0x20, 0xA0, 0x40, 0x43, 0x61, 0x4D0] {
            assert!(d.bus.device(port).is_none(), "{port:#x} is KVM's");
        }
    }
}
