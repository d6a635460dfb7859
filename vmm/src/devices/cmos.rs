//! The MC146818 real-time clock and its CMOS RAM, as a PC kernel reads them: an index port and
//! a data port (Motorola MC146818A data sheet; register meanings as in QEMU's
//! hw/rtc/mc146818rtc.c and SeaBIOS). The clock reads the host's UTC time on every access and
//! never shows an update in progress; the memory-size bytes describe the VM's RAM as a BIOS
//! would; the rest of the 128 bytes is plain RAM the guest may write.

use std::ops::RangeInclusive;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use firmware::layout::{
    CMOS_CENTURY_INDEX as RTC_CENTURY, CMOS_DATA_PORT, CMOS_INDEX_PORT, KERNEL_MIN_ADDR,
    MMIO_HOLE_START,
};

use super::bus::PortDevice;
use super::unknown::UnknownAccessLog;
use super::{lock, DeviceEvent};

/// The index and data ports.
const PORTS: &[RangeInclusive<u16>] = &[
    CMOS_INDEX_PORT..=CMOS_INDEX_PORT,
    CMOS_DATA_PORT..=CMOS_DATA_PORT,
];

/// Clock registers (MC146818A, "Address Map").
pub(crate) const RTC_SECONDS: u8 = 0x00;
/// Minutes.
pub(crate) const RTC_MINUTES: u8 = 0x02;
/// Hours.
pub(crate) const RTC_HOURS: u8 = 0x04;
/// Day of the week, 1 = Sunday.
pub(crate) const RTC_DAY_OF_WEEK: u8 = 0x06;
/// Day of the month.
pub(crate) const RTC_DAY_OF_MONTH: u8 = 0x07;
/// Month.
pub(crate) const RTC_MONTH: u8 = 0x08;
/// Year within the century.
pub(crate) const RTC_YEAR: u8 = 0x09;
/// Status register A: UIP (bit 7), divider and rate.
pub(crate) const RTC_REG_A: u8 = 0x0A;
/// Status register B: SET, interrupt enables, DM (bit 2), 24/12 (bit 1), DSE.
pub(crate) const RTC_REG_B: u8 = 0x0B;
/// Status register C: interrupt flags, cleared by reading.
pub(crate) const RTC_REG_C: u8 = 0x0C;
/// Status register D: VRT (bit 7), valid RAM and time.
pub(crate) const RTC_REG_D: u8 = 0x0D;
/// Base memory in KiB (u16 LE at 0x15).
pub(crate) const CMOS_BASE_MEM: u8 = 0x15;
/// Extended memory above 1 MiB in KiB, capped at 0xFFFF (u16 LE at 0x17, copied at 0x30).
pub(crate) const CMOS_EXT_MEM: u8 = 0x17;
/// Copy of the extended memory size.
pub(crate) const CMOS_EXT_MEM_COPY: u8 = 0x30;
/// Memory between 16 MiB and 4 GiB in 64 KiB units, capped at 0xFFFF (u16 LE at 0x34).
pub(crate) const CMOS_MEM_ABOVE_16M: u8 = 0x34;
/// Memory above 4 GiB in 64 KiB units (24 bits LE at 0x5B).
pub(crate) const CMOS_MEM_ABOVE_4G: u8 = 0x5B;
/// CPU count minus one (QEMU's convention, read by SeaBIOS).
pub(crate) const CMOS_CPU_COUNT_MINUS_ONE: u8 = 0x5F;

/// Register A: divider 010 (32.768 kHz time base) and 1024 Hz periodic rate, UIP clear.
const REG_A_DEFAULT: u8 = 0x26;
/// Register A bit 7: update in progress (read-only).
const REG_A_UIP: u8 = 1 << 7;
/// Register B bit 1: 24-hour mode.
const REG_B_24H: u8 = 1 << 1;
/// Register B bit 2: binary (not BCD) data mode.
const REG_B_DM_BINARY: u8 = 1 << 2;
/// Register D bit 7: valid RAM and time.
const REG_D_VRT: u8 = 1 << 7;
/// Hours register bit 7 in 12-hour mode: PM.
const HOURS_PM: u8 = 1 << 7;
/// The index port's bit 7 masks NMIs; the other bits select one of 128 bytes.
const INDEX_MASK: u8 = 0x7F;
/// Bytes of CMOS RAM (clock registers included).
const CMOS_SIZE: usize = 128;
/// Base memory: 640 KiB.
const BASE_MEM_KIB: u16 = 640;
/// The 16 MiB boundary of the 0x34 count.
const SIXTEEN_MIB: u64 = 16 << 20;

/// A calendar time in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateTime {
    /// Full year, e.g. 2026.
    pub(crate) year: u32,
    /// 1-12.
    pub(crate) month: u8,
    /// 1-31.
    pub(crate) day: u8,
    /// 0-23.
    pub(crate) hour: u8,
    /// 0-59.
    pub(crate) minute: u8,
    /// 0-59.
    pub(crate) second: u8,
    /// 1 = Sunday ... 7 = Saturday.
    pub(crate) weekday: u8,
}

