//! The guest-physical memory map and I/O ports that the VMM and the guest agree on.
//!
//! Low memory (below 1 MiB) follows the PC conventions a kernel expects:
//!
//! | range               | use                                                        |
//! |---------------------|------------------------------------------------------------|
//! | `0x0000..0x500`     | real-mode IVT (filled for a multiboot kernel, else zero) and BIOS data area (zero); no kernel may load here |
//! | `0x500..0x528`      | boot GDT for the BSP's entry state                         |
//! | `0x6000..0x6400`    | PVH `hvm_start_info` and its memory map                    |
//! | `0x6400..0x6800`    | multiboot information, its memory map and boot loader name (multiboot entry only) |
//! | `0x6800..0x7000`    | live-state block, written by the bundled guest ([`crate::report::live`]) |
//! | `0x7000..0x8000`    | kernel command line (NUL-terminated)                       |
//! | `0x8000..0x9000`    | AP real-mode trampoline (SIPI vector 0x08)                 |
//! | `0x9000..0xF000`    | VMM-built identity page tables (long-mode entry only)      |
//! | `0x10000..0x19000`  | AP floor table: first-instruction TSC and present flag per APIC ID, written by APs in real mode (floor bringup) |
//! | `0x9FC00..0xA0000`  | where a BIOS keeps its extended data area (no kernel may load here) |
//! | `0xA0000..0xE0000`  | legacy VGA/option-ROM hole: not RAM                         |
//! | `0xE0000..0xFFF00`  | BIOS area: RSDP (found by scanning) and the ACPI tables     |
//! | `0xFFF00..0x100000` | BIOS area: the interrupt handlers the IVT points at (multiboot entry only) |
//! | `0x100000..`        | the kernel image, then free RAM                            |
//!
//! RAM above [`MMIO_HOLE_START`] is relocated above 4 GiB so that the IOAPIC and local APIC
//! windows stay free.
//!
//! These addresses are the bundled guest's ABI. A foreign kernel may load anywhere in RAM
//! outside [`IVT_BDA_END`], [`EBDA_START`]`..`[`BIOS_AREA_END`] and the MMIO hole; the VMM then
//! moves the boot structures its entry needs out of the kernel's way (docs/boot.md, "Where
//! the boot structures go").

use core::mem::size_of;

use crate::acpi::rsdp::RSDP_V2_SIZE;
use crate::multiboot::{MULTIBOOT_INFO_SIZE, MULTIBOOT_MMAP_ENTRY_SIZE};
use crate::pvh::{MEMMAP_ENTRY_SIZE, START_INFO_SIZE};
use crate::report::live::LIVE_STATE_SIZE;

/// Size of a small page (Intel SDM Vol. 3A, 4.5 "4-Level Paging").
pub const PAGE_SIZE: u64 = 0x1000;
/// Size of a large page mapped by a page-directory entry with PS=1 (Intel SDM Vol. 3A, 4.5).
pub const LARGE_PAGE_SIZE: u64 = 0x20_0000;
/// Entries in one 4-level paging structure (Intel SDM Vol. 3A, 4.5: 512 8-byte entries).
const PAGE_TABLE_ENTRIES: u64 = 512;

/// Size of a GDT entry (Intel SDM Vol. 3A, 3.4.5 "Segment Descriptors").
pub const GDT_ENTRY_SIZE: u64 = 8;
/// Real mode addresses the first MiB (Intel SDM Vol. 3B, "8086 Emulation", "Address
/// Translation in Real-Address Mode").
const REAL_MODE_LIMIT: u64 = 0x10_0000;
/// A real-mode segment spans 64 KiB from its base (the selector times 16, a "paragraph").
const REAL_MODE_SEGMENT_SIZE: u64 = 0x1_0000;
/// Real-mode segment bases are multiples of 16.
pub const REAL_MODE_PARAGRAPH: u64 = 16;

