//! Round trips: what [`AcpiTables::build`] produces, the firmware crate's decoders (the ones
//! the guest uses) read back.

use super::*;
use firmware::acpi::hpet::Hpet;
use firmware::acpi::madt::{
    local_apic, local_x2apic, Madt, MadtCpu, MadtEntry, ALL_PROCESSORS_UID32, ALL_PROCESSORS_UID8,
    MADT_PCAT_COMPAT, MAX_XAPIC_ID, MPS_INTI_ACTIVE_HIGH_EDGE, MPS_INTI_CONFORMING,
};
use firmware::acpi::rsdp::{Rsdp, RSDP_ALIGN};
use firmware::acpi::sdt::{validate, SdtHeader};
use firmware::acpi::{rsdt, sum, xsdt};
use firmware::bytes::{u16_at, u32_at, u64_at, u8_at};
use firmware::layout::{
    ACPI_PM1A_CNT_PORT, ACPI_PM1A_EVT_PORT, ACPI_SCI_IRQ, ACPI_SLP_TYP_S3, ACPI_SLP_TYP_S5,
    BIOS_AREA_END, BIOS_AREA_START, CMOS_CENTURY_INDEX, HPET_BASE, I8042_CMD_RESET,
    I8042_COMMAND_PORT, IOAPIC_BASE, IOAPIC_ID, LAPIC_BASE,
};

/// KVM_CAP_MAX_VCPU_ID on our machines: the most vCPUs a VM can have APIC IDs for.
const MAX_VCPU_ID: u32 = 4096;

/// What a guest finds by scanning the BIOS area and following the pointers.
#[derive(Debug)]
struct Found {
    rsdp_offset: usize,
    xsdt_addr: u64,
    rsdt_addr: u32,
    fadt_addr: u64,
    fadt: Fadt,
    hpet_addr: u64,
    hpet: Hpet,
    s5: Option<u8>,
    s3: Option<u8>,
    madt_addr: u64,
    madt_revision: u8,
    local_apic_addr: u32,
    flags: u32,
    entries: Vec<MadtEntry>,
    cpus: Vec<MadtCpu>,
    invalid: bool,
}

/// The table with this signature (the RSDP's is "RSD "), with its guest address.
fn table<'a>(tables: &'a AcpiTables, signature: &[u8; 4]) -> Option<(u64, &'a [u8])> {
    tables
        .tables
        .iter()
        .find(|(_, bytes)| bytes.starts_with(signature))
        .map(|(addr, bytes)| (*addr, bytes.as_slice()))
}

/// The revision in a table's header.
fn revision(table: &[u8]) -> u8 {
    SdtHeader::parse(table).expect("a table header").revision
}

/// The BIOS area (`BIOS_AREA_START..BIOS_AREA_END`) with the tables copied to their addresses.
fn bios_area(tables: &AcpiTables) -> Vec<u8> {
    let mut area = vec![0u8; (BIOS_AREA_END - BIOS_AREA_START) as usize];
    for (addr, bytes) in &tables.tables {
        let off = (addr - BIOS_AREA_START) as usize;
        area[off..off + bytes.len()].copy_from_slice(bytes);
    }
    area
}

/// The FADT fields sipi sets (ACPI 6.5, Table 5.9 offsets).
#[derive(Debug, Default)]
struct Fadt {
    revision: u8,
    minor: u8,
    firmware_ctrl: u32,
    x_firmware_ctrl: u64,
    dsdt: u32,
    x_dsdt: u64,
    sci_int: u16,
    smi_cmd: u32,
    pm1a_evt_blk: u32,
    pm1a_cnt_blk: u32,
    pm1_evt_len: u8,
    pm1_cnt_len: u8,
    pm_tmr_len: u8,
    century: u8,
    iapc_boot_arch: u16,
    flags: u32,
    reset_reg: (u8, u8, u64),
    reset_value: u8,
    x_pm1a_cnt_blk: (u8, u8, u64),
    x_pm1a_evt_blk: (u8, u8, u64),
}