impl DateTime {
    /// The UTC calendar time `secs` seconds after 1970-01-01 (days-to-civil conversion of the
    /// proleptic Gregorian calendar, after Howard Hinnant's `civil_from_days`).
    pub(crate) fn from_unix(secs: u64) -> Self {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        // 1970-01-01 was a Thursday (weekday 5 with Sunday = 1).
        let weekday = ((days + 4) % 7) as u8 + 1;
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + u64::from(month <= 2)) as u32;
        Self {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
            weekday,
        }
    }
}

/// Where the clock's time comes from.
pub(crate) type Clock = fn() -> u64;

/// The host's UTC time in seconds since the epoch.
fn host_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The RTC and CMOS RAM.
pub(crate) struct Cmos {
    index: u8,
    ram: [u8; CMOS_SIZE],
    clock: Clock,
}

impl Cmos {
    /// CMOS for a VM with `ram` bytes of RAM (placed as sipi's memory map places it: up to
    /// the MMIO hole, the rest above 4 GiB) and `vcpus` vCPUs, on the host's clock.
    pub(crate) fn new(ram: u64, vcpus: u32) -> Self {
        Self::with_clock(ram, vcpus, host_clock)
    }

    /// The same, with the time taken from `clock`.
    pub(crate) fn with_clock(ram: u64, vcpus: u32, clock: Clock) -> Self {
        let mut c = Self {
            index: 0,
            ram: [0; CMOS_SIZE],
            clock,
        };
        let below_4g = ram.min(MMIO_HOLE_START);
        let above_4g = ram - below_4g;
        let ext_kib = (below_4g.saturating_sub(KERNEL_MIN_ADDR) >> 10).min(0xFFFF) as u16;
        let above_16m = (below_4g.saturating_sub(SIXTEEN_MIB) >> 16).min(0xFFFF) as u16;
        let above_4g = (above_4g >> 16).min(0xFF_FFFF) as u32;
        c.put16(CMOS_BASE_MEM, BASE_MEM_KIB);
        c.put16(CMOS_EXT_MEM, ext_kib);
        c.put16(CMOS_EXT_MEM_COPY, ext_kib);
        c.put16(CMOS_MEM_ABOVE_16M, above_16m);
        c.ram[usize::from(CMOS_MEM_ABOVE_4G)..][..3].copy_from_slice(&above_4g.to_le_bytes()[..3]);
        c.ram[usize::from(CMOS_CPU_COUNT_MINUS_ONE)] = vcpus.saturating_sub(1).min(0xFF) as u8;
        c.ram[usize::from(RTC_REG_A)] = REG_A_DEFAULT;
        c.ram[usize::from(RTC_REG_B)] = REG_B_24H;
        c.ram[usize::from(RTC_REG_D)] = REG_D_VRT;
        c
    }

    fn put16(&mut self, at: u8, v: u16) {
        self.ram[usize::from(at)..][..2].copy_from_slice(&v.to_le_bytes());
    }

    /// A one-byte write to `port`.
    pub(crate) fn write(&mut self, port: u16, v: u8) {
        if port == CMOS_INDEX_PORT {
            self.index = v & INDEX_MASK;
            return;
        }
        match self.index {
            // Setting the clock is not supported: the guest always reads the host's time.
            RTC_SECONDS | RTC_MINUTES | RTC_HOURS | RTC_DAY_OF_WEEK | RTC_DAY_OF_MONTH
            | RTC_MONTH | RTC_YEAR | RTC_CENTURY => {}
            RTC_REG_A => self.ram[usize::from(RTC_REG_A)] = v & !REG_A_UIP,
            RTC_REG_C | RTC_REG_D => {}
            i => self.ram[usize::from(i)] = v,
        }
    }

    /// A one-byte read of `port`. The index port is write-only and reads as 0xFF.
    pub(crate) fn read(&mut self, port: u16) -> u8 {
        if port == CMOS_INDEX_PORT {
            return 0xFF;
        }
        let reg_b = self.ram[usize::from(RTC_REG_B)];
        let now = || DateTime::from_unix((self.clock)());
        let encode = |v: u8| {
            if reg_b & REG_B_DM_BINARY != 0 {
                v
            } else {
                (v / 10) << 4 | (v % 10)
            }
        };
        match self.index {
            RTC_SECONDS => encode(now().second),
            RTC_MINUTES => encode(now().minute),
            RTC_HOURS => {
                let h = now().hour;
                if reg_b & REG_B_24H != 0 {
                    encode(h)
                } else {
                    let h12 = if h % 12 == 0 { 12 } else { h % 12 };
                    encode(h12) | if h >= 12 { HOURS_PM } else { 0 }
                }
            }
            RTC_DAY_OF_WEEK => encode(now().weekday),
            RTC_DAY_OF_MONTH => encode(now().day),
            RTC_MONTH => encode(now().month),
            RTC_YEAR => encode((now().year % 100) as u8),
            RTC_CENTURY => encode((now().year / 100 % 100) as u8),
            RTC_REG_C => std::mem::take(&mut self.ram[usize::from(RTC_REG_C)]),
            i => self.ram[usize::from(i)],
        }
    }
}

