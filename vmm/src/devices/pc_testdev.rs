//! QEMU's pc-testdev (hw/misc/pc-testdev.c), the test device kvm-unit-tests expect on a PC:
//!
//! - ports 0xE0-0xE3, a 32-bit test register: an access of `n` bytes at port `0xE0 + k` reads
//!   or writes the `n` bytes of the register from byte `k` on (QEMU's mask arithmetic, so a
//!   wide access near the end keeps only what fits);
//! - ports 0xE8-0xEB, the same register one byte at a time (a wider access is split into byte
//!   accesses at consecutive ports, as QEMU's `impl.max_access_size = 1` does);
//! - port 0xE4, flush page: a 32-bit write of a guest-physical address. QEMU mprotects the
//!   page to make KVM fault it in again; the guest sees no difference either way, and
//!   dropping a page another vCPU is using can fail its KVM_RUN, so sipi takes the write and
//!   does nothing;
//! - ports 0x2000-0x2017, interrupt lines: a byte write of `v` to `0x2000 + n` sets ISA IRQ
//!   line `n` high if `v` is nonzero and low otherwise, through KVM_IRQ_LINE (so it reaches
//!   the 8259s and the IOAPIC as the VM's routing says). QEMU's region takes one byte
//!   (`valid.max_access_size = 1`), and its memory core splits a wider access into byte
//!   accesses at consecutive ports, so an `outl` of 1 to `0x200B` sets line 11 high and lines
//!   12-14 low: sipi does the same, and drops the bytes past line 23;
//! - 64 KiB of MMIO test memory at 0xFF000000 (QEMU's `iomem`): plain bytes, every access an
//!   MMIO exit, which kvm-unit-tests' `emulator` and `lam` use to test instruction emulation.
//!
//! A kernel that never touches these ports and addresses sees nothing of the device.

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::irq::IrqLines;
use firmware::layout::{
    PC_TESTDEV_BYTE_PORT, PC_TESTDEV_FLUSH_PORT, PC_TESTDEV_IOMEM_BASE, PC_TESTDEV_IOMEM_LEN,
    PC_TESTDEV_IRQ_LINES, PC_TESTDEV_IRQ_PORT, PC_TESTDEV_PORT, PC_TESTDEV_WINDOW,
};

use super::bus::{as_u32, PortDevice};
use super::mmio_bus::MmioDevice;
use super::unknown::UnknownAccessLog;
use super::{lock, DeviceEvent};

/// The device's ports: the test register, the flush port, the byte-wide test register, the
/// interrupt lines.
const PORTS: &[RangeInclusive<u16>] = &[
    PC_TESTDEV_PORT..=PC_TESTDEV_PORT + PC_TESTDEV_WINDOW - 1,
    PC_TESTDEV_FLUSH_PORT..=PC_TESTDEV_FLUSH_PORT + PC_TESTDEV_WINDOW - 1,
    PC_TESTDEV_BYTE_PORT..=PC_TESTDEV_BYTE_PORT + PC_TESTDEV_WINDOW - 1,
    PC_TESTDEV_IRQ_PORT..=PC_TESTDEV_IRQ_PORT + PC_TESTDEV_IRQ_LINES - 1,
];

/// The port side of the device.
pub(crate) struct PcTestdev {
    /// The test register.
    register: AtomicU32,
    /// The VM's interrupt lines (unset: line writes are refused and logged).
    irq: OnceLock<Arc<dyn IrqLines>>,
}

impl PcTestdev {
    /// The device with the register at zero and no interrupt lines yet.
    pub(crate) fn new() -> Self {
        Self {
            register: AtomicU32::new(0),
            irq: OnceLock::new(),
        }
    }

    /// Connects the interrupt line ports to `irq`; the first set is kept.
    pub(crate) fn set_irq_lines(&self, irq: Arc<dyn IrqLines>) {
        let _ = self.irq.set(irq);
    }

    /// Writes `data` into the register from byte `start` on; bytes past the register's end
    /// are dropped.
    fn write_register(&self, start: usize, data: &[u8]) {
        let _ = self
            .register
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                let mut bytes = r.to_le_bytes();
                for (i, b) in data.iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(start + i) {
                        *slot = *b;
                    }
                }
                Some(u32::from_le_bytes(bytes))
            });
    }

    /// Reads the register from byte `start` on into `data`; bytes past its end read as zero.
    fn read_register(&self, start: usize, data: &mut [u8]) {
        let bytes = self.register.load(Ordering::Acquire).to_le_bytes();
        for (i, b) in data.iter_mut().enumerate() {
            *b = bytes.get(start + i).copied().unwrap_or(0);
        }
    }

    /// A write of `data` at the port of line `first`: byte `i` sets line `first + i`, high if
    /// it is nonzero (QEMU's split of a wide access into byte accesses); bytes past the last
    /// line are dropped.
    fn write_lines(&self, first: u16, data: &[u8], log: &UnknownAccessLog) {
        let port = PC_TESTDEV_IRQ_PORT + first;
        let Some(irq) = self.irq.get() else {
            log.refused(port, &"the VM has no interrupt lines");
            return;
        };
        let lines = u32::from(first)..u32::from(PC_TESTDEV_IRQ_LINES);
        for (line, level) in lines.zip(data) {
            if let Err(e) = irq.set_level(line, *level != 0) {
                log.refused(port, &e);
            }
        }
    }
}

