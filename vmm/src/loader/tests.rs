//! The loader against hand-built images: ELF64 and ELF32, PVH notes, multiboot headers (ELF
//! and a.out kludge), and every malformation the validation must catch.

use super::elf::*;
use super::*;
use firmware::multiboot::{
    MULTIBOOT_AOUT_KLUDGE, MULTIBOOT_HEADER_MAGIC, MULTIBOOT_MEMORY_INFO, MULTIBOOT_PAGE_ALIGN,
};
use firmware::pvh::XEN_ELFNOTE_PHYS32_ENTRY;

/// One program header to emit: type, physical address, file bytes, memory size.
struct Ph<'a> {
    p_type: u32,
    paddr: u64,
    bytes: &'a [u8],
    memsz: u64,
}

fn load_ph(paddr: u64, bytes: &[u8]) -> Ph<'_> {
    Ph {
        p_type: PT_LOAD,
        paddr,
        bytes,
        memsz: bytes.len() as u64,
    }
}

fn note_ph(bytes: &[u8]) -> Ph<'_> {
    Ph {
        p_type: PT_NOTE,
        paddr: 0,
        bytes,
        memsz: 0,
    }
}

/// An ELF image of `class` with the given program headers; `prefix` goes right after the
/// program header table (before any segment data), where a multiboot header would be.
fn elf_image(class: Class, phs: &[Ph<'_>], entry: u64, prefix: &[u8]) -> Vec<u8> {
    let (ehdr, phdr) = match class {
        Class::Elf32 => (ELF32_EHDR_SIZE, ELF32_PHDR_SIZE),
        Class::Elf64 => (ELF64_EHDR_SIZE, ELF64_PHDR_SIZE),
    };
    let mut f = vec![0u8; ehdr + phs.len() * phdr];
    f[..4].copy_from_slice(ELFMAG);
    f[EI_DATA] = ELFDATA2LSB;
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(prefix);
    let mut data_offsets = Vec::new();
    for ph in phs {
        data_offsets.push(f.len() as u64);
        f.extend_from_slice(ph.bytes);
    }
    let n = phs.len() as u16;
    match class {
        Class::Elf64 => {
            f[EI_CLASS] = ELFCLASS64;
            f[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
            f[24..32].copy_from_slice(&entry.to_le_bytes());
            f[32..40].copy_from_slice(&(ehdr as u64).to_le_bytes());
            f[52..54].copy_from_slice(&(ehdr as u16).to_le_bytes());
            f[54..56].copy_from_slice(&(phdr as u16).to_le_bytes());
            f[56..58].copy_from_slice(&n.to_le_bytes());
        }
        Class::Elf32 => {
            f[EI_CLASS] = ELFCLASS32;
            f[18..20].copy_from_slice(&EM_386.to_le_bytes());
            f[24..28].copy_from_slice(&(entry as u32).to_le_bytes());
            f[28..32].copy_from_slice(&(ehdr as u32).to_le_bytes());
            f[40..42].copy_from_slice(&(ehdr as u16).to_le_bytes());
            f[42..44].copy_from_slice(&(phdr as u16).to_le_bytes());
            f[44..46].copy_from_slice(&n.to_le_bytes());
        }
    }
    for (i, (ph, off)) in phs.iter().zip(data_offsets).enumerate() {
        let at = ehdr + i * phdr;
        let len = ph.bytes.len() as u64;
        f[at..at + 4].copy_from_slice(&ph.p_type.to_le_bytes());
        match class {
            Class::Elf64 => {
                f[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
                f[at + 16..at + 24].copy_from_slice(&ph.paddr.to_le_bytes());
                f[at + 24..at + 32].copy_from_slice(&ph.paddr.to_le_bytes());
                f[at + 32..at + 40].copy_from_slice(&len.to_le_bytes());
                f[at + 40..at + 48].copy_from_slice(&ph.memsz.to_le_bytes());
            }
            Class::Elf32 => {
                f[at + 4..at + 8].copy_from_slice(&(off as u32).to_le_bytes());
                f[at + 8..at + 12].copy_from_slice(&(ph.paddr as u32).to_le_bytes());
                f[at + 12..at + 16].copy_from_slice(&(ph.paddr as u32).to_le_bytes());
                f[at + 16..at + 20].copy_from_slice(&(len as u32).to_le_bytes());
                f[at + 20..at + 24].copy_from_slice(&(ph.memsz as u32).to_le_bytes());
            }
        }
    }
    f
}

/// A minimal ELF64 x86-64 image with one PT_LOAD segment at `paddr` holding `code`.
fn tiny_elf(paddr: u64, code: &[u8]) -> Vec<u8> {
    elf_image(Class::Elf64, &[load_ph(paddr, code)], paddr, &[])
}

/// An ELF64 x86-64 image with one PT_LOAD segment per `(paddr, bytes)`.
fn elf(segments: &[(u64, &[u8])], entry: u64) -> Vec<u8> {
    let phs: Vec<Ph<'_>> = segments.iter().map(|(a, b)| load_ph(*a, b)).collect();
    elf_image(Class::Elf64, &phs, entry, &[])
}

/// A note: name, type, descriptor, each padded to 4 bytes.
fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend_from_slice(&(name.len() as u32).to_le_bytes());
    n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    n.extend_from_slice(&kind.to_le_bytes());
    n.extend_from_slice(name);
    n.resize(n.len().next_multiple_of(4), 0);
    n.extend_from_slice(desc);
    n.resize(n.len().next_multiple_of(4), 0);
    n
}

/// A multiboot header with `flags`, a correct checksum plus `checksum_error`, and `aout`
/// address fields if given.
fn mb_header(flags: u32, checksum_error: u32, aout: Option<[u32; 5]>) -> Vec<u8> {
    let mut h = Vec::new();
    let checksum = 0u32
        .wrapping_sub(MULTIBOOT_HEADER_MAGIC)
        .wrapping_sub(flags)
        .wrapping_add(checksum_error);
    for v in [MULTIBOOT_HEADER_MAGIC, flags, checksum] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    for v in aout.into_iter().flatten() {
        h.extend_from_slice(&v.to_le_bytes());
    }
    h
}

fn mem() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 4 << 20)]).unwrap()
}