fn gas(t: &[u8], off: usize) -> (u8, u8, u64) {
    (
        u8_at(t, off).unwrap(),
        u8_at(t, off + 1).unwrap(),
        u64_at(t, off + 4).unwrap(),
    )
}

fn parse_fadt(t: &[u8]) -> Fadt {
    Fadt {
        revision: revision(t),
        minor: u8_at(t, 131).unwrap(),
        firmware_ctrl: u32_at(t, 36).unwrap(),
        x_firmware_ctrl: u64_at(t, 132).unwrap(),
        dsdt: u32_at(t, 40).unwrap(),
        x_dsdt: u64_at(t, 140).unwrap(),
        sci_int: u16_at(t, 46).unwrap(),
        smi_cmd: u32_at(t, 48).unwrap(),
        pm1a_evt_blk: u32_at(t, 56).unwrap(),
        pm1a_cnt_blk: u32_at(t, 64).unwrap(),
        pm1_evt_len: u8_at(t, 88).unwrap(),
        pm1_cnt_len: u8_at(t, 89).unwrap(),
        pm_tmr_len: u8_at(t, 91).unwrap(),
        century: u8_at(t, 108).unwrap(),
        iapc_boot_arch: u16_at(t, 109).unwrap(),
        flags: u32_at(t, 112).unwrap(),
        reset_reg: gas(t, 116),
        reset_value: u8_at(t, 128).unwrap(),
        x_pm1a_evt_blk: gas(t, 148),
        x_pm1a_cnt_blk: gas(t, 172),
    }
}

/// The SLP_TYPa of a sleep state package (`name`: "_S5_", "_S3_") as a simple kernel finds
/// it: the name's bytes after a NameOp, then PackageOp, PkgLength, NumElements, and a
/// BytePrefix'd (or Zero/One) first element.
fn find_slp_typ(dsdt: &[u8], name: &[u8; 4]) -> Option<u8> {
    let at = dsdt.windows(4).position(|w| w == name)?;
    if dsdt.get(at.checked_sub(1)?) != Some(&0x08) || dsdt.get(at + 4) != Some(&0x12) {
        return None;
    }
    // One-byte PkgLength (bits 6-7 zero), then NumElements, then the first element.
    let first = at + 7;
    match dsdt.get(first)? {
        0x0A => dsdt.get(first + 1).copied(),
        0x00 => Some(0),
        0x01 => Some(1),
        _ => None,
    }
}

/// Decodes the tables in a BIOS-area image as a guest would: scan for the RSDP, follow it to
/// the XSDT (and check the RSDT lists the same tables), follow those to the FADT, its FACS and
/// DSDT, and the MADT. Every step validates lengths and checksums.
fn decode(area: &[u8]) -> Result<Found, String> {
    let at = |addr: u64| {
        addr.checked_sub(BIOS_AREA_START)
            .and_then(|off| area.get(off as usize..))
            .ok_or(format!("{addr:#x} is outside the BIOS area"))
    };
    let (rsdp_offset, rsdp) = Rsdp::scan(area).ok_or("no valid RSDP in the BIOS area")?;
    let xsdt_entries: Vec<u64> = xsdt::entries(at(rsdp.xsdt_addr)?)
        .map_err(|e| format!("XSDT: {e}"))?
        .collect();
    let rsdt_entries: Vec<u64> = rsdt::entries(at(u64::from(rsdp.rsdt_addr))?)
        .map_err(|e| format!("RSDT: {e}"))?
        .collect();
    if rsdt_entries != xsdt_entries {
        return Err(format!(
            "the RSDT lists {rsdt_entries:x?}, the XSDT {xsdt_entries:x?}"
        ));
    }
    let [fadt_addr, madt_addr, hpet_addr] = xsdt_entries[..] else {
        return Err(format!(
            "the XSDT lists {xsdt_entries:x?}, not a FADT, a MADT and an HPET table"
        ));
    };
    let hpet = Hpet::parse(at(hpet_addr)?).map_err(|e| format!("HPET: {e}"))?;
    let (_, fadt_bytes) = validate(at(fadt_addr)?, b"FACP").map_err(|e| format!("FADT: {e}"))?;
    let fadt = parse_fadt(fadt_bytes);
    let facs = at(u64::from(fadt.firmware_ctrl))?;
    if !facs.starts_with(b"FACS") || u32_at(facs, 4) != Some(64) {
        return Err("FACS: bad signature or length".into());
    }
    let (_, dsdt) = validate(at(fadt.x_dsdt)?, b"DSDT").map_err(|e| format!("DSDT: {e}"))?;
    let s5 = find_slp_typ(dsdt, b"_S5_");
    let s3 = find_slp_typ(dsdt, b"_S3_");
    let madt_bytes = at(madt_addr)?;
    let madt = Madt::parse(madt_bytes).map_err(|e| format!("MADT: {e}"))?;
    Ok(Found {
        rsdp_offset,
        xsdt_addr: rsdp.xsdt_addr,
        rsdt_addr: rsdp.rsdt_addr,
        fadt_addr,
        fadt,
        hpet_addr,
        hpet,
        s5,
        s3,
        madt_addr,
        madt_revision: revision(madt_bytes),
        local_apic_addr: madt.local_apic_addr,
        flags: madt.flags,
        entries: madt.entries().collect(),
        cpus: madt.cpus().collect(),
        invalid: madt.has_invalid_entries(),
    })
}

