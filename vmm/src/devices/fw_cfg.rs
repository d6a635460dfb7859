//! QEMU's firmware configuration device, traditional (I/O port) interface only, as
//! docs/specs/fw_cfg.rst in QEMU's source describes it for x86: a 16-bit selector register at
//! [`FW_CFG_PORT_SEL`] picks an item and resets the data offset; each 8-bit read of the data
//! register at [`FW_CFG_PORT_DATA`] returns the item's next byte. Reading past an item's end,
//! or any item sipi does not implement, returns zeros, as in QEMU. Writes to the data register
//! are ignored (QEMU 2.4+). The ID has no DMA bit, so a guest never looks for the DMA port.
//!
//! Items: the signature, the ID, the RAM size, the CPU count and maximum, and an empty file
//! directory.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Mutex;

use firmware::layout::{FW_CFG_PORT_DATA, FW_CFG_PORT_SEL};

use super::bus::PortDevice;
use super::unknown::UnknownAccessLog;
use super::{lock, DeviceEvent};

/// The selector and data registers.
const PORTS: &[RangeInclusive<u16>] = &[
    FW_CFG_PORT_SEL..=FW_CFG_PORT_SEL,
    FW_CFG_PORT_DATA..=FW_CFG_PORT_DATA,
];

/// Selector of the signature item: the bytes "QEMU".
pub(crate) const FW_CFG_SIGNATURE: u16 = 0x00;
/// Selector of the ID item: a little-endian u32 of feature bits.
pub(crate) const FW_CFG_ID: u16 = 0x01;
/// Selector of the RAM size item: a little-endian u64 of bytes.
pub(crate) const FW_CFG_RAM_SIZE: u16 = 0x03;
/// Selector of the boot CPU count: a little-endian u16.
pub(crate) const FW_CFG_NB_CPUS: u16 = 0x05;
/// Selector of the maximum CPU count (with hotplug): a little-endian u16.
pub(crate) const FW_CFG_MAX_CPUS: u16 = 0x0F;
/// Selector of the file directory: a big-endian u32 count, then the files.
pub(crate) const FW_CFG_FILE_DIR: u16 = 0x19;
/// Selector bit 14: write access through the data register (ignored here).
pub(crate) const FW_CFG_WRITE_CHANNEL: u16 = 0x4000;
/// The signature.
pub(crate) const FW_CFG_SIGNATURE_BYTES: [u8; 4] = *b"QEMU";
/// ID bit 0: the traditional interface is available.
pub(crate) const FW_CFG_VERSION: u32 = 1 << 0;

/// The device.
#[derive(Debug)]
pub(crate) struct FwCfg {
    items: BTreeMap<u16, Vec<u8>>,
    selector: u16,
    offset: usize,
}

impl FwCfg {
    /// The items for a VM with `vcpus` vCPUs (all present at boot, none hotpluggable) and
    /// `ram` bytes of RAM.
    pub(crate) fn new(vcpus: u32, ram: u64) -> Self {
        let cpus = u16::try_from(vcpus).unwrap_or(u16::MAX).to_le_bytes();
        let mut items = BTreeMap::new();
        items.insert(FW_CFG_SIGNATURE, FW_CFG_SIGNATURE_BYTES.to_vec());
        items.insert(FW_CFG_ID, FW_CFG_VERSION.to_le_bytes().to_vec());
        items.insert(FW_CFG_RAM_SIZE, ram.to_le_bytes().to_vec());
        items.insert(FW_CFG_NB_CPUS, cpus.to_vec());
        items.insert(FW_CFG_MAX_CPUS, cpus.to_vec());
        items.insert(FW_CFG_FILE_DIR, 0u32.to_be_bytes().to_vec());
        Self {
            items,
            selector: FW_CFG_SIGNATURE,
            offset: 0,
        }
    }

    /// A write to `port`; `false` if the access is not one the device takes (a 16-bit write
    /// of the selector, or a write of the data register, which is ignored).
    pub(crate) fn write(&mut self, port: u16, data: &[u8]) -> bool {
        match (port, data) {
            (FW_CFG_PORT_SEL, &[lo, hi]) => {
                self.selector = u16::from_le_bytes([lo, hi]);
                self.offset = 0;
                true
            }
            (FW_CFG_PORT_DATA, _) => true,
            _ => false,
        }
    }

    /// A read of `port` into `data`; `false` (with `data` all ones) for an access the device
    /// does not take. Every byte of a data-register read (a string read delivers several) is
    /// the item's next byte; a 16-bit read of the selector port returns one data byte, as
    /// QEMU's combined port does.
    pub(crate) fn read(&mut self, port: u16, data: &mut [u8]) -> bool {
        match (port, data.len()) {
            (FW_CFG_PORT_DATA, _) => {
                for b in data.iter_mut() {
                    *b = self.next_byte();
                }
                true
            }
            (FW_CFG_PORT_SEL, 2) => {
                data[0] = self.next_byte();
                data[1] = 0;
                true
            }
            _ => {
                data.fill(0xFF);
                false
            }
        }
    }

