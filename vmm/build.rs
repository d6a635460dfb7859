//! Builds the bundled guest kernel and embeds it in the `vmm` binary.
//!
//! The guest is a freestanding kernel built with the host target only (no other target is
//! installed): an explicit `--target` keeps the guest's codegen flags away from build scripts
//! and proc macros, and `guest/build.rs` supplies the link arguments. The guest is built in
//! target/guest-build (make copies it to target/guest.elf); `SIPI_GUEST_ELF=path` embeds another
//! kernel instead.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The only target installed on our machines; also the host.
const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";
/// Codegen flags for a freestanding kernel linked below 2 GiB (guest/build.rs has the link
/// arguments).
const GUEST_RUSTFLAGS: &[&str] = &["-Crelocation-model=static", "-Cno-redzone=yes"];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("vmm/ has a parent")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-env-changed=SIPI_GUEST_ELF");

    let elf = match env::var_os("SIPI_GUEST_ELF") {
        Some(path) => {
            let path = PathBuf::from(path);
            println!("cargo:rerun-if-changed={}", path.display());
            path
        }
        None => build_guest(&root),
    };
    let embedded = out_dir.join("guest.elf");
    std::fs::copy(&elf, &embedded)
        .unwrap_or_else(|e| panic!("cannot copy the guest kernel {}: {e}", elf.display()));
    println!("cargo:rustc-env=SIPI_EMBEDDED_GUEST={}", embedded.display());
}

fn build_guest(root: &Path) -> PathBuf {
    for dir in [
        "guest/src",
        "guest/Cargo.toml",
        "guest/build.rs",
        "guest/linker.ld",
        "firmware/src",
        "firmware/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    // One guest build directory per target directory, shared by every profile of the vmm
    // build, so `make` can copy the result to target/guest.elf.
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("guest-build");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            GUEST_TARGET,
            "--manifest-path",
        ])
        .arg(root.join("guest/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", GUEST_RUSTFLAGS.join("\x1f"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("cannot run cargo to build the guest");
    assert!(status.success(), "building the guest kernel failed");
    target_dir.join(GUEST_TARGET).join("release").join("guest")
}
