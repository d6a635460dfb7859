//! The reader of KVM's binary statistics files: a layout and a snapshot from arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmm::kvm_stats::Layout;

fuzz_target!(|data: &[u8]| {
    if let Ok(layout) = Layout::read(data) {
        let mut buf = Vec::new();
        if let Ok(values) = layout.read_values(data, &mut buf) {
            for c in layout.counters() {
                let _ = layout.values_of(&values, c);
                let _ = layout.value(&values, &c.name);
            }
        }
    }
});
