//! Per-vCPU CPUID: KVM's supported CPUID, patched with the vCPU's APIC ID, the VM's topology
//! and the TSC frequency.
//!
//! The topology is flat: every vCPU is one core of one package, with one thread per core, and
//! x2APIC ID = APIC ID = vCPU index. What a guest reads:
//!
//! - leaf 1: the low 8 bits of its APIC ID, the logical processor count (saturated at 255),
//!   HTT when there is more than one vCPU, x2APIC and hypervisor-present;
//! - leaves 0xB and 0x1F: an SMT level (1 thread) and a core level (all vCPUs), with the full
//!   x2APIC ID in EDX. KVM reports these leaves without topology (only an empty subleaf 0), so
//!   sipi adds the subleaves it describes;
//! - leaf 4 (Intel): cores per package;
//! - leaves 0x8000_0008 and 0x8000_001E (AMD and Hygon only): thread count, APIC ID width,
//!   extended APIC ID;
//! - leaf 0x4000_0010 when the TSC frequency is known: TSC and APIC bus frequencies in kHz.
//!
//! Every leaf, bit and field is named in [`leaf`] after its spec.

mod leaf;
#[cfg(test)]
mod tests;

use kvm_bindings::{
    kvm_cpuid_entry2, CpuId, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, KVM_MAX_CPUID_ENTRIES,
};
use leaf::*;

/// What one vCPU's CPUID describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuidParams {
    /// The vCPU's (x2)APIC ID.
    pub apic_id: u32,
    /// vCPUs in the VM (all in one package). 0 is treated as 1.
    pub vcpu_count: u32,
    /// TSC frequency from KVM_GET_TSC_KHZ, advertised in leaf 0x4000_0010 when known.
    pub tsc_khz: Option<u32>,
}

/// Why CPUID could not be patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CpuidError {
    /// The entries sipi must add do not fit in a `kvm_cpuid2` (KVM_MAX_CPUID_ENTRIES).
    #[error(
        "the CPUID list has room for {free} more entries, but the topology and hypervisor \
         leaves need {needed}"
    )]
    Full {
        /// Entries that had to be added.
        needed: usize,
        /// Free slots left in the list.
        free: usize,
    },
}

/// Patches KVM's supported CPUID for one vCPU.
///
/// Entries the topology and hypervisor leaves need but KVM does not list are added first; if
/// they do not fit, `cpuid` is left unchanged and [`CpuidError::Full`] is returned. Patching
/// an already patched list again with the same parameters changes nothing.
pub(crate) fn patch(cpuid: &mut CpuId, p: &CpuidParams) -> Result<(), CpuidError> {
    let missing = missing_entries(cpuid.as_slice(), p);
    let free = KVM_MAX_CPUID_ENTRIES.saturating_sub(cpuid.as_slice().len());
    let full = CpuidError::Full {
        needed: missing.len(),
        free,
    };
    if missing.len() > free {
        return Err(full);
    }
    for entry in missing {
        cpuid.push(entry).map_err(|_| full)?;
    }

    let topology = Topology::new(p);
    let vendor = vendor(cpuid.as_slice());
    for entry in cpuid.as_mut_slice() {
        patch_entry(entry, &topology, vendor, p.tsc_khz);
    }
    Ok(())
}

/// The flat topology, derived once per vCPU.
struct Topology {
    /// The vCPU's x2APIC ID.
    apic_id: u32,
    /// vCPUs in the package (at least 1).
    vcpus: u32,
    /// Bits an APIC ID needs to tell the package's vCPUs apart: ceil(log2(vcpus)).
    id_bits: u32,
}

impl Topology {
    fn new(p: &CpuidParams) -> Self {
        let vcpus = p.vcpu_count.max(1);
        Self {
            apic_id: p.apic_id,
            vcpus,
            id_bits: u32::BITS - (vcpus - 1).leading_zeros(),
        }
    }
}

/// CPU vendors whose topology leaves differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vendor {
    /// AMD or Hygon: leaves 0x8000_0008 and 0x8000_001E describe the topology.
    Amd,
    /// Anyone else (Intel): those leaves are reserved there and left alone.
    Other,
}

fn vendor(entries: &[kvm_cpuid_entry2]) -> Vendor {
    let leaf0 = entries.iter().find(|e| e.function == BASIC_INFO);
    match leaf0.map(|e| [e.ebx, e.edx, e.ecx]) {
        Some(v) if v == VENDOR_AMD || v == VENDOR_HYGON => Vendor::Amd,
        _ => Vendor::Other,
    }
}

