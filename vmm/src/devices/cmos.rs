//! The MC146818 real-time clock and its CMOS RAM, as a PC kernel reads them: an index port and
//! a data port (Motorola MC146818A data sheet; register meanings as in QEMU's
//! hw/rtc/mc146818rtc.c and SeaBIOS). The clock reads the host's UTC time on every access. As
//! on the chip, register A's update-in-progress bit is set for the [`UIP_WINDOW`] before each
//! second's update (unless register B's SET bit holds updates), so a kernel that waits for an
//! update to start and end sees both. The alarm registers (0x01, 0x03, 0x05, each matching
//! anything when its two top bits are set) and the update are compared at each second
//! boundary; register C's flags (AF, UF and IRQF when an enabled flag is set) are worked out
//! when it is read, and reading clears them. The VMM asks for the next alarm
//! ([`Cmos::next_alarm`]) to raise IRQ 8 when register B's AIE is set, while the VM runs and to
//! wake a suspended VM ([`Cmos::alarm_fired`]). The periodic interrupt is not emulated (PF never sets). The
//! memory-size bytes describe the VM's RAM as a BIOS would; the rest of the 128 bytes is plain
//! RAM the guest may write.

use std::ops::RangeInclusive;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use firmware::layout::{
    CMOS_CENTURY_INDEX as RTC_CENTURY, CMOS_DATA_PORT, CMOS_INDEX_PORT, KERNEL_MIN_ADDR,
    MMIO_HOLE_START,
};

use vmm_sys_util::eventfd::EventFd;

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
/// Seconds alarm.
pub(crate) const RTC_SECONDS_ALARM: u8 = 0x01;
/// Minutes.
pub(crate) const RTC_MINUTES: u8 = 0x02;
/// Minutes alarm.
pub(crate) const RTC_MINUTES_ALARM: u8 = 0x03;
/// Hours.
pub(crate) const RTC_HOURS: u8 = 0x04;
/// Hours alarm.
pub(crate) const RTC_HOURS_ALARM: u8 = 0x05;
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

/// The ISA interrupt line of the RTC.
pub(crate) const RTC_IRQ: u32 = 8;
/// Register A: divider 010 (32.768 kHz time base) and 1024 Hz periodic rate, UIP clear.
const REG_A_DEFAULT: u8 = 0x26;
/// Register A bit 7: update in progress (read-only).
const REG_A_UIP: u8 = 1 << 7;
/// How long before each second's update register A's UIP bit is set: the update cycle's
/// 244 µs warning (MC146818A data sheet, "Update Cycle": UIP rises 244 µs before the update).
pub(crate) const UIP_WINDOW: Duration = Duration::from_micros(244);
/// Register B bit 7: SET, updates held while the time is being set.
const REG_B_SET: u8 = 1 << 7;
/// Register B bit 6: PIE, periodic interrupt enable.
pub(crate) const REG_B_PIE: u8 = 1 << 6;
/// Register B bit 5: AIE, alarm interrupt enable.
pub(crate) const REG_B_AIE: u8 = 1 << 5;
/// Register B bit 4: UIE, update-ended interrupt enable.
pub(crate) const REG_B_UIE: u8 = 1 << 4;
/// Register C bit 7: IRQF, an enabled interrupt flag is set.
pub(crate) const REG_C_IRQF: u8 = 1 << 7;
/// Register C bit 5: AF, the alarm matched.
pub(crate) const REG_C_AF: u8 = 1 << 5;
/// Register C bit 4: UF, an update ended.
pub(crate) const REG_C_UF: u8 = 1 << 4;
/// Register C's flag bits that register B's PIE, AIE and UIE (the same bit positions) enable.
const REG_C_FLAGS: u8 = REG_B_PIE | REG_B_AIE | REG_B_UIE;
/// An alarm register whose two top bits are set matches any value ("don't care").
const ALARM_DONT_CARE: u8 = 0xC0;
/// How far ahead an alarm is looked for: every second of a day, after which the
/// hours-minutes-seconds alarm repeats.
const ALARM_HORIZON_SECS: u64 = 86_400;
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

/// Where the clock's time comes from: the time since the epoch.
pub(crate) type Clock = fn() -> Duration;

