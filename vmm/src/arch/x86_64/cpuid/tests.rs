//! CPUID patching on synthetic lists shaped like KVM's (Intel, AMD, old CPUs, full lists) and
//! on the real KVM_GET_SUPPORTED_CPUID.

use super::*;

fn entry(function: u32, index: u32, regs: [u32; 4]) -> kvm_cpuid_entry2 {
    let [eax, ebx, ecx, edx] = regs;
    kvm_cpuid_entry2 {
        function,
        index,
        flags: if matches!(function, 4 | 0xB | 0x1F) {
            KVM_CPUID_FLAG_SIGNIFCANT_INDEX
        } else {
            0
        },
        eax,
        ebx,
        ecx,
        edx,
        ..Default::default()
    }
}

fn leaf0(max: u32, vendor: [u32; 3]) -> kvm_cpuid_entry2 {
    let [ebx, edx, ecx] = vendor;
    entry(BASIC_INFO, 0, [max, ebx, ecx, edx])
}

/// Shaped like this machine's KVM_GET_SUPPORTED_CPUID (a Cascade Lake Xeon): leaf 0xB with
/// an empty subleaf 0 only, leaf 4 with four caches and a terminator, KVM's 0x4000_0000.
fn intel() -> Vec<kvm_cpuid_entry2> {
    vec![
        leaf0(0x16, VENDOR_INTEL),
        entry(1, 0, [0x0005_0657, 0xAB02_0800, 0x0100_2000, 0x0f8b_fbff]),
        entry(4, 0, [0x0400_0121, 0x01c0_003f, 0x3f, 0]),
        entry(4, 1, [0x0400_0122, 0x01c0_003f, 0x3f, 0]),
        entry(4, 2, [0x0400_0143, 0x03c0_003f, 0x3ff, 0]),
        entry(4, 3, [0x0400_4163, 0x0280_003f, 0xcfff, 5]),
        entry(4, 4, [0, 0, 0, 0]),
        entry(0xB, 0, [0, 0, 0, 0]),
        entry(
            HYPERVISOR_INFO,
            0,
            [0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x4d],
        ),
        entry(0x4000_0001, 0, [0x0100_7efb, 0, 0, 0]),
        entry(0x8000_0000, 0, [0x8000_0008, 0, 0, 0]),
        entry(AMD_CAPACITY, 0, [0x302e, 0x0100_d000, 0, 0]),
    ]
}

/// Shaped like an AMD EPYC's: no leaf 0xB, the AMD topology leaves, no hypervisor leaves.
fn amd() -> Vec<kvm_cpuid_entry2> {
    vec![
        leaf0(0x10, VENDOR_AMD),
        entry(1, 0, [0x00a0_0f11, 0x0080_0800, 0x0000_3000, 0x178b_fbff]),
        entry(0x8000_0000, 0, [0x8000_0021, 0, 0, 0]),
        // PerfTscSize (ECX[17:16]) and host NC/ApicIdSize bits that must change or stay.
        entry(AMD_CAPACITY, 0, [0x3030, 0, 0x0003_7007, 0]),
        entry(AMD_TOPOLOGY, 0, [0, 0x0000_0100, 0, 0]),
    ]
}

fn cpuid(entries: &[kvm_cpuid_entry2]) -> CpuId {
    CpuId::from_entries(entries).expect("a synthetic list fits")
}

fn params(apic_id: u32, vcpu_count: u32) -> CpuidParams {
    CpuidParams {
        apic_id,
        vcpu_count,
        tsc_khz: Some(2_500_000),
    }
}

fn patched(entries: &[kvm_cpuid_entry2], p: &CpuidParams) -> CpuId {
    let mut c = cpuid(entries);
    patch(&mut c, p).unwrap();
    c
}

fn find(c: &CpuId, function: u32, index: u32) -> Option<kvm_cpuid_entry2> {
    c.as_slice()
        .iter()
        .find(|e| e.function == function && e.index == index)
        .copied()
}

fn get(c: &CpuId, function: u32, index: u32) -> kvm_cpuid_entry2 {
    find(c, function, index).unwrap_or_else(|| panic!("no leaf {function:#x}.{index}"))
}

