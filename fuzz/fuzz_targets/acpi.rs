//! The ACPI decoders the guest runs on tables it did not build: RSDP, XSDT and MADT.
#![no_main]

use firmware::acpi::{madt::Madt, rsdp::Rsdp, xsdt};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Rsdp::parse(data);
    let _ = Rsdp::scan(data);
    if let Ok(entries) = xsdt::entries(data) {
        let _ = entries.count();
    }
    if let Ok(m) = Madt::parse(data) {
        let _ = m.entries().count();
        let _ = m.cpus().count();
        let _ = m.has_invalid_entries();
    }
});
