//! The live-state block: where the guest says, as soon as it knows its CPUs, where its CPU
//! records and BSP stamps live in guest memory, so that a VMM that ends the VM before the
//! report arrives (a `--timeout`) can still say what was reached.
//!
//! The guest writes the block once at [`crate::layout::LIVE_STATE_ADDR`] (until then the
//! memory there is zero: no magic, no block) and then only bumps its progress counters. The
//! CPU records it points to are the [`super::CpuRecord`]s every CPU stamps in place; the BSP
//! stamps are its [`super::BspPhase`] slots. Every field is untrusted: [`decode`] checks them.
//!
//! ```text
//! 0 magic "LIVE" u32 | 4 version u16 | 6 reserved u16 | 8 records_addr u64
//! 16 cpu_count u32 | 20 record_size u32 | 24 bsp_stamps_addr u64
//! 32 ops_done u32 | 36 rounds_done u32 | 40 reserved u64
//! ```

use super::{CPU_RECORD_SIZE, MAX_CPUS, REPORT_ALIGN};
use crate::bytes::{put_u16, put_u32, put_u64, u16_at, u32_at, u64_at};

/// `"LIVE"` read as a little-endian u32.
pub const LIVE_MAGIC: u32 = u32::from_le_bytes(*b"LIVE");
/// The live-state version this crate speaks.
pub const LIVE_VERSION: u16 = 1;
/// Size of the block.
pub const LIVE_STATE_SIZE: usize = 48;
/// Offset of `ops_done`, which the guest updates in place.
pub const LIVE_OPS_OFFSET: usize = 32;
/// Offset of `rounds_done`, which the guest updates in place.
pub const LIVE_ROUNDS_OFFSET: usize = 36;

/// What the block says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveState {
    /// Guest-physical address of `cpu_count` CPU records.
    pub records_addr: u64,
    /// CPU records at `records_addr`.
    pub cpu_count: u32,
    /// Guest-physical address of the BSP's stamps (`u64` per [`super::BspPhase`] slot).
    pub bsp_stamps_addr: u64,
    /// Scenario operations completed so far.
    pub ops_done: u32,
    /// Scenario rounds completed so far.
    pub rounds_done: u32,
}

/// Why a live-state block was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    /// No magic: the guest never wrote the block (or is not sipi's guest).
    #[error("the guest published no live state")]
    Absent,
    /// A version this crate does not speak.
    #[error("the live state's version {0} is not supported (expected {LIVE_VERSION})")]
    BadVersion(u16),
    /// More CPUs than any report may list, or records of the wrong size.
    #[error("the live state lists {count} CPU records of {size} bytes, which is not allowed")]
    BadRecords { count: u32, size: u32 },
    /// An address that is not aligned as the structures need.
    #[error("the live state's address {0:#x} is misaligned")]
    Misaligned(u64),
}

/// Writes `s` into `buf` (at least [`LIVE_STATE_SIZE`] bytes).
pub fn encode(buf: &mut [u8], s: &LiveState) -> Option<()> {
    put_u32(buf, 0, LIVE_MAGIC)?;
    put_u16(buf, 4, LIVE_VERSION)?;
    put_u16(buf, 6, 0)?;
    put_u64(buf, 8, s.records_addr)?;
    put_u32(buf, 16, s.cpu_count)?;
    put_u32(buf, 20, CPU_RECORD_SIZE as u32)?;
    put_u64(buf, 24, s.bsp_stamps_addr)?;
    put_u32(buf, LIVE_OPS_OFFSET, s.ops_done)?;
    put_u32(buf, LIVE_ROUNDS_OFFSET, s.rounds_done)?;
    put_u64(buf, 40, 0)
}

/// Reads and checks a block. The addresses are only checked for alignment: the caller checks
/// that what they point to lies in guest memory before reading it.
pub fn decode(buf: &[u8]) -> Result<LiveState, LiveError> {
    if u32_at(buf, 0) != Some(LIVE_MAGIC) {
        return Err(LiveError::Absent);
    }
    let version = u16_at(buf, 4).unwrap_or(0);
    if version != LIVE_VERSION {
        return Err(LiveError::BadVersion(version));
    }
    let field = |off| u32_at(buf, off).unwrap_or(0);
    let (count, size) = (field(16), field(20));
    if count > MAX_CPUS || size as usize != CPU_RECORD_SIZE {
        return Err(LiveError::BadRecords { count, size });
    }
    let s = LiveState {
        records_addr: u64_at(buf, 8).unwrap_or(0),
        cpu_count: count,
        bsp_stamps_addr: u64_at(buf, 24).unwrap_or(0),
        ops_done: field(LIVE_OPS_OFFSET),
        rounds_done: field(LIVE_ROUNDS_OFFSET),
    };
    for addr in [s.records_addr, s.bsp_stamps_addr] {
        if addr % u64::from(REPORT_ALIGN) != 0 {
            return Err(LiveError::Misaligned(addr));
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_state_round_trips_and_is_checked() {
        let s = LiveState {
            records_addr: 0x20_0000,
            cpu_count: 64,
            bsp_stamps_addr: 0x30_0008,
            ops_done: 7,
            rounds_done: 2,
        };
        let mut buf = [0u8; LIVE_STATE_SIZE];
        assert_eq!(decode(&buf), Err(LiveError::Absent));
        encode(&mut buf, &s).unwrap();
        assert_eq!(decode(&buf), Ok(s));
        assert!(encode(&mut [0u8; LIVE_STATE_SIZE - 1], &s).is_none());
        let mut bad = buf;
        bad[4] = 9;
        assert_eq!(decode(&bad), Err(LiveError::BadVersion(9)));
        let mut bad = buf;
        bad[16..20].copy_from_slice(&(MAX_CPUS + 1).to_le_bytes());
        assert!(matches!(decode(&bad), Err(LiveError::BadRecords { .. })));
        let mut bad = buf;
        bad[20] = 80;
        assert!(matches!(decode(&bad), Err(LiveError::BadRecords { .. })));
        let mut bad = buf;
        bad[8] = 4;
        assert_eq!(decode(&bad), Err(LiveError::Misaligned(0x20_0004)));
        // A truncated block reads as zeros past its end, and is refused.
        assert!(matches!(
            decode(&buf[..18]),
            Err(LiveError::BadRecords { size: 0, .. })
        ));
    }
}
