//! What the VMM handed over at boot: the PVH `hvm_start_info` and the kernel command line with
//! the guest options on it.

use firmware::cmdline::GuestOptions;
use firmware::layout::CMDLINE_MAX;
use firmware::pvh::{
    MEMMAP_ENTRY_SIZE, MemmapEntry, START_INFO_SIZE, START_INFO_VERSION, StartInfo,
};

use crate::phys;

/// The decoded boot hand-off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BootInfo {
    /// The PVH start info.
    pub(crate) start_info: StartInfo,
    /// The `sipi.` options parsed from it.
    pub(crate) options: GuestOptions,
}

/// Most memory-map entries read (a PC firmware map has a dozen).
const MEMMAP_READ_MAX: usize = 128;

impl BootInfo {
    /// The PVH memory map's entries: none if the start info predates the memory map (version
    /// 0), lists none, or points outside readable RAM; at most [`MEMMAP_READ_MAX`].
    pub(crate) fn memory_map(&self) -> impl Iterator<Item = MemmapEntry> + use<> {
        let info = &self.start_info;
        let count = if info.version >= START_INFO_VERSION {
            (info.memmap_entries as usize).min(MEMMAP_READ_MAX)
        } else {
            0
        };
        let table = phys::bytes(info.memmap_paddr, count * MEMMAP_ENTRY_SIZE).unwrap_or(&[]);
        table
            .chunks_exact(MEMMAP_ENTRY_SIZE)
            .filter_map(MemmapEntry::from_bytes)
    }
}

/// Reads `hvm_start_info` at `start_info_addr` and the command line it points to, and parses
/// the guest options.
///
/// # Panics
///
/// If there is no valid start info at that address, the command line is not UTF-8, or an
/// option is invalid: the kernel cannot do what it was asked without them, and the panic
/// becomes a panic report for the VMM.
pub(crate) fn read(start_info_addr: u64) -> BootInfo {
    let start_info = phys::bytes(start_info_addr, START_INFO_SIZE)
        .and_then(StartInfo::from_bytes)
        .unwrap_or_else(|| {
            panic!("no valid PVH hvm_start_info at {start_info_addr:#x} (bad address or magic)")
        });
    let cmdline = match start_info.cmdline_paddr {
        0 => "",
        addr => {
            let bytes = phys::c_string(addr, CMDLINE_MAX).unwrap_or_else(|| {
                panic!("the kernel command line at {addr:#x} is outside readable RAM")
            });
            core::str::from_utf8(bytes).unwrap_or_else(|e| {
                panic!("the kernel command line at {addr:#x} is not UTF-8: {e}")
            })
        }
    };
    let options =
        GuestOptions::parse(cmdline).unwrap_or_else(|e| panic!("invalid kernel command line: {e}"));
    BootInfo {
        start_info,
        options,
    }
}