/// Checks leaf 1 and the topology leaves against `p`; shared with the real-KVM test.
fn check_common(c: &CpuId, p: &CpuidParams) {
    let n = p.vcpu_count.max(1);
    let l1 = get(c, FEATURE_INFO, 0);
    assert_eq!(l1.ebx >> 24, p.apic_id & 0xFF, "leaf 1 initial APIC ID");
    assert_eq!((l1.ebx >> 16) & 0xFF, n.min(255), "leaf 1 logical count");
    assert_eq!(l1.edx & FEATURE_EDX_HTT != 0, n > 1, "HTT");
    assert_ne!(l1.ecx & FEATURE_ECX_X2APIC, 0, "x2APIC");
    assert_ne!(l1.ecx & FEATURE_ECX_HYPERVISOR, 0, "hypervisor");

    // ceil(log2(n)), saturated to the 5-bit shift field.
    let bits = match n {
        1 => 0,
        n => (32 - (n - 1).leading_zeros()).min(31),
    };
    assert!(get(c, BASIC_INFO, 0).eax >= EXTENDED_TOPOLOGY);
    let mut topology_leaves = vec![EXTENDED_TOPOLOGY];
    if find(c, V2_EXTENDED_TOPOLOGY, 0).is_some() {
        topology_leaves.push(V2_EXTENDED_TOPOLOGY);
    }
    for leaf in topology_leaves {
        let smt = get(c, leaf, 0);
        let core = get(c, leaf, 1);
        assert_eq!(
            [smt.eax, smt.ebx, smt.ecx, smt.edx],
            [0, 1, 1 << 8, p.apic_id],
            "leaf {leaf:#x} SMT level"
        );
        assert_eq!(
            [core.eax, core.ebx, core.ecx, core.edx],
            [bits, n.min(0xFFFF), 1 | (2 << 8), p.apic_id],
            "leaf {leaf:#x} core level"
        );
        for e in c.as_slice().iter().filter(|e| e.function == leaf) {
            assert_ne!(e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX, 0);
            assert_eq!(e.edx, p.apic_id);
            if e.index > 1 {
                assert_eq!([e.eax, e.ebx, e.ecx], [0, 0, e.index & 0xFF]);
            }
        }
    }

    if let Some(khz) = p.tsc_khz {
        assert!(get(c, HYPERVISOR_INFO, 0).eax >= HYPERVISOR_TIMING);
        let timing = get(c, HYPERVISOR_TIMING, 0);
        assert_eq!([timing.eax, timing.ebx], [khz, 1_000_000]);
    }
}

#[test]
fn leaf_1_and_topology_for_interesting_apic_ids() {
    for list in [intel(), amd()] {
        for id in [0, 1, 254, 255, 256, 1023] {
            let p = params(id, 1024);
            let c = patched(&list, &p);
            check_common(&c, &p);
            let l1 = get(&c, FEATURE_INFO, 0);
            let before = list.iter().find(|e| e.function == 1).unwrap();
            assert_eq!(l1.eax, before.eax);
            assert_eq!(l1.ebx & 0xFFFF, before.ebx & 0xFFFF, "EBX[15:0] kept");
            assert_eq!(
                l1.ecx & !(FEATURE_ECX_X2APIC | FEATURE_ECX_HYPERVISOR),
                before.ecx
            );
        }
    }
}

#[test]
fn topology_widths_for_vcpu_counts() {
    for (n, bits) in [(1, 0), (2, 1), (3, 2), (4, 2), (255, 8), (256, 8), (257, 9)] {
        let p = params(n - 1, n);
        let c = patched(&intel(), &p);
        check_common(&c, &p);
        assert_eq!(get(&c, EXTENDED_TOPOLOGY, 1).eax, bits, "{n} vCPUs");
    }
    let c = patched(&intel(), &params(0, 4096));
    assert_eq!(get(&c, EXTENDED_TOPOLOGY, 1).eax, 12);
    assert_eq!(get(&c, EXTENDED_TOPOLOGY, 1).ebx, 4096);
}

#[test]
fn a_single_vcpu_has_no_htt() {
    let mut list = intel();
    list[1].edx |= FEATURE_EDX_HTT;
    let p = params(0, 1);
    let c = patched(&list, &p);
    check_common(&c, &p);
    assert_eq!(get(&c, FEATURE_INFO, 0).edx & FEATURE_EDX_HTT, 0);
}

#[test]
fn missing_topology_subleaves_are_added_once() {
    // AMD: no leaf 0xB at all; Intel: only KVM's empty subleaf 0.
    for list in [amd(), intel()] {
        let p = params(300, 1024);
        let mut c = patched(&list, &p);
        let count = |c: &CpuId| {
            c.as_slice()
                .iter()
                .filter(|e| e.function == EXTENDED_TOPOLOGY)
                .count()
        };
        assert_eq!(count(&c), 2);
        assert!(
            find(&c, V2_EXTENDED_TOPOLOGY, 0).is_none(),
            "0x1F is not invented"
        );
        let once = c.clone();
        patch(&mut c, &p).unwrap();
        assert_eq!(c, once, "patching twice changes nothing");
    }
}