/// The real-mode interrupt vector table: [`IVT_VECTORS`] far pointers (offset, then segment)
/// from address 0 (Intel SDM Vol. 3B, "Interrupt and Exception Handling" in real-address
/// mode). The VMM fills it only for a multiboot kernel, as a BIOS would (docs/boot.md).
pub const IVT_ADDR: u64 = 0;
/// Vectors in the real-mode IVT.
pub const IVT_VECTORS: usize = 256;
/// End of the real-mode interrupt vector table (256 four-byte vectors) and the BIOS data area
/// after it (IBM PC convention): no kernel segment or boot structure goes below.
pub const IVT_BDA_END: u64 = 0x500;
/// Where a PC BIOS puts its extended BIOS data area, the last KiB of conventional memory
/// (IBM PC convention; QEMU's SeaBIOS uses 0x9FC00): no kernel segment may load from here to
/// [`BIOS_AREA_END`].
pub const EBDA_START: u64 = 0x9_FC00;

/// Guest-physical address of the boot GDT the VMM writes for the BSP's entry state (the same
/// place Firecracker uses; the kernel loads its own GDT before relying on it).
pub const BOOT_GDT_ADDR: u64 = 0x500;
/// Entries in the boot GDT: null, 64-bit code, 32-bit code, data, TSS.
pub const BOOT_GDT_ENTRIES: usize = 5;
/// Bytes of the boot GDT.
pub const BOOT_GDT_SIZE: u64 = BOOT_GDT_ENTRIES as u64 * GDT_ENTRY_SIZE;

/// Guest-physical address of the PVH `hvm_start_info` structure handed to the kernel in EBX.
pub const START_INFO_ADDR: u64 = 0x6000;
/// Guest-physical address of the PVH memory map (`hvm_memmap_table_entry` array).
pub const MEMMAP_ADDR: u64 = 0x6100;
/// Most memory-map entries the VMM writes, in the PVH memory map and in the multiboot one (the
/// space between [`MEMMAP_ADDR`] and [`MULTIBOOT_INFO_ADDR`]).
pub const MEMMAP_MAX_ENTRIES: usize = 16;
/// Guest-physical address of the multiboot information structure handed to a multiboot kernel
/// in EBX (Multiboot Specification 0.6.96, 3.3 "Boot information format").
pub const MULTIBOOT_INFO_ADDR: u64 = 0x6400;
/// Guest-physical address of the multiboot memory map (`mmap_addr`).
pub const MULTIBOOT_MMAP_ADDR: u64 = 0x6480;
/// Guest-physical address of the NUL-terminated boot loader name (`boot_loader_name`).
pub const MULTIBOOT_LOADER_NAME_ADDR: u64 = 0x6700;
/// Guest-physical address of the (empty) multiboot module list (`mods_addr`).
pub const MULTIBOOT_MODS_ADDR: u64 = 0x6780;
/// The PVH hand-off block, [`START_INFO_ADDR`] up to [`MULTIBOOT_INFO_ADDR`]: start_info and
/// its memory map, moved together (same offsets) when a foreign kernel occupies them.
pub const PVH_HANDOFF_SIZE: u64 = MULTIBOOT_INFO_ADDR - START_INFO_ADDR;
/// The multiboot hand-off block, [`MULTIBOOT_INFO_ADDR`] up to [`LIVE_STATE_ADDR`]: the
/// information, its memory map, the boot loader name and the (empty) module list, moved
/// together (same offsets) when a foreign kernel occupies them.
pub const MULTIBOOT_HANDOFF_SIZE: u64 = LIVE_STATE_ADDR - MULTIBOOT_INFO_ADDR;
/// Guest-physical address of the live-state block ([`crate::report::live`]): the bundled guest
/// writes there where its CPU records and BSP stamps are, so that a VMM that ends the VM early
/// can say what was reached. The VMM writes nothing there (guest memory starts zeroed).
pub const LIVE_STATE_ADDR: u64 = 0x6800;
/// Room for the NUL-terminated boot loader name at [`MULTIBOOT_LOADER_NAME_ADDR`].
pub const MULTIBOOT_LOADER_NAME_ROOM: u64 = 0x80;
/// Room for the module list at [`MULTIBOOT_MODS_ADDR`] (empty unless modules are given, and
/// then the list is placed elsewhere).
pub const MULTIBOOT_MODS_ROOM: u64 = 0x80;

/// Guest-physical address of the NUL-terminated kernel command line.
pub const CMDLINE_ADDR: u64 = 0x7000;
/// Size of the command-line area, terminating NUL included: up to the trampoline.
pub const CMDLINE_MAX: usize = (TRAMPOLINE_ADDR - CMDLINE_ADDR) as usize;

