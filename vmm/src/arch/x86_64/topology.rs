//! The VM's CPU topology, decided once: one package with one core per vCPU and one thread per
//! core, APIC ID = x2APIC ID = vCPU index, and local APICs handed over in x2APIC mode exactly
//! when some APIC ID does not fit an xAPIC ID. The MADT, CPUID, vCPU setup, the VM's KVM
//! capabilities and the report check all ask this type.

use firmware::acpi::madt::MAX_XAPIC_ID;

/// The vCPUs of a VM and how they are addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    vcpus: u32,
}

impl Topology {
    /// A VM with `vcpus` vCPUs.
    pub fn new(vcpus: u32) -> Self {
        Self { vcpus }
    }

    /// vCPUs in the VM.
    pub fn vcpus(self) -> u32 {
        self.vcpus
    }

    /// The APIC ID of vCPU `index`.
    pub fn apic_id(self, index: u32) -> u32 {
        index
    }

    /// The vCPU whose APIC ID is `apic_id`, if the VM has one.
    pub fn vcpu_of(self, apic_id: u32) -> Option<u32> {
        (apic_id < self.vcpus).then_some(apic_id)
    }

    /// True if vCPU `index`'s APIC ID fits an xAPIC ID (8 bits, 0xFF being the broadcast ID):
    /// the MADT describes it with a Processor Local APIC structure, else a Local x2APIC one.
    pub fn xapic_addressable(self, index: u32) -> bool {
        self.apic_id(index) <= MAX_XAPIC_ID
    }

    /// How many vCPUs have xAPIC-addressable APIC IDs (the first ones, APIC IDs being
    /// indices).
    pub fn xapic_vcpus(self) -> u32 {
        self.vcpus.min(MAX_XAPIC_ID + 1)
    }

    /// True if some APIC ID is above what an xAPIC can address: the VM then needs KVM's x2APIC
    /// API with 32-bit IDs, MADT Local x2APIC entries for those CPUs, and every local APIC
    /// handed over in x2APIC mode (Intel x2APIC Specification, 2.2).
    pub fn x2apic(self) -> bool {
        self.xapic_vcpus() < self.vcpus
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x2apic_starts_where_xapic_ids_end() {
        let last_xapic = MAX_XAPIC_ID + 1;
        assert!(!Topology::new(1).x2apic());
        assert!(!Topology::new(last_xapic).x2apic(), "IDs 0..=0xFE fit");
        assert!(
            Topology::new(last_xapic + 1).x2apic(),
            "ID 0xFF is broadcast"
        );
        assert!(Topology::new(1024).x2apic());
        assert!(!Topology::new(0).x2apic());
        let t = Topology::new(300);
        assert_eq!(t.xapic_vcpus(), last_xapic);
        assert!(t.xapic_addressable(last_xapic - 1) && !t.xapic_addressable(last_xapic));
    }

    #[test]
    fn apic_ids_are_vcpu_indices() {
        let t = Topology::new(4);
        assert_eq!(t.apic_id(3), 3);
        assert_eq!(t.vcpu_of(3), Some(3));
        assert_eq!(t.vcpu_of(4), None);
    }
}
