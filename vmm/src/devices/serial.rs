//! An 8250/16550A-compatible UART, enough for a polling driver's output and for a driver's
//! detection of the chip (National Semiconductor PC16550D data sheet, register map in
//! Table II): the scratch register holds a value, the divisor latch is readable, FIFOs report
//! as enabled in IIR once FCR enables them, loopback reflects MCR into MSR (DTR to DSR, RTS to
//! CTS, OUT1 to RI, OUT2 to DCD) and loops transmitted bytes back into the receiver, and IIR
//! identifies the transmitter-empty interrupt when IER enables it. Transmission is instant:
//! LSR always shows THRE and TEMT. No interrupt is raised on the IRQ line and nothing is ever
//! received from outside.
//!
//! Where KVM can, writes to THR do not exit: KVM queues them in the coalesced I/O ring
//! ([`CoalescedRing`]) and the UART applies them, in order, before it answers any other
//! access and when the console is flushed. A polling driver reads LSR before each byte, so a
//! byte costs one exit instead of two (docs/kut.md has what that saves).

use std::io::Write;
use std::ops::RangeInclusive;
use std::sync::Mutex;

use firmware::layout::{COM1_PORT, COM1_PORT_COUNT};

use super::bus::PortDevice;
use super::coalesced_ring::{CoalescedRing, QueuedWrite};
use super::unknown::UnknownAccessLog;
use super::{lock, DeviceEvent};

/// COM1's registers.
const PORTS: &[RangeInclusive<u16>] = &[COM1_PORT..=COM1_PORT + (COM1_PORT_COUNT - 1)];

/// Receiver buffer (read) / transmitter holding register (write); divisor latch low with DLAB.
const RBR_THR: u16 = 0;
/// Interrupt enable; divisor latch high with DLAB.
const IER: u16 = 1;
/// Interrupt identification (read) / FIFO control (write).
const IIR_FCR: u16 = 2;
/// Line control.
const LCR: u16 = 3;
/// Modem control.
const MCR: u16 = 4;
/// Line status.
const LSR: u16 = 5;
/// Modem status.
const MSR: u16 = 6;
/// Scratch.
const SCR: u16 = 7;

/// LCR.DLAB: divisor latch access.
const LCR_DLAB: u8 = 1 << 7;
/// IER.ETBEI: enable the transmitter holding register empty interrupt.
const IER_ETBEI: u8 = 1 << 1;
/// FCR bit 0: enable the FIFOs.
const FCR_FIFO_ENABLE: u8 = 1 << 0;
/// IIR bits 6-7: FIFOs enabled.
const IIR_FIFO_ENABLED: u8 = 0xC0;
/// IIR: transmitter holding register empty interrupt pending (priority 3).
const IIR_THRI: u8 = 0x02;
/// LSR.DR: a received byte is ready.
const LSR_DR: u8 = 1 << 0;
/// LSR.THRE: transmitter holding register empty.
const LSR_THRE: u8 = 1 << 5;
/// LSR.TEMT: transmitter empty.
const LSR_TEMT: u8 = 1 << 6;
/// IIR: no interrupt pending.
const IIR_NONE: u8 = 1;
/// MCR.LOOP: loopback mode.
const MCR_LOOP: u8 = 1 << 4;
/// MCR.DTR, looped back to MSR.DSR.
const MCR_DTR: u8 = 1 << 0;
/// MCR.RTS, looped back to MSR.CTS.
const MCR_RTS: u8 = 1 << 1;
/// MCR.OUT1, looped back to MSR.RI.
const MCR_OUT1: u8 = 1 << 2;
/// MCR.OUT2, looped back to MSR.DCD.
const MCR_OUT2: u8 = 1 << 3;
/// MSR.CTS.
const MSR_CTS: u8 = 1 << 4;
/// MSR.DSR.
const MSR_DSR: u8 = 1 << 5;
/// MSR.RI.
const MSR_RI: u8 = 1 << 6;
/// MSR.DCD.
const MSR_DCD: u8 = 1 << 7;
/// MSR outside loopback: CTS, DSR and DCD asserted (a connected terminal).
const MSR_CONNECTED: u8 = 0xB0;
/// Divisor for 115200 baud from the 1.8432 MHz clock.
const DEFAULT_DIVISOR: u16 = 1;
/// Most bytes buffered before a flush even without a newline.
const FLUSH_AT: usize = 4096;

/// The UART state.
pub(crate) struct Serial {
    out: Box<dyn Write + Send>,
    buf: Vec<u8>,
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    divisor: u16,
    fifo: bool,
    /// The THR-empty interrupt is pending (until IIR reports it or THR is written).
    thri: bool,
    /// A byte looped back in loopback mode, waiting in RBR.
    rx: Option<u8>,
    /// THR writes KVM queued instead of exiting, if it does.
    ring: Option<CoalescedRing>,
}