/// Checks everything the brief promises about the tables for `n` vCPUs.
fn check_tables(n: u32, tables: &AcpiTables, found: &Found) {
    let t = &tables.tables;
    let sigs: Vec<&[u8]> = t.iter().map(|(_, b)| &b[..4]).collect();
    let want: [&[u8]; 8] = [
        b"RSD ", b"XSDT", b"RSDT", b"FACS", b"FACP", b"DSDT", b"HPET", b"APIC",
    ];
    assert_eq!(sigs, want, "the tables in address order");
    assert_eq!(t[0].0, RSDP_ADDR);
    assert_eq!(found.rsdp_offset as u64, RSDP_ADDR - BIOS_AREA_START);
    assert_eq!(Some(found.xsdt_addr), table(tables, b"XSDT").map(|t| t.0));
    assert_eq!(
        Some(u64::from(found.rsdt_addr)),
        table(tables, b"RSDT").map(|t| t.0)
    );
    assert_eq!(Some(found.fadt_addr), table(tables, b"FACP").map(|t| t.0));
    assert_eq!(Some(found.madt_addr), table(tables, b"APIC").map(|t| t.0));
    assert_eq!(Some(found.hpet_addr), table(tables, b"HPET").map(|t| t.0));

    // The HPET table: the device's block at its base, its capabilities' low half.
    let h = &found.hpet;
    assert_eq!(h.address, HPET_BASE);
    assert_eq!(h.address_space_id, 0, "system memory");
    assert_eq!(
        u64::from(h.event_timer_block_id),
        crate::devices::hpet::CAPABILITIES & 0xFFFF_FFFF
    );
    assert_eq!(h.event_timer_block_id >> 16, 0x8086, "vendor");
    assert_eq!((h.event_timer_block_id >> 8) & 0x1F, 2, "three timers");
    assert_eq!(h.hpet_number, 0);
    assert_eq!(table(tables, b"HPET").map(|t| t.1.len()), Some(56));
    assert_eq!(table(tables, b"HPET").map(|t| revision(t.1)), Some(1));
    let facs = table(tables, b"FACS").unwrap().0;
    assert!(facs.is_multiple_of(64), "the FACS is 64-byte aligned");
    let facs_bytes = &table(tables, b"FACS").unwrap().1;
    assert_eq!(facs_bytes.len(), firmware::acpi::facs::FACS_LEN);
    assert_eq!(
        firmware::acpi::facs::firmware_waking_vector(facs_bytes),
        Some(0),
        "no waking vector until the OS sets one"
    );
    assert_eq!(tables.facs_addr(), facs);

    // The FADT: PM1a blocks at the ACPI PM device's ports, SCI, reset through the 8042.
    let f = &found.fadt;
    assert_eq!((f.revision, f.minor), (6, 5));
    assert_eq!(u64::from(f.firmware_ctrl), facs);
    assert_eq!(u64::from(f.dsdt), f.x_dsdt);
    assert_eq!(Some(f.x_dsdt), table(tables, b"DSDT").map(|t| t.0));
    assert_eq!((f.sci_int, f.smi_cmd), (ACPI_SCI_IRQ, 0));
    assert_eq!(f.pm1a_evt_blk, u32::from(ACPI_PM1A_EVT_PORT));
    assert_eq!(f.pm1a_cnt_blk, u32::from(ACPI_PM1A_CNT_PORT));
    assert_eq!((f.pm1_evt_len, f.pm1_cnt_len, f.pm_tmr_len), (4, 2, 0));
    assert_eq!(f.x_pm1a_evt_blk, (1, 32, u64::from(ACPI_PM1A_EVT_PORT)));
    assert_eq!(f.x_pm1a_cnt_blk, (1, 16, u64::from(ACPI_PM1A_CNT_PORT)));
    assert_eq!(f.century, CMOS_CENTURY_INDEX);
    assert_eq!(f.iapc_boot_arch, 0b111, "legacy devices, 8042, no VGA");
    assert_eq!(f.flags & (1 << 20), 0, "not hardware-reduced");
    assert_ne!(f.flags & (1 << 10), 0, "RESET_REG_SUP");
    assert_eq!(f.reset_reg, (1, 8, u64::from(I8042_COMMAND_PORT)));
    assert_eq!(f.reset_value, I8042_CMD_RESET);
    assert_eq!(found.s5, Some(ACPI_SLP_TYP_S5), "\\_S5 names SLP_TYP S5");
    assert_eq!(found.s3, Some(ACPI_SLP_TYP_S3), "\\_S3 names SLP_TYP S3");
    assert_eq!(
        f.x_firmware_ctrl, facs,
        "X_FIRMWARE_CTRL names the FACS too"
    );

    // Every checksum: the RSDP's two, then each table's.
    assert_eq!(sum(&t[0].1[..RSDP_V1_SIZE]), 0, "RSDP checksum");
    assert_eq!(sum(&t[0].1), 0, "RSDP extended checksum");
    assert_eq!(t[0].1.len(), RSDP_V2_SIZE);
    for (addr, bytes) in t[1..].iter().filter(|(_, b)| !b.starts_with(b"FACS")) {
        assert_eq!(sum(bytes), 0, "checksum of the table at {addr:#x}");
    }

    // Placement: aligned, inside the area, in order, not overlapping.
    assert!(RSDP_ADDR.is_multiple_of(RSDP_ALIGN as u64));
    let mut next = ACPI_TABLES_ADDR;
    for (addr, bytes) in &t[1..] {
        assert!(addr.is_multiple_of(TABLE_ALIGN), "{addr:#x} is not aligned");
        assert!(*addr >= next, "{addr:#x} overlaps the previous table");
        next = addr + bytes.len() as u64;
    }
    assert!(next <= ACPI_TABLES_END);
    let madt_len = table(tables, b"APIC").map(|t| t.1.len() as u64);
    assert_eq!(
        madt_len,
        Some(madt::len(Topology::new(n))),
        "computed MADT length"
    );

    assert_eq!(found.madt_revision, 6);
    assert_eq!(u64::from(found.local_apic_addr), LAPIC_BASE);
    assert_eq!(found.flags, MADT_PCAT_COMPAT);
    assert!(!found.invalid);

    // The processors: exactly APIC IDs 0..n, UID = APIC ID, type 0 up to 254, type 9 after.
    let expected: Vec<MadtCpu> = (0..n)
        .map(|i| MadtCpu {
            apic_id: i,
            uid: i,
            enabled: true,
        })
        .collect();
    assert_eq!(found.cpus, expected);
    let mut xapic = 0;
    let mut x2apic = 0;
    for e in &found.entries {
        match *e {
            MadtEntry::LocalApic { apic_id, .. } => {
                assert!(u32::from(apic_id) <= MAX_XAPIC_ID);
                xapic += 1;
            }
            MadtEntry::LocalX2Apic { x2apic_id, .. } => {
                assert!(x2apic_id > MAX_XAPIC_ID);
                x2apic += 1;
            }
            MadtEntry::Unknown { .. } | MadtEntry::Invalid { .. } => panic!("{e:?}"),
            _ => {}
        }
    }
    assert_eq!(xapic, n.min(MAX_XAPIC_ID + 1));
    assert_eq!(x2apic, n.saturating_sub(MAX_XAPIC_ID + 1));

    let count = |wanted: &MadtEntry| found.entries.iter().filter(|e| *e == wanted).count();
    let ioapic = MadtEntry::IoApic {
        id: IOAPIC_ID,
        addr: IOAPIC_BASE as u32,
        gsi_base: 0,
    };
    assert_eq!(count(&ioapic), 1, "one IOAPIC");
    let irq0 = MadtEntry::InterruptSourceOverride {
        bus: 0,
        source: 0,
        gsi: 2,
        flags: MPS_INTI_CONFORMING,
    };
    assert_eq!(count(&irq0), 1, "IRQ0 -> GSI 2");
    let nmi = MadtEntry::LocalApicNmi {
        uid: ALL_PROCESSORS_UID8,
        flags: MPS_INTI_ACTIVE_HIGH_EDGE,
        lint: 1,
    };
    assert_eq!(count(&nmi), 1, "Local APIC NMI on LINT1");
    let x2nmi = MadtEntry::LocalX2ApicNmi {
        uid: ALL_PROCESSORS_UID32,
        flags: MPS_INTI_ACTIVE_HIGH_EDGE,
        lint: 1,
    };
    let want_x2nmi = usize::from(n > MAX_XAPIC_ID + 1);
    assert_eq!(count(&x2nmi), want_x2nmi, "Local x2APIC NMI iff n > 255");
}

