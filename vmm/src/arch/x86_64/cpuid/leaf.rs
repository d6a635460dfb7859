//! The CPUID leaves, bits and fields sipi patches, named as their specs name them.
//!
//! Sources: Intel SDM Vol. 2A, chapter 3, "CPUID—CPU Identification", Table 3-8 "Information
//! Returned by CPUID Instruction" (Intel); AMD64 APM Vol. 3, appendix E "Obtaining Processor
//! Information Via the CPUID Instruction" (AMD); the Linux kernel's
//! Documentation/virt/kvm/x86/cpuid.rst (KVM's hypervisor leaves); and the hypervisor timing
//! leaf VMware proposed for all hypervisors (LKML, "Hypervisor CPUID Interface Proposal",
//! 2008), which QEMU (`vmware-cpuid-freq`) and Cloud Hypervisor also provide.

/// A bit field of a CPUID register: `width` bits starting at bit `shift`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Field {
    shift: u32,
    width: u32,
}

impl Field {
    /// A field of `width` bits at bit `shift`; both must lie inside a 32-bit register (checked
    /// at compile time, since every field is a constant).
    pub(super) const fn new(shift: u32, width: u32) -> Self {
        assert!(width > 0 && width < 32 && shift + width <= 32);
        Self { shift, width }
    }

    /// The largest value the field holds.
    pub(super) const fn max(self) -> u32 {
        (1 << self.width) - 1
    }

    const fn mask(self) -> u32 {
        self.max() << self.shift
    }

    /// The field's value in `reg`.
    pub(super) const fn get(self, reg: u32) -> u32 {
        (reg >> self.shift) & self.max()
    }

    /// `reg` with the field set to `value`, saturated at the field's maximum.
    pub(super) const fn set_saturating(self, reg: u32, value: u32) -> u32 {
        let value = if value > self.max() {
            self.max()
        } else {
            value
        };
        (reg & !self.mask()) | (value << self.shift)
    }

    /// `reg` with the field set to the low `width` bits of `value`.
    pub(super) const fn set_truncating(self, reg: u32, value: u32) -> u32 {
        (reg & !self.mask()) | ((value & self.max()) << self.shift)
    }
}

/// Leaf 0: EAX = the highest basic leaf; EBX, EDX, ECX = the vendor string (Intel SDM).
pub(super) const BASIC_INFO: u32 = 0x0;
/// Leaf 0 vendor string "GenuineIntel" as (EBX, EDX, ECX). Intel is the default vendor
/// here, so only the tests name it.
#[cfg(test)]
pub(super) const VENDOR_INTEL: [u32; 3] = vendor(b"GenuineIntel");
/// Leaf 0 vendor string "AuthenticAMD" as (EBX, EDX, ECX) (AMD APM, CPUID Fn0000_0000).
pub(super) const VENDOR_AMD: [u32; 3] = vendor(b"AuthenticAMD");
/// Leaf 0 vendor string "HygonGenuine": Hygon Dhyana, which follows AMD's topology leaves.
pub(super) const VENDOR_HYGON: [u32; 3] = vendor(b"HygonGenuine");

/// Leaf 1: version and feature information (Intel SDM; AMD APM, CPUID Fn0000_0001).
pub(super) const FEATURE_INFO: u32 = 0x1;
/// Leaf 1 EBX[31:24]: initial (8-bit) APIC ID of the executing processor.
pub(super) const FEATURE_EBX_INITIAL_APIC_ID: Field = Field::new(24, 8);
/// Leaf 1 EBX[23:16]: maximum number of addressable IDs for logical processors in the package
/// (AMD: LogicalProcessorCount). Valid when EDX.HTT is set.
pub(super) const FEATURE_EBX_LOGICAL_PROCESSORS: Field = Field::new(16, 8);
/// Leaf 1 ECX bit 21: x2APIC supported.
pub(super) const FEATURE_ECX_X2APIC: u32 = 1 << 21;
/// Leaf 1 ECX bit 31: running under a hypervisor (reserved for this use by Intel and AMD).
pub(super) const FEATURE_ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 EDX bit 28 (HTT): EBX[23:16] is valid, the package may hold several logical
/// processors.
pub(super) const FEATURE_EDX_HTT: u32 = 1 << 28;

/// Leaf 4: deterministic cache parameters, one subleaf per cache (Intel SDM).
pub(super) const DETERMINISTIC_CACHE: u32 = 0x4;
/// Leaf 4 EAX[4:0]: cache type; 0 means no more caches (the subleaf is the terminator).
pub(super) const CACHE_EAX_TYPE: Field = Field::new(0, 5);
/// Leaf 4 EAX[31:26]: maximum number of addressable IDs for processor cores in the package,
/// minus one.
pub(super) const CACHE_EAX_CORES_PER_PACKAGE_MINUS_1: Field = Field::new(26, 6);

