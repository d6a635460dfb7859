//! The live-state block: where the guest says, as soon as it knows its CPUs, where its CPU
//! records and BSP stamps live in guest memory, so that a VMM that ends the VM before the
//! report arrives (a `--timeout`) can still say what was reached.
//!
//! The guest writes the block once at [`crate::layout::LIVE_STATE_ADDR`] (until then the
//! memory there is zero: no magic, no block) and then only bumps its progress counters. The
//! CPU records it points to are the [`super::CpuRecord`]s every CPU stamps in place; the BSP
//! stamps are its [`super::BspPhase`] slots. Every field is untrusted: [`decode`] checks them.
//!
//! The block's layout is [`RawLiveState`].

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use super::{CPU_RECORD_SIZE, MAX_CPUS, REPORT_ALIGN};

/// `"LIVE"` read as a little-endian u32.
pub const LIVE_MAGIC: u32 = u32::from_le_bytes(*b"LIVE");
/// The live-state version this crate speaks.
pub const LIVE_VERSION: u16 = 1;
/// Size of the block ([`RawLiveState`]).
pub const LIVE_STATE_SIZE: usize = size_of::<RawLiveState>();
/// Offset of `ops_done`, which the guest updates in place.
pub const LIVE_OPS_OFFSET: usize = offset_of!(RawLiveState, ops_done);
/// Offset of `rounds_done`, which the guest updates in place.
pub const LIVE_ROUNDS_OFFSET: usize = offset_of!(RawLiveState, rounds_done);
// The size of live-state version 1.
const _: () = assert!(LIVE_STATE_SIZE == 48);

/// The block as guest memory holds it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct RawLiveState {
    /// [`LIVE_MAGIC`] once the guest has written the block.
    pub magic: u32,
    /// [`LIVE_VERSION`].
    pub version: u16,
    /// Reserved (0).
    pub reserved0: u16,
    /// [`LiveState::records_addr`].
    pub records_addr: u64,
    /// [`LiveState::cpu_count`].
    pub cpu_count: u32,
    /// [`CPU_RECORD_SIZE`].
    pub record_size: u32,
    /// [`LiveState::bsp_stamps_addr`].
    pub bsp_stamps_addr: u64,
    /// [`LiveState::ops_done`], updated in place.
    pub ops_done: u32,
    /// [`LiveState::rounds_done`], updated in place.
    pub rounds_done: u32,
    /// Reserved (0).
    pub reserved1: u64,
}

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
    let raw = RawLiveState {
        magic: LIVE_MAGIC,
        version: LIVE_VERSION,
        reserved0: 0,
        records_addr: s.records_addr,
        cpu_count: s.cpu_count,
        record_size: CPU_RECORD_SIZE as u32,
        bsp_stamps_addr: s.bsp_stamps_addr,
        ops_done: s.ops_done,
        rounds_done: s.rounds_done,
        reserved1: 0,
    };
    raw.write_to_prefix(buf).ok()
}

/// Reads and checks a block. The addresses are only checked for alignment: the caller checks
/// that what they point to lies in guest memory before reading it. A block shorter than
/// [`LIVE_STATE_SIZE`] reads as zeros past its end.
pub fn decode(buf: &[u8]) -> Result<LiveState, LiveError> {
    let mut raw = RawLiveState::new_zeroed();
    let n = buf.len().min(LIVE_STATE_SIZE);
    raw.as_mut_bytes()[..n].copy_from_slice(&buf[..n]);
    if raw.magic != LIVE_MAGIC {
        return Err(LiveError::Absent);
    }
    if raw.version != LIVE_VERSION {
        return Err(LiveError::BadVersion(raw.version));
    }
    let (count, size) = (raw.cpu_count, raw.record_size);
    if count > MAX_CPUS || size as usize != CPU_RECORD_SIZE {
        return Err(LiveError::BadRecords { count, size });
    }
    let s = LiveState {
        records_addr: raw.records_addr,
        cpu_count: count,
        bsp_stamps_addr: raw.bsp_stamps_addr,
        ops_done: raw.ops_done,
        rounds_done: raw.rounds_done,
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
