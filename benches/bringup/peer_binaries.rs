//! Which peer VMMs the comparison runs, and where their binaries are: QEMU from PATH, Cloud
//! Hypervisor and Firecracker from `SIPI_PEER_CLOUD_HYPERVISOR` and `SIPI_PEER_FIRECRACKER`
//! (they are not packaged where this project can install from; docs/benchmarks.md, "Peers").

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The variable naming a Cloud Hypervisor binary.
pub const CLOUD_HYPERVISOR_VAR: &str = "SIPI_PEER_CLOUD_HYPERVISOR";
/// The variable naming a Firecracker binary.
pub const FIRECRACKER_VAR: &str = "SIPI_PEER_FIRECRACKER";

/// What one peer comparison boots.
#[derive(Debug, Clone, Default)]
pub struct Binaries {
    /// sipi's vmm.
    pub vmm: PathBuf,
    /// sipi's bundled guest as a file (for `--kernel`-less sipi it is embedded; QEMU boots this).
    pub guest: PathBuf,
    /// The minimal PVH kernel that ends every VMM at once (tests/kernels/pvh_exit_now.s).
    pub minimal_kernel: PathBuf,
    /// qemu-system-x86_64, unless QEMU is not installed or `--no-qemu`.
    pub qemu: Option<PathBuf>,
    pub cloud_hypervisor: Option<PathBuf>,
    pub firecracker: Option<PathBuf>,
}

/// `value` of the variable `var` as a peer binary: it must be an executable regular file.
pub fn executable(var: &str, value: &Path) -> Result<PathBuf, String> {
    let meta = std::fs::metadata(value)
        .map_err(|e| format!("{var}={} cannot be used: {e}", value.display()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "{var}={} is not an executable file",
            value.display()
        ));
    }
    Ok(value.to_path_buf())
}

/// The binary `var` names, if it is set (an empty value counts as unset).
pub fn from_env(var: &str) -> Result<Option<PathBuf>, String> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => executable(var, Path::new(&v)).map(Some),
        _ => Ok(None),
    }
}

/// Checks the kernel files the rows boot exist (`make build` makes both): the minimal kernel,
/// and the bundled guest as a file when QEMU boots it (sipi boots the one embedded in it).
pub fn check_inputs(b: &Binaries) -> Result<(), String> {
    let guest = b.qemu.is_some().then_some(("the bundled guest", &b.guest));
    for (what, p) in guest
        .into_iter()
        .chain([("the minimal kernel", &b.minimal_kernel)])
    {
        if !p.is_file() {
            return Err(format!(
                "{what} {} is missing: run `make build` first",
                p.display()
            ));
        }
    }
    Ok(())
}
