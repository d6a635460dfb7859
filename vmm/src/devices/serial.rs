//! An 8250/16550-compatible UART, enough for a polling driver's output (National
//! Semiconductor PC16550D data sheet, register map in Table II).

use std::io::Write;

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
/// LSR.THRE: transmitter holding register empty.
const LSR_THRE: u8 = 1 << 5;
/// LSR.TEMT: transmitter empty.
const LSR_TEMT: u8 = 1 << 6;
/// IIR: no interrupt pending.
const IIR_NONE: u8 = 1;
/// MCR.LOOP: loopback mode.
const MCR_LOOP: u8 = 1 << 4;
/// MSR in loopback reflects MCR bits 0-3 into bits 4-7.
const MSR_LOOPBACK_SHIFT: u8 = 4;
/// MSR outside loopback: CTS, DSR and DCD asserted (a connected terminal).
const MSR_CONNECTED: u8 = 0xB0;
/// Divisor for 115200 baud from the 1.8432 MHz clock.
const DEFAULT_DIVISOR: u16 = 1;
/// Most bytes buffered before a flush even without a newline.
const FLUSH_AT: usize = 4096;

/// The UART state.
pub struct Serial {
    out: Box<dyn Write + Send>,
    buf: Vec<u8>,
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    divisor: u16,
}

impl Serial {
    /// A UART whose transmitted bytes go to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out,
            buf: Vec::new(),
            ier: 0,
            lcr: 0,
            mcr: 0,
            scr: 0,
            divisor: DEFAULT_DIVISOR,
        }
    }

    /// Writes register `offset`.
    pub fn write(&mut self, offset: u16, v: u8) {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            RBR_THR if dlab => self.divisor = (self.divisor & 0xFF00) | u16::from(v),
            IER if dlab => self.divisor = (self.divisor & 0x00FF) | (u16::from(v) << 8),
            RBR_THR if self.mcr & MCR_LOOP == 0 => {
                self.buf.push(v);
                if v == b'\n' || self.buf.len() >= FLUSH_AT {
                    self.flush();
                }
            }
            RBR_THR => {} // Loopback: transmitted bytes never reach the line.
            IER => self.ier = v & 0x0F,
            LCR => self.lcr = v,
            MCR => self.mcr = v & 0x1F,
            SCR => self.scr = v,
            _ => {} // FCR, LSR and MSR writes have no effect here.
        }
    }

    /// Reads register `offset`.
    pub fn read(&self, offset: u16) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            RBR_THR if dlab => self.divisor as u8,
            IER if dlab => (self.divisor >> 8) as u8,
            RBR_THR => 0,
            IER => self.ier,
            IIR_FCR => IIR_NONE,
            LCR => self.lcr,
            MCR => self.mcr,
            LSR => LSR_THRE | LSR_TEMT,
            MSR if self.mcr & MCR_LOOP != 0 => (self.mcr & 0x0F) << MSR_LOOPBACK_SHIFT,
            MSR => MSR_CONNECTED,
            SCR => self.scr,
            _ => 0xFF,
        }
    }

    /// Writes out buffered bytes.
    pub fn flush(&mut self) {
        if !self.buf.is_empty() {
            // Console output is best effort: a closed stderr must not stop the VM.
            let _ = self.out.write_all(&self.buf);
            let _ = self.out.flush();
            self.buf.clear();
        }
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
        s.write(RBR_THR, b'x');
        s.flush();
        assert_eq!(
            &*sink.0.lock().unwrap(),
            b"hi\n",
            "loopback output does not reach the console"
        );
    }
}
