//! System Control Port A (port 0x92, the "fast A20 and reset" port of PS/2 and every later PC
//! chipset; Intel 82371AB PIIX4 data sheet, "Port 92h"): bit 1 gates A20, which under KVM is
//! always enabled and reads as set; bit 0 going from 0 to 1 resets the machine, which ends the
//! VM, as in QEMU.

/// Port 92 bit 0: fast reset (INIT), on a 0-to-1 transition.
pub const PORT92_RESET: u8 = 1 << 0;
/// Port 92 bit 1: A20 gate.
pub const PORT92_A20: u8 = 1 << 1;

/// What a write asks of the VMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port92Event {
    /// The guest set the fast reset bit.
    Reset,
}

/// The register.
#[derive(Debug, Default)]
pub struct SystemControlA {
    value: u8,
}

impl SystemControlA {
    /// A byte read: the last value written, with A20 on.
    pub fn read(&self) -> u8 {
        self.value | PORT92_A20
    }

    /// A byte write.
    pub fn write(&mut self, v: u8) -> Option<Port92Event> {
        let rising = v & PORT92_RESET != 0 && self.value & PORT92_RESET == 0;
        self.value = v & !PORT92_RESET;
        rising.then_some(Port92Event::Reset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a20_is_on_and_bit_0_resets() {
        let mut p = SystemControlA::default();
        assert_eq!(p.read(), PORT92_A20);
        // The usual fast-A20 sequence: read, set bit 1, clear bit 0, write.
        assert_eq!(p.write((p.read() | PORT92_A20) & !PORT92_RESET), None);
        assert_eq!(p.read(), PORT92_A20);
        assert_eq!(p.write(PORT92_A20 | PORT92_RESET), Some(Port92Event::Reset));
    }
}
