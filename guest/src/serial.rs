//! The console: COM1, a 16550-compatible UART at [`COM1_PORT`].
//!
//! Output only, by polling, through the 16-byte transmit FIFO as a 16550 driver uses it
//! (PC16550D data sheet, "FIFO Polled Mode Operation"): the first output enables and clears the
//! FIFOs, and then each chunk of up to [`TX_FIFO_SIZE`] bytes costs one read of the line status
//! register, until the transmitter is empty, and one `rep outsb`. Every port access is a VM exit
//! (~50 us on kvm_pvm), and a string write reaches the VMM as one exit, so a 110-byte line
//! costs ~16 exits instead of ~220. The UART is not otherwise programmed (baud rate, line
//! control): a virtual UART needs no timing. Nothing is printed inside a timed window.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::cpu;
use firmware::layout::COM1_PORT;

/// Transmitter holding register / transmit FIFO (write), offset from the base port.
const THR: u16 = 0;
/// FIFO control register (write), offset from the base port.
const FCR: u16 = 2;
/// Line status register (read), offset from the base port.
const LSR: u16 = 5;
/// FCR bit 0: enable the receive and transmit FIFOs.
const FCR_FIFO_ENABLE: u8 = 1 << 0;
/// FCR bit 1: clear the receive FIFO.
const FCR_CLEAR_RX: u8 = 1 << 1;
/// FCR bit 2: clear the transmit FIFO.
const FCR_CLEAR_TX: u8 = 1 << 2;
/// LSR bit 5: the transmitter holding register (in FIFO mode: the whole transmit FIFO) is empty.
const LSR_THRE: u8 = 1 << 5;
/// Depth of the 16550's transmit FIFO.
pub const TX_FIFO_SIZE: usize = 16;
/// Polls of LSR before a chunk is written anyway, so that a missing UART (reads as 0 forever)
/// cannot hang the kernel.
const THRE_POLL_LIMIT: u32 = 100_000;

/// Set once the FIFOs have been enabled.
static FIFO_ENABLED: AtomicBool = AtomicBool::new(false);

/// Enables and clears the FIFOs, once.
fn enable_fifo() {
    if !FIFO_ENABLED.swap(true, Ordering::Relaxed) {
        // SAFETY: writing FCR only switches the UART's FIFOs on and empties them; nothing else
        // in this kernel depends on the UART's state.
        unsafe {
            cpu::outb(
                COM1_PORT + FCR,
                FCR_FIFO_ENABLE | FCR_CLEAR_RX | FCR_CLEAR_TX,
            )
        };
    }
}

/// Sends up to [`TX_FIFO_SIZE`] bytes: waits until the transmit FIFO is empty, then fills it
/// with one string write.
fn write_chunk(chunk: &[u8]) {
    debug_assert!(chunk.len() <= TX_FIFO_SIZE);
    enable_fifo();
    for _ in 0..THRE_POLL_LIMIT {
        // SAFETY: reading the UART's line status register has no side effect.
        if unsafe { cpu::inb(COM1_PORT + LSR) } & LSR_THRE != 0 {
            break;
        }
        core::hint::spin_loop();
    }
    // SAFETY: the transmit FIFO is empty (or the UART is absent), so it takes all of these at
    // most 16 bytes; writing them to THR sends them and affects nothing else.
    unsafe { cpu::outsb(COM1_PORT + THR, chunk) };
}

/// Writes bytes to COM1, turning `\n` into `\r\n`.
pub fn write_bytes(bytes: &[u8]) {
    let mut out = Com1::new();
    out.push_bytes(bytes);
}

/// COM1 as a buffered [`fmt::Write`] sink: `writeln!(Com1::new(), ...)`. Bytes are collected
/// into FIFO-sized chunks; the last partial chunk goes out when the value is dropped.
pub struct Com1 {
    chunk: [u8; TX_FIFO_SIZE],
    len: usize,
}

impl Com1 {
    /// An empty writer.
    pub fn new() -> Self {
        Self {
            chunk: [0; TX_FIFO_SIZE],
            len: 0,
        }
    }

    fn push(&mut self, byte: u8) {
        if self.len == TX_FIFO_SIZE {
            self.flush();
        }
        self.chunk[self.len] = byte;
        self.len += 1;
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.push(b'\r');
            }
            self.push(b);
        }
    }

    /// Sends the buffered bytes.
    fn flush(&mut self) {
        if self.len > 0 {
            write_chunk(&self.chunk[..self.len]);
            self.len = 0;
        }
    }
}

impl Default for Com1 {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Com1 {
    fn drop(&mut self) {
        self.flush();
    }
}

impl fmt::Write for Com1 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_bytes(s.as_bytes());
        Ok(())
    }
}