fn err(img: &[u8]) -> String {
    load(img, &mem()).unwrap_err().to_string()
}

#[test]
fn loads_a_valid_image_at_its_physical_address() {
    let m = mem();
    let k = load(&tiny_elf(0x20_0000, &[0xF4, 0x90]), &m).unwrap();
    assert_eq!(
        (k.start, k.end, k.elf_entry, k.pvh_entry, k.multiboot_entry),
        (0x20_0000, 0x20_0002, 0x20_0000, None, None)
    );
    assert_eq!(m.read_obj::<u8>(GuestAddress(0x20_0000)).unwrap(), 0xF4);
    assert_eq!(k.entry(EntryMode::Auto).unwrap(), Entry::Long(0x20_0000));
    assert!(matches!(
        k.entry(EntryMode::Pvh),
        Err(LoaderError::NoPvhNote)
    ));
}

#[test]
fn rejects_malformed_images() {
    let good = tiny_elf(0x20_0000, &[0xF4]);
    let check = |img: &[u8], want: &str| {
        let e = err(img);
        assert!(e.contains(want), "{e:?} should mention {want:?}");
    };
    check(b"MZ\x90\x00", "not an ELF");
    check(&good[..40], "truncated");
    let mut b = good.clone();
    b[EI_CLASS] = ELFCLASS32;
    check(&b, "32-bit ELF image for machine 62");
    let mut b = good.clone();
    b[EI_CLASS] = 7;
    check(&b, "class 7");
    let mut b = good.clone();
    b[EI_DATA] = 2;
    check(&b, "big-endian");
    let mut b = good.clone();
    b[18] = 183; // EM_AARCH64
    check(&b, "machine 183");
    let mut b = good.clone();
    b[56..58].copy_from_slice(&0xFFFFu16.to_le_bytes());
    check(&b, "65535 program headers");
    let mut b = good.clone();
    b[56..58].copy_from_slice(&3u16.to_le_bytes());
    check(&b, "program header table");
    let mut b = good.clone();
    b[54..56].copy_from_slice(&32u16.to_le_bytes());
    check(&b, "program header table");
    check(&tiny_elf(0x400, &[0xF4]), "interrupt vector table");
    check(&tiny_elf(0x9_FF00, &[0xF4]), "EBDA, VGA and BIOS area");
    check(&tiny_elf(0xF_0000, &[0xF4]), "which no kernel may occupy");
    check(&tiny_elf(0x3F_FFFF, &[0xF4, 0xF4]), "outside guest RAM");
    let mut b = good.clone();
    let ph = ELF64_EHDR_SIZE;
    b[ph + 32..ph + 40].copy_from_slice(&1000u64.to_le_bytes());
    check(&b, "beyond the end of the file");
    let mut b = good.clone();
    b[ph + 40..ph + 48].copy_from_slice(&0u64.to_le_bytes());
    check(&b, "no loadable segments");
    let mut b = good.clone();
    b[ph + 40..ph + 48].copy_from_slice(&u64::MAX.to_le_bytes());
    check(&b, "outside guest RAM");
    let mut b = good;
    b[24..32].copy_from_slice(&0x30_0000u64.to_le_bytes());
    check(&b, "entry point");
}

