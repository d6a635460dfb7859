//! Opening the KVM device and checking what the VMM relies on.

use std::io;
use std::path::Path;

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Cap, Kvm};

/// The only KVM API version there has ever been (Documentation/virt/kvm/api.rst, 4.1).
pub const KVM_API_VERSION: i32 = 12;

/// Capabilities without which sipi cannot boot anything.
const REQUIRED_CAPS: &[(Cap, &str)] = &[
    (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
    (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
    (Cap::Pit2, "KVM_CAP_PIT2"),
    (Cap::SetTssAddr, "KVM_CAP_SET_TSS_ADDR"),
    (Cap::ExtCpuid, "KVM_CAP_EXT_CPUID"),
    (Cap::MpState, "KVM_CAP_MP_STATE"),
];

/// Why KVM cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// The device node does not exist.
    #[error(
        "{0} does not exist: load the kvm module (kvm_intel or kvm_amd) and enable virtualisation"
    )]
    Missing(String),
    /// No permission to open it.
    #[error("permission denied opening {0}: add your user to the 'kvm' group or run as root")]
    Permission(String),
    /// Any other open failure.
    #[error("cannot open {path}")]
    Open {
        path: String,
        #[source]
        source: io::Error,
    },
    /// The file answers no KVM ioctl.
    #[error("{0} is not a KVM device")]
    NotKvm(String),
    /// A KVM with another API.
    #[error("KVM API version {0} is not supported (version {KVM_API_VERSION} is required)")]
    ApiVersion(i32),
    /// A capability sipi needs is missing.
    #[error("KVM lacks the {0} capability")]
    MissingCap(&'static str),
    /// KVM_GET_SUPPORTED_CPUID failed.
    #[error("cannot read KVM's supported CPUID")]
    SupportedCpuid(#[source] kvm_ioctls::Error),
}

/// An open, checked KVM.
pub struct KvmHost {
    /// The KVM system handle.
    pub kvm: Kvm,
    /// KVM_CAP_MAX_VCPUS.
    pub max_vcpus: u32,
    /// KVM_CAP_NR_MEMSLOTS.
    pub nr_memslots: u32,
    /// KVM_CAP_X2APIC_API is available.
    pub x2apic_api: bool,
    /// KVM_GET_SUPPORTED_CPUID, read once and patched per vCPU.
    pub supported_cpuid: CpuId,
}

impl KvmHost {
    /// Opens `path` and checks the API version and every required capability.
    pub fn open(path: &Path) -> Result<Self, KvmError> {
        let shown = path.display().to_string();
        let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| KvmError::Missing(shown.clone()))?;
        let kvm = Kvm::new_with_path(cpath).map_err(|e| match e.errno() {
            libc::ENOENT => KvmError::Missing(shown.clone()),
            libc::EACCES | libc::EPERM => KvmError::Permission(shown.clone()),
            errno => KvmError::Open {
                path: shown.clone(),
                source: io::Error::from_raw_os_error(errno),
            },
        })?;
        match kvm.get_api_version() {
            KVM_API_VERSION => {}
            v if v < 0 => return Err(KvmError::NotKvm(shown)),
            v => return Err(KvmError::ApiVersion(v)),
        }
        for (cap, name) in REQUIRED_CAPS {
            if !kvm.check_extension(*cap) {
                return Err(KvmError::MissingCap(name));
            }
        }
        let supported_cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(KvmError::SupportedCpuid)?;
        Ok(Self {
            max_vcpus: u32::try_from(kvm.get_max_vcpus()).unwrap_or(u32::MAX),
            nr_memslots: u32::try_from(kvm.get_nr_memslots()).unwrap_or(u32::MAX),
            x2apic_api: kvm.check_extension(Cap::X2ApicApi),
            supported_cpuid,
            kvm,
        })
    }

    /// The guest physical address width KVM's CPUID advertises (leaf 0x8000_0008 EAX[7:0],
    /// AMD APM Vol. 3, E.4.7; Intel SDM Vol. 2A CPUID), or 36 bits when absent.
    pub fn phys_addr_bits(&self) -> u32 {
        /// CPUID leaf reporting address sizes.
        const LEAF_ADDRESS_SIZES: u32 = 0x8000_0008;
        /// The architectural minimum with PAE (Intel SDM Vol. 3A, 4.1.4).
        const DEFAULT_PHYS_BITS: u32 = 36;
        self.supported_cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == LEAF_ADDRESS_SIZES)
            .map(|e| e.eax & 0xFF)
            .filter(|bits| *bits > 0)
            .unwrap_or(DEFAULT_PHYS_BITS)
    }
}

/// /dev/kvm for a unit test that needs the real KVM: None (the test returns early, and says
/// so) only when it cannot be opened and `SIPI_SKIP_KVM=1` is set; otherwise a failure to
/// open it fails the test loudly.
#[cfg(test)]
pub(crate) fn kvm_for_test() -> Option<Kvm> {
    match Kvm::new() {
        Ok(kvm) => Some(kvm),
        Err(e) if std::env::var_os("SIPI_SKIP_KVM").is_some_and(|v| v == "1") => {
            eprintln!("skipping: cannot open /dev/kvm ({e}) and SIPI_SKIP_KVM=1");
            None
        }
        Err(e) => panic!("cannot open /dev/kvm ({e}); set SIPI_SKIP_KVM=1 to skip this test"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_non_kvm_devices_are_clear_errors() {
        let e = KvmHost::open(Path::new("/nonexistent/kvm")).err().unwrap();
        assert!(matches!(e, KvmError::Missing(_)), "{e}");
        let e = KvmHost::open(Path::new("/dev/null")).err().unwrap();
        assert!(matches!(e, KvmError::NotKvm(_)), "{e}");
        assert_eq!(e.to_string(), "/dev/null is not a KVM device");
    }
}
