//! An 8042 keyboard controller that is idle: no key is ever pressed and no mouse is attached,
//! but the controller answers its commands as a driver expects, and pulsing its reset line
//! (command 0xFE, what Linux's `reboot=k` and Firecracker guests do) ends the VM. Interrupts
//! (IRQ1/IRQ12) are never raised: there is nothing to report.
//!
//! Register and command names follow the IBM PC/AT Technical Reference and Linux's
//! drivers/input/serio/i8042.h.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::sync::Mutex;

#[cfg(test)]
use firmware::layout::I8042_CMD_RESET;
use firmware::layout::{I8042_COMMAND_PORT, I8042_DATA_PORT};

use super::bus::PortDevice;
use super::unknown::UnknownAccessLog;
use super::{lock, DeviceEvent, ResetSource};

/// The data and command (status) ports.
const PORTS: &[RangeInclusive<u16>] = &[
    I8042_DATA_PORT..=I8042_DATA_PORT,
    I8042_COMMAND_PORT..=I8042_COMMAND_PORT,
];

/// Status register: output buffer full (a byte waits at the data port).
pub(crate) const I8042_STR_OBF: u8 = 1 << 0;
/// Status register: system flag (set once the controller passed its self-test).
pub(crate) const I8042_STR_SYSFLAG: u8 = 1 << 2;
/// Status register: the last write was a command (port 0x64), not data.
pub(crate) const I8042_STR_CMDDAT: u8 = 1 << 3;
/// Status register: keyboard not inhibited.
pub(crate) const I8042_STR_KEYLOCK: u8 = 1 << 4;

/// Controller command: read the command byte (controller configuration byte).
pub(crate) const I8042_CMD_CTL_RCTR: u8 = 0x20;
/// Controller command: write the command byte (next data byte).
pub(crate) const I8042_CMD_CTL_WCTR: u8 = 0x60;
/// Controller command: disable the aux (mouse) port.
pub(crate) const I8042_CMD_AUX_DISABLE: u8 = 0xA7;
/// Controller command: enable the aux port.
pub(crate) const I8042_CMD_AUX_ENABLE: u8 = 0xA8;
/// Controller command: test the aux port (0 = passed).
pub(crate) const I8042_CMD_AUX_TEST: u8 = 0xA9;
/// Controller command: self-test; answers 0x55.
pub(crate) const I8042_CMD_CTL_TEST: u8 = 0xAA;
/// Controller command: test the keyboard port (0 = passed).
pub(crate) const I8042_CMD_KBD_TEST: u8 = 0xAB;
/// Controller command: disable the keyboard port.
pub(crate) const I8042_CMD_KBD_DISABLE: u8 = 0xAD;
/// Controller command: enable the keyboard port.
pub(crate) const I8042_CMD_KBD_ENABLE: u8 = 0xAE;
/// Controller command: read the output port.
pub(crate) const I8042_CMD_READ_OUTPORT: u8 = 0xD0;
/// Controller command: write the output port (next data byte; bit 0 low resets the CPU).
pub(crate) const I8042_CMD_WRITE_OUTPORT: u8 = 0xD1;
/// Controller command: write the next data byte to the output buffer, as if from the keyboard.
pub(crate) const I8042_CMD_KBD_LOOP: u8 = 0xD2;
/// Controller command: write the next data byte to the output buffer, as if from the mouse.
pub(crate) const I8042_CMD_AUX_LOOP: u8 = 0xD3;
/// Controller command: send the next data byte to the mouse (there is none).
pub(crate) const I8042_CMD_AUX_SEND: u8 = 0xD4;
/// Controller commands 0xF0-0xFF pulse output port lines low for 6 us: a clear bit 0 in the
/// command pulses the reset line. 0xFE pulses only the reset line.
pub(crate) const I8042_CMD_PULSE_FIRST: u8 = 0xF0;

/// Controller self-test passed.
const I8042_RET_CTL_TEST: u8 = 0x55;
/// Port test passed.
const I8042_RET_PORT_OK: u8 = 0x00;
/// Keyboard: command acknowledged.
const KBD_ACK: u8 = 0xFA;
/// Keyboard: basic assurance test passed (after a reset).
const KBD_BAT_OK: u8 = 0xAA;
/// Keyboard command: reset and self-test.
const KBD_CMD_RESET: u8 = 0xFF;
/// Keyboard command: identify; a PS/2 keyboard answers 0xAB 0x83.
const KBD_CMD_GETID: u8 = 0xF2;
/// The ID of an MF2 keyboard.
const KBD_ID: [u8; 2] = [0xAB, 0x83];
/// Command byte after POST: keyboard interrupt on, system flag, translation on.
const CTR_DEFAULT: u8 = 0x45;
/// Command byte: system flag.
const CTR_SYSFLAG: u8 = 1 << 2;
/// Command byte: keyboard port disabled.
const CTR_KBDDIS: u8 = 1 << 4;
/// Command byte: aux port disabled.
const CTR_AUXDIS: u8 = 1 << 5;
/// Output port after POST: reset line high (bit 0), A20 on (bit 1).
const OUTPORT_DEFAULT: u8 = 0x03;
/// Output port bit 0: the CPU reset line, active low.
const OUTPORT_RESET: u8 = 1 << 0;
/// Most bytes queued in the output buffer: a guest cannot grow it without bound.
const OUTPUT_MAX: usize = 16;