fn build_and_check(n: u32) -> AcpiTables {
    let tables = AcpiTables::build(Topology::new(n)).unwrap_or_else(|e| panic!("{n} vCPUs: {e}"));
    let found = decode(&bios_area(&tables)).unwrap_or_else(|e| panic!("{n} vCPUs: {e}"));
    check_tables(n, &tables, &found);
    tables
}

#[test]
fn round_trip_around_the_xapic_limit() {
    for n in [1, 2, 254, 255, 256, 257, 1024] {
        build_and_check(n);
    }
}

#[test]
fn round_trip_at_the_largest_vcpu_id() {
    build_and_check(MAX_VCPU_ID);
}

/// Bytes of every table for `n` vCPUs, and the interrupt controller structures the MADT has.
fn size(n: u32) -> (u64, u64) {
    let tables = AcpiTables::build(Topology::new(n)).unwrap();
    let bytes = tables.tables.iter().map(|(_, b)| b.len() as u64).sum();
    let madt = Madt::parse(table(&tables, b"APIC").unwrap().1).unwrap();
    (bytes, madt.entries().count() as u64)
}

/// Building is linear in the vCPUs, measured by what cannot flake: the bytes written and the
/// structures in the MADT. Doubling the count again adds exactly twice as much, and each vCPU
/// costs one structure of its type, on both sides of the x2APIC limit. (How long building
/// takes is a benchmark's question, not a unit test's.)
#[test]
fn table_bytes_and_structures_grow_linearly() {
    let xapic = local_apic(0, 0, 0).len() as u64;
    let x2apic = local_x2apic(0, 0, 0).len() as u64;
    // 32, 64, 128 vCPUs all get type 0; 1024, 2048, 4096 all get type 9 past the first 255.
    for (n, per_vcpu) in [(32, xapic), (1024, x2apic)] {
        let (b1, e1) = size(n);
        let (b2, e2) = size(2 * n);
        let (b4, e4) = size(4 * n);
        assert_eq!(b2 - b1, u64::from(n) * per_vcpu, "{n} more vCPUs from {n}");
        let m = 2 * n;
        assert_eq!(b4 - b2, 2 * (b2 - b1), "{m} more vCPUs from {m}");
        assert_eq!((e2 - e1, e4 - e2), (u64::from(n), 2 * u64::from(n)));
    }
}

