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
//!
//! Every binary layout (a report, the live-state block, `hvm_start_info`, the multiboot
//! information, an ACPI table header or MADT structure) is defined once, as a `#[repr(C)]`
//! structure with [`zerocopy`] derives: encoders write its bytes, decoders read it back from a
//! bounds-checked byte slice, and the size constants are its `size_of`, checked against the
//! specification's size at compile time.
#![no_std]

// The layouts use native integers where the specification aligns them naturally (the report
// protocol, PVH, multiboot): they are little endian on the wire, and so must the target be.
const _: () = assert!(
    cfg!(target_endian = "little"),
    "the firmware crate's wire layouts are little endian"
);

pub mod acpi;
pub mod bytes;
pub mod cmdline;
pub mod layout;
pub mod multiboot;
pub mod pvh;
pub mod report;
mod word_enum;

#[cfg(test)]
extern crate std;