/// The RTC on the port bus. Wider accesses reach the ports in turn: an `outw` to the index
/// port sets the index and writes the data port at once; bytes beyond the data port are
/// dropped, and read as all ones.
impl PortDevice for Mutex<Cmos> {
    fn ports(&self) -> &[RangeInclusive<u16>] {
        PORTS
    }

    fn read(&self, port: u16, data: &mut [u8], _log: &UnknownAccessLog) {
        let mut c = lock(self);
        for (i, b) in data.iter_mut().enumerate() {
            let p = port.wrapping_add(i as u16);
            *b = if p <= CMOS_DATA_PORT { c.read(p) } else { 0xFF };
        }
    }

    fn write(
        &self,
        _vcpu: u32,
        port: u16,
        data: &[u8],
        _log: &UnknownAccessLog,
    ) -> Option<DeviceEvent> {
        let mut c = lock(self);
        for (p, v) in (port..).zip(data).take_while(|(p, _)| *p <= CMOS_DATA_PORT) {
            c.write(p, *v);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-03 14:05:09 UTC, a Tuesday.
    const T: u64 = 1_793_714_709;

    fn read(c: &mut Cmos, reg: u8) -> u8 {
        c.write(CMOS_INDEX_PORT, reg);
        c.read(CMOS_DATA_PORT)
    }

    #[test]
    fn calendar_conversion() {
        assert_eq!(
            DateTime::from_unix(0),
            DateTime {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
                weekday: 5
            }
        );
        let t = DateTime::from_unix(T);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second, t.weekday),
            (2026, 11, 3, 14, 5, 9, 3)
        );
        let leap = DateTime::from_unix(951_782_400); // 2000-02-29
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
    }

    #[test]
    fn the_clock_reads_in_bcd_or_binary_and_12_or_24_hours() {
        let mut c = Cmos::with_clock(256 << 20, 4, || T);
        assert_eq!(read(&mut c, RTC_REG_A) & REG_A_UIP, 0, "never updating");
        assert_eq!(read(&mut c, RTC_REG_D), REG_D_VRT);
        assert_eq!(read(&mut c, RTC_SECONDS), 0x09);
        assert_eq!(read(&mut c, RTC_MINUTES), 0x05);
        assert_eq!(read(&mut c, RTC_HOURS), 0x14);
        assert_eq!(read(&mut c, RTC_DAY_OF_MONTH), 0x03);
        assert_eq!(read(&mut c, RTC_MONTH), 0x11);
        assert_eq!(read(&mut c, RTC_YEAR), 0x26);
        assert_eq!(read(&mut c, RTC_CENTURY), 0x20);
        c.write(CMOS_INDEX_PORT, RTC_REG_B | 0x80); // with NMI masked
        c.write(CMOS_DATA_PORT, REG_B_DM_BINARY);
        assert_eq!(read(&mut c, RTC_HOURS), 2 | HOURS_PM);
        assert_eq!(read(&mut c, RTC_YEAR), 26);
        c.write(CMOS_INDEX_PORT, RTC_SECONDS);
        c.write(CMOS_DATA_PORT, 0x59);
        assert_eq!(read(&mut c, RTC_SECONDS), 9, "the clock cannot be set");
        assert_eq!(c.read(CMOS_INDEX_PORT), 0xFF);
    }

    #[test]
    fn memory_bytes_describe_the_vm() {
        let mut c = Cmos::with_clock(4 << 30, 64, || T);
        let word = |c: &mut Cmos, r: u8| u16::from_le_bytes([read(c, r), read(c, r + 1)]);
        assert_eq!(word(&mut c, CMOS_BASE_MEM), 640);
        assert_eq!(word(&mut c, CMOS_EXT_MEM), 0xFFFF);
        assert_eq!(word(&mut c, CMOS_EXT_MEM_COPY), 0xFFFF);
        assert_eq!(
            word(&mut c, CMOS_MEM_ABOVE_16M),
            48896,
            "(3 GiB - 16 MiB) / 64 KiB"
        );
        let above: u32 = u32::from_le_bytes([
            read(&mut c, CMOS_MEM_ABOVE_4G),
            read(&mut c, CMOS_MEM_ABOVE_4G + 1),
            read(&mut c, CMOS_MEM_ABOVE_4G + 2),
            0,
        ]);
        assert_eq!(u64::from(above) << 16, 1 << 30);
        assert_eq!(read(&mut c, CMOS_CPU_COUNT_MINUS_ONE), 63);
        let mut small = Cmos::with_clock(32 << 20, 1, || T);
        assert_eq!(word(&mut small, CMOS_EXT_MEM), 31 << 10);
        assert_eq!(word(&mut small, CMOS_MEM_ABOVE_16M), 256);
        small.write(CMOS_INDEX_PORT, 0x40);
        small.write(CMOS_DATA_PORT, 0xA5);
        assert_eq!(read(&mut small, 0x40), 0xA5, "plain CMOS RAM");
    }
}
