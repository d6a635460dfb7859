//! The CPU table: one [`CpuRecord`] per MADT processor, in MADT order, in the report's wire
//! layout, and the direct-indexed map from APIC ID to record ("slot") that lets an AP find its
//! record, per-CPU area and stacks by its own APIC ID in O(1), even in emulated CPL-0 code (as
//! Linux's parallel bringup does since 6.5: the BSP never hands anything to one AP at a time).
//!
//! The BSP fills the table after parsing the MADT. During bringup each AP stamps its own phases
//! in place with volatile stores (the trampoline's CPL-0 code writes the Trampoline stamp, see
//! [`crate::trampoline`]; the AP's Rust code the rest), while the BSP watches with volatile loads
//! and writes only the fields the APs never write (the Kick stamp, `retries`, and after the TSC
//! check `flags`, `tsc_warp` and `tsc_adjust`). The boot report
//! copies the records out at the end.

use core::mem::offset_of;
use core::sync::atomic::{AtomicUsize, Ordering};

use firmware::acpi::madt::MadtCpu;
use firmware::report::{ApPhase, CPU_FLAG_BSP, CpuRecord, CpuState, MAX_CPUS, STAMP_SLOTS};

use crate::global::Global;

/// Most CPUs the table holds.
pub(crate) const CAPACITY: usize = MAX_CPUS as usize;
/// APIC IDs the slot map covers: 0..[`APIC_ID_LIMIT`].
pub(crate) const APIC_ID_LIMIT: u32 = MAX_CPUS;
/// The slot-map entry of an APIC ID that has no AP to start.
pub(crate) const NO_SLOT: u16 = u16::MAX;
const _: () = assert!(CAPACITY <= NO_SLOT as usize);

/// Byte offset of the stamp of `phase` inside a record (for the trampoline's assembly).
pub(crate) const fn stamp_offset(phase: ApPhase) -> usize {
    offset_of!(CpuRecord, stamps) + 8 * phase as usize
}

/// An empty record.
const EMPTY: CpuRecord = CpuRecord {
    apic_id: 0,
    acpi_uid: 0,
    state: CpuState::Listed as u8,
    last_phase: 0,
    retries: 0,
    flags: 0,
    stamps: [0; STAMP_SLOTS],
    tsc_warp: 0,
    tsc_adjust: 0,
};

/// The records. Slots `0..COUNT` are valid once [`register`] returned. The AP trampoline
/// writes the Trampoline stamps of this array (by symbol), so it is `pub(crate)`; Rust code
/// goes through the functions below.
pub(crate) static RECORDS: Global<[CpuRecord; CAPACITY]> = Global::new([EMPTY; CAPACITY]);
/// Number of valid records.
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// APIC ID -> slot of the AP to start with that APIC ID, or [`NO_SLOT`]. Written by the BSP
/// before it kicks any AP ([`publish_slot`]); read by the AP trampoline (by symbol) at CPL 0.
pub(crate) static SLOT_BY_APIC_ID: Global<[u16; APIC_ID_LIMIT as usize]> =
    Global::new([NO_SLOT; APIC_ID_LIMIT as usize]);

/// One bit per record: the MADT marks the processor enabled (usable now), rather than only
/// online-capable (ACPI 6.5, Table 5.23: to be brought online later, not at boot).
static ENABLED: Global<[u64; CAPACITY / 64]> = Global::new([0; CAPACITY / 64]);

/// The result of [`register`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Registered {
    /// Usable processors in the MADT (may exceed [`CAPACITY`]).
    pub(crate) madt_cpus: u32,
    /// The BSP's slot, if the MADT lists it within the table.
    pub(crate) bsp_index: Option<usize>,
}

/// The BSP's own stamps for its record, all TSC values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BspOnline {
    /// First Rust instruction in long mode.
    pub(crate) long_mode: u64,
    /// GDT, IDT and local APIC set up.
    pub(crate) per_cpu_init: u64,
    /// Marked online.
    pub(crate) online: u64,
}