impl Serial {
    /// A UART whose transmitted bytes go to `out`.
    pub(crate) fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out,
            buf: Vec::new(),
            ier: 0,
            lcr: 0,
            mcr: 0,
            scr: 0,
            divisor: DEFAULT_DIVISOR,
            fifo: false,
            thri: false,
            rx: None,
            ring: None,
        }
    }

    /// From now on, THR writes may be waiting in `ring` (KVM registered COM1's THR as a
    /// coalesced zone).
    pub(crate) fn attach_ring(&mut self, ring: CoalescedRing) {
        self.drain();
        self.ring = Some(ring);
    }

    /// THR writes exit again (KVM would not register the zone).
    pub(crate) fn detach_ring(&mut self) {
        self.ring = None;
    }

    /// Applies the THR writes KVM queued, oldest first.
    fn drain(&mut self) {
        if let Some(mut ring) = self.ring.take() {
            ring.drain(|w: QueuedWrite| {
                if w.pio && w.addr == u64::from(COM1_PORT + RBR_THR) {
                    for &b in &w.data[..w.len] {
                        self.write(RBR_THR, b);
                    }
                }
            });
            self.ring = Some(ring);
        }
    }

    /// Writes register `offset`.
    pub(crate) fn write(&mut self, offset: u16, v: u8) {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            RBR_THR if dlab => self.divisor = (self.divisor & 0xFF00) | u16::from(v),
            IER if dlab => self.divisor = (self.divisor & 0x00FF) | (u16::from(v) << 8),
            RBR_THR => {
                if self.mcr & MCR_LOOP == 0 {
                    self.buf.push(v);
                    if v == b'\n' || self.buf.len() >= FLUSH_AT {
                        self.write_out();
                    }
                } else {
                    // Loopback: the byte goes to the receiver, never to the line.
                    self.rx = Some(v);
                }
                // Sent at once: the holding register is empty again.
                self.thri = true;
            }
            IER => {
                if v & IER_ETBEI != 0 && self.ier & IER_ETBEI == 0 {
                    self.thri = true;
                }
                self.ier = v & 0x0F;
            }
            IIR_FCR => self.fifo = v & FCR_FIFO_ENABLE != 0,
            LCR => self.lcr = v,
            MCR => self.mcr = v & 0x1F,
            SCR => self.scr = v,
            _ => {} // LSR and MSR writes have no effect here.
        }
    }

    /// Sends `text` down the line as if written to THR byte by byte outside loopback (sipi's
    /// console doorbell).
    pub(crate) fn transmit(&mut self, text: &[u8]) {
        self.drain();
        for &b in text {
            self.buf.push(b);
            if b == b'\n' || self.buf.len() >= FLUSH_AT {
                self.write_out();
            }
        }
    }

    /// Reads register `offset` (reading RBR or IIR changes state, as on the chip).
    pub(crate) fn read(&mut self, offset: u16) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            RBR_THR if dlab => self.divisor as u8,
            IER if dlab => (self.divisor >> 8) as u8,
            RBR_THR => self.rx.take().unwrap_or(0),
            IER => self.ier,
            IIR_FCR => {
                let fifo = if self.fifo { IIR_FIFO_ENABLED } else { 0 };
                if self.ier & IER_ETBEI != 0 && std::mem::take(&mut self.thri) {
                    IIR_THRI | fifo
                } else {
                    IIR_NONE | fifo
                }
            }
            LCR => self.lcr,
            MCR => self.mcr,
            LSR => LSR_THRE | LSR_TEMT | if self.rx.is_some() { LSR_DR } else { 0 },
            MSR if self.mcr & MCR_LOOP != 0 => {
                let line = |mcr_bit: u8, msr_bit: u8| {
                    if self.mcr & mcr_bit != 0 {
                        msr_bit
                    } else {
                        0
                    }
                };
                line(MCR_DTR, MSR_DSR)
                    | line(MCR_RTS, MSR_CTS)
                    | line(MCR_OUT1, MSR_RI)
                    | line(MCR_OUT2, MSR_DCD)
            }
            MSR => MSR_CONNECTED,
            SCR => self.scr,
            _ => 0xFF,
        }
    }

    /// Writes out every byte sent so far, queued ones included.
    pub(crate) fn flush(&mut self) {
        self.drain();
        self.write_out();
    }

    /// Writes out buffered bytes.
    fn write_out(&mut self) {
        if !self.buf.is_empty() {
            // Console output is best effort: a closed stderr must not stop the VM.
            let _ = self.out.write_all(&self.buf);
            let _ = self.out.flush();
            self.buf.clear();
        }
    }
}

/// COM1 on the port bus. Registers are a byte wide: a wider read floats high; every byte of a
/// wider write goes to the register.
impl PortDevice for Mutex<Serial> {
    fn ports(&self) -> &[RangeInclusive<u16>] {
        PORTS
    }