#[test]
fn leaf_0x1f_and_extra_subleaves_are_patched() {
    let mut list = intel();
    list[0].eax = 0x1F;
    list.push(entry(0xB, 2, [7, 7, 0x0203, 9]));
    list.push(entry(0x1F, 0, [1, 2, 0x100, 0]));
    list.push(entry(0x1F, 1, [4, 16, 0x201, 0]));
    list.push(entry(0x1F, 2, [6, 64, 0x502, 0]));
    let p = params(513, 600);
    let c = patched(&list, &p);
    check_common(&c, &p);
    assert_eq!(
        get(&c, BASIC_INFO, 0).eax,
        0x1F,
        "a higher max leaf is kept"
    );
    for leaf in [0xB, 0x1F] {
        let e = get(&c, leaf, 2);
        assert_eq!([e.eax, e.ebx, e.ecx, e.edx], [0, 0, 2, 513]);
    }
}

#[test]
fn an_old_max_basic_leaf_is_raised_for_leaf_0xb() {
    let list = [
        leaf0(0x7, VENDOR_INTEL),
        entry(1, 0, [0x0006_06a0, 0, 0, 0]),
    ];
    let p = params(5, 8);
    let c = patched(&list, &p);
    assert_eq!(get(&c, BASIC_INFO, 0).eax, EXTENDED_TOPOLOGY);
    check_common(&c, &p);
}

#[test]
fn without_leaf_0_no_topology_leaf_is_added() {
    let list = [entry(1, 0, [0, 0, 0, 0])];
    let c = patched(
        &list,
        &CpuidParams {
            apic_id: 3,
            vcpu_count: 4,
            tsc_khz: None,
        },
    );
    assert_eq!(c.as_slice().len(), 1);
    assert_eq!(get(&c, FEATURE_INFO, 0).ebx >> 16, 0x0304);
}

#[test]
fn leaf_4_gets_cores_per_package() {
    for (n, field) in [(1, 0), (2, 1), (64, 63), (1024, 63)] {
        let c = patched(&intel(), &params(0, n));
        for (before, after) in intel()
            .iter()
            .zip(c.as_slice())
            .filter(|(e, _)| e.function == 4)
        {
            if before.eax & 0x1F == 0 {
                assert_eq!(after, before, "the terminator is untouched");
            } else {
                assert_eq!(after.eax >> 26, field, "{n} vCPUs");
                assert_eq!(after.eax & 0x03FF_FFFF, before.eax & 0x03FF_FFFF);
                assert_eq!(
                    [after.ebx, after.ecx, after.edx],
                    [before.ebx, before.ecx, before.edx]
                );
            }
        }
    }
}

#[test]
fn amd_topology_leaves() {
    for (id, n, nc, size) in [
        (0, 1, 0, 0),
        (3, 4, 3, 2),
        (255, 256, 255, 8),
        (1023, 1024, 255, 10),
    ] {
        let c = patched(&amd(), &params(id, n));
        let cap = get(&c, AMD_CAPACITY, 0);
        assert_eq!(cap.ecx & 0xFF, nc, "NC for {n}");
        assert_eq!((cap.ecx >> 12) & 0xF, size, "ApicIdSize for {n}");
        assert_eq!(cap.ecx & 0x0003_0000, 0x0003_0000, "PerfTscSize kept");
        assert_eq!(cap.eax, 0x3030);
        let topo = get(&c, AMD_TOPOLOGY, 0);
        assert_eq!(topo.eax, id, "extended APIC ID");
        assert_eq!(
            topo.ebx,
            0x100 | (id & 0xFF),
            "core ID, threads per core kept"
        );
    }
    // On Intel the AMD leaf is reserved and left as KVM reports it.
    let c = patched(&intel(), &params(7, 8));
    assert_eq!(get(&c, AMD_CAPACITY, 0), intel()[11]);
}