/// Guest-physical address of the AP start-up trampoline. A STARTUP IPI's vector selects the
/// 4 KiB page where the AP starts in real mode (Intel SDM Vol. 3A, 9.4.4.1 and 11.6.1), so this
/// must be page aligned and below 1 MiB.
pub const TRAMPOLINE_ADDR: u64 = 0x8000;
/// Size of the trampoline page.
pub const TRAMPOLINE_MAX: usize = PAGE_SIZE as usize;
/// The SIPI vector that starts an AP at [`TRAMPOLINE_ADDR`]: its page number.
pub const SIPI_VECTOR: u8 = (TRAMPOLINE_ADDR / PAGE_SIZE) as u8;

/// The floor bringup's table, written by each AP in real mode (no mode switch): the TSC of its
/// first trampoline instruction and a present flag, both indexed by APIC ID. It lies below
/// 1 MiB and inside one 64 KiB real-mode segment, [`AP_FLOOR_TABLE_ADDR`]` >> 4`, so that an AP
/// reaches every entry with a 32-bit index and no segment arithmetic.
pub const AP_FLOOR_TABLE_ADDR: u64 = 0x1_0000;
/// Entries in each array of the floor table: one per possible APIC ID.
pub const AP_FLOOR_ENTRIES: u64 = crate::report::MAX_CPUS as u64;
/// Offset of the stamps (`u64` per APIC ID) in the floor table.
pub const AP_FLOOR_STAMPS_OFFSET: u64 = 0;
/// Offset of the present flags (`u8` per APIC ID, non-zero once the AP ran) in the floor table.
pub const AP_FLOOR_PRESENT_OFFSET: u64 =
    AP_FLOOR_STAMPS_OFFSET + size_of::<u64>() as u64 * AP_FLOOR_ENTRIES;
/// Size of the floor table.
pub const AP_FLOOR_TABLE_SIZE: u64 =
    AP_FLOOR_PRESENT_OFFSET + size_of::<u8>() as u64 * AP_FLOOR_ENTRIES;

/// PML4 of the identity map the VMM builds for a kernel entered directly in long mode.
pub const PML4_ADDR: u64 = 0x9000;
/// The one PDPT of that identity map.
pub const PDPT_ADDR: u64 = 0xA000;
/// The first of [`PD_COUNT`] page directories of that identity map.
pub const PD_ADDR: u64 = 0xB000;
/// Page directories of the identity map; each maps 1 GiB with 2 MiB pages.
pub const PD_COUNT: u64 = 4;
/// Bytes of the identity map's tables: PML4, PDPT and page directories, contiguous in that
/// order (moved together, page aligned, when a foreign kernel occupies them).
pub const PAGE_TABLES_SIZE: u64 = PD_ADDR + PD_COUNT * PAGE_SIZE - PML4_ADDR;
/// Bytes identity-mapped by the VMM-built page tables (1 GiB per page directory).
pub const IDENTITY_MAP_SIZE: u64 = PD_COUNT * PAGE_TABLE_ENTRIES * LARGE_PAGE_SIZE;

/// End of conventional low RAM: the legacy VGA hole starts here.
pub const LOW_RAM_END: u64 = 0xA0000;
/// Start of the read-only BIOS area that an OS scans for the RSDP (ACPI 6.5, 5.2.5.1).
pub const BIOS_AREA_START: u64 = 0xE0000;
/// End (exclusive) of the BIOS area: the end of what real mode addresses.
pub const BIOS_AREA_END: u64 = REAL_MODE_LIMIT;
/// Guest-physical address of the RSDP, 16-byte aligned inside the BIOS area.
pub const RSDP_ADDR: u64 = BIOS_AREA_START;
/// Room for the RSDP at [`RSDP_ADDR`].
const RSDP_ROOM: u64 = 0x40;
/// Where the other ACPI tables (XSDT, MADT, ...) start.
pub const ACPI_TABLES_ADDR: u64 = RSDP_ADDR + RSDP_ROOM;
/// End (exclusive) of the ACPI table area: the BIOS interrupt handlers follow.
pub const ACPI_TABLES_END: u64 = BIOS_STUB_ADDR;
/// The interrupt handlers the IVT points at for a multiboot kernel (an IRET, and EOIs for
/// the 8259s' vectors; vmm's `bios_state`), at the top of the BIOS area where a BIOS keeps
/// its code. Written only for a multiboot kernel.
pub const BIOS_STUB_ADDR: u64 = 0xF_FF00;
/// Room for the handlers at [`BIOS_STUB_ADDR`], up to [`BIOS_AREA_END`].
pub const BIOS_STUB_ROOM: u64 = BIOS_AREA_END - BIOS_STUB_ADDR;
/// The real-mode segment the IVT's far pointers use for the handlers: the BIOS's, F000h.
pub const BIOS_STUB_SEGMENT: u16 = 0xF000;
const _: () = assert!(
    BIOS_STUB_ADDR >= BIOS_STUB_SEGMENT as u64 * REAL_MODE_PARAGRAPH
        && BIOS_AREA_END <= BIOS_STUB_SEGMENT as u64 * REAL_MODE_PARAGRAPH + REAL_MODE_SEGMENT_SIZE
);