/// The register byte a port of a register window names.
fn register_byte(port: u16, window: u16) -> usize {
    usize::from(port - window)
}

impl PortDevice for PcTestdev {
    fn ports(&self) -> &[RangeInclusive<u16>] {
        PORTS
    }

    fn read(&self, port: u16, data: &mut [u8], log: &UnknownAccessLog) {
        match port {
            p if p < PC_TESTDEV_FLUSH_PORT => {
                self.read_register(register_byte(p, PC_TESTDEV_PORT), data);
            }
            p if (PC_TESTDEV_BYTE_PORT..PC_TESTDEV_BYTE_PORT + PC_TESTDEV_WINDOW).contains(&p) => {
                // Byte accesses at consecutive ports: the same bytes as one access.
                self.read_register(register_byte(p, PC_TESTDEV_BYTE_PORT), data);
            }
            // The flush and interrupt line ports are write-only.
            _ => super::bus::read_nothing(port, data, log),
        }
    }

    fn write(
        &self,
        _vcpu: u32,
        port: u16,
        data: &[u8],
        log: &UnknownAccessLog,
    ) -> Option<DeviceEvent> {
        match port {
            p if p < PC_TESTDEV_FLUSH_PORT => {
                self.write_register(register_byte(p, PC_TESTDEV_PORT), data);
            }
            p if p < PC_TESTDEV_BYTE_PORT => {
                if p != PC_TESTDEV_FLUSH_PORT || as_u32(data).is_none() {
                    log.bad_size(port, data.len(), "4 bytes at 0xe4");
                }
            }
            p if p < PC_TESTDEV_BYTE_PORT + PC_TESTDEV_WINDOW => {
                self.write_register(register_byte(p, PC_TESTDEV_BYTE_PORT), data);
            }
            p => self.write_lines(p - PC_TESTDEV_IRQ_PORT, data, log),
        }
        None
    }
}

/// The MMIO test memory.
pub(crate) struct TestdevIomem {
    bytes: Mutex<Vec<u8>>,
}

impl TestdevIomem {
    /// The memory, all zeros (as QEMU's is at start).
    pub(crate) fn new() -> Self {
        Self {
            bytes: Mutex::new(vec![0; PC_TESTDEV_IOMEM_LEN as usize]),
        }
    }
}

impl MmioDevice for TestdevIomem {
    fn window(&self) -> (u64, u64) {
        (PC_TESTDEV_IOMEM_BASE, PC_TESTDEV_IOMEM_LEN)
    }

    /// Bytes past the end of the memory (an access straddling it) read as all ones.
    fn read(&self, offset: u64, data: &mut [u8]) {
        let bytes = lock(&self.bytes);
        for (i, b) in data.iter_mut().enumerate() {
            *b = at(offset, i)
                .and_then(|o| bytes.get(o))
                .copied()
                .unwrap_or(0xFF);
        }
    }

    /// Bytes past the end of the memory are dropped.
    fn write(&self, _vcpu: u32, offset: u64, data: &[u8]) {
        let mut bytes = lock(&self.bytes);
        for (i, b) in data.iter().enumerate() {
            if let Some(slot) = at(offset, i).and_then(|o| bytes.get_mut(o)) {
                *slot = *b;
            }
        }
    }
}