/// Fills the table from the MADT's processors in order: every CPU is [`CpuState::Listed`],
/// except the BSP (found by `bsp_apic_id`), which is online with [`CPU_FLAG_BSP`]. An APIC ID
/// that an earlier entry already has is skipped: firmware must not
/// list one twice, and the report may not either (`madt_cpus` still counts it).
///
/// Must be called by the BSP, once, before any AP runs (it panics if called twice).
pub(crate) fn register(
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
    // A bitmap of the APIC IDs seen below APIC_ID_LIMIT; larger IDs are rare enough (they
    // cannot be started anyway, see crate::bringup) to be checked against the records.
    let mut seen = [0u64; APIC_ID_LIMIT as usize / 64];
    for cpu in madt {
        madt_cpus = madt_cpus.saturating_add(1);
        if count == CAPACITY {
            continue;
        }
        let id = cpu.apic_id;
        let duplicate = if id < APIC_ID_LIMIT {
            let (word, bit) = ((id / 64) as usize, 1u64 << (id % 64));
            let dup = seen[word] & bit != 0;
            seen[word] |= bit;
            dup
        } else {
            (0..count).any(|i| snapshot_unpublished(i).apic_id == id)
        };
        if duplicate {
            continue;
        }
        let mut record = CpuRecord {
            apic_id: id,
            acpi_uid: cpu.uid,
            ..EMPTY
        };
        if cpu.enabled {
            // SAFETY: count < CAPACITY, so the word is inside the bitmap; only the BSP runs.
            unsafe { (*ENABLED.get())[count / 64] |= 1 << (count % 64) };
        }
        if id == bsp_apic_id {
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

/// Record `index` while [`register`] is still filling the table (BSP only, before publishing).
fn snapshot_unpublished(index: usize) -> CpuRecord {
    // SAFETY: `register` calls this only for indices it has already written, below CAPACITY;
    // no AP runs yet, so nothing writes the record concurrently.
    unsafe { (&raw const (*RECORDS.get())[index]).read_volatile() }
}

/// Number of records in the table.
pub(crate) fn count() -> usize {
    COUNT.load(Ordering::Acquire)
}

/// A pointer to record `index`.
///
/// # Panics
///
/// If `index` is not below [`count`]: a bug in the caller.
fn record(index: usize) -> *mut CpuRecord {
    assert!(index < count(), "CPU record {index} does not exist");
    // SAFETY: index < count() <= CAPACITY, so the element is inside the array; no reference is
    // created, only a raw pointer.
    unsafe { &raw mut (*RECORDS.get())[index] }
}

/// A copy of record `index`, read with a volatile load (CPUs may be stamping it).
///
/// # Panics
///
/// If `index` is not below [`count`].
pub(crate) fn snapshot(index: usize) -> CpuRecord {
    // SAFETY: the record is initialised (index < COUNT, published with Release after the BSP
    // wrote it). Other CPUs only ever write naturally aligned fields of their own record with
    // volatile stores, which x86 performs atomically, so each field read here is either the old
    // or the new value.
    unsafe { record(index).read_volatile() }
}

/// True if the MADT marks the processor of record `index` enabled (not only online-capable).
pub(crate) fn enabled(index: usize) -> bool {
    assert!(index < count(), "CPU record {index} does not exist");
    // SAFETY: index < CAPACITY, so the word is inside the bitmap; only `register` writes it,
    // before publishing COUNT.
    unsafe { (*ENABLED.get())[index / 64] & (1 << (index % 64)) != 0 }
}

/// The APIC ID of record `index` (written once by [`register`], never changed).
pub(crate) fn apic_id(index: usize) -> u32 {
    // SAFETY: as in `snapshot`; nobody writes `apic_id` after `register`.
    unsafe { (&raw const (*record(index)).apic_id).read_volatile() }
}

/// The stamp of `phase` in record `index` (0: not reached).
pub(crate) fn stamp(index: usize, phase: ApPhase) -> u64 {
    // SAFETY: an aligned u64 inside the record; its writer (one CPU) stores it with volatile
    // stores, so this load sees the old value, the new one or, for the Trampoline stamp the
    // trampoline writes in two halves, a value that is non-zero exactly when the AP wrote it.
    unsafe { (&raw const (*record(index)).stamps[phase as usize]).read_volatile() }
}

/// Records `tsc` for `phase` in record `index`. Each phase of a record has one writer: the BSP
/// for Kick, the AP itself for the others.
pub(crate) fn set_stamp(index: usize, phase: ApPhase, tsc: u64) {
    // SAFETY: an aligned u64 inside the record, written only by this phase's one writer, with a
    // volatile store so that CPUs watching the record see it.
    unsafe { (&raw mut (*record(index)).stamps[phase as usize]).write_volatile(tsc) };
}

/// The state of record `index`.
pub(crate) fn state(index: usize) -> u8 {
    // SAFETY: a byte inside the record, read with a volatile load (see `snapshot`).
    unsafe { (&raw const (*record(index)).state).read_volatile() }
}

/// Sets the state of record `index`: the AP sets itself Online; the BSP sets Missing only on
/// APs it has given up on.
pub(crate) fn set_state(index: usize, state: CpuState) {
    // SAFETY: a byte inside the record, written with a volatile store (see `set_stamp`).
    unsafe { (&raw mut (*record(index)).state).write_volatile(state as u8) };
}

/// Adds one to the re-kick count of record `index` (BSP only).
pub(crate) fn add_retry(index: usize) {
    let r = record(index);
    // SAFETY: `retries` is written only by the BSP, which is the caller; volatile because APs
    // write other fields of the same record.
    unsafe {
        let retries = (&raw const (*r).retries).read_volatile();
        (&raw mut (*r).retries).write_volatile(retries.saturating_add(1));
    }
}

/// The re-kick count of record `index`.
pub(crate) fn retries(index: usize) -> u16 {
    // SAFETY: see `add_retry`.
    unsafe { (&raw const (*record(index)).retries).read_volatile() }
}

/// Records the TSC check's result for record `index` (BSP only, after the check): adds `flags`
/// (`CPU_FLAG_TSC_*`) and sets `tsc_warp` and `tsc_adjust`.
pub(crate) fn set_tsc_result(index: usize, flags: u32, warp: u64, adjust: u64) {
    let r = record(index);
    // SAFETY: `flags`, `tsc_warp` and `tsc_adjust` are written only by the BSP (the caller):
    // `flags` by `register` before any AP runs, and all three here after the check; volatile
    // because APs may still write other fields of the record.
    unsafe {
        let old = (&raw const (*r).flags).read_volatile();
        (&raw mut (*r).flags).write_volatile(old | flags);
        (&raw mut (*r).tsc_warp).write_volatile(warp);
        (&raw mut (*r).tsc_adjust).write_volatile(adjust);
    }
}

/// Sets `last_phase` of record `index` from its stamps: the highest phase stamped, plus one.
/// The BSP calls it once bringup is over.
pub(crate) fn settle_last_phase(index: usize) {
    let last = ApPhase::ALL
        .iter()
        .rev()
        .find(|p| stamp(index, **p) != 0)
        .map_or(0, |p| *p as u8 + 1);
    // SAFETY: a byte inside the record that only the BSP writes, after bringup.
    unsafe { (&raw mut (*record(index)).last_phase).write_volatile(last) };
}

/// Lets the AP with `apic_id` find record `index` (BSP only, before it kicks that AP).
///
/// # Panics
///
/// If `apic_id` is not below [`APIC_ID_LIMIT`] or `index` not a record: bugs in the caller.
pub(crate) fn publish_slot(apic_id: u32, index: usize) {
    assert!(apic_id < APIC_ID_LIMIT && index < count() && index < NO_SLOT as usize);
    // SAFETY: the entry is inside the map (checked above); only the BSP writes the map, and only
    // before it kicks the AP that reads this entry, so no AP reads it concurrently. The kick
    // (a supervisor call, then an IPI) orders this store before the AP's load.
    unsafe { (&raw mut (*SLOT_BY_APIC_ID.get())[apic_id as usize]).write_volatile(index as u16) };
}

/// Clears record `index` for an AP about to be brought online again after it was taken
/// offline: its stamps, state (Listed), last phase and re-kick count (BSP only, while the AP is
/// parked in wait-for-SIPI, so nothing else writes the record).
pub(crate) fn reset_for_online(index: usize) {
    let r = record(index);
    // SAFETY: the fields are inside the record; the AP is parked (INIT sent, no SIPI yet), so
    // the BSP (the caller) is the only writer; volatile as everywhere else in the table.
    unsafe {
        (&raw mut (*r).stamps).write_volatile([0; STAMP_SLOTS]);
        (&raw mut (*r).state).write_volatile(CpuState::Listed as u8);
        (&raw mut (*r).last_phase).write_volatile(0);
        (&raw mut (*r).retries).write_volatile(0);
    }
}
