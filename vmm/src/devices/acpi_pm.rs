//! The ACPI fixed-hardware PM1a registers the FADT describes (ACPI 6.5, 4.8.3 "PM1 Event
//! Grouping" and "PM1 Control Grouping"): the event block (PM1 status, write 1 to clear, and
//! PM1 enable) and the control block. Writing SLP_TYP = S5 together with SLP_EN to PM1a
//! control powers the VM off, the way an ACPI-aware kernel shuts down; SLP_TYP = S3 with SLP_EN
//! suspends it (the VMM stops every vCPU and resumes the VM on a wake event), and the status
//! register's WAK_STS then reads 1 until the guest clears it. The system is always in ACPI mode
//! (SCI_EN reads 1; the FADT has no SMI command port), and no other event sets a status bit:
//! the SCI is never raised.

use std::ops::RangeInclusive;
use std::sync::Mutex;

use firmware::layout::{
    ACPI_PM1A_CNT_PORT, ACPI_PM1A_EVT_PORT, ACPI_PM1_CNT_LEN, ACPI_PM1_EVT_LEN, ACPI_SLP_TYP_S3,
    ACPI_SLP_TYP_S5,
};

use super::bus::PortDevice;
use super::unknown::UnknownAccessLog;
use super::{lock, DeviceEvent};

/// The control block's bytes.
const PM1_CNT_LEN: u16 = ACPI_PM1_CNT_LEN as u16;
/// The event block's bytes.
const PM1_EVT_LEN: u16 = ACPI_PM1_EVT_LEN as u16;
/// The event block holds PM1_STS in its first half and PM1_EN in its second (ACPI 6.5,
/// 4.8.3.1 "PM1 Event Grouping").
const PM1_EN_OFFSET: u16 = PM1_EVT_LEN / 2;
/// The event and control blocks.
const PORTS: &[RangeInclusive<u16>] = &[
    ACPI_PM1A_CNT_PORT..=ACPI_PM1A_CNT_PORT + (PM1_CNT_LEN - 1),
    ACPI_PM1A_EVT_PORT..=ACPI_PM1A_EVT_PORT + (PM1_EVT_LEN - 1),
];

/// PM1 status bit 15: WAK_STS, the system woke from a sleep state (ACPI 6.5, Table 4.16).
pub(crate) const PM1_STS_WAK: u16 = 1 << 15;
/// PM1 control bit 0: SCI_EN, the system is in ACPI mode.
pub(crate) const PM1_CNT_SCI_EN: u16 = 1 << 0;
/// PM1 control bits 10-12: SLP_TYPx, the sleep state to enter.
pub(crate) const PM1_CNT_SLP_TYP_SHIFT: u16 = 10;
/// The SLP_TYPx field mask (after shifting).
pub(crate) const PM1_CNT_SLP_TYP_MASK: u16 = 0x7;
/// PM1 control bit 13: SLP_EN, enter the state in SLP_TYPx (write-only, reads 0).
pub(crate) const PM1_CNT_SLP_EN: u16 = 1 << 13;

/// What a write asks of the VMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PmEvent {
    /// The guest entered S5 (soft off).
    PowerOff,
    /// The guest entered S3 (suspend to RAM).
    Suspend,
}

/// The PM1a event and control registers.
#[derive(Debug, Default)]
pub(crate) struct AcpiPm {
    status: u16,
    enable: u16,
    control: u16,
}

/// Which register a port's byte belongs to, and its byte lane (0 low, 1 high).
#[derive(Clone, Copy)]
enum Reg {
    Status,
    Enable,
    Control,
}

