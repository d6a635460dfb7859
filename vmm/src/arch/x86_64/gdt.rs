//! The boot GDT (Intel SDM Vol. 3A, 3.4.5): flat 64-bit code, 32-bit code, data and a TSS,
//! written once where the boot plan says, and the hidden segment state KVM loads for each.

use firmware::layout::BOOT_GDT_ENTRIES;
use kvm_bindings::kvm_segment;
use vm_memory::{Bytes, GuestAddress, GuestMemoryError, GuestMemoryMmap};

/// Boot GDT selectors (index * 8).
pub(crate) const GDT_CODE64: u16 = 1 << 3;
/// 32-bit code.
pub(crate) const GDT_CODE32: u16 = 2 << 3;
/// Data.
pub(crate) const GDT_DATA: u16 = 3 << 3;
/// TSS.
pub(crate) const GDT_TSS: u16 = 4 << 3;

/// Access/flags words of the boot GDT descriptors, in the "flags << 12 | access" form
/// Firecracker's gdt.rs uses: 64-bit code (L=1), 32-bit code (D=1, G=1), data, 32-bit busy TSS.
pub(crate) const GDT_FLAGS: [u16; BOOT_GDT_ENTRIES] = [0, 0xA09B, 0xC09B, 0xC093, 0x808B];

/// Limit of the TSS descriptor: the 104-byte 32-bit TSS (Intel SDM Vol. 3A, 8.2.1).
pub(crate) const TSS_LIMIT: u32 = 0x67;
/// Limit of the flat descriptors in 4 KiB units (G=1): 4 GiB.
const FLAT_LIMIT_PAGES: u32 = 0xF_FFFF;

/// Encodes a GDT descriptor (Intel SDM Vol. 3A, 3.4.5).
fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let (flags, base, limit) = (u64::from(flags), u64::from(base), u64::from(limit));
    ((base & 0xFF00_0000) << 32)
        | ((flags & 0xF0FF) << 40)
        | ((limit & 0x000F_0000) << 32)
        | ((base & 0x00FF_FFFF) << 16)
        | (limit & 0x0000_FFFF)
}

/// The hidden segment state KVM loads for descriptor `flags` at `selector`: access byte in
/// bits 0-7 (type, S, DPL, P), flags nibble in bits 12-15 (AVL, L, D/B, G).
pub(crate) fn segment(selector: u16, flags: u16, base: u32, limit: u32) -> kvm_segment {
    let bit = |n: u16| ((flags >> n) & 1) as u8;
    kvm_segment {
        base: u64::from(base),
        limit,
        selector,
        type_: (flags & 0xF) as u8,
        s: bit(4),
        dpl: ((flags >> 5) & 3) as u8,
        present: bit(7),
        avl: bit(12),
        l: bit(13),
        db: bit(14),
        g: bit(15),
        unusable: u8::from(bit(7) == 0),
        padding: 0,
    }
}

/// Writes the boot GDT into guest memory at `addr`.
pub(crate) fn write(mem: &GuestMemoryMmap, addr: u64) -> Result<(), GuestMemoryError> {
    let mut gdt = [0u8; BOOT_GDT_ENTRIES * 8];
    for (i, flags) in GDT_FLAGS.iter().enumerate().skip(1) {
        let limit = if usize::from(GDT_TSS >> 3) == i {
            TSS_LIMIT
        } else {
            FLAT_LIMIT_PAGES
        };
        gdt[i * 8..i * 8 + 8].copy_from_slice(&gdt_entry(*flags, 0, limit).to_le_bytes());
    }
    mem.write_slice(&gdt, GuestAddress(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_entries_match_the_sdm_layout() {
        // Known encodings (as in Firecracker and Linux's boot GDT).
        assert_eq!(gdt_entry(0xA09B, 0, 0xF_FFFF), 0x00AF_9B00_0000_FFFF);
        assert_eq!(gdt_entry(0xC093, 0, 0xF_FFFF), 0x00CF_9300_0000_FFFF);
        assert_eq!(gdt_entry(0x808B, 0, 0x67), 0x0080_8B00_0000_0067);
    }

    #[test]
    fn segments_decode_descriptor_flags() {
        let cs = segment(GDT_CODE64, 0xA09B, 0, 0xFFFF_FFFF);
        assert_eq!(
            (cs.type_, cs.present, cs.s, cs.l, cs.db, cs.g),
            (0xB, 1, 1, 1, 0, 1)
        );
        let cs32 = segment(GDT_CODE32, 0xC09B, 0, 0xFFFF_FFFF);
        assert_eq!((cs32.l, cs32.db), (0, 1));
        let tss = segment(GDT_TSS, 0x808B, 0, 0x67);
        assert_eq!((tss.type_, tss.s, tss.unusable), (0xB, 0, 0));
    }
}
