//! An HPET (IA-PC HPET specification 1.0a) at [`HPET_BASE`], as the ACPI HPET table describes
//! it: the registers a kernel reads to find and use the main counter.
//!
//! | offset | register | here |
//! |---|---|---|
//! | 0x000 | General Capabilities and ID | vendor 0x8086, revision 1, [`TIMERS`] timers, 64-bit counter, no legacy replacement route, period 10 ns (100 MHz, as QEMU's) |
//! | 0x010 | General Configuration | ENABLE_CNF (bit 0) starts and stops the main counter; other bits read 0 |
//! | 0x020 | General Interrupt Status | always 0: no timer interrupt is ever raised |
//! | 0x0F0 | Main Counter Value | counts host monotonic time while enabled; writable while stopped |
//! | 0x100 + 0x20 N | Timer N Configuration and Capability | the configuration bits are kept; 64-bit, periodic-capable (timer 0), IRQ 2 routable, as QEMU's |
//! | 0x108 + 0x20 N | Timer N Comparator Value | kept |
//!
//! Every register takes 4- and 8-byte accesses (and smaller ones inside a register); reserved
//! registers read as zero and ignore writes. The timers never interrupt: without the legacy
//! replacement route (not advertised) and without FSB delivery, Linux uses the HPET only as a
//! clocksource, and a kernel that programs a comparator sees it kept but never fires.

use std::sync::Mutex;
use std::time::Instant;

use firmware::layout::{HPET_BASE, HPET_LEN};

use super::lock;
use super::mmio_bus::MmioDevice;

/// The comparators ("timers") of the block; the spec requires at least 3.
pub(crate) const TIMERS: u64 = 3;
/// The counter's period in femtoseconds: 10 ns, a 100 MHz counter.
pub(crate) const PERIOD_FS: u64 = 10_000_000;
/// Femtoseconds in a nanosecond.
const FS_PER_NS: u64 = 1_000_000;
/// The vendor ID in the capabilities register (Intel, as QEMU's).
pub(crate) const VENDOR_ID: u64 = 0x8086;
/// REV_ID: revision 1 of the register interface.
const REV_ID: u64 = 1;
/// General Capabilities: NUM_TIM_CAP (bits 12:8) holds the last timer's number.
const NUM_TIM_CAP_SHIFT: u32 = 8;
/// General Capabilities: COUNT_SIZE_CAP, a 64-bit main counter.
pub(crate) const COUNT_SIZE_CAP: u64 = 1 << 13;
/// General Capabilities: VENDOR_ID (bits 31:16).
const VENDOR_ID_SHIFT: u32 = 16;
/// General Capabilities: COUNTER_CLK_PERIOD (bits 63:32).
const PERIOD_SHIFT: u32 = 32;

/// The General Capabilities and ID register, as the device reads it.
pub(crate) const CAPABILITIES: u64 = REV_ID
    | (TIMERS - 1) << NUM_TIM_CAP_SHIFT
    | COUNT_SIZE_CAP
    | VENDOR_ID << VENDOR_ID_SHIFT
    | PERIOD_FS << PERIOD_SHIFT;

/// Register offsets in the block.
const GENERAL_CAPABILITIES: u64 = 0x000;
const GENERAL_CONFIGURATION: u64 = 0x010;
const GENERAL_INTERRUPT_STATUS: u64 = 0x020;
const MAIN_COUNTER: u64 = 0x0F0;
const TIMER_BASE: u64 = 0x100;
const TIMER_STRIDE: u64 = 0x20;
const TIMER_CONFIGURATION: u64 = 0x00;
const TIMER_COMPARATOR: u64 = 0x08;

/// General Configuration: ENABLE_CNF.
pub(crate) const ENABLE_CNF: u64 = 1 << 0;
/// Timer configuration bits software may set: INT_TYPE (1), INT_ENB (2), TYPE (3),
/// 32MODE (8), INT_ROUTE (13:9).
const TIMER_WRITABLE: u64 = 0b11_1111_0000_1110;
/// Timer capabilities: PER_INT_CAP (periodic mode), timer 0 only.
const TIMER_PERIODIC_CAP: u64 = 1 << 4;
/// Timer capabilities: SIZE_CAP (a 64-bit comparator).
const TIMER_SIZE_CAP: u64 = 1 << 5;
/// Timer capabilities: INT_ROUTE_CAP (bits 63:32), the IOAPIC inputs it may use: 2, as QEMU.
const TIMER_ROUTE_CAP: u64 = (1 << 2) << 32;

/// Bytes in a register.
const REGISTER: u64 = 8;

/// The counter's state.
#[derive(Debug, Clone, Copy)]
struct Counter {
    /// The counter's value when it was last stopped, written or started.
    value: u64,
    /// When it was started, if it runs.
    running_since: Option<Instant>,
}