#[test]
fn rejects_overlapping_segments() {
    let img = elf(
        &[(0x20_0000, &[0xF4; 16]), (0x20_0008, &[0x90; 16])],
        0x20_0000,
    );
    let e = load(&img, &mem()).unwrap_err();
    assert!(matches!(e, LoaderError::SegmentsOverlap(0, 1)), "{e}");
    let img = elf(
        &[(0x20_0000, &[0xF4; 16]), (0x20_0010, &[0x90; 16])],
        0x20_0000,
    );
    assert_eq!(
        load(&img, &mem()).unwrap().end,
        0x20_0020,
        "adjacent segments are fine"
    );
}

#[test]
fn pvh_notes_in_both_classes_and_both_descriptor_sizes() {
    let code = [0xF4u8; 32];
    for class in [Class::Elf32, Class::Elf64] {
        for desc in [
            0x10_0010u32.to_le_bytes().to_vec(),
            0x10_0010u64.to_le_bytes().to_vec(),
        ] {
            // A GNU property note first: notes of other owners are skipped.
            let mut notes = note(b"GNU\0", 5, &[0; 16]);
            notes.extend(note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &desc));
            let img = elf_image(
                class,
                &[load_ph(0x10_0000, &code), note_ph(&notes)],
                0x10_0000,
                &[],
            );
            let k = load(&img, &mem()).unwrap();
            assert_eq!(k.pvh_entry, Some(0x10_0010), "{class:?}");
            assert_eq!(k.elf_class, Some(class));
            assert_eq!(k.entry(EntryMode::Auto).unwrap(), Entry::Pvh(0x10_0010));
            let long = k.entry(EntryMode::Long);
            match class {
                Class::Elf64 => assert_eq!(long.unwrap(), Entry::Long(0x10_0000)),
                Class::Elf32 => assert!(matches!(long, Err(LoaderError::LongNeedsElf64))),
            }
        }
    }
}

#[test]
fn bad_pvh_notes_are_caught() {
    let code = [0xF4u8; 32];
    let with_notes = |notes: &[u8]| {
        elf_image(
            Class::Elf32,
            &[load_ph(0x10_0000, &code), note_ph(notes)],
            0x10_0000,
            &[],
        )
    };
    let outside = note(
        b"Xen\0",
        XEN_ELFNOTE_PHYS32_ENTRY,
        &0x50_0000u32.to_le_bytes(),
    );
    assert!(err(&with_notes(&outside)).contains("entry point 0x500000"));
    let odd = note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &[0; 2]);
    assert!(err(&with_notes(&odd)).contains("2-byte descriptor"));
    let high = note(
        b"Xen\0",
        XEN_ELFNOTE_PHYS32_ENTRY,
        &0x1_0000_0000u64.to_le_bytes(),
    );
    assert!(err(&with_notes(&high)).contains("above 4 GiB"));
    let mut overrun = note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &[0; 4]);
    overrun[0..4].copy_from_slice(&0x1000u32.to_le_bytes()); // namesz past the segment
    assert!(err(&with_notes(&overrun)).contains("runs past the end"));
    // An ELF32 kernel with no way in.
    let bare = elf_image(Class::Elf32, &[load_ph(0x10_0000, &code)], 0x10_0000, &[]);
    assert!(err(&bare).contains("neither a PVH entry note nor a multiboot header"));
    let mut machine = bare;
    machine[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
    assert!(err(&machine).contains("must be i386"));
}