fn locate(port: u16) -> Option<(Reg, u32)> {
    let evt = port.wrapping_sub(ACPI_PM1A_EVT_PORT);
    let cnt = port.wrapping_sub(ACPI_PM1A_CNT_PORT);
    let (reg, lane) = if evt < PM1_EN_OFFSET {
        (Reg::Status, evt)
    } else if evt < PM1_EVT_LEN {
        (Reg::Enable, evt - PM1_EN_OFFSET)
    } else if cnt < PM1_CNT_LEN {
        (Reg::Control, cnt)
    } else {
        return None;
    };
    Some((reg, u32::from(lane)))
}

impl AcpiPm {
    /// A read of `data.len()` bytes at `port`, byte by byte (a 16-bit read of a register
    /// returns both its bytes).
    pub(crate) fn read(&self, port: u16, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            let p = port.wrapping_add(i as u16);
            *b = match locate(p) {
                Some((reg, lane)) => {
                    let v = match reg {
                        Reg::Status => self.status,
                        Reg::Enable => self.enable,
                        Reg::Control => (self.control & !PM1_CNT_SLP_EN) | PM1_CNT_SCI_EN,
                    };
                    (v >> (8 * lane)) as u8
                }
                None => 0xFF,
            };
        }
    }

    /// A write of `data` at `port`. Status bits are cleared by writing 1; a control write
    /// with SLP_EN and SLP_TYP = S5 powers off, with SLP_TYP = S3 suspends (and sets WAK_STS,
    /// which the guest can first read once it has woken).
    pub(crate) fn write(&mut self, port: u16, data: &[u8]) -> Option<PmEvent> {
        let mut control_written = 0u16;
        for (i, b) in data.iter().enumerate() {
            let p = port.wrapping_add(i as u16);
            let Some((reg, lane)) = locate(p) else {
                continue;
            };
            let shift = 8 * lane;
            let bits = u16::from(*b) << shift;
            let mask = 0xFFu16 << shift;
            match reg {
                Reg::Status => self.status &= !bits,
                Reg::Enable => self.enable = (self.enable & !mask) | bits,
                Reg::Control => {
                    self.control = (self.control & !mask) | bits;
                    control_written |= mask;
                }
            }
        }
        let slp_typ = (self.control >> PM1_CNT_SLP_TYP_SHIFT) & PM1_CNT_SLP_TYP_MASK;
        let sleep = control_written & PM1_CNT_SLP_EN != 0 && self.control & PM1_CNT_SLP_EN != 0;
        self.control &= !PM1_CNT_SLP_EN;
        // Other sleep states are not offered (the DSDT names only \_S3 and \_S5): their
        // requests are ignored.
        match slp_typ {
            _ if !sleep => None,
            t if t == u16::from(ACPI_SLP_TYP_S5) => Some(PmEvent::PowerOff),
            t if t == u16::from(ACPI_SLP_TYP_S3) => {
                self.status |= PM1_STS_WAK;
                Some(PmEvent::Suspend)
            }
            _ => None,
        }
    }
}

/// The blocks on the port bus. Every size reaches them, byte by byte (see [`AcpiPm::read`]
/// and [`AcpiPm::write`]), and nothing is logged.
impl PortDevice for Mutex<AcpiPm> {
    fn ports(&self) -> &[RangeInclusive<u16>] {
        PORTS
    }

    fn read(&self, port: u16, data: &mut [u8], _log: &UnknownAccessLog) {
        lock(self).read(port, data);
    }

