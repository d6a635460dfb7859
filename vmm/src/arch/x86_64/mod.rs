//! x86-64: the CPU topology, CPUID, the boot GDT, page tables and register state, the TSC, the
//! ACPI tables, the boot hand-off structures and the legacy interrupt routing.

pub mod acpi;
pub mod boot_info;
pub mod cpuid;
pub(crate) mod gdt;
pub mod irq_routing;
pub(crate) mod paging;
pub mod regs;
pub mod topology;
pub mod tsc;