#[test]
fn multiboot_elf32_is_entered_at_e_entry() {
    let code = [0x90u8; 64];
    let header = mb_header(MULTIBOOT_PAGE_ALIGN | MULTIBOOT_MEMORY_INFO, 0, None);
    let img = elf_image(
        Class::Elf32,
        &[load_ph(0x10_0000, &code)],
        0x10_0004,
        &header,
    );
    let k = load(&img, &mem()).unwrap();
    assert_eq!(k.multiboot_entry, Some(0x10_0004));
    assert_eq!(
        k.entry(EntryMode::Auto).unwrap(),
        Entry::Multiboot(0x10_0004)
    );
    assert!(matches!(
        k.entry(EntryMode::Pvh),
        Err(LoaderError::NoPvhNote)
    ));
}

#[test]
fn a_multiboot_header_with_a_bad_checksum_is_rejected() {
    let code = [0x90u8; 64];
    let header = mb_header(MULTIBOOT_MEMORY_INFO, 1, None);
    let img = elf_image(
        Class::Elf32,
        &[load_ph(0x10_0000, &code)],
        0x10_0000,
        &header,
    );
    let e = err(&img);
    assert!(e.contains("bad checksum"), "{e}");
    // The same on a flat image.
    let flat = mb_header(MULTIBOOT_AOUT_KLUDGE, 7, Some([0; 5]));
    assert!(err(&flat).contains("bad checksum"));
    // An ELF64 kernel does not depend on the header: it still boots in long mode.
    let img = elf_image(
        Class::Elf64,
        &[load_ph(0x10_0000, &code)],
        0x10_0000,
        &header,
    );
    let k = load(&img, &mem()).unwrap();
    assert_eq!(k.entry(EntryMode::Auto).unwrap(), Entry::Long(0x10_0000));
}

#[test]
fn multiboot_required_flags_sipi_lacks_are_refused() {
    let code = [0x90u8; 64];
    let header = mb_header(MULTIBOOT_MEMORY_INFO | 1 << 3, 0, None);
    let img = elf_image(
        Class::Elf32,
        &[load_ph(0x10_0000, &code)],
        0x10_0000,
        &header,
    );
    assert!(err(&img).contains("flags 0x8"));
    // Flags above bit 15 are optional and ignored.
    let header = mb_header(MULTIBOOT_MEMORY_INFO | 1 << 20, 0, None);
    let img = elf_image(
        Class::Elf32,
        &[load_ph(0x10_0000, &code)],
        0x10_0000,
        &header,
    );
    assert!(load(&img, &mem()).is_ok());
}

/// A flat image: a multiboot header with address fields at offset 0, then `body`.
fn aout(fields: [u32; 5], body: &[u8]) -> Vec<u8> {
    let mut img = mb_header(
        MULTIBOOT_AOUT_KLUDGE | MULTIBOOT_MEMORY_INFO,
        0,
        Some(fields),
    );
    img.extend_from_slice(body);
    img
}

#[test]
fn the_aout_kludge_loads_a_flat_image() {
    let m = mem();
    // header_addr, load_addr, load_end_addr (0: whole file), bss_end_addr, entry_addr.
    let img = aout([0x10_0000, 0x10_0000, 0, 0x10_2000, 0x10_0020], &[0xF4; 16]);
    let k = load(&img, &m).unwrap();
    assert_eq!((k.start, k.end), (0x10_0000, 0x10_2000));
    assert_eq!(k.elf_class, None);
    assert_eq!(
        k.entry(EntryMode::Auto).unwrap(),
        Entry::Multiboot(0x10_0020)
    );
    assert!(matches!(
        k.entry(EntryMode::Long),
        Err(LoaderError::LongNeedsElf64)
    ));
    let magic: u32 = m.read_obj(GuestAddress(0x10_0000)).unwrap();
    assert_eq!(magic, MULTIBOOT_HEADER_MAGIC, "the header is loaded too");
    assert_eq!(m.read_obj::<u8>(GuestAddress(0x10_0020)).unwrap(), 0xF4);
    // load_addr below header_addr: text before the header in the file.
    let mut img = vec![0xCC; 0x40];
    img.extend(aout(
        [0x10_0040, 0x10_0000, 0x10_0070, 0, 0x10_0000],
        &[0xF4; 16],
    ));
    let k = load(&img, &m).unwrap();
    assert_eq!((k.start, k.end), (0x10_0000, 0x10_0070));
    assert_eq!(m.read_obj::<u8>(GuestAddress(0x10_0000)).unwrap(), 0xCC);
}