    fn write(
        &self,
        _vcpu: u32,
        port: u16,
        data: &[u8],
        _log: &UnknownAccessLog,
    ) -> Option<DeviceEvent> {
        lock(self).write(port, data).map(|e| match e {
            PmEvent::PowerOff => DeviceEvent::PowerOff,
            PmEvent::Suspend => DeviceEvent::Suspend,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::bus::covers;

    const S5: u16 = (ACPI_SLP_TYP_S5 as u16) << PM1_CNT_SLP_TYP_SHIFT;

    #[test]
    fn s5_with_slp_en_powers_off() {
        let mut pm = AcpiPm::default();
        let mut cnt = [0u8; 2];
        pm.read(ACPI_PM1A_CNT_PORT, &mut cnt);
        assert_eq!(
            u16::from_le_bytes(cnt),
            PM1_CNT_SCI_EN,
            "always in ACPI mode"
        );
        assert_eq!(
            pm.write(ACPI_PM1A_CNT_PORT, &S5.to_le_bytes()),
            None,
            "SLP_TYP alone does nothing"
        );
        assert_eq!(
            pm.write(ACPI_PM1A_CNT_PORT, &(S5 | PM1_CNT_SLP_EN).to_le_bytes()),
            Some(PmEvent::PowerOff)
        );
        let s4 = 2u16 << PM1_CNT_SLP_TYP_SHIFT | PM1_CNT_SLP_EN;
        assert_eq!(
            pm.write(ACPI_PM1A_CNT_PORT, &s4.to_le_bytes()),
            None,
            "SLP_TYP 2 is not offered"
        );
        pm.read(ACPI_PM1A_CNT_PORT, &mut cnt);
        assert_eq!(
            u16::from_le_bytes(cnt) & PM1_CNT_SLP_EN,
            0,
            "SLP_EN reads 0"
        );
    }

    #[test]
    fn s3_with_slp_en_suspends_and_sets_wak_sts() {
        let mut pm = AcpiPm::default();
        let s3 = (u16::from(ACPI_SLP_TYP_S3) << PM1_CNT_SLP_TYP_SHIFT) | PM1_CNT_SLP_EN;
        // kvm-unit-tests' s3 writes 0x2400.
        assert_eq!(s3, 0x2400);
        let mut sts = [0u8; 2];
        pm.read(ACPI_PM1A_EVT_PORT, &mut sts);
        assert_eq!(u16::from_le_bytes(sts), 0, "not woken yet");
        assert_eq!(
            pm.write(ACPI_PM1A_CNT_PORT, &s3.to_le_bytes()),
            Some(PmEvent::Suspend)
        );
        pm.read(ACPI_PM1A_EVT_PORT, &mut sts);
        assert_eq!(u16::from_le_bytes(sts), PM1_STS_WAK);
        pm.write(ACPI_PM1A_EVT_PORT, &PM1_STS_WAK.to_le_bytes());
        pm.read(ACPI_PM1A_EVT_PORT, &mut sts);
        assert_eq!(u16::from_le_bytes(sts), 0, "write 1 to clear");
    }

    #[test]
    fn byte_writes_of_the_high_byte_count() {
        let mut pm = AcpiPm::default();
        let high = ((S5 | PM1_CNT_SLP_EN) >> 8) as u8;
        assert_eq!(
            pm.write(ACPI_PM1A_CNT_PORT + 1, &[high]),
            Some(PmEvent::PowerOff)
        );
        // A low-byte write keeps SLP_TYP but does not re-trigger.
        assert_eq!(pm.write(ACPI_PM1A_CNT_PORT, &[1]), None);
    }

    #[test]
    fn event_registers_behave() {
        let mut pm = AcpiPm::default();
        pm.write(ACPI_PM1A_EVT_PORT + 2, &0x0120u16.to_le_bytes());
        let mut evt = [0u8; 4];
        pm.read(ACPI_PM1A_EVT_PORT, &mut evt);
        assert_eq!(evt, [0, 0, 0x20, 0x01]);
        pm.status = 0x8001;
        pm.write(ACPI_PM1A_EVT_PORT, &0x0001u16.to_le_bytes());
        pm.read(ACPI_PM1A_EVT_PORT, &mut evt[..2]);
        assert_eq!(
            u16::from_le_bytes([evt[0], evt[1]]),
            0x8000,
            "write 1 to clear"
        );
        let claims = |port| covers(PORTS, port);
        assert!(claims(0x600) && claims(0x601) && !claims(0x602) && claims(0x607));
        assert!(!claims(0x608));
    }
}
