//! The console: COM1, a 16550-compatible UART at [`COM1_PORT`].
//!
//! Output only, by polling, through the 16-byte transmit FIFO as a 16550 driver uses it (PC16550D
//! data sheet, "FIFO Polled Mode Operation"): the first output enables and clears the FIFOs, and
//! then each chunk of up to [`TX_FIFO_SIZE`] bytes costs one read of the line status register,
//! until the transmitter is empty, and one `rep outsb`. Every port access is a VM exit (costly on
//! kvm_pvm: guest/README.md, "Running on kvm_pvm"); where KVM hands a string write to the VMM as
//! one exit, a 110-byte line costs ~16 exits instead of ~220 (kvm_pvm emulates it one byte per
//! exit, see below). The UART is not otherwise programmed (baud rate, line control): a virtual
//! UART needs no timing. Nothing is printed inside a timed window.
//!
//! With `sipi.console=port` (sipi's VMM asks for it) each line goes out through sipi's console
//! doorbell instead ([`CONSOLE_PORT`]): one VM exit for the line where the UART takes one per
//! byte on kvm_pvm (KVM emulates `rep outsb` one element per exit there).

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::cpu;
use crate::global::Global;
use firmware::layout::{COM1_PORT, CONSOLE_MAX_LEN, CONSOLE_PORT};

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
const TX_FIFO_SIZE: usize = 16;
/// Polls of LSR before a chunk is written anyway, so that a missing UART (reads as 0 forever)
/// cannot hang the kernel.
const THRE_POLL_LIMIT: u32 = 100_000;

/// Set once the FIFOs have been enabled.
static FIFO_ENABLED: AtomicBool = AtomicBool::new(false);
/// Set when the console text goes through sipi's console doorbell.
static USE_PORT: AtomicBool = AtomicBool::new(false);
/// Held by the CPU filling [`RECORD`].
static RECORD_BUSY: AtomicBool = AtomicBool::new(false);
/// The console record handed to the doorbell: `len u32`, then the text.
#[repr(C, align(4))]
struct Record {
    len: u32,
    text: [u8; LINE_MAX],
}
static RECORD: Global<Record> = Global::new(Record {
    len: 0,
    text: [0; LINE_MAX],
});
/// Bytes a writer collects before it sends them.
const LINE_MAX: usize = 256;
const _: () = assert!(LINE_MAX <= CONSOLE_MAX_LEN as usize);

/// Sends the console text through sipi's console doorbell from now on (`sipi.console=port`).
pub(crate) fn use_port() {
    USE_PORT.store(true, Ordering::Relaxed);
}

/// Sends `text` through the console doorbell; false if another CPU holds the record (the
/// caller falls back to the UART).
fn ring(text: &[u8]) -> bool {
    if RECORD_BUSY.swap(true, Ordering::Acquire) {
        return false;
    }
    let record = RECORD.get();
    let n = text.len().min(LINE_MAX);
    // SAFETY: this CPU holds RECORD_BUSY, so it alone writes the record until it releases it
    // after the doorbell, by which time the VMM has copied the text.
    unsafe {
        ((&raw mut (*record).text) as *mut u8).copy_from_nonoverlapping(text.as_ptr(), n);
        (&raw mut (*record).len).write_volatile(n as u32);
    }
    // The kernel is identity mapped and loaded below 4 GiB: the address is the record's
    // guest-physical address and fits the port's 32 bits.
    let addr = record as u64;
    debug_assert!(addr <= u64::from(u32::MAX));
    // SAFETY: the doorbell only makes the VMM read the record; no other effect.
    unsafe { cpu::outl(CONSOLE_PORT, addr as u32) };
    RECORD_BUSY.store(false, Ordering::Release);
    true
}

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
pub(crate) fn write_bytes(bytes: &[u8]) {
    let mut out = Com1::new();
    out.push_bytes(bytes);
}

/// The console as a buffered [`fmt::Write`] sink: `writeln!(Com1::new(), ...)`. Bytes are
/// collected (up to [`LINE_MAX`]) and go out when the buffer is full and when the value is
/// dropped: through the UART in FIFO-sized chunks, or through the console doorbell.
pub(crate) struct Com1 {
    line: [u8; LINE_MAX],
    len: usize,
}

impl Com1 {
    /// An empty writer.
    pub(crate) fn new() -> Self {
        Self {
            line: [0; LINE_MAX],
            len: 0,
        }
    }

    fn push(&mut self, byte: u8) {
        if self.len == LINE_MAX {
            self.flush();
        }
        self.line[self.len] = byte;
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
        let text = &self.line[..self.len];
        self.len = 0;
        if text.is_empty() || (USE_PORT.load(Ordering::Relaxed) && ring(text)) {
            return;
        }
        for chunk in text.chunks(TX_FIFO_SIZE) {
            write_chunk(chunk);
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