/// Lowest address sipi's own guest is linked at (the first byte above the BIOS area), and
/// where a multiboot kernel's `mem_upper` counts from. Foreign kernels may load lower.
pub const KERNEL_MIN_ADDR: u64 = BIOS_AREA_END;

/// Where KVM puts the three-page TSS it needs for real-mode emulation on Intel
/// (KVM_SET_TSS_ADDR): inside the MMIO hole, below the IOAPIC, where Firecracker and QEMU put it.
pub const KVM_TSS_ADDR: u64 = 0xFFFB_D000;
/// Start of the 32-bit MMIO hole (IOAPIC, local APIC); RAM beyond this moves above 4 GiB.
pub const MMIO_HOLE_START: u64 = 0xC000_0000;
/// End of the 32-bit MMIO hole.
pub const MMIO_HOLE_END: u64 = 0x1_0000_0000;

/// Default physical base of the local APIC (Intel SDM Vol. 3A, 11.4.1, IA32_APIC_BASE).
pub const LAPIC_BASE: u64 = 0xFEE0_0000;
/// Physical base of the I/O APIC that KVM's in-kernel irqchip emulates.
pub const IOAPIC_BASE: u64 = 0xFEC0_0000;
/// The IOAPIC's ID in the MADT: the first ID after the local APICs of a small VM is not needed,
/// KVM's IOAPIC answers any ID, so sipi uses 0 as QEMU and Cloud Hypervisor do.
pub const IOAPIC_ID: u8 = 0;

/// I/O port of the first 16550/8250 UART (COM1), used as the console.
pub const COM1_PORT: u16 = 0x3F8;
/// Number of UART registers starting at [`COM1_PORT`].
pub const COM1_PORT_COUNT: u16 = 8;