/// Byte `i` of an access at `offset`, as an index.
fn at(offset: u64, i: usize) -> Option<usize> {
    usize::try_from(offset).ok()?.checked_add(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Interrupt lines that record every level set, to check the decoding of the line ports
    /// (the boot test raises real lines through KVM).
    #[derive(Default)]
    struct Recorded(Mutex<Vec<(u32, bool)>>);

    impl IrqLines for Recorded {
        fn set_level(&self, line: u32, high: bool) -> Result<(), kvm_ioctls::Error> {
            lock(&self.0).push((line, high));
            Ok(())
        }
    }

    fn read(d: &PcTestdev, port: u16, len: usize) -> Vec<u8> {
        let mut b = vec![0xAA; len];
        d.read(port, &mut b, &UnknownAccessLog::new(true));
        b
    }

    #[test]
    fn the_test_register_echoes_at_every_size_and_offset() {
        let d = PcTestdev::new();
        let log = UnknownAccessLog::new(true);
        d.write(0, 0xE0, &0x4433_2211u32.to_le_bytes(), &log);
        assert_eq!(read(&d, 0xE0, 4), [0x11, 0x22, 0x33, 0x44]);
        assert_eq!(read(&d, 0xE0, 1), [0x11]);
        assert_eq!(read(&d, 0xE1, 2), [0x22, 0x33]);
        assert_eq!(read(&d, 0xE3, 1), [0x44]);
        d.write(0, 0xE2, &[0xCC, 0xDD], &log);
        assert_eq!(read(&d, 0xE0, 4), [0x11, 0x22, 0xCC, 0xDD]);
        // QEMU's mask keeps only the bytes that fit: a 4-byte write at 0xE2 sets two.
        d.write(0, 0xE2, &[1, 2, 3, 4], &log);
        assert_eq!(read(&d, 0xE0, 4), [0x11, 0x22, 1, 2]);
        assert_eq!(read(&d, 0xE2, 4), [1, 2, 0, 0]);
        // The byte window is the same register.
        assert_eq!(read(&d, 0xE8, 4), [0x11, 0x22, 1, 2]);
        d.write(0, 0xEB, &[0x99], &log);
        assert_eq!(read(&d, 0xE3, 1), [0x99]);
        d.write(0, 0xE8, &0xDEAD_BEEFu32.to_le_bytes(), &log);
        assert_eq!(read(&d, 0xE0, 4), 0xDEAD_BEEFu32.to_le_bytes());
        assert_eq!(log.count(), 0);
    }

    #[test]
    fn line_ports_set_the_lines_they_name() {
        let d = PcTestdev::new();
        let log = UnknownAccessLog::new(true);
        d.write(0, 0x2005, &[1], &log);
        assert_eq!(log.count(), 1, "no lines connected: refused and logged");
        let lines = Arc::new(Recorded::default());
        d.set_irq_lines(lines.clone());
        d.write(0, 0x2005, &[1], &log);
        d.write(0, 0x2005, &[0], &log);
        d.write(0, 0x2000, &[0x80], &log);
        d.write(0, 0x2017, &[2], &log);
        assert_eq!(
            *lock(&lines.0),
            [(5, true), (5, false), (0, true), (23, true)]
        );
        assert_eq!(log.count(), 1, "only the write without lines is logged");
        assert_eq!(read(&d, 0x2005, 1), [0xFF], "write-only");
    }

    #[test]
    fn a_wide_line_write_sets_one_line_per_byte_as_qemu_splits_it() {
        let d = PcTestdev::new();
        let log = UnknownAccessLog::new(true);
        let lines = Arc::new(Recorded::default());
        d.set_irq_lines(lines.clone());
        // kvm-unit-tests' realmode: `outl 1` to 0x200B raises IRQ 11 and lowers 12-14.
        d.write(0, 0x200B, &1u32.to_le_bytes(), &log);
        d.write(0, 0x200B, &0u32.to_le_bytes(), &log);
        d.write(0, 0x200E, &[0, 0x40], &log);
        assert_eq!(
            *lock(&lines.0),
            [
                (11, true),
                (12, false),
                (13, false),
                (14, false),
                (11, false),
                (12, false),
                (13, false),
                (14, false),
                (14, false),
                (15, true),
            ]
        );
        lock(&lines.0).clear();
        // Bytes past line 23 name no line and are dropped, not sent on.
        d.write(0, 0x2016, &[1, 1, 1, 1], &log);
        assert_eq!(*lock(&lines.0), [(22, true), (23, true)]);
        assert_eq!(log.count(), 0);
    }

    #[test]
    fn the_flush_port_takes_32_bit_writes() {
        let d = PcTestdev::new();
        let log = UnknownAccessLog::new(true);
        d.write(0, 0xE4, &0x1000u32.to_le_bytes(), &log);
        assert_eq!(log.count(), 0);
        d.write(0, 0xE4, &[0], &log);
        d.write(0, 0xE5, &[0], &log);
        assert_eq!(log.count(), 2);
        assert_eq!(read(&d, 0xE0, 4), [0; 4], "the register is untouched");
    }

    #[test]
    fn the_mmio_memory_keeps_what_is_written_at_any_size() {
        let m = TestdevIomem::new();
        let mut q = [0u8; 8];
        m.read(0, &mut q);
        assert_eq!(q, [0; 8]);
        m.write(0, 0x10, &0x0102_0304_0506_0708u64.to_le_bytes());
        m.read(0x10, &mut q);
        assert_eq!(u64::from_le_bytes(q), 0x0102_0304_0506_0708);
        let mut w = [0u8; 2];
        m.read(0x13, &mut w);
        assert_eq!(w, [0x05, 0x04]);
        m.write(0, 0x11, &[0xAB]);
        m.read(0x10, &mut q);
        assert_eq!(u64::from_le_bytes(q), 0x0102_0304_0506_AB08);
        // An access straddling the end keeps what fits.
        let last = PC_TESTDEV_IOMEM_LEN - 2;
        m.write(0, last, &[1, 2, 3, 4]);
        let mut d = [0u8; 4];
        m.read(last, &mut d);
        assert_eq!(d, [1, 2, 0xFF, 0xFF]);
        m.read(u64::MAX, &mut d);
        assert_eq!(d, [0xFF; 4]);
    }
}