/// What a write asks of the VMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum I8042Event {
    /// The guest pulsed the CPU reset line.
    Reset,
}

/// The controller's state.
#[derive(Debug)]
pub(crate) struct I8042 {
    ctr: u8,
    outport: u8,
    /// A command waiting for its data byte.
    pending: Option<u8>,
    output: VecDeque<u8>,
    /// What the data port last returned (read again when the buffer is empty).
    last: u8,
    last_was_command: bool,
}

impl Default for I8042 {
    fn default() -> Self {
        Self {
            ctr: CTR_DEFAULT,
            outport: OUTPORT_DEFAULT,
            pending: None,
            output: VecDeque::with_capacity(OUTPUT_MAX),
            last: 0,
            last_was_command: false,
        }
    }
}

impl I8042 {
    /// A read of one byte from `port`.
    pub(crate) fn read(&mut self, port: u16) -> u8 {
        match port {
            I8042_COMMAND_PORT => {
                let mut status = I8042_STR_KEYLOCK;
                if self.ctr & CTR_SYSFLAG != 0 {
                    status |= I8042_STR_SYSFLAG;
                }
                if self.last_was_command {
                    status |= I8042_STR_CMDDAT;
                }
                if !self.output.is_empty() {
                    status |= I8042_STR_OBF;
                }
                status
            }
            _ => {
                if let Some(b) = self.output.pop_front() {
                    self.last = b;
                }
                self.last
            }
        }
    }

    /// A write of one byte to `port`.
    pub(crate) fn write(&mut self, port: u16, v: u8) -> Option<I8042Event> {
        if port == I8042_COMMAND_PORT {
            self.last_was_command = true;
            self.pending = None;
            return self.command(v);
        }
        self.last_was_command = false;
        match self.pending.take() {
            Some(I8042_CMD_CTL_WCTR) => self.ctr = v,
            Some(I8042_CMD_WRITE_OUTPORT) => {
                self.outport = v;
                if v & OUTPORT_RESET == 0 {
                    return Some(I8042Event::Reset);
                }
            }
            Some(I8042_CMD_KBD_LOOP | I8042_CMD_AUX_LOOP) => self.push(&[v]),
            // No mouse: the byte goes nowhere and nothing answers.
            Some(_) => {}
            None => self.keyboard_command(v),
        }
        None
    }

    fn command(&mut self, cmd: u8) -> Option<I8042Event> {
        match cmd {
            I8042_CMD_CTL_RCTR => self.push(&[self.ctr]),
            I8042_CMD_CTL_WCTR
            | I8042_CMD_WRITE_OUTPORT
            | I8042_CMD_KBD_LOOP
            | I8042_CMD_AUX_LOOP
            | I8042_CMD_AUX_SEND => self.pending = Some(cmd),
            I8042_CMD_AUX_DISABLE => self.ctr |= CTR_AUXDIS,
            I8042_CMD_AUX_ENABLE => self.ctr &= !CTR_AUXDIS,
            I8042_CMD_AUX_TEST | I8042_CMD_KBD_TEST => self.push(&[I8042_RET_PORT_OK]),
            I8042_CMD_CTL_TEST => self.push(&[I8042_RET_CTL_TEST]),
            I8042_CMD_KBD_DISABLE => self.ctr |= CTR_KBDDIS,
            I8042_CMD_KBD_ENABLE => self.ctr &= !CTR_KBDDIS,
            I8042_CMD_READ_OUTPORT => self.push(&[self.outport]),
            c if c >= I8042_CMD_PULSE_FIRST && c & OUTPORT_RESET == 0 => {
                return Some(I8042Event::Reset)
            }
            _ => {}
        }
        None
    }