/// Leaf 0xB: extended topology enumeration, one subleaf per level (Intel SDM).
pub(super) const EXTENDED_TOPOLOGY: u32 = 0xB;
/// Leaf 0x1F: V2 extended topology enumeration, same layout as leaf 0xB (Intel SDM).
pub(super) const V2_EXTENDED_TOPOLOGY: u32 = 0x1F;
/// Topology subleaf describing the SMT (thread) level.
pub(super) const TOPOLOGY_SUBLEAF_SMT: u32 = 0;
/// Topology subleaf describing the core level.
pub(super) const TOPOLOGY_SUBLEAF_CORE: u32 = 1;
/// Topology EAX[4:0]: bits to shift the x2APIC ID right to get the next level's ID.
pub(super) const TOPOLOGY_EAX_SHIFT: Field = Field::new(0, 5);
/// Topology EBX[15:0]: number of logical processors at this level.
pub(super) const TOPOLOGY_EBX_PROCESSORS: Field = Field::new(0, 16);
/// Topology ECX[7:0]: level number (the subleaf number).
pub(super) const TOPOLOGY_ECX_LEVEL_NUMBER: Field = Field::new(0, 8);
/// Topology ECX[15:8]: level type.
pub(super) const TOPOLOGY_ECX_LEVEL_TYPE: Field = Field::new(8, 8);
/// Topology level type 0: invalid (no such level; ends the enumeration).
pub(super) const LEVEL_TYPE_INVALID: u32 = 0;
/// Topology level type 1: SMT.
pub(super) const LEVEL_TYPE_SMT: u32 = 1;
/// Topology level type 2: core.
pub(super) const LEVEL_TYPE_CORE: u32 = 2;

/// Leaf 0x8000_0008: address sizes and processor capacity (AMD APM, CPUID Fn8000_0008).
pub(super) const AMD_CAPACITY: u32 = 0x8000_0008;
/// Fn8000_0008 ECX[7:0] NC: number of physical threads in the processor, minus one.
pub(super) const AMD_CAPACITY_ECX_NC: Field = Field::new(0, 8);
/// Fn8000_0008 ECX[15:12] ApicIdSize: number of low APIC ID bits that identify a thread
/// within the processor (0: derive it from NC).
pub(super) const AMD_CAPACITY_ECX_APIC_ID_SIZE: Field = Field::new(12, 4);

/// Leaf 0x8000_001E: processor topology information (AMD APM, CPUID Fn8000_001E).
pub(super) const AMD_TOPOLOGY: u32 = 0x8000_001E;
/// Fn8000_001E EBX[7:0] CoreId (ComputeUnitId on family 15h): the core's ID in the package.
pub(super) const AMD_TOPOLOGY_EBX_CORE_ID: Field = Field::new(0, 8);

/// Leaf 0x4000_0000: EAX = the highest hypervisor leaf; EBX, ECX, EDX = the hypervisor
/// signature (KVM's cpuid.rst: KVM_CPUID_SIGNATURE).
pub(super) const HYPERVISOR_INFO: u32 = 0x4000_0000;
/// KVM's hypervisor signature "KVMKVMKVM\0\0\0" as (EBX, ECX, EDX).
pub(super) const KVM_SIGNATURE: [u32; 3] = [
    u32::from_le_bytes(*b"KVMK"),
    u32::from_le_bytes(*b"VMKV"),
    u32::from_le_bytes(*b"M\0\0\0"),
];
/// Leaf 0x4000_0010: hypervisor timing information (VMware's generic hypervisor leaf):
/// EAX = TSC frequency in kHz, EBX = local APIC timer (bus) frequency in kHz.
pub(super) const HYPERVISOR_TIMING: u32 = 0x4000_0010;
/// The local APIC bus frequency KVM emulates, in kHz: its APIC timer counts at 1 GHz
/// (KVM_CAP_X86_APIC_BUS_CYCLES_NS defaults to 1 ns).
pub(super) const KVM_APIC_BUS_KHZ: u32 = 1_000_000;

/// A 12-byte vendor string split the way leaf 0 returns it: EBX, EDX, ECX.
const fn vendor(s: &[u8; 12]) -> [u32; 3] {
    [
        u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        u32::from_le_bytes([s[4], s[5], s[6], s[7]]),
        u32::from_le_bytes([s[8], s[9], s[10], s[11]]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_saturate_or_truncate() {
        let f = Field::new(12, 4);
        assert_eq!(f.max(), 15);
        assert_eq!(f.set_saturating(0xFFFF_FFFF, 3), 0xFFFF_3FFF);
        assert_eq!(f.set_saturating(0, 100), 0xF000);
        assert_eq!(f.set_truncating(0, 0x13), 0x3000);
        assert_eq!(f.get(0xABCD_5EF0), 5);
        assert_eq!(Field::new(26, 6).set_saturating(0, 1023), 63 << 26);
    }

    #[test]
    fn vendor_strings_match_real_leaf_0() {
        // CPUID.0 on an Intel CPU: EBX "Genu", EDX "ineI", ECX "ntel".
        assert_eq!(VENDOR_INTEL, [0x756e_6547, 0x4965_6e69, 0x6c65_746e]);
        assert_eq!(VENDOR_AMD, [0x6874_7541, 0x6974_6e65, 0x444d_4163]);
        assert_eq!(KVM_SIGNATURE, [0x4b4d_564b, 0x564b_4d56, 0x4d]);
    }
}