#[test]
fn zero_vcpus_is_an_error() {
    assert!(matches!(
        AcpiTables::build(Topology::new(0)),
        Err(AcpiError::NoVcpus)
    ));
}

#[test]
fn tables_that_do_not_fit_are_an_error() {
    // Find the largest count that fits; the next one must fail cleanly.
    let (mut fits, mut fails) = (1u32, 1u32 << 16);
    while fails - fits > 1 {
        let mid = fits + (fails - fits) / 2;
        if AcpiTables::build(Topology::new(mid)).is_ok() {
            fits = mid;
        } else {
            fails = mid;
        }
    }
    assert!(fits >= MAX_VCPU_ID, "only {fits} vCPUs fit");
    let largest = build_and_check(fits);
    let (addr, madt) = table(&largest, b"APIC").unwrap();
    let spare = ACPI_TABLES_END - (addr + madt.len() as u64);
    assert!(
        spare < 16,
        "one more x2APIC entry would fit in {spare} bytes"
    );
    assert!(matches!(
        AcpiTables::build(Topology::new(fits + 1)),
        Err(AcpiError::DoesNotFit { table: "MADT", .. })
    ));
    // Absurd counts are rejected from the computed length, before anything is built (building
    // them would need tens of GiB).
    assert!(matches!(
        AcpiTables::build(Topology::new(u32::MAX)),
        Err(AcpiError::DoesNotFit { table: "MADT", len, .. }) if len == madt::len(Topology::new(u32::MAX))
    ));
}

