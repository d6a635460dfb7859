//! Link arguments for the freestanding guest kernel.
//!
//! The guest is built for the host target (`x86_64-unknown-linux-gnu`, see vmm/build.rs), so
//! the link must drop the C runtime and libraries, stay static and non-PIE, and use our own
//! linker script. The kernel's load address and the page size come from the firmware crate so
//! that they are written in one place only.

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = manifest_dir.join("linker.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");

    let link_args = [
        "-nostartfiles".to_owned(),
        "-nostdlib".to_owned(),
        "-static".to_owned(),
        "-no-pie".to_owned(),
        "-Wl,--build-id=none".to_owned(),
        format!(
            "-Wl,--defsym=__kernel_load_addr={:#x}",
            firmware::layout::KERNEL_MIN_ADDR
        ),
        format!(
            "-Wl,--defsym=__page_size={:#x}",
            firmware::layout::PAGE_SIZE
        ),
        format!("-T{}", script.display()),
    ];
    for arg in link_args {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
