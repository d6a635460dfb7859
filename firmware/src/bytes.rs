//! Bounds-checked little-endian field access on byte slices, for the formats this crate has
//! no layout of (an ELF image, a table under test). The layouts the crate defines are read and
//! written through their structures instead.
//!
//! Both sides read structures that the other side wrote (the guest reads ACPI tables built by
//! the VMM; the VMM reads reports written by an untrusted guest), so every access is checked and
//! returns `None` instead of panicking.

/// Reads `N` bytes at `off`, or `None` if they are not all inside `buf`.
fn array<const N: usize>(buf: &[u8], off: usize) -> Option<[u8; N]> {
    let end = off.checked_add(N)?;
    buf.get(off..end)?.try_into().ok()
}

/// Reads a `u8` at `off`.
pub fn u8_at(buf: &[u8], off: usize) -> Option<u8> {
    buf.get(off).copied()
}

/// Reads a little-endian `u16` at `off`.
pub fn u16_at(buf: &[u8], off: usize) -> Option<u16> {
    array(buf, off).map(u16::from_le_bytes)
}

/// Reads a little-endian `u32` at `off`.
pub fn u32_at(buf: &[u8], off: usize) -> Option<u32> {
    array(buf, off).map(u32::from_le_bytes)
}

/// Reads a little-endian `u64` at `off`.
pub fn u64_at(buf: &[u8], off: usize) -> Option<u64> {
    array(buf, off).map(u64::from_le_bytes)
}

/// Writes `src` at `off`; returns `None` (writing nothing) if it does not fit.
pub(crate) fn put(buf: &mut [u8], off: usize, src: &[u8]) -> Option<()> {
    let end = off.checked_add(src.len())?;
    buf.get_mut(off..end)?.copy_from_slice(src);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounds_checked() {
        let buf = [1u8, 2, 3, 4, 5];
        assert_eq!(u32_at(&buf, 0), Some(0x0403_0201));
        assert_eq!(u32_at(&buf, 1), Some(0x0504_0302));
        assert_eq!(u32_at(&buf, 2), None);
        assert_eq!(u64_at(&buf, usize::MAX - 2), None);
        assert_eq!(u8_at(&buf, 5), None);
    }

    #[test]
    fn writes_are_bounds_checked() {
        let mut buf = [0u8; 4];
        assert_eq!(put(&mut buf, 2, &0xBEEFu16.to_le_bytes()), Some(()));
        assert_eq!(buf, [0, 0, 0xEF, 0xBE]);
        assert_eq!(put(&mut buf, 1, &1u32.to_le_bytes()), None);
        assert_eq!(put(&mut buf, usize::MAX, &[1]), None);
        assert_eq!(buf, [0, 0, 0xEF, 0xBE], "a failed write writes nothing");
    }
}
