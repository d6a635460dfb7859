//! x86-64: the CPU topology, CPUID, the boot GDT, page tables and register state, the TSC, the
//! ACPI tables, the boot hand-off structures, the legacy interrupt routing, and the reset state
//! of a resume from S3.

pub(crate) mod acpi;
pub(crate) mod boot_info;
pub(crate) mod cpuid;
pub(crate) mod gdt;
pub(crate) mod irq_routing;
pub(crate) mod paging;
pub(crate) mod regs;
pub(crate) mod reset;
pub(crate) mod topology;
pub(crate) mod tsc;