#[test]
fn a_corrupted_byte_fails_decoding() {
    let tables = AcpiTables::build(Topology::new(300)).unwrap();
    let clean = bios_area(&tables);
    assert!(decode(&clean).is_ok());
    for (addr, bytes) in &tables.tables {
        // A byte in the middle of each table: for the MADT, inside a Local APIC structure.
        // The FACS has no checksum: its signature is what a reader checks.
        let sig = &bytes[..4];
        let off =
            (addr - BIOS_AREA_START) as usize + if sig == b"FACS" { 0 } else { bytes.len() / 2 };
        let mut bad = clean.clone();
        bad[off] ^= 0x40;
        let err = decode(&bad).expect_err("a corrupted table must not decode");
        let expected = match sig {
            b"RSD " => "no valid RSDP",
            b"FACP" => "FADT",
            b"APIC" => "MADT",
            other => std::str::from_utf8(other).unwrap(),
        };
        assert!(err.contains(expected), "{expected}: {err}");
    }
    let mut madt = table(&tables, b"APIC").unwrap().1.to_vec();
    madt[SDT_HEADER_SIZE + 9] ^= 1;
    assert!(matches!(
        Madt::parse(&madt),
        Err(firmware::acpi::AcpiError::BadChecksum { .. })
    ));
}

/// 2 MiB of guest RAM from address 0: covers the BIOS area as sipi's memory map does.
fn guest_memory(size: usize) -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)]).expect("mmap guest memory")
}

#[test]
fn write_to_guest_memory_and_decode_it_there() {
    let mem = guest_memory(2 << 20);
    for n in [1, 256, 1024] {
        let tables = AcpiTables::build(Topology::new(n)).unwrap();
        tables.write_to(&mem).unwrap();
        let mut area = vec![0u8; (BIOS_AREA_END - BIOS_AREA_START) as usize];
        mem.read_slice(&mut area, GuestAddress(BIOS_AREA_START))
            .unwrap();
        for (addr, bytes) in &tables.tables {
            let mut back = vec![0u8; bytes.len()];
            mem.read_slice(&mut back, GuestAddress(*addr)).unwrap();
            assert_eq!(&back, bytes, "table at {addr:#x}");
        }
        let found = decode(&area).unwrap_or_else(|e| panic!("{n} vCPUs: {e}"));
        check_tables(n, &tables, &found);
    }
}

#[test]
fn write_to_memory_without_a_bios_area_is_an_error() {
    let mem = guest_memory(64 << 10);
    let err = AcpiTables::build(Topology::new(2))
        .unwrap()
        .write_to(&mem)
        .unwrap_err();
    assert!(
        matches!(err, AcpiError::GuestMemory { addr, .. } if addr == RSDP_ADDR),
        "{err}"
    );
}