    /// A byte for the keyboard itself: acknowledged, with the answers of reset and identify.
    fn keyboard_command(&mut self, cmd: u8) {
        match cmd {
            KBD_CMD_RESET => self.push(&[KBD_ACK, KBD_BAT_OK]),
            KBD_CMD_GETID => self.push(&[KBD_ACK, KBD_ID[0], KBD_ID[1]]),
            _ => self.push(&[KBD_ACK]),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        for b in bytes {
            if self.output.len() < OUTPUT_MAX {
                self.output.push_back(*b);
            }
        }
    }
}

/// The controller on the port bus: its registers are a byte wide, and other sizes are logged
/// once and ignored (reads float high).
impl PortDevice for Mutex<I8042> {
    fn ports(&self) -> &[RangeInclusive<u16>] {
        PORTS
    }

    fn read(&self, port: u16, data: &mut [u8], log: &UnknownAccessLog) {
        match data {
            [b] => *b = lock(self).read(port),
            _ => {
                log.bad_size(port, data.len(), "1 byte");
                data.fill(0xFF);
            }
        }
    }

    fn write(
        &self,
        _vcpu: u32,
        port: u16,
        data: &[u8],
        log: &UnknownAccessLog,
    ) -> Option<DeviceEvent> {
        match data {
            &[v] => lock(self)
                .write(port, v)
                .map(|I8042Event::Reset| DeviceEvent::Reset(ResetSource::I8042)),
            _ => {
                log.bad_size(port, data.len(), "1 byte");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::bus::covers;

    #[test]
    fn idle_controller_answers_a_probe() {
        let mut k = I8042::default();
        let status = k.read(I8042_COMMAND_PORT);
        assert_eq!(status & I8042_STR_OBF, 0, "nothing to read");
        assert_eq!(status & 0x02, 0, "input buffer never full");
        assert_ne!(status & I8042_STR_SYSFLAG, 0);
        assert_eq!(k.write(I8042_COMMAND_PORT, I8042_CMD_CTL_TEST), None);
        assert_ne!(k.read(I8042_COMMAND_PORT) & I8042_STR_OBF, 0);
        assert_eq!(k.read(I8042_DATA_PORT), 0x55);
        assert_eq!(k.read(I8042_COMMAND_PORT) & I8042_STR_OBF, 0);
        k.write(I8042_COMMAND_PORT, I8042_CMD_CTL_RCTR);
        assert_eq!(k.read(I8042_DATA_PORT), CTR_DEFAULT);
        k.write(I8042_COMMAND_PORT, I8042_CMD_CTL_WCTR);
        k.write(I8042_DATA_PORT, 0x61);
        k.write(I8042_COMMAND_PORT, I8042_CMD_CTL_RCTR);
        assert_eq!(k.read(I8042_DATA_PORT), 0x61);
        k.write(I8042_COMMAND_PORT, I8042_CMD_KBD_TEST);
        assert_eq!(k.read(I8042_DATA_PORT), 0);
        k.write(I8042_DATA_PORT, KBD_CMD_GETID);
        let id = [(); 3].map(|_| k.read(I8042_DATA_PORT));
        assert_eq!(id, [KBD_ACK, 0xAB, 0x83]);
        assert_eq!(k.read(I8042_DATA_PORT), 0x83, "an empty buffer repeats");
    }

    #[test]
    fn reset_pulses_and_output_port_writes_reset() {
        let mut k = I8042::default();
        assert_eq!(
            k.write(I8042_COMMAND_PORT, I8042_CMD_RESET),
            Some(I8042Event::Reset)
        );
        assert_eq!(k.write(I8042_COMMAND_PORT, 0xF0), Some(I8042Event::Reset));
        assert_eq!(k.write(I8042_COMMAND_PORT, 0xFF), None, "pulses no line");
        k.write(I8042_COMMAND_PORT, I8042_CMD_WRITE_OUTPORT);
        assert_eq!(k.write(I8042_DATA_PORT, 0xDF), None, "A20 on, no reset");
        k.write(I8042_COMMAND_PORT, I8042_CMD_READ_OUTPORT);
        assert_eq!(k.read(I8042_DATA_PORT), 0xDF);
        k.write(I8042_COMMAND_PORT, I8042_CMD_WRITE_OUTPORT);
        assert_eq!(k.write(I8042_DATA_PORT, 0xDE), Some(I8042Event::Reset));
        assert_eq!(
            k.write(I8042_DATA_PORT, 0xFE),
            None,
            "0xFE as data is a key command"
        );
    }

    #[test]
    fn the_output_buffer_is_bounded() {
        let mut k = I8042::default();
        for _ in 0..1000 {
            k.write(I8042_DATA_PORT, KBD_CMD_RESET);
        }
        assert_eq!(k.output.len(), OUTPUT_MAX);
        let claims = |port| covers(PORTS, port);
        assert!(claims(0x60) && claims(0x64) && !claims(0x61));
    }
}
