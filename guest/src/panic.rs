//! The panic handler: the message goes to COM1 and, as a panic report, to the VMM; the VM then
//! ends with [`report::EXIT_PANIC`]. No allocator: the message is formatted into a static
//! buffer of [`PANIC_MESSAGE_MAX`] bytes and cut there.

use core::fmt::{self, Write};
use core::panic::PanicInfo;

use firmware::report::PANIC_MESSAGE_MAX;

use crate::cpu;
use crate::global::Global;
use crate::report::{self, Claim};
use crate::serial::{self, Com1};
use crate::supervisor;

/// The formatted message; written only by the CPU that won the fatal claim.
static MESSAGE: Global<[u8; PANIC_MESSAGE_MAX]> = Global::new([0; PANIC_MESSAGE_MAX]);

/// A [`fmt::Write`] into a fixed buffer that drops what does not fit, cutting at a UTF-8
/// character boundary, so the written prefix is always valid UTF-8.
struct Truncating<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Truncating<'_> {
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl Write for Truncating<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    match report::claim_fatal(cpu::initial_apic_id()) {
        Claim::First => {}
        Claim::Nested => report::exit(report::EXIT_NESTED_FATAL),
        Claim::OtherCpu => supervisor::halt(),
    }
    // SAFETY: this CPU won the fatal claim, so no other CPU or code path uses MESSAGE, and this
    // function never returns, so the reference is the only one.
    let buf = unsafe { &mut *MESSAGE.get() };
    let mut message = Truncating { buf, len: 0 };
    let _ = write!(message, "{}", info.message());
    if let Some(location) = info.location() {
        let _ = write!(message, " (at {location})");
    }
    serial::write_bytes(b"sipi-guest: panic: ");
    let _ = writeln!(Com1::new(), "{}", message.as_str());
    report::send_panic(message.as_str())
}
