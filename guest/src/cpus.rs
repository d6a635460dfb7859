//! The CPU table: one [`CpuRecord`] per MADT processor, in MADT order, in the report's wire
//! layout. The BSP fills it after parsing the MADT; during bringup each AP finds its slot by its
//! APIC ID and stamps its own phases in place, with volatile stores, while the BSP watches with
//! volatile loads. The boot report copies the records out at the end.

use core::sync::atomic::{AtomicUsize, Ordering};

use firmware::acpi::madt::MadtCpu;
use firmware::report::{ApPhase, CPU_FLAG_BSP, CpuRecord, CpuState, MAX_CPUS, STAMP_SLOTS};

use crate::global::Global;

/// Most CPUs the table holds.
pub const CAPACITY: usize = MAX_CPUS as usize;

/// An empty record.
const EMPTY: CpuRecord = CpuRecord {
    apic_id: 0,
    acpi_uid: 0,
    state: CpuState::Listed as u8,
    last_phase: 0,
    retries: 0,
    flags: 0,
    stamps: [0; STAMP_SLOTS],
};

/// The records. Slots `0..COUNT` are valid once [`register`] returned.
static RECORDS: Global<[CpuRecord; CAPACITY]> = Global::new([EMPTY; CAPACITY]);
/// Number of valid records.
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// The result of [`register`].
#[derive(Debug, Clone, Copy)]
pub struct Registered {
    /// Usable processors in the MADT (may exceed [`CAPACITY`]).
    pub madt_cpus: u32,
    /// The BSP's slot, if the MADT lists it within the table.
    pub bsp_index: Option<usize>,
}

/// The BSP's own stamps for its record, all TSC values.
#[derive(Debug, Clone, Copy)]
pub struct BspOnline {
    /// First Rust instruction in long mode.
    pub long_mode: u64,
    /// GDT, IDT and local APIC set up.
    pub per_cpu_init: u64,
    /// Marked online.
    pub online: u64,
}

/// Fills the table from the MADT's processors in order: every CPU is [`CpuState::Listed`],
/// except the BSP (found by `bsp_apic_id`), which is online with [`CPU_FLAG_BSP`].
///
/// Must be called by the BSP, once, before any AP runs (it panics if called twice).
pub fn register(
    madt: impl Iterator<Item = MadtCpu>,
    bsp_apic_id: u32,
    bsp: BspOnline,
) -> Registered {
    assert!(
        COUNT.load(Ordering::Acquire) == 0,
        "the CPU table is already filled"
    );
    let records = RECORDS.get();
    let mut madt_cpus = 0u32;
    let mut count = 0usize;
    let mut bsp_index = None;
    for cpu in madt {
        madt_cpus = madt_cpus.saturating_add(1);
        if count == CAPACITY {
            continue;
        }
        let mut record = CpuRecord {
            apic_id: cpu.apic_id,
            acpi_uid: cpu.uid,
            ..EMPTY
        };
        if cpu.apic_id == bsp_apic_id && bsp_index.is_none() {
            record.state = CpuState::Online as u8;
            record.flags = CPU_FLAG_BSP;
            record.last_phase = ApPhase::Online as u8 + 1;
            record.stamps[ApPhase::LongMode as usize] = bsp.long_mode;
            record.stamps[ApPhase::PerCpuInit as usize] = bsp.per_cpu_init;
            record.stamps[ApPhase::Online as usize] = bsp.online;
            bsp_index = Some(count);
        }
        // SAFETY: `count < CAPACITY`, so the slot is inside the array; only the BSP runs and
        // the table is not published yet (COUNT is still 0), so nothing else accesses it.
        unsafe { (&raw mut (*records)[count]).write_volatile(record) };
        count += 1;
    }
    COUNT.store(count, Ordering::Release);
    Registered {
        madt_cpus,
        bsp_index,
    }
}

/// Number of records in the table.
pub fn count() -> usize {
    COUNT.load(Ordering::Acquire)
}

/// A copy of record `index`, read with a volatile load (CPUs may be stamping it).
///
/// # Panics
///
/// If `index` is not below [`count`].
pub fn snapshot(index: usize) -> CpuRecord {
    assert!(index < count(), "CPU record {index} does not exist");
    // SAFETY: the slot is inside the array and initialised (index < COUNT, published with
    // Release after the BSP wrote it). Other CPUs only ever write naturally aligned fields of
    // their own record with volatile stores, which x86 performs atomically, so each field read
    // here is either the old or the new value.
    unsafe { (&raw const (*RECORDS.get())[index]).read_volatile() }
}
