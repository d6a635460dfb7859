//! How the BSP enters a loaded kernel: the entry modes a user can ask for, the entry each
//! resolves to, and the choice between them.

use super::{ElfClass, LoadedKernel, LoaderError};

/// Which entry the user asked for (`--entry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EntryMode {
    /// The PVH 32-bit entry when the kernel has a PVH note, else a multiboot header's entry,
    /// else the 64-bit ELF entry.
    #[default]
    Auto,
    /// The PVH 32-bit entry (XEN_ELFNOTE_PHYS32_ENTRY); an error if the kernel has none.
    Pvh,
    /// The ELF entry point in 64-bit long mode on identity page tables the VMM builds.
    Long,
}

/// How the BSP enters the loaded kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// PVH: 32-bit protected mode at this address, EBX = start_info.
    Pvh(u32),
    /// Multiboot v1: 32-bit protected mode at this address, EAX = 0x2BADB002, EBX = the
    /// multiboot information.
    Multiboot(u32),
    /// The ELF entry point in 64-bit long mode, RBX = start_info.
    Long(u64),
}

impl LoadedKernel {
    /// The entry to use for `mode`. `auto` prefers PVH, then multiboot, then long mode.
    pub fn entry(&self, mode: EntryMode) -> Result<Entry, LoaderError> {
        match (mode, self.pvh_entry, self.multiboot_entry) {
            (EntryMode::Auto | EntryMode::Pvh, Some(addr), _) => Ok(Entry::Pvh(addr)),
            (EntryMode::Pvh, None, _) => Err(LoaderError::NoPvhNote),
            (EntryMode::Auto, None, Some(addr)) => Ok(Entry::Multiboot(addr)),
            (EntryMode::Auto | EntryMode::Long, _, _) => {
                if self.elf_class != Some(ElfClass::Elf64) {
                    Err(LoaderError::LongNeedsElf64)
                } else if self.elf_entry >= self.start && self.elf_entry < self.end {
                    Ok(Entry::Long(self.elf_entry))
                } else {
                    Err(LoaderError::EntryOutsideImage(self.elf_entry))
                }
            }
        }
    }
}