/// The entries `patch` fills in but KVM's list lacks, zeroed except for their identity (and
/// the hypervisor signature):
/// - subleaves 0 and 1 of leaf 0xB, when leaf 0 is there to raise the highest basic leaf to
///   it, and of leaf 0x1F when KVM lists that leaf (KVM lists only an empty subleaf 0; a
///   topology leaf is valid only with subleaf 1, and KVM itself answers higher subleaves then);
/// - leaves 0x4000_0000 and 0x4000_0010 when the TSC frequency is known.
fn missing_entries(entries: &[kvm_cpuid_entry2], p: &CpuidParams) -> Vec<kvm_cpuid_entry2> {
    let has_leaf = |function: u32| entries.iter().any(|e| e.function == function);
    let has_subleaf = |function: u32, index: u32| {
        entries
            .iter()
            .any(|e| e.function == function && e.index == index)
    };
    let mut missing = Vec::new();

    let mut topology_leaves = Vec::new();
    if has_leaf(BASIC_INFO) {
        topology_leaves.push(EXTENDED_TOPOLOGY);
        if has_leaf(V2_EXTENDED_TOPOLOGY) {
            topology_leaves.push(V2_EXTENDED_TOPOLOGY);
        }
    }
    for function in topology_leaves {
        for index in [TOPOLOGY_SUBLEAF_SMT, TOPOLOGY_SUBLEAF_CORE] {
            if !has_subleaf(function, index) {
                missing.push(kvm_cpuid_entry2 {
                    function,
                    index,
                    flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
                    ..Default::default()
                });
            }
        }
    }

    if p.tsc_khz.is_some() {
        if !has_leaf(HYPERVISOR_INFO) {
            let [ebx, ecx, edx] = KVM_SIGNATURE;
            missing.push(kvm_cpuid_entry2 {
                function: HYPERVISOR_INFO,
                eax: HYPERVISOR_TIMING,
                ebx,
                ecx,
                edx,
                ..Default::default()
            });
        }
        if !has_leaf(HYPERVISOR_TIMING) {
            missing.push(kvm_cpuid_entry2 {
                function: HYPERVISOR_TIMING,
                ..Default::default()
            });
        }
    }
    missing
}

/// Patches one entry, according to its leaf.
fn patch_entry(e: &mut kvm_cpuid_entry2, t: &Topology, vendor: Vendor, tsc_khz: Option<u32>) {
    match e.function {
        // missing_entries added leaf 0xB whenever leaf 0 is present.
        BASIC_INFO => e.eax = e.eax.max(EXTENDED_TOPOLOGY),
        FEATURE_INFO => patch_feature_info(e, t),
        DETERMINISTIC_CACHE => patch_cache(e, t),
        EXTENDED_TOPOLOGY | V2_EXTENDED_TOPOLOGY => patch_topology(e, t),
        AMD_CAPACITY if vendor == Vendor::Amd => {
            e.ecx = AMD_CAPACITY_ECX_NC.set_saturating(e.ecx, t.vcpus - 1);
            e.ecx = AMD_CAPACITY_ECX_APIC_ID_SIZE.set_saturating(e.ecx, t.id_bits);
        }
        AMD_TOPOLOGY if vendor == Vendor::Amd => {
            e.eax = t.apic_id;
            e.ebx = AMD_TOPOLOGY_EBX_CORE_ID.set_truncating(e.ebx, t.apic_id);
        }
        HYPERVISOR_INFO if tsc_khz.is_some() => e.eax = e.eax.max(HYPERVISOR_TIMING),
        HYPERVISOR_TIMING => {
            if let Some(khz) = tsc_khz {
                e.eax = khz;
                e.ebx = KVM_APIC_BUS_KHZ;
                e.ecx = 0;
                e.edx = 0;
            }
        }
        _ => {}
    }
}

/// Leaf 1: APIC ID, logical processor count, HTT, x2APIC (the in-kernel LAPIC emulates it,
/// and APIC IDs above 254 need it) and hypervisor-present.
fn patch_feature_info(e: &mut kvm_cpuid_entry2, t: &Topology) {
    e.ebx = FEATURE_EBX_INITIAL_APIC_ID.set_truncating(e.ebx, t.apic_id);
    e.ebx = FEATURE_EBX_LOGICAL_PROCESSORS.set_saturating(e.ebx, t.vcpus);
    if t.vcpus > 1 {
        e.edx |= FEATURE_EDX_HTT;
    } else {
        e.edx &= !FEATURE_EDX_HTT;
    }
    e.ecx |= FEATURE_ECX_X2APIC | FEATURE_ECX_HYPERVISOR;
}

/// Leaf 4: cores per package, in every subleaf that describes a cache (the null terminator is
/// left as is).
fn patch_cache(e: &mut kvm_cpuid_entry2, t: &Topology) {
    if CACHE_EAX_TYPE.get(e.eax) != 0 {
        e.eax = CACHE_EAX_CORES_PER_PACKAGE_MINUS_1.set_saturating(e.eax, t.vcpus - 1);
    }
}

/// Leaves 0xB and 0x1F: subleaf 0 is the SMT level (one thread per core), subleaf 1 the core
/// level (all vCPUs), any other subleaf is invalid; EDX is the x2APIC ID in every subleaf.
fn patch_topology(e: &mut kvm_cpuid_entry2, t: &Topology) {
    let (shift, processors, level_type) = match e.index {
        TOPOLOGY_SUBLEAF_SMT => (0, 1, LEVEL_TYPE_SMT),
        TOPOLOGY_SUBLEAF_CORE => (t.id_bits, t.vcpus, LEVEL_TYPE_CORE),
        _ => (0, 0, LEVEL_TYPE_INVALID),
    };
    e.flags |= KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    e.eax = TOPOLOGY_EAX_SHIFT.set_saturating(0, shift);
    e.ebx = TOPOLOGY_EBX_PROCESSORS.set_saturating(0, processors);
    e.ecx = TOPOLOGY_ECX_LEVEL_NUMBER.set_truncating(0, e.index);
    e.ecx = TOPOLOGY_ECX_LEVEL_TYPE.set_truncating(e.ecx, level_type);
    e.edx = t.apic_id;
}
