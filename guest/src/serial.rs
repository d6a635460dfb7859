//! The console: COM1, a 16550-compatible UART at [`COM1_PORT`].
//!
//! Output only, by polling: before each byte the line status register is read until the
//! transmitter holding register is empty. The UART is not programmed (baud rate, line control):
//! a virtual UART needs no timing, and every port access is a VM exit. Each byte costs two exits,
//! so nothing is printed inside a timed window.

use core::fmt;

use crate::cpu;
use firmware::layout::COM1_PORT;

/// Transmitter holding register (write), offset from the base port.
const THR: u16 = 0;
/// Line status register (read), offset from the base port.
const LSR: u16 = 5;
/// LSR bit 5: the transmitter holding register is empty and takes a byte.
const LSR_THRE: u8 = 1 << 5;
/// Polls of LSR before a byte is written anyway, so that a missing UART (reads as 0 forever)
/// cannot hang the kernel.
const THRE_POLL_LIMIT: u32 = 100_000;

/// Writes one byte to COM1.
fn write_byte(byte: u8) {
    for _ in 0..THRE_POLL_LIMIT {
        // SAFETY: reading the UART's line status register has no side effect.
        if unsafe { cpu::inb(COM1_PORT + LSR) } & LSR_THRE != 0 {
            break;
        }
        core::hint::spin_loop();
    }
    // SAFETY: writing the transmitter holding register sends one byte; nothing else is affected.
    unsafe { cpu::outb(COM1_PORT + THR, byte) };
}

/// Writes bytes to COM1, turning `\n` into `\r\n`.
pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            write_byte(b'\r');
        }
        write_byte(b);
    }
}

/// COM1 as a [`fmt::Write`] sink: `writeln!(Com1, ...)`.
pub struct Com1;

impl fmt::Write for Com1 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}