/// QEMU's isa-debug-exit device (`-device isa-debug-exit,iobase=0xf4`): a write of value `v`
/// ends the VM, and QEMU exits with status `(v << 1) | 1`.
pub const DEBUG_EXIT_PORT: u16 = 0xF4;
/// QEMU fw_cfg selector register (docs/specs/fw_cfg.rst, "Register Locations", x86): a 16-bit
/// write selects an item and resets the data offset.
pub const FW_CFG_PORT_SEL: u16 = 0x510;
/// QEMU fw_cfg data register: each 8-bit read returns the next byte of the selected item.
pub const FW_CFG_PORT_DATA: u16 = 0x511;
/// The 8042 keyboard controller's data port.
pub const I8042_DATA_PORT: u16 = 0x60;
/// The 8042 keyboard controller's status (read) and command (write) port.
pub const I8042_COMMAND_PORT: u16 = 0x64;
/// The 8042 controller command that pulses only the CPU reset line: what the FADT's
/// RESET_VALUE writes to its RESET_REG ([`I8042_COMMAND_PORT`]), and what ends the VM.
pub const I8042_CMD_RESET: u8 = 0xFE;
/// The MC146818 RTC/CMOS index register (bit 7 masks NMI).
pub const CMOS_INDEX_PORT: u16 = 0x70;
/// The MC146818 RTC/CMOS data register.
pub const CMOS_DATA_PORT: u16 = 0x71;
/// The CMOS register holding the century (BCD), as the FADT's CENTURY field names it (IBM PC
/// convention).
pub const CMOS_CENTURY_INDEX: u8 = 0x32;
/// The POST diagnostic port, written by kernels as an I/O delay.
pub const POST_CODE_PORT: u16 = 0x80;
/// System Control Port A ("port 92"): bit 1 gates A20, bit 0 resets the machine.
pub const SYSTEM_CONTROL_A_PORT: u16 = 0x92;
/// PCI configuration mechanism #1 CONFIG_ADDRESS (PCI Local Bus Specification 3.0, 3.2.2.3.2).
pub const PCI_CONFIG_ADDRESS_PORT: u16 = 0xCF8;
/// PCI configuration mechanism #1 CONFIG_DATA (four ports).
pub const PCI_CONFIG_DATA_PORT: u16 = 0xCFC;
/// The PIIX/ICH Reset Control Register, a byte inside CONFIG_ADDRESS's dword.
pub const RESET_CONTROL_PORT: u16 = PCI_CONFIG_ADDRESS_PORT + 1;
/// ACPI PM1a control block (ACPI 6.5, 4.8.3.2 "PM1 Control Registers"), 2 bytes, as the FADT's
/// PM1a_CNT_BLK describes it (the port Cloud Hypervisor uses for its ACPI power-off).
pub const ACPI_PM1A_CNT_PORT: u16 = 0x600;
/// Length of the PM1a control block (FADT PM1_CNT_LEN).
pub const ACPI_PM1_CNT_LEN: u8 = 2;
/// ACPI PM1a event block (ACPI 6.5, 4.8.3.1): PM1 status then PM1 enable, 2 bytes each.
pub const ACPI_PM1A_EVT_PORT: u16 = 0x604;
/// Length of the PM1a event block (FADT PM1_EVT_LEN).
pub const ACPI_PM1_EVT_LEN: u8 = 4;
/// The SLP_TYPx value of the S5 (soft-off) state: what the DSDT's `\_S5` package names and
/// what a write to PM1a_CNT must carry, with SLP_EN, to power the VM off.
pub const ACPI_SLP_TYP_S5: u8 = 5;
/// The SLP_TYPx value of the S3 (suspend-to-RAM) state: what the DSDT's `\_S3` package names
/// and what a write to PM1a_CNT must carry, with SLP_EN, to suspend the VM. 1, as on QEMU's
/// PC machines, whose value kernels written for them (kvm-unit-tests' `s3`) hard-code.
pub const ACPI_SLP_TYP_S3: u8 = 1;
/// The ISA IRQ of the ACPI SCI named in the FADT (IRQ 9, as on PC chipsets).
pub const ACPI_SCI_IRQ: u16 = 9;

/// sipi's paravirtual report doorbell: a 32-bit `out` of the report's guest-physical address.
pub const REPORT_PORT: u16 = 0x700;
/// sipi's paravirtual exit port: a 32-bit `out` of the guest's exit status ends the VM.
pub const EXIT_PORT: u16 = 0x704;
/// sipi's paravirtual console doorbell: a 32-bit `out` of the guest-physical address (below
/// 4 GiB, 4-byte aligned) of a console record, `len u32` then `len` bytes of text, at most
/// [`CONSOLE_MAX_LEN`]. The VMM copies the text to the console as if written to COM1's
/// transmit register: a whole line in one VM exit where the UART takes one per byte. Used by
/// the bundled guest only when its command line says `sipi.console=port`.
pub const CONSOLE_PORT: u16 = 0x708;
/// Most text bytes in one console record.
pub const CONSOLE_MAX_LEN: u32 = 1024;
/// sipi's paravirtual vCPU-readiness port, for a BSP that runs while the VMM is still creating
/// the other vCPUs (`vmm --bsp-start early`): an INIT or STARTUP sent to an APIC ID whose vCPU
/// does not exist yet is lost. A 32-bit `out` names the APIC ID the guest wants to kick; the
/// 32-bit `in` that follows blocks until that vCPU is ready (created and configured) and
/// returns a bound: every vCPU with a lower APIC ID is ready, and [`VCPUS_ALL_READY`] means
/// every vCPU is. The VMM creates vCPUs in APIC ID order. Without a pending `out`, the `in`
/// returns the bound at once. When the VMM created every vCPU before the BSP ran, the bound is
/// always [`VCPUS_ALL_READY`].
pub const VCPUS_READY_PORT: u16 = 0x70C;
/// The bound [`VCPUS_READY_PORT`] returns once every vCPU is ready; as an `out`, asks for all.
pub const VCPUS_ALL_READY: u32 = u32::MAX;

