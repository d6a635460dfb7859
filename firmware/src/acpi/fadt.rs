//! The Fixed ACPI Description Table (ACPI 6.5, 5.2.9, Table 5.9): the fields a guest needs to
//! suspend to S3 (where the FACS is and the PM1a control block), and the PM1 control bits it
//! writes (ACPI 6.5, 4.8.3.2.1, Table 4.13). The VMM builds the FADT with the `acpi_tables`
//! crate; these are what a guest reads back.

use crate::acpi::sdt::validate;
use crate::acpi::AcpiError;

/// The FADT signature.
pub const FADT_SIGNATURE: &[u8; 4] = b"FACP";
/// Offset of FIRMWARE_CTRL (u32): the FACS's physical address (0 when X_FIRMWARE_CTRL is used).
pub const FADT_FIRMWARE_CTRL_OFFSET: usize = 36;
/// Offset of PM1a_CNT_BLK (u32): the I/O port of the PM1a control block.
pub const FADT_PM1A_CNT_BLK_OFFSET: usize = 64;
/// Offset of X_FIRMWARE_CTRL (u64): the FACS's 64-bit physical address (ACPI 2.0+).
pub const FADT_X_FIRMWARE_CTRL_OFFSET: usize = 132;

/// PM1 control bits 10-12: SLP_TYPx, the sleep state to enter.
pub const PM1_CNT_SLP_TYP_SHIFT: u16 = 10;
/// The SLP_TYPx field mask (after shifting).
pub const PM1_CNT_SLP_TYP_MASK: u16 = 0x7;
/// PM1 control bit 13: SLP_EN, enter the state in SLP_TYPx (write-only, reads 0).
pub const PM1_CNT_SLP_EN: u16 = 1 << 13;

/// What a guest reads from the FADT to suspend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SleepControl {
    /// The FACS's address: X_FIRMWARE_CTRL when the table has it and it is nonzero, else
    /// FIRMWARE_CTRL.
    pub facs: u64,
    /// The PM1a control block's port.
    pub pm1a_cnt: u16,
}

/// The PM1 control value that enters sleep state `slp_typ`: SLP_TYPx and SLP_EN.
pub const fn sleep_command(slp_typ: u8) -> u16 {
    ((slp_typ as u16 & PM1_CNT_SLP_TYP_MASK) << PM1_CNT_SLP_TYP_SHIFT) | PM1_CNT_SLP_EN
}

fn read<const N: usize>(bytes: &[u8], offset: usize) -> Result<[u8; N], AcpiError> {
    bytes
        .get(offset..offset + N)
        .and_then(|b| b.try_into().ok())
        .ok_or(AcpiError::Truncated {
            needed: offset + N,
            available: bytes.len(),
        })
}

/// The sleep controls of the FADT in `bytes` (signature, length and checksum validated): the
/// FACS address and the PM1a control port, which must fit 16 bits. A FADT too short to hold
/// X_FIRMWARE_CTRL (ACPI 1.0) uses FIRMWARE_CTRL.
pub fn sleep_control(bytes: &[u8]) -> Result<SleepControl, AcpiError> {
    let (_, fadt) = validate(bytes, FADT_SIGNATURE)?;
    let facs32 = u32::from_le_bytes(read(fadt, FADT_FIRMWARE_CTRL_OFFSET)?);
    let x_facs = read(fadt, FADT_X_FIRMWARE_CTRL_OFFSET)
        .map(u64::from_le_bytes)
        .unwrap_or(0);
    let port = u32::from_le_bytes(read(fadt, FADT_PM1A_CNT_BLK_OFFSET)?);
    // Port 0 is no PM1a control block (ACPI 6.5, Table 5.9: the block is required, and 0 is
    // the DMA controller's).
    let pm1a_cnt = u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or(AcpiError::OutOfRange {
            what: "FADT PM1a_CNT_BLK port",
            value: u64::from(port),
        })?;
    Ok(SleepControl {
        facs: if x_facs != 0 {
            x_facs
        } else {
            u64::from(facs32)
        },
        pm1a_cnt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// A FADT of `len` bytes with these fields and a valid header and checksum.
    fn fadt(len: usize, facs32: u32, x_facs: u64, port: u32) -> Vec<u8> {
        let mut t = vec![0u8; len];
        t[..4].copy_from_slice(FADT_SIGNATURE);
        t[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        t[FADT_FIRMWARE_CTRL_OFFSET..][..4].copy_from_slice(&facs32.to_le_bytes());
        t[FADT_PM1A_CNT_BLK_OFFSET..][..4].copy_from_slice(&port.to_le_bytes());
        if len >= FADT_X_FIRMWARE_CTRL_OFFSET + 8 {
            t[FADT_X_FIRMWARE_CTRL_OFFSET..][..8].copy_from_slice(&x_facs.to_le_bytes());
        }
        t[9] = crate::acpi::checksum(&t);
        t
    }

    #[test]
    fn sleep_controls_prefer_the_64_bit_facs_and_refuse_bad_tables() {
        let c = sleep_control(&fadt(244, 0x1000, 0, 0x600)).unwrap();
        assert_eq!((c.facs, c.pm1a_cnt), (0x1000, 0x600));
        assert_eq!(
            sleep_control(&fadt(244, 0x1000, 0x2000, 0x600))
                .unwrap()
                .facs,
            0x2000
        );
        assert_eq!(
            sleep_control(&fadt(116, 0x1000, 0, 0x600)).unwrap().facs,
            0x1000
        );
        assert!(sleep_control(&fadt(116, 0x1000, 0, 0x600)[..60]).is_err());
        let mut short = fadt(116, 0x1000, 0, 0x600);
        short.truncate(60);
        short[4..8].copy_from_slice(&60u32.to_le_bytes());
        short[9] = 0;
        short[9] = crate::acpi::checksum(&short);
        assert!(sleep_control(&short).is_err(), "no PM1a_CNT_BLK");
        assert!(sleep_control(&fadt(244, 0x1000, 0, 0x1_0000)).is_err());
        assert!(
            sleep_control(&fadt(244, 0x1000, 0, 0)).is_err(),
            "no PM1a_CNT_BLK"
        );
        let mut bad = fadt(244, 0x1000, 0, 0x600);
        bad[20] ^= 1;
        assert!(sleep_control(&bad).is_err(), "a bad checksum");
    }

    #[test]
    fn the_s3_command_sets_slp_typ_and_slp_en() {
        assert_eq!(sleep_command(1), (1 << 10) | (1 << 13));
    }
}