#[test]
fn hypervisor_timing_leaf() {
    // KVM's 0x4000_0000 is kept (signature) and its max leaf raised.
    let c = patched(&intel(), &params(0, 2));
    let info = get(&c, HYPERVISOR_INFO, 0);
    assert_eq!(
        [info.eax, info.ebx, info.ecx, info.edx],
        [HYPERVISOR_TIMING, 0x4b4d_564b, 0x564b_4d56, 0x4d]
    );
    assert_eq!(get(&c, HYPERVISOR_TIMING, 0).eax, 2_500_000);

    // Absent: added with KVM's signature.
    let c = patched(&amd(), &params(0, 2));
    let info = get(&c, HYPERVISOR_INFO, 0);
    assert_eq!(
        [info.eax, info.ebx, info.ecx, info.edx],
        [
            HYPERVISOR_TIMING,
            KVM_SIGNATURE[0],
            KVM_SIGNATURE[1],
            KVM_SIGNATURE[2]
        ]
    );
    let sig: Vec<u8> = [info.ebx, info.ecx, info.edx]
        .iter()
        .flat_map(|r| r.to_le_bytes())
        .collect();
    assert_eq!(&sig, b"KVMKVMKVM\0\0\0");

    // A higher max hypervisor leaf is kept.
    let mut list = intel();
    list[8].eax = 0x4000_0020;
    let c = patched(&list, &params(0, 2));
    assert_eq!(get(&c, HYPERVISOR_INFO, 0).eax, 0x4000_0020);

    // Unknown TSC frequency: the hypervisor leaves are left as KVM reports them.
    for list in [intel(), amd()] {
        let p = CpuidParams {
            apic_id: 1,
            vcpu_count: 2,
            tsc_khz: None,
        };
        let c = patched(&list, &p);
        check_common(&c, &p);
        assert!(find(&c, HYPERVISOR_TIMING, 0).is_none());
        assert_eq!(
            find(&c, HYPERVISOR_INFO, 0),
            list.iter().find(|e| e.function == HYPERVISOR_INFO).copied()
        );
    }
}

#[test]
fn a_full_list_is_an_error_and_left_unchanged() {
    // AMD needs four additions: 0xB.0, 0xB.1, 0x4000_0000, 0x4000_0010.
    let mut list = amd();
    let fill = |list: &mut Vec<kvm_cpuid_entry2>, free: usize| {
        let mut i = 0;
        while list.len() < KVM_MAX_CPUID_ENTRIES - free {
            list.push(entry(0xD, i, [0; 4]));
            i += 1;
        }
    };
    fill(&mut list, 3);
    let mut c = cpuid(&list);
    let before = c.clone();
    assert_eq!(
        patch(&mut c, &params(1, 2)),
        Err(CpuidError::Full { needed: 4, free: 3 })
    );
    assert_eq!(c, before);

    let mut list = amd();
    fill(&mut list, 4);
    let p = params(1, 2);
    let c = patched(&list, &p);
    assert_eq!(c.as_slice().len(), KVM_MAX_CPUID_ENTRIES);
    check_common(&c, &p);
}

#[test]
fn extreme_parameters_do_not_panic() {
    for (apic_id, vcpu_count) in [(0, 0), (u32::MAX, u32::MAX), (u32::MAX, 1), (0, 1 << 31)] {
        for list in [intel(), amd()] {
            let p = params(apic_id, vcpu_count);
            let c = patched(&list, &p);
            check_common(&c, &p);
        }
    }
    let mut empty = CpuId::new(0).unwrap();
    patch(&mut empty, &params(0, 1)).unwrap();
    assert_eq!(empty.as_slice().len(), 2, "only the hypervisor leaves");
}

/// KVM's supported CPUID on this machine, patched as sipi's vCPUs will be, must carry the
/// topology and be accepted by KVM_SET_CPUID2 on a vCPU with that APIC ID.
#[test]
fn real_kvm_supported_cpuid() {
    let Some(kvm) = crate::kvm::kvm_for_test() else {
        return;
    };
    let supported = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .expect("KVM_GET_SUPPORTED_CPUID");
    let vm = kvm.create_vm().expect("KVM_CREATE_VM");
    for apic_id in [0, 1, 255, 256, 1023] {
        let vcpu = vm.create_vcpu(u64::from(apic_id)).expect("KVM_CREATE_VCPU");
        let tsc_khz = vcpu.get_tsc_khz().ok();
        let p = CpuidParams {
            apic_id,
            vcpu_count: 1024,
            tsc_khz,
        };
        let mut c = supported.clone();
        patch(&mut c, &p).expect("patch KVM's CPUID");
        check_common(&c, &p);
        if vendor(c.as_slice()) == Vendor::Amd {
            if let Some(cap) = find(&c, AMD_CAPACITY, 0) {
                assert_eq!([cap.ecx & 0xFF, (cap.ecx >> 12) & 0xF], [255, 10]);
            }
            if let Some(topo) = find(&c, AMD_TOPOLOGY, 0) {
                assert_eq!(topo.eax, apic_id);
            }
        } else if let Some(cache) = find(&c, DETERMINISTIC_CACHE, 0) {
            assert_eq!(cache.eax >> 26, 63);
        }
        vcpu.set_cpuid2(&c)
            .unwrap_or_else(|e| panic!("KVM_SET_CPUID2 for APIC ID {apic_id}: {e}"));
        let back = vcpu
            .get_cpuid2(KVM_MAX_CPUID_ENTRIES)
            .expect("KVM_GET_CPUID2");
        let core = get(&back, EXTENDED_TOPOLOGY, 1);
        assert_eq!([core.ebx, core.edx], [1024, apic_id], "KVM kept leaf 0xB");
    }
}