/// QEMU's pc-testdev (hw/misc/pc-testdev.c), which kvm-unit-tests use: its 32-bit test
/// register, read and written at any size and offset.
pub const PC_TESTDEV_PORT: u16 = 0xE0;
/// pc-testdev's flush-page port: a 32-bit write of a guest-physical address drops the host
/// mapping of that page, so the guest's next access to it faults into KVM.
pub const PC_TESTDEV_FLUSH_PORT: u16 = 0xE4;
/// pc-testdev's test register again, reached one byte at a time (wider accesses are split).
pub const PC_TESTDEV_BYTE_PORT: u16 = 0xE8;
/// Ports of each of pc-testdev's three 4-port windows.
pub const PC_TESTDEV_WINDOW: u16 = 4;
/// pc-testdev's interrupt lines: a byte write of `v` to port `0x2000 + n` sets ISA IRQ line
/// `n` high if `v` is nonzero, low otherwise.
pub const PC_TESTDEV_IRQ_PORT: u16 = 0x2000;
/// Lines behind [`PC_TESTDEV_IRQ_PORT`]: one per pin of the IOAPIC.
pub const PC_TESTDEV_IRQ_LINES: u16 = 24;
/// pc-testdev's MMIO test memory (QEMU's `iomem`): plain bytes that every access reaches
/// through an MMIO exit, inside the MMIO hole.
pub const PC_TESTDEV_IOMEM_BASE: u64 = 0xFF00_0000;
/// Size of pc-testdev's MMIO test memory (QEMU's `IOMEM_LEN`).
pub const PC_TESTDEV_IOMEM_LEN: u64 = 0x1_0000;
/// Physical base of the HPET's register block (IA-PC HPET 1.0a, 2.3; where PC chipsets and
/// QEMU put it), named by the ACPI HPET table.
pub const HPET_BASE: u64 = 0xFED0_0000;
/// Size of the HPET's register block (1 KiB: the general registers and 32 timers' worth).
pub const HPET_LEN: u64 = 0x400;
/// Firecracker's boot timer on x86: a guest that writes the byte
/// [`BOOT_TIMER_MAGIC`] here marks its boot complete (Firecracker's `MMIO_MEM_START`, the first
/// MMIO device window of its x86 layout; its `devices/pseudo/boot_timer.rs`).
pub const BOOT_TIMER_BASE: u64 = 0xD000_0000;
/// Size of the boot timer's window (one of Firecracker's `MMIO_LEN` device windows).
pub const BOOT_TIMER_LEN: u64 = 0x1000;
/// The byte that signals boot complete (Firecracker's `MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE`).
pub const BOOT_TIMER_MAGIC: u8 = 123;

// The fixed areas must fit where they are documented to be.
const _: () = assert!(PD_ADDR + PD_COUNT * PAGE_SIZE <= LOW_RAM_END);
const _: () = assert!(IVT_BDA_END <= BOOT_GDT_ADDR && EBDA_START < LOW_RAM_END);
const _: () = assert!(PDPT_ADDR == PML4_ADDR + PAGE_SIZE && PD_ADDR == PDPT_ADDR + PAGE_SIZE);
const _: () = assert!(BOOT_GDT_ADDR + BOOT_GDT_ENTRIES as u64 * GDT_ENTRY_SIZE <= START_INFO_ADDR);
const _: () = assert!(START_INFO_ADDR + START_INFO_SIZE as u64 <= MEMMAP_ADDR);
const _: () =
    assert!(MEMMAP_ADDR + (MEMMAP_MAX_ENTRIES * MEMMAP_ENTRY_SIZE) as u64 <= MULTIBOOT_INFO_ADDR);
const _: () = assert!(MULTIBOOT_INFO_ADDR + MULTIBOOT_INFO_SIZE as u64 <= MULTIBOOT_MMAP_ADDR);
const _: () = assert!(
    MULTIBOOT_MMAP_ADDR + (MEMMAP_MAX_ENTRIES * MULTIBOOT_MMAP_ENTRY_SIZE) as u64
        <= MULTIBOOT_LOADER_NAME_ADDR
);
const _: () =
    assert!(MULTIBOOT_LOADER_NAME_ADDR + MULTIBOOT_LOADER_NAME_ROOM <= MULTIBOOT_MODS_ADDR);
