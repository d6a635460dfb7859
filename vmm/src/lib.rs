//! sipi's VMM as a library: the `vmm` binary is a thin wrapper around [`cli::run`].
//!
//! The layers, each importing only those before it (docs/design.md):
//! 1. vocabulary: [`status`] (exit statuses), [`error_line`] and [`logging`] (diagnostics on stderr);
//! 2. parts: [`kvm`], [`kvm_stats`] (KVM's own counters), [`memory`], [`loader`], [`arch`] (x86-64: topology, CPUID, registers,
//!    ACPI, boot hand-off), [`devices`], `seccomp`, `event_loop`, `output`;
//! 3. [`config`]: one validated configuration of a boot;
//! 4. [`vcpu`]: a vCPU, its setup and its one run loop;
//! 5. [`report`]: the guest's report, checked, and the typed outcome with its two views;
//! 6. [`vm`]: a boot in three steps (create, run, conclude), and [`memslot_burst`];
//! 7. [`cli`]: the command line.

// `pub` only for what the binary, tests, benches and fuzz targets use; the rest is pub(crate).
#![warn(unreachable_pub)]

pub(crate) mod arch;
pub mod cli;
pub mod config;
pub mod devices;
pub mod error_line;
pub(crate) mod event_loop;
pub(crate) mod fds;
pub mod kvm;
pub mod kvm_stats;
pub mod loader;
pub mod logging;
pub mod memory;
pub mod memslot_burst;
pub(crate) mod output;
pub mod report;
pub mod seccomp;
pub mod status;
pub(crate) mod vcpu;
pub mod vm;

pub use error_line::error_line;

/// The bundled guest kernel, built by build.rs.
pub static EMBEDDED_GUEST: &[u8] = include_bytes!(env!("SIPI_EMBEDDED_GUEST"));