#[test]
fn the_aout_kludge_addresses_are_validated() {
    let body = [0xF4u8; 16];
    let check = |fields: [u32; 5], want: &str| {
        let e = err(&aout(fields, &body));
        assert!(
            e.contains(want),
            "{fields:x?}: {e:?} should mention {want:?}"
        );
    };
    check(
        [0x10_0000, 0x10_0010, 0, 0, 0x10_0010],
        "load_addr is above header_addr",
    );
    check(
        [0x10_0100, 0x10_0000, 0, 0, 0x10_0000],
        "before the beginning of the file",
    );
    check(
        [0x10_0000, 0x10_0000, 0x10_1000, 0, 0x10_0000],
        "more bytes than the file has",
    );
    check(
        [0x10_0000, 0x10_0000, 0x0F_0000, 0, 0x10_0000],
        "load_end_addr is below load_addr",
    );
    check(
        [0x10_0000, 0x10_0000, 0x10_0020, 0x10_0010, 0x10_0000],
        "bss_end_addr is below",
    );
    check([0x10_0000, 0x10_0000, 0, 0, 0x20_0000], "entry point");
    check([0x4F0, 0x4F0, 0, 0, 0x4F0], "interrupt vector table");
    check(
        [0xA_0000, 0xA_0000, 0, 0, 0xA_0000],
        "EBDA, VGA and BIOS area",
    );
    check(
        [0x3F_FFF0, 0x3F_FFF0, 0, 0x40_0040, 0x3F_FFF0],
        "outside guest RAM",
    );
    check(
        [0xFFFF_FFF0, 0xFFFF_FFF0, 0, 0, 0xFFFF_FFF0],
        "the MMIO hole",
    );
    // A multiboot header without address fields on a flat image cannot be loaded.
    let mut flat = mb_header(MULTIBOOT_MEMORY_INFO, 0, None);
    flat.extend_from_slice(&body);
    assert!(err(&flat).contains("no address fields"));
    // Address fields cut off by the end of the file.
    let truncated = &aout([0x10_0000; 5], &[])[..20];
    assert!(err(truncated).contains("address fields"));
}

#[test]
fn read_image_bounds_size_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let e = read_image(dir.path(), 1 << 20).unwrap_err();
    assert!(matches!(e, LoaderError::IsDirectory(_)));
    let p = dir.path().join("empty");
    std::fs::write(&p, b"").unwrap();
    assert!(matches!(
        read_image(&p, 1 << 20),
        Err(LoaderError::Empty(_))
    ));
    std::fs::write(&p, vec![0u8; 2048]).unwrap();
    assert!(matches!(
        read_image(&p, 1024),
        Err(LoaderError::TooLarge { .. })
    ));
    assert!(matches!(
        read_image(&dir.path().join("nope"), 1024),
        Err(LoaderError::Read { .. })
    ));
}

#[test]
fn low_segments_load_where_the_kernel_asks() {
    // An ELF64 image at 0x8000 (through linux-loader) and its segments reported for placement.
    let m = mem();
    let k = load(&tiny_elf(0x8000, &[0xF4, 0x90]), &m).unwrap();
    assert_eq!(
        k.segments,
        [Span {
            start: 0x8000,
            end: 0x8002
        }]
    );
    let mut b = [0u8; 2];
    m.read_slice(&mut b, GuestAddress(0x8000)).unwrap();
    assert_eq!(b, [0xF4, 0x90]);
    // The first byte a kernel may use, and the last below the EBDA.
    assert!(load(&tiny_elf(0x500, &[0xF4]), &mem()).is_ok());
    assert!(load(&tiny_elf(0x9_FBFF, &[0xF4]), &mem()).is_ok());
}
