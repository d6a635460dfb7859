//! The guest's report as the VMM decodes it: arbitrary bytes must never panic, and a report
//! that decodes must survive the VMM's own checks, statistics and rendering.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&vcpus, bytes)) = data.split_first() else { return };
    let vcpus = u32::from(vcpus) + 1;
    let topology = vmm::config::Topology::new(vcpus);
    if let Ok(firmware::report::decode::Report::Boot(b)) = vmm::report::decode(bytes, topology) {
        let stats = vmm::report::stats::bringup_stats(&b);
        let _ = vmm::report::stats::render(&stats, 2_000_000, true, 5);
        let _ = vmm::report::details::boot_json(&b, &stats, 2_000_000);
    }
});
