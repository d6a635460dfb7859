//! sipi's firmware crate: everything the VMM and the guest must agree on.
//!
//! - [`layout`]: every fixed guest-physical address and I/O port, in one place.
//! - [`pvh`]: the PVH boot hand-off (`hvm_start_info`, memory map, ELF note type).
//! - [`multiboot`]: the multiboot v1 header and boot information, for foreign kernels.
//! - [`acpi`]: encoding and decoding of the ACPI tables sipi builds (RSDP, XSDT, MADT).
//! - [`report`]: the guest-to-VMM report protocol (one doorbell write, one validated report).
//! - [`cmdline`]: the guest options the VMM passes on the kernel command line.
//!
//! The crate is `no_std` and allocation-free so that the guest kernel can use it as is.
#![no_std]

pub mod acpi;
pub mod bytes;
pub mod cmdline;
pub mod layout;
pub mod multiboot;
pub mod pvh;
pub mod report;

#[cfg(test)]
extern crate std;