impl Counter {
    /// The value now.
    fn now(&self) -> u64 {
        match self.running_since {
            Some(t) => self.value.wrapping_add(ticks(t.elapsed().as_nanos())),
            None => self.value,
        }
    }
}

/// Counter ticks in `ns` nanoseconds, wrapping as the 64-bit counter does.
fn ticks(ns: u128) -> u64 {
    (ns * u128::from(FS_PER_NS) / u128::from(PERIOD_FS)) as u64
}

/// One timer's registers.
#[derive(Debug, Clone, Copy, Default)]
struct Timer {
    config: u64,
    comparator: u64,
}

/// Register state.
#[derive(Debug)]
struct State {
    counter: Counter,
    timers: [Timer; TIMERS as usize],
}

/// The device.
pub(crate) struct Hpet {
    state: Mutex<State>,
}

impl Hpet {
    /// A stopped HPET at zero, as after reset.
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                counter: Counter {
                    value: 0,
                    running_since: None,
                },
                timers: [Timer::default(); TIMERS as usize],
            }),
        }
    }
}

/// The timer and register a timer-block offset names, if it is one.
fn timer_register(reg: u64) -> Option<(usize, u64)> {
    let rel = reg.checked_sub(TIMER_BASE)?;
    let n = rel / TIMER_STRIDE;
    (n < TIMERS).then_some((n as usize, rel % TIMER_STRIDE))
}

/// The capability bits of timer `n`'s configuration register.
fn timer_caps(n: usize) -> u64 {
    let periodic = if n == 0 { TIMER_PERIODIC_CAP } else { 0 };
    TIMER_ROUTE_CAP | TIMER_SIZE_CAP | periodic
}

impl State {
    /// The value of the 8-byte register at `reg`.
    fn read(&self, reg: u64) -> u64 {
        match reg {
            GENERAL_CAPABILITIES => CAPABILITIES,
            GENERAL_CONFIGURATION => u64::from(self.counter.running_since.is_some()) * ENABLE_CNF,
            GENERAL_INTERRUPT_STATUS => 0,
            MAIN_COUNTER => self.counter.now(),
            _ => match timer_register(reg) {
                Some((n, TIMER_CONFIGURATION)) => self.timers[n].config | timer_caps(n),
                Some((n, TIMER_COMPARATOR)) => self.timers[n].comparator,
                _ => 0,
            },
        }
    }

    /// A write of `value` to the 8-byte register at `reg`, whose other bytes the caller has
    /// filled from a read.
    fn write(&mut self, reg: u64, value: u64) {
        match reg {
            GENERAL_CONFIGURATION => {
                let c = &mut self.counter;
                match (value & ENABLE_CNF != 0, c.running_since) {
                    (true, None) => c.running_since = Some(Instant::now()),
                    (false, Some(_)) => {
                        c.value = c.now();
                        c.running_since = None;
                    }
                    _ => {}
                }
            }
            // The spec lets software write the counter only while it is stopped.
            MAIN_COUNTER if self.counter.running_since.is_none() => self.counter.value = value,
            _ => match timer_register(reg) {
                Some((n, TIMER_CONFIGURATION)) => self.timers[n].config = value & TIMER_WRITABLE,
                Some((n, TIMER_COMPARATOR)) => self.timers[n].comparator = value,
                _ => {}
            },
        }
    }
}

/// The 8-byte register an access at `offset` of `len` bytes falls in and the byte it starts
/// at, if the access stays inside one register.
fn split(offset: u64, len: usize) -> Option<(u64, usize)> {
    let byte = (offset % REGISTER) as usize;
    (len > 0 && byte + len <= REGISTER as usize).then_some((offset - byte as u64, byte))
}

impl MmioDevice for Hpet {
    fn window(&self) -> (u64, u64) {
        (HPET_BASE, HPET_LEN)
    }

    /// An access across two registers reads as all ones.
    fn read(&self, offset: u64, data: &mut [u8]) {
        let Some((reg, byte)) = split(offset, data.len()) else {
            data.fill(0xFF);
            return;
        };
        let value = lock(&self.state).read(reg).to_le_bytes();
        data.copy_from_slice(&value[byte..byte + data.len()]);
    }

