//! The POST diagnostic port (0x80). Kernels write it as an I/O delay (Linux's `outb_p`); on a
//! PC a POST card shows the value. sipi ignores writes and reads float high, as on a bus with
//! no card, without logging either: both are routine.

/// A write: ignored.
pub fn write(_data: &[u8]) {}

/// A read: all ones.
pub fn read(data: &mut [u8]) {
    data.fill(0xFF);
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_float_high() {
        super::write(&[0x42]);
        let mut b = [0u8; 1];
        super::read(&mut b);
        assert_eq!(b, [0xFF]);
    }
}