const _: () = assert!(MULTIBOOT_MODS_ADDR + MULTIBOOT_MODS_ROOM <= LIVE_STATE_ADDR);
const _: () = assert!(LIVE_STATE_ADDR + LIVE_STATE_SIZE as u64 <= CMDLINE_ADDR);
const _: () = assert!(RSDP_ADDR + RSDP_V2_SIZE as u64 <= ACPI_TABLES_ADDR);
const _: () =
    assert!(TRAMPOLINE_ADDR.is_multiple_of(PAGE_SIZE) && TRAMPOLINE_ADDR < REAL_MODE_LIMIT);
// The MMIO devices lie in the MMIO hole (above the IOAPIC), clear of the APICs, the TSS and each other.
const _: () =
    assert!(BOOT_TIMER_BASE >= MMIO_HOLE_START && BOOT_TIMER_BASE + BOOT_TIMER_LEN <= IOAPIC_BASE);
const _: () = assert!(HPET_BASE >= IOAPIC_BASE + PAGE_SIZE && HPET_BASE + HPET_LEN <= LAPIC_BASE);
const _: () = assert!(
    PC_TESTDEV_IOMEM_BASE >= LAPIC_BASE + PAGE_SIZE
        && PC_TESTDEV_IOMEM_BASE + PC_TESTDEV_IOMEM_LEN <= KVM_TSS_ADDR
);
// The floor table is one real-mode segment: paragraph-aligned base, at most 64 KiB, in low RAM.
const _: () = assert!(
    AP_FLOOR_TABLE_ADDR.is_multiple_of(REAL_MODE_PARAGRAPH)
        && AP_FLOOR_TABLE_SIZE <= REAL_MODE_SEGMENT_SIZE
        && AP_FLOOR_TABLE_ADDR + AP_FLOOR_TABLE_SIZE <= LOW_RAM_END
);

/// Returns true if `[addr, addr + len)` lies inside the range `[start, end)`.
pub const fn range_within(addr: u64, len: u64, start: u64, end: u64) -> bool {
    match addr.checked_add(len) {
        Some(last) => addr >= start && last <= end,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_areas_do_not_overlap() {
        let areas = [
            (
                BOOT_GDT_ADDR,
                BOOT_GDT_ADDR + BOOT_GDT_ENTRIES as u64 * GDT_ENTRY_SIZE,
            ),
            (START_INFO_ADDR, MEMMAP_ADDR),
            (MEMMAP_ADDR, MULTIBOOT_INFO_ADDR),
            (MULTIBOOT_INFO_ADDR, MULTIBOOT_MMAP_ADDR),
            (MULTIBOOT_MMAP_ADDR, MULTIBOOT_LOADER_NAME_ADDR),
            (MULTIBOOT_LOADER_NAME_ADDR, MULTIBOOT_MODS_ADDR),
            (MULTIBOOT_MODS_ADDR, LIVE_STATE_ADDR),
            (LIVE_STATE_ADDR, CMDLINE_ADDR),
            (CMDLINE_ADDR, CMDLINE_ADDR + CMDLINE_MAX as u64),
            (TRAMPOLINE_ADDR, TRAMPOLINE_ADDR + TRAMPOLINE_MAX as u64),
            (PML4_ADDR, PD_ADDR + PD_COUNT * PAGE_SIZE),
            (
                AP_FLOOR_TABLE_ADDR,
                AP_FLOOR_TABLE_ADDR + AP_FLOOR_TABLE_SIZE,
            ),
            (BIOS_AREA_START, BIOS_AREA_END),
        ];
        for pair in areas.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "{:x?} overlaps {:x?}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn sipi_vector_points_at_the_trampoline() {
        assert_eq!(u64::from(SIPI_VECTOR) * PAGE_SIZE, TRAMPOLINE_ADDR);
    }

    #[test]
    fn range_within_rejects_wrapping_and_outside() {
        assert!(range_within(0x1000, 0x1000, 0x1000, 0x2000));
        assert!(!range_within(0x1000, 0x1001, 0x1000, 0x2000));
        assert!(!range_within(u64::MAX, 2, 0, u64::MAX));
        assert!(!range_within(0xFFF, 1, 0x1000, 0x2000));
    }
}
