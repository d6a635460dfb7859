use super::*;

/// RAM as sipi maps 64 MiB: one region from 0.
const RAM: [Span; 1] = [Span {
    start: 0,
    end: 64 << 20,
}];

fn span(start: u64, end: u64) -> Span {
    Span { start, end }
}

/// True if `[at, at + size)` overlaps none of `kernel`.
fn clear(kernel: &[Span], at: u64, size: u64) -> bool {
    !kernel.iter().any(|k| k.overlaps(&span(at, at + size)))
}

#[test]
fn the_fixed_layout_stays_when_the_kernel_leaves_it_free() {
    let kernel = [span(0x10_0000, 0x20_0000)];
    for entry in [
        Entry::Pvh(0x10_0000),
        Entry::Multiboot(0x10_0000),
        Entry::Long(0x10_0000),
    ] {
        let p = plan(&kernel, &RAM, entry, false, &[]).unwrap();
        assert_eq!(p.layout, BootLayout::FIXED);
        assert_eq!(p.modules, None);
    }
    // realmode.flat's shape: a multiboot kernel at 0x8000..0xd730 needs none of the fixed
    // places a multiboot entry uses (the trampoline and page tables are not among them).
    let realmode = [span(0x8000, 0xD730)];
    let p = plan(&realmode, &RAM, Entry::Multiboot(0x8000), false, &[]).unwrap();
    assert_eq!(p.layout, BootLayout::FIXED);
}

#[test]
fn sipi_guest_always_gets_the_fixed_layout() {
    let p = plan(
        &[span(0x10_0000, 0x20_0000)],
        &RAM,
        Entry::Pvh(0x10_0000),
        true,
        &[],
    )
    .unwrap();
    assert_eq!(p.layout, BootLayout::FIXED);
}

#[test]
fn colliding_structures_move_first_fit_and_the_rest_stay() {
    // Segments over the GDT (0x500) and the command line (0x7000), and over the page tables.
    let kernel = [span(0x500, 0x1000), span(0x7000, 0xA000)];
    let p = plan(&kernel, &RAM, Entry::Long(0x7000), false, &[]).unwrap();
    let l = p.layout;
    assert_eq!(
        l.start_info, START_INFO_ADDR,
        "start_info was free: it stays"
    );
    // First fit in low RAM: the GDT at 0x1000, then the command line after it (16-aligned),
    // the page tables at the first free page after the kernel's 0xA000.
    assert_eq!(l.gdt, 0x1000);
    assert_eq!(l.cmdline, 0x1030);
    assert_eq!(l.pml4, 0xA000);
    for (at, size) in [
        (l.gdt, BOOT_GDT_SIZE),
        (l.cmdline, CMDLINE_MAX as u64),
        (l.start_info, PVH_HANDOFF_SIZE),
        (l.pml4, PAGE_TABLES_SIZE),
    ] {
        assert!(clear(&kernel, at, size), "{at:#x} collides with the kernel");
    }
    assert!(l.pml4.is_multiple_of(PAGE_SIZE));
    // A moved block does not land on another's fixed place.
    assert!(l.cmdline + CMDLINE_MAX as u64 <= START_INFO_ADDR);
}

#[test]
fn a_kernel_filling_low_ram_gets_its_structures_after_it() {
    let kernel = [span(0x500, 0x9_FC00), span(0x10_0000, 0x12_3456)];
    let p = plan(&kernel, &RAM, Entry::Multiboot(0x500), false, &[]).unwrap();
    let l = p.layout;
    assert!(l.gdt >= 0x12_3456 && l.multiboot_info >= 0x12_3456 && l.cmdline >= 0x12_3456);
    assert_eq!(l.gdt, 0x12_3460, "16-aligned first fit after the kernel");
    assert_eq!(l.handoff(Entry::Multiboot(0x500)), l.multiboot_info);
}

#[test]
fn modules_go_page_aligned_after_the_kernel_and_the_list_first_fit() {
    let kernel = [span(0x10_0000, 0x10_0800)];
    let needs = [
        ModuleNeed {
            size: 5,
            string_len: 3,
        },
        ModuleNeed {
            size: 0x2001,
            string_len: 0,
        },
    ];
    let p = plan(&kernel, &RAM, Entry::Multiboot(0x10_0000), false, &needs).unwrap();
    let m = p.modules.unwrap();
    assert_eq!(m.addrs, [0x10_1000, 0x10_2000]);
    // The list and its strings: first fit in low RAM, clear of the fixed blocks.
    assert_eq!(m.list, 0x530);
    assert_eq!(m.strings, 0x530 + 2 * 16);
    let p = plan(&kernel, &RAM, Entry::Pvh(0x10_0000), false, &needs).unwrap();
    let m = p.modules.unwrap();
    assert_eq!(m.strings, m.list + 2 * 32, "PVH list entries are 32 bytes");
}

#[test]
fn refuses_what_cannot_be_placed() {
    let kernel = [span(0x10_0000, 0x20_0000)];
    let need = [ModuleNeed {
        size: 1,
        string_len: 0,
    }];
    assert!(matches!(
        plan(&kernel, &RAM, Entry::Long(0x10_0000), false, &need),
        Err(PlacementError::ModulesUnsupported(_))
    ));
    assert!(matches!(
        plan(&kernel, &RAM, Entry::Pvh(0x10_0000), true, &need),
        Err(PlacementError::ModulesUnsupported(_))
    ));
    let big = [ModuleNeed {
        size: 63 << 20,
        string_len: 0,
    }];
    assert!(matches!(
        plan(&kernel, &RAM, Entry::Multiboot(0x10_0000), false, &big),
        Err(PlacementError::ModuleDoesNotFit { index: 0, .. })
    ));
    // A kernel that leaves no room at all.
    let all = [span(0x500, 0x9_FC00), span(0x10_0000, 64 << 20)];
    assert!(matches!(
        plan(&all, &RAM, Entry::Pvh(0x500), false, &[]),
        Err(PlacementError::NoRoom(_))
    ));
}

#[test]
fn first_fit_skips_taken_ranges_and_respects_alignment() {
    let free = Allocator {
        ram: &RAM,
        taken: vec![span(0x1000, 0x1800), span(0x2000, 0x3000)],
    };
    assert_eq!(free.first_fit(0x800, 0x10, 0x1000, 0x10000), Some(0x1800));
    assert_eq!(free.first_fit(0x801, 0x10, 0x1000, 0x10000), Some(0x3000));
    assert_eq!(free.first_fit(0x10, 0x1000, 0x1001, 0x10000), Some(0x3000));
    assert_eq!(free.first_fit(0x10, 0x10, 0x2000, 0x3000), None);
    assert_eq!(free.first_fit(u64::MAX, 0x10, 0, u64::MAX), None);
}
