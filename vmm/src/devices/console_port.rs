//! sipi's paravirtual console doorbell ([`CONSOLE_PORT`]): the guest writes the guest-physical
//! address of a record, `len u32` then `len` bytes of text, and the VMM copies the text to the
//! console, a whole line for one VM exit. The record is untrusted: its address must be aligned,
//! its length at most [`CONSOLE_MAX_LEN`], and all of it inside guest memory.

use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, OnceLock};

use firmware::layout::{CONSOLE_MAX_LEN, CONSOLE_PORT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::bus::{as_u32, PortDevice};
use super::serial::Serial;
use super::unknown::UnknownAccessLog;
use super::{lock, DeviceEvent};

/// The doorbell's port.
const PORTS: &[RangeInclusive<u16>] = &[CONSOLE_PORT..=CONSOLE_PORT];

/// Alignment of a console record's address (its `len` field is a u32).
const RECORD_ALIGN: u32 = 4;

/// Why a console record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsoleRecordError {
    /// The address is not 4-byte aligned.
    #[error("the console record address {0:#x} is not 4-byte aligned")]
    Misaligned(u32),
    /// The length is beyond the limit.
    #[error("the console record at {addr:#x} claims {len} bytes, more than the {CONSOLE_MAX_LEN} allowed")]
    TooLong { addr: u32, len: u32 },
    /// The record is not all inside guest memory.
    #[error("the console record at {0:#x} is not inside guest memory")]
    OutsideMemory(u32),
}

/// Reads the text of the record at `addr`.
pub fn read_record(mem: &GuestMemoryMmap, addr: u32) -> Result<Vec<u8>, ConsoleRecordError> {
    if !addr.is_multiple_of(RECORD_ALIGN) {
        return Err(ConsoleRecordError::Misaligned(addr));
    }
    let at = GuestAddress(u64::from(addr));
    let len: u32 = mem
        .read_obj(at)
        .map_err(|_| ConsoleRecordError::OutsideMemory(addr))?;
    if len > CONSOLE_MAX_LEN {
        return Err(ConsoleRecordError::TooLong { addr, len });
    }
    // Bounded by CONSOLE_MAX_LEN.
    let mut text = vec![0u8; len as usize];
    mem.read_slice(&mut text, GuestAddress(u64::from(addr) + 4))
        .map_err(|_| ConsoleRecordError::OutsideMemory(addr))?;
    Ok(text)
}

/// The doorbell on the port bus: a 32-bit write of a record's address sends the record's text
/// down COM1's line. Refused records, other sizes and a doorbell without guest memory are
/// logged once and ignored; the port is write-only.
pub(crate) struct ConsolePort {
    serial: Arc<Mutex<Serial>>,
    /// Guest memory, where the records are (unset: the doorbell is an unknown port).
    memory: OnceLock<GuestMemoryMmap>,
}

impl ConsolePort {
    /// A doorbell sending text to `serial`, with no guest memory yet.
    pub(crate) fn new(serial: Arc<Mutex<Serial>>) -> Self {
        Self {
            serial,
            memory: OnceLock::new(),
        }
    }

    /// Lets the doorbell read records from `memory`; the first memory set is kept.
    pub(crate) fn set_memory(&self, memory: GuestMemoryMmap) {
        let _ = self.memory.set(memory);
    }
}

impl PortDevice for ConsolePort {
    fn ports(&self) -> &[RangeInclusive<u16>] {
        PORTS
    }

    fn write(
        &self,
        _vcpu: u32,
        port: u16,
        data: &[u8],
        log: &UnknownAccessLog,
    ) -> Option<DeviceEvent> {
        match (as_u32(data), self.memory.get()) {
            (Some(addr), Some(mem)) => match read_record(mem, addr) {
                Ok(text) => lock(&self.serial).transmit(&text),
                Err(e) => log.refused(port, &e),
            },
            (Some(_), None) => log.port(port, true),
            (None, _) => log.bad_size(port, data.len(), "4 bytes"),
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap()
    }

    fn put(mem: &GuestMemoryMmap, addr: u32, len: u32, text: &[u8]) {
        mem.write_obj(len, GuestAddress(u64::from(addr))).unwrap();
        mem.write_slice(text, GuestAddress(u64::from(addr) + 4))
            .unwrap();
    }

    #[test]
    fn a_record_reads_as_its_text() {
        let mem = memory();
        put(&mem, 0x1000, 6, b"hello\n");
        assert_eq!(read_record(&mem, 0x1000).unwrap(), b"hello\n");
        put(&mem, 0x2000, 0, b"");
        assert_eq!(read_record(&mem, 0x2000).unwrap(), b"");
    }

    #[test]
    fn hostile_records_are_refused() {
        let mem = memory();
        assert_eq!(
            read_record(&mem, 0x1002),
            Err(ConsoleRecordError::Misaligned(0x1002))
        );
        put(&mem, 0x1000, CONSOLE_MAX_LEN + 1, b"");
        assert!(matches!(
            read_record(&mem, 0x1000),
            Err(ConsoleRecordError::TooLong { .. })
        ));
        // The length fits, the text runs past the end of memory.
        let end = (1 << 20) - 8;
        put(&mem, end, 100, b"abcd");
        assert_eq!(
            read_record(&mem, end),
            Err(ConsoleRecordError::OutsideMemory(end))
        );
        assert_eq!(
            read_record(&mem, 0xFFFF_FFFC),
            Err(ConsoleRecordError::OutsideMemory(0xFFFF_FFFC))
        );
    }
}