    /// The selected item's byte at the data offset (zero past its end or for an unknown
    /// item), advancing the offset.
    fn next_byte(&mut self) -> u8 {
        let key = self.selector & !FW_CFG_WRITE_CHANNEL;
        let byte = self
            .items
            .get(&key)
            .and_then(|item| item.get(self.offset))
            .copied()
            .unwrap_or(0);
        self.offset = self.offset.saturating_add(1);
        byte
    }
}

/// fw_cfg on the port bus: accesses the device does not take (see [`FwCfg::write`] and
/// [`FwCfg::read`]) are logged once.
impl PortDevice for Mutex<FwCfg> {
    fn ports(&self) -> &[RangeInclusive<u16>] {
        PORTS
    }

    fn read(&self, port: u16, data: &mut [u8], log: &UnknownAccessLog) {
        if !lock(self).read(port, data) {
            log.bad_size(port, data.len(), "8-bit reads of the data port");
        }
    }

    fn write(
        &self,
        _vcpu: u32,
        port: u16,
        data: &[u8],
        log: &UnknownAccessLog,
    ) -> Option<DeviceEvent> {
        if !lock(self).write(port, data) {
            log.bad_size(port, data.len(), "a 16-bit write of the selector");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Selector bit 15: an architecture-specific item (none is implemented).
    const FW_CFG_ARCH_LOCAL: u16 = 0x8000;
    /// ID bit 1: the DMA interface is available (never set by sipi).
    const FW_CFG_VERSION_DMA: u32 = 1 << 1;

    fn read_item(d: &mut FwCfg, key: u16, len: usize) -> Vec<u8> {
        assert!(d.write(FW_CFG_PORT_SEL, &key.to_le_bytes()));
        (0..len)
            .map(|_| {
                let mut b = [0u8];
                assert!(d.read(FW_CFG_PORT_DATA, &mut b));
                b[0]
            })
            .collect()
    }

    #[test]
    fn answers_the_documented_items() {
        let mut d = FwCfg::new(64, 256 << 20);
        assert_eq!(read_item(&mut d, FW_CFG_SIGNATURE, 4), b"QEMU");
        let id = read_item(&mut d, FW_CFG_ID, 4);
        let id = u32::from_le_bytes(id.try_into().unwrap());
        assert_eq!(id & FW_CFG_VERSION, FW_CFG_VERSION);
        assert_eq!(id & FW_CFG_VERSION_DMA, 0, "no DMA interface");
        assert_eq!(read_item(&mut d, FW_CFG_NB_CPUS, 2), [64, 0]);
        assert_eq!(read_item(&mut d, FW_CFG_MAX_CPUS, 2), [64, 0]);
        assert_eq!(
            read_item(&mut d, FW_CFG_RAM_SIZE, 8),
            (256u64 << 20).to_le_bytes()
        );
        assert_eq!(read_item(&mut d, FW_CFG_FILE_DIR, 4), [0; 4], "no files");
    }

    #[test]
    fn unknown_items_and_reads_past_the_end_are_zero() {
        let mut d = FwCfg::new(4, 1 << 30);
        assert_eq!(read_item(&mut d, FW_CFG_NB_CPUS, 4), [4, 0, 0, 0]);
        assert_eq!(
            read_item(&mut d, 0x0002, 16),
            [0; 16],
            "UUID is not implemented"
        );
        assert_eq!(
            read_item(&mut d, FW_CFG_ARCH_LOCAL | FW_CFG_NB_CPUS, 2),
            [0, 0],
            "architecture-local keys are a different item"
        );
        assert_eq!(
            read_item(&mut d, FW_CFG_WRITE_CHANNEL | FW_CFG_NB_CPUS, 2),
            [4, 0],
            "the write-channel bit does not change the item"
        );
    }

    #[test]
    fn selecting_resets_the_offset_and_string_reads_advance_it() {
        let mut d = FwCfg::new(2, 1 << 20);
        assert_eq!(read_item(&mut d, FW_CFG_SIGNATURE, 2), b"QE");
        assert_eq!(read_item(&mut d, FW_CFG_SIGNATURE, 1), b"Q");
        let mut rest = [0u8; 3];
        assert!(d.read(FW_CFG_PORT_DATA, &mut rest));
        assert_eq!(&rest, b"EMU");
        assert!(d.write(FW_CFG_PORT_DATA, &[1]), "data writes are ignored");
        assert!(!d.write(FW_CFG_PORT_SEL, &[0]), "the selector is 16 bits");
        let mut w = [0u8; 4];
        assert!(!d.read(FW_CFG_PORT_SEL, &mut w));
        assert_eq!(w, [0xFF; 4]);
        read_item(&mut d, FW_CFG_SIGNATURE, 0);
        let mut comb = [0u8; 2];
        assert!(d.read(FW_CFG_PORT_SEL, &mut comb));
        assert_eq!(comb, [b'Q', 0]);
    }

    #[test]
    fn cpu_counts_saturate() {
        let mut d = FwCfg::new(u32::MAX, 0);
        assert_eq!(read_item(&mut d, FW_CFG_NB_CPUS, 2), [0xFF, 0xFF]);
    }
}