    /// An access across two registers is ignored.
    fn write(&self, _vcpu: u32, offset: u64, data: &[u8]) {
        let Some((reg, byte)) = split(offset, data.len()) else {
            return;
        };
        let mut state = lock(&self.state);
        let mut value = state.read(reg).to_le_bytes();
        value[byte..byte + data.len()].copy_from_slice(data);
        state.write(reg, u64::from_le_bytes(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read64(h: &Hpet, offset: u64) -> u64 {
        let mut b = [0u8; 8];
        h.read(offset, &mut b);
        u64::from_le_bytes(b)
    }

    fn read32(h: &Hpet, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        h.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    /// Spins until the monotonic clock has moved on by at least `ns` (no sleeping on a
    /// wall-clock limit; the counter only needs time to pass).
    fn let_time_pass(ns: u128) {
        let t = Instant::now();
        while t.elapsed().as_nanos() < ns {
            std::hint::spin_loop();
        }
    }

    #[test]
    fn capabilities_name_a_64_bit_100_mhz_counter_with_three_timers() {
        let h = Hpet::new();
        let caps = read64(&h, GENERAL_CAPABILITIES);
        assert_eq!(caps >> 32, 10_000_000, "10 ns in femtoseconds");
        assert_eq!(caps & 0xFF, 1, "revision 1");
        assert_eq!((caps >> 8) & 0x1F, 2, "the last timer is number 2");
        assert_ne!(caps & (1 << 13), 0, "64-bit counter");
        assert_eq!(caps & (1 << 15), 0, "no legacy replacement route");
        assert_eq!((caps >> 16) & 0xFFFF, 0x8086);
        assert_eq!(read32(&h, 0), caps as u32);
        assert_eq!(u64::from(read32(&h, 4)), caps >> 32);
        // Read-only: a write changes nothing.
        h.write(0, 0, &[0; 8]);
        assert_eq!(read64(&h, 0), caps);
    }

    #[test]
    fn the_counter_runs_only_while_enabled_and_is_writable_while_stopped() {
        let h = Hpet::new();
        assert_eq!(read64(&h, MAIN_COUNTER), 0);
        let_time_pass(1_000);
        assert_eq!(read64(&h, MAIN_COUNTER), 0, "stopped after reset");
        h.write(0, MAIN_COUNTER, &1000u64.to_le_bytes());
        assert_eq!(read64(&h, MAIN_COUNTER), 1000);
        h.write(0, GENERAL_CONFIGURATION, &1u32.to_le_bytes());
        assert_eq!(read64(&h, GENERAL_CONFIGURATION), ENABLE_CNF);
        let a = read64(&h, MAIN_COUNTER);
        let_time_pass(10_000);
        let b = read64(&h, MAIN_COUNTER);
        assert!(
            a >= 1000 && b >= a + 1000,
            "10 us is 1000 ticks: {a} then {b}"
        );
        h.write(0, MAIN_COUNTER, &0u64.to_le_bytes());
        assert!(read64(&h, MAIN_COUNTER) >= b, "no writes while running");
        h.write(0, GENERAL_CONFIGURATION, &0u32.to_le_bytes());
        let stopped = read64(&h, MAIN_COUNTER);
        let_time_pass(10_000);
        assert_eq!(read64(&h, MAIN_COUNTER), stopped);
        // A 32-bit write of the high half while stopped.
        h.write(0, MAIN_COUNTER + 4, &7u32.to_le_bytes());
        assert_eq!(read64(&h, MAIN_COUNTER), 7 << 32 | (stopped & 0xFFFF_FFFF));
        assert_eq!(read64(&h, GENERAL_INTERRUPT_STATUS), 0);
    }

    #[test]
    fn timer_registers_keep_their_configuration_under_fixed_capabilities() {
        let h = Hpet::new();
        let t0 = TIMER_BASE;
        let t2 = TIMER_BASE + 2 * TIMER_STRIDE;
        assert_eq!(read64(&h, t0), (1 << 34) | (1 << 5) | (1 << 4));
        assert_eq!(
            read64(&h, t2),
            (1 << 34) | (1 << 5),
            "only timer 0 is periodic"
        );
        h.write(0, t2, &u64::MAX.to_le_bytes());
        assert_eq!(read64(&h, t2), (1 << 34) | (1 << 5) | TIMER_WRITABLE);
        h.write(0, t2 + TIMER_COMPARATOR, &0x1234u64.to_le_bytes());
        assert_eq!(read64(&h, t2 + TIMER_COMPARATOR), 0x1234);
        let t3 = TIMER_BASE + 3 * TIMER_STRIDE;
        h.write(0, t3, &u64::MAX.to_le_bytes());
        assert_eq!(read64(&h, t3), 0, "no fourth timer");
    }

    #[test]
    fn accesses_across_registers_are_refused() {
        let h = Hpet::new();
        let mut b = [0u8; 4];
        h.read(6, &mut b);
        assert_eq!(b, [0xFF; 4]);
        h.write(0, GENERAL_CONFIGURATION + 6, &[1, 1, 1, 1]);
        assert_eq!(read64(&h, GENERAL_CONFIGURATION), 0);
        h.read(HPET_LEN - 1, &mut b[..1]);
        assert_eq!(b[0], 0, "a reserved byte");
        assert_eq!(split(0, 0), None);
    }

    #[test]
    fn ticks_are_tenths_of_nanoseconds_wrapping_at_64_bits() {
        assert_eq!(ticks(0), 0);
        assert_eq!(ticks(10), 1);
        assert_eq!(ticks(1_000_000_000), 100_000_000);
        assert_eq!(ticks(u128::from(u64::MAX) * 10 + 20), 1);
    }
}