    fn read(&self, port: u16, data: &mut [u8], _log: &UnknownAccessLog) {
        let mut s = lock(self);
        s.drain();
        match data {
            [b] => *b = s.read(port - COM1_PORT),
            _ => data.fill(0xFF),
        }
    }

    fn write(
        &self,
        _vcpu: u32,
        port: u16,
        data: &[u8],
        _log: &UnknownAccessLog,
    ) -> Option<DeviceEvent> {
        // A string write (`rep outsb`, as a driver fills the 16-byte transmit FIFO) arrives as
        // one exit carrying every byte.
        let mut s = lock(self);
        s.drain();
        for byte in data {
            s.write(port - COM1_PORT, *byte);
        }
        None
    }
}

impl Drop for Serial {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn behaves_as_a_polling_driver_expects() {
        let sink = Sink::default();
        let mut s = Serial::new(Box::new(sink.clone()));
        assert_eq!(s.read(LSR) & LSR_THRE, LSR_THRE);
        s.write(SCR, 0x5A);
        assert_eq!(s.read(SCR), 0x5A, "scratch register detects the UART");
        s.write(LCR, LCR_DLAB | 3);
        s.write(RBR_THR, 12);
        s.write(IER, 0);
        assert_eq!((s.read(RBR_THR), s.read(IER)), (12, 0));
        s.write(LCR, 3);
        for b in b"hi\n" {
            s.write(RBR_THR, *b);
        }
        assert_eq!(&*sink.0.lock().unwrap(), b"hi\n");
        s.write(MCR, MCR_LOOP | 0x3);
        assert_eq!(s.read(MSR), 0x30, "loopback reflects DTR/RTS");
        // Linux's autoconfig loopback check: RTS and OUT2 must read back as CTS and DCD.
        s.write(MCR, MCR_LOOP | MCR_RTS | MCR_OUT2);
        assert_eq!(s.read(MSR) & 0xF0, 0x90);
        s.write(MCR, MCR_LOOP | MCR_DTR | MCR_OUT1);
        assert_eq!(s.read(MSR) & 0xF0, MSR_DSR | MSR_RI);
        s.write(RBR_THR, b'x');
        assert_eq!(
            s.read(LSR) & LSR_DR,
            LSR_DR,
            "looped back into the receiver"
        );
        assert_eq!(s.read(RBR_THR), b'x');
        assert_eq!(s.read(LSR) & LSR_DR, 0);
        s.flush();
        assert_eq!(
            &*sink.0.lock().unwrap(),
            b"hi\n",
            "loopback output does not reach the console"
        );
    }

    #[test]
    fn queued_writes_come_first_and_in_order() {
        let sink = Sink::default();
        let mut s = Serial::new(Box::new(sink.clone()));
        let mut ring = CoalescedRing::anonymous();
        for b in b"ab" {
            ring.push(u64::from(COM1_PORT + RBR_THR), *b);
        }
        // A write KVM could only have queued for another zone is not the UART's.
        ring.push(u64::from(COM1_PORT + SCR), b'?');
        s.attach_ring(ring);
        let com1 = Mutex::new(s);
        let log = UnknownAccessLog::new(true);
        // The guest's next access exits: the queued bytes go out before it.
        com1.write(0, COM1_PORT + RBR_THR, b"c\n", &log);
        assert_eq!(&*sink.0.lock().unwrap(), b"abc\n");
        let mut s = com1.into_inner().unwrap();
        s.ring
            .as_mut()
            .unwrap()
            .push(u64::from(COM1_PORT + RBR_THR), b'd');
        s.flush();
        assert_eq!(&*sink.0.lock().unwrap(), b"abc\nd", "flushed at the end");
        assert_eq!(s.read(SCR), 0, "the stray entry was not applied");
    }

    #[test]
    fn fifo_and_interrupt_identification() {
        let mut s = Serial::new(Box::new(std::io::sink()));
        assert_eq!(s.read(IIR_FCR), IIR_NONE, "8250 mode: no FIFO bits");
        s.write(IIR_FCR, 0xC7);
        assert_eq!(s.read(IIR_FCR) & 0xC0, 0xC0, "a 16550A with FIFOs enabled");
        s.write(IER, IER_ETBEI);
        assert_eq!(s.read(IIR_FCR) & 0x0F, IIR_THRI, "THR is empty");
        assert_eq!(
            s.read(IIR_FCR) & 0x0F,
            IIR_NONE,
            "reading IIR acknowledged it"
        );
        s.write(RBR_THR, b'a');
        assert_eq!(
            s.read(IIR_FCR) & 0x0F,
            IIR_THRI,
            "empty again after a write"
        );
        s.write(IER, 0);
        s.write(RBR_THR, b'b');
        assert_eq!(s.read(IIR_FCR) & 0x0F, IIR_NONE, "masked by IER");
        s.write(IIR_FCR, 0);
        assert_eq!(s.read(IIR_FCR), IIR_NONE);
    }
}