/// The host's UTC time since the epoch.
fn host_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The RTC and CMOS RAM.
pub(crate) struct Cmos {
    index: u8,
    ram: [u8; CMOS_SIZE],
    clock: Clock,
    /// The last second boundary (seconds since the epoch) register C's flags account for.
    flags_until: u64,
    /// The second boundary of the last alarm the VMM fired (so it fires once).
    last_alarm: u64,
    /// Written when the next alarm may have moved.
    alarm_changed: Option<EventFd>,
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
            flags_until: clock().as_secs(),
            last_alarm: 0,
            alarm_changed: None,
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
            i @ (RTC_SECONDS_ALARM | RTC_MINUTES_ALARM | RTC_HOURS_ALARM | RTC_REG_B) => {
                self.ram[usize::from(i)] = v;
                // The next alarm may have moved: the VMM's thread waits for it.
                if let Some(evt) = &self.alarm_changed {
                    let _ = evt.write(1);
                }
            }
            i => self.ram[usize::from(i)] = v,
        }
    }

    /// Has `evt` written whenever the guest writes an alarm register or register B, so that
    /// the VMM's thread, which waits for [`Cmos::next_alarm`], looks again.
    pub(crate) fn notify_alarm_changes(&mut self, evt: EventFd) {
        self.alarm_changed = Some(evt);
    }

    /// Register B.
    fn reg_b(&self) -> u8 {
        self.ram[usize::from(RTC_REG_B)]
    }

    /// A clock value as register B's data mode shows it: BCD or binary.
    fn encode(&self, v: u8) -> u8 {
        if self.reg_b() & REG_B_DM_BINARY != 0 {
            v
        } else {
            (v / 10) << 4 | (v % 10)
        }
    }

    /// The hour as register B's modes show it: 24-hour, or 12-hour with bit 7 for PM.
    fn encode_hour(&self, h: u8) -> u8 {
        if self.reg_b() & REG_B_24H != 0 {
            self.encode(h)
        } else {
            let h12 = if h.is_multiple_of(12) { 12 } else { h % 12 };
            self.encode(h12) | if h >= 12 { HOURS_PM } else { 0 }
        }
    }

    /// True if the alarm registers match the time `secs` seconds after the epoch.
    fn alarm_matches(&self, secs: u64) -> bool {
        let t = DateTime::from_unix(secs);
        let matches = |reg: u8, v: u8| {
            let alarm = self.ram[usize::from(reg)];
            alarm & ALARM_DONT_CARE == ALARM_DONT_CARE || alarm == v
        };
        matches(RTC_SECONDS_ALARM, self.encode(t.second))
            && matches(RTC_MINUTES_ALARM, self.encode(t.minute))
            && matches(RTC_HOURS_ALARM, self.encode_hour(t.hour))
    }

    /// The first second boundary after `after` (seconds since the epoch) and at most a day
    /// later at which the alarm matches.
    fn alarm_after(&self, after: u64) -> Option<u64> {
        (after + 1..=after + ALARM_HORIZON_SECS).find(|s| self.alarm_matches(*s))
    }

    /// Sets register C's flags for the updates (and alarm matches) since the last time they
    /// were worked out. Updates are held while register B's SET bit is.
    fn update_flags(&mut self) {
        let now = (self.clock)().as_secs();
        if now <= self.flags_until || self.reg_b() & REG_B_SET != 0 {
            self.flags_until = self.flags_until.max(now);
            return;
        }
        let mut flags = REG_C_UF;
        // Alarm matches repeat at most daily: a longer gap is searched over its last day.
        let from = self.flags_until.max(now.saturating_sub(ALARM_HORIZON_SECS));
        if self.alarm_after(from).is_some_and(|s| s <= now) {
            flags |= REG_C_AF;
        }
        self.flags_until = now;
        self.raise(flags);
    }

    /// Sets `flags` in register C, and IRQF if register B enables any flag now set.
    fn raise(&mut self, flags: u8) {
        let enabled = self.reg_b() & REG_C_FLAGS;
        let c = &mut self.ram[usize::from(RTC_REG_C)];
        *c |= flags;
        if *c & enabled != 0 {
            *c |= REG_C_IRQF;
        }
    }

    /// With register B's AIE set, how long from now until the next alarm match (at the start
    /// of a second, within a day); None when the alarm interrupt is off or can never match.
    pub(crate) fn next_alarm(&self) -> Option<Duration> {
        if self.reg_b() & (REG_B_AIE | REG_B_SET) != REG_B_AIE {
            return None;
        }
        let now = (self.clock)();
        let at = self.alarm_after(now.as_secs().max(self.last_alarm))?;
        Some(Duration::from_secs(at).saturating_sub(now))
    }

    /// The alarm matched (the VMM waited for [`Cmos::next_alarm`]): sets AF, and IRQF when
    /// AIE enables it. Returns true if IRQ 8 is to be raised.
    pub(crate) fn alarm_fired(&mut self) -> bool {
        // The boundary the VMM waited for: the nearest one (its timer and the wall clock may
        // disagree by a little either way).
        let now = (self.clock)();
        self.last_alarm = (now + Duration::from_millis(500)).as_secs();
        self.update_flags();
        self.raise(REG_C_AF);
        self.reg_b() & REG_B_AIE != 0
    }

    /// A one-byte read of `port`. The index port is write-only and reads as 0xFF.
    pub(crate) fn read(&mut self, port: u16) -> u8 {
        if port == CMOS_INDEX_PORT {
            return 0xFF;
        }
        let now = || DateTime::from_unix((self.clock)().as_secs());
        match self.index {
            RTC_SECONDS => self.encode(now().second),
            RTC_MINUTES => self.encode(now().minute),
            RTC_HOURS => self.encode_hour(now().hour),
            RTC_DAY_OF_WEEK => self.encode(now().weekday),
            RTC_DAY_OF_MONTH => self.encode(now().day),
            RTC_MONTH => self.encode(now().month),
            RTC_YEAR => self.encode((now().year % 100) as u8),
            RTC_CENTURY => self.encode((now().year / 100 % 100) as u8),
            RTC_REG_A => {
                let a = self.ram[usize::from(RTC_REG_A)];
                let into_second = Duration::from_nanos(u64::from((self.clock)().subsec_nanos()));
                let updating = self.reg_b() & REG_B_SET == 0
                    && into_second >= Duration::from_secs(1) - UIP_WINDOW;
                if updating {
                    a | REG_A_UIP
                } else {
                    a
                }
            }
            RTC_REG_C => {
                self.update_flags();
                std::mem::take(&mut self.ram[usize::from(RTC_REG_C)])
            }
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

    use std::cell::Cell;

    /// 2026-11-03 14:05:09 UTC, a Tuesday.
    const T: u64 = 1_793_714_709;

    thread_local! {
        /// The time [`test_clock`] reads, set by each test on its own thread.
        static NOW: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    }

    fn test_clock() -> Duration {
        NOW.with(Cell::get)
    }

    fn set_now(t: Duration) {
        NOW.with(|n| n.set(t));
    }

    fn write(c: &mut Cmos, reg: u8, v: u8) {
        c.write(CMOS_INDEX_PORT, reg);
        c.write(CMOS_DATA_PORT, v);
    }

    #[test]
    fn update_in_progress_shows_for_244_us_before_each_second() {
        set_now(Duration::from_secs(T));
        let mut c = Cmos::with_clock(256 << 20, 1, test_clock);
        let at = |c: &mut Cmos, ns: u64| {
            set_now(Duration::from_secs(T) + Duration::from_nanos(ns));
            read(c, RTC_REG_A)
        };
        assert_eq!(at(&mut c, 0), REG_A_DEFAULT, "just updated");
        assert_eq!(at(&mut c, 999_755_999), REG_A_DEFAULT, "245 us before");
        assert_eq!(at(&mut c, 999_756_000), REG_A_DEFAULT | REG_A_UIP);
        assert_eq!(at(&mut c, 999_999_999), REG_A_DEFAULT | REG_A_UIP);
        assert_eq!(at(&mut c, 1_000_000_000), REG_A_DEFAULT, "the next second");
        write(&mut c, RTC_REG_B, REG_B_24H | REG_B_SET);
        assert_eq!(
            at(&mut c, 999_900_000),
            REG_A_DEFAULT,
            "updates held by SET"
        );
        write(&mut c, RTC_REG_A, 0xA6);
        assert_eq!(at(&mut c, 0), 0x26, "UIP is read-only");
    }

    #[test]
    fn alarms_match_with_dont_care_and_flags_clear_on_read() {
        set_now(Duration::from_secs(T) + Duration::from_millis(300));
        let mut c = Cmos::with_clock(256 << 20, 1, test_clock);
        assert_eq!(c.next_alarm(), None, "AIE off");
        // 14:05:12 in BCD, 24-hour mode.
        write(&mut c, RTC_SECONDS_ALARM, 0x12);
        write(&mut c, RTC_MINUTES_ALARM, 0x05);
        write(&mut c, RTC_HOURS_ALARM, 0x14);
        write(&mut c, RTC_REG_B, REG_B_24H | REG_B_AIE);
        assert_eq!(c.next_alarm(), Some(Duration::from_millis(2_700)));
        assert_eq!(read(&mut c, RTC_REG_C), 0, "nothing happened yet");
        set_now(Duration::from_secs(T + 2));
        assert_eq!(read(&mut c, RTC_REG_C), REG_C_UF, "an update, no alarm yet");
        assert_eq!(read(&mut c, RTC_REG_C), 0, "read to clear");
        set_now(Duration::from_secs(T + 3) + Duration::from_millis(1));
        assert_eq!(read(&mut c, RTC_REG_C), REG_C_IRQF | REG_C_AF | REG_C_UF);
        assert_eq!(read(&mut c, RTC_REG_C), 0);
        // The next 14:05:12 is a day later.
        assert_eq!(
            c.next_alarm(),
            Some(Duration::from_secs(86_400) - Duration::from_millis(1))
        );
        // Don't-care seconds and minutes: the start of every second of 14:xx.
        write(&mut c, RTC_SECONDS_ALARM, ALARM_DONT_CARE);
        write(&mut c, RTC_MINUTES_ALARM, 0xFF);
        assert_eq!(
            c.next_alarm(),
            Some(Duration::from_secs(1) - Duration::from_millis(1))
        );
        // An hour no clock shows never matches.
        write(&mut c, RTC_HOURS_ALARM, 0x25);
        assert_eq!(c.next_alarm(), None);
        // Binary, 12-hour mode: 2 PM is 0x82.
        write(&mut c, RTC_REG_B, REG_B_AIE | REG_B_DM_BINARY);
        write(&mut c, RTC_HOURS_ALARM, 0x82);
        assert!(c.next_alarm().is_some());
        write(&mut c, RTC_HOURS_ALARM, 0x02);
        assert_eq!(
            c.next_alarm(),
            Some(Duration::from_secs(12 * 3600 - 5 * 60 - 12) - Duration::from_millis(1)),
            "2 AM tomorrow"
        );
    }

    #[test]
    fn a_fired_alarm_sets_af_and_asks_for_irq_8_when_enabled() {
        set_now(Duration::from_secs(T));
        let mut c = Cmos::with_clock(256 << 20, 1, test_clock);
        assert!(!c.alarm_fired(), "AIE off: no interrupt");
        assert_eq!(read(&mut c, RTC_REG_C), REG_C_AF, "but the flag is set");
        write(&mut c, RTC_REG_B, REG_B_24H | REG_B_UIE);
        assert!(!c.alarm_fired());
        assert_eq!(read(&mut c, RTC_REG_C), REG_C_AF, "UIE does not enable AF");
        write(&mut c, RTC_REG_B, REG_B_24H | REG_B_AIE);
        assert!(c.alarm_fired());
        assert_eq!(read(&mut c, RTC_REG_C), REG_C_IRQF | REG_C_AF);
        write(&mut c, RTC_REG_C, 0xFF);
        assert_eq!(read(&mut c, RTC_REG_C), 0, "register C is read-only");
        // An alarm fires once: the VMM's timer may wake a little before the wall clock's
        // boundary, and the next alarm is then the one after it.
        write(&mut c, RTC_SECONDS_ALARM, ALARM_DONT_CARE);
        write(&mut c, RTC_MINUTES_ALARM, ALARM_DONT_CARE);
        write(&mut c, RTC_HOURS_ALARM, ALARM_DONT_CARE);
        set_now(Duration::from_secs(T + 1) - Duration::from_micros(10));
        assert_eq!(c.next_alarm(), Some(Duration::from_micros(10)));
        assert!(c.alarm_fired());
        assert_eq!(
            c.next_alarm(),
            Some(Duration::from_secs(1) + Duration::from_micros(10)),
            "not the boundary just fired"
        );
    }

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
        let mut c = Cmos::with_clock(256 << 20, 4, || Duration::from_secs(T));
        assert_eq!(read(&mut c, RTC_REG_A) & REG_A_UIP, 0, "just updated");
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
        let mut c = Cmos::with_clock(4 << 30, 64, || Duration::from_secs(T));
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
        let mut small = Cmos::with_clock(32 << 20, 1, || Duration::from_secs(T));
        assert_eq!(word(&mut small, CMOS_EXT_MEM), 31 << 10);
        assert_eq!(word(&mut small, CMOS_MEM_ABOVE_16M), 256);
        small.write(CMOS_INDEX_PORT, 0x40);
        small.write(CMOS_DATA_PORT, 0xA5);
        assert_eq!(read(&mut small, 0x40), 0xA5, "plain CMOS RAM");
    }
}
