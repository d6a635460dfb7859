//! The kernel-image parser and loader: arbitrary files must be rejected cleanly or loaded
//! inside guest RAM, never panic or allocate from a size read from the file.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vm_memory::{GuestAddress, GuestMemoryMmap};

/// Guest memory shared by every run (8 MiB from address 0).
fn mem() -> &'static GuestMemoryMmap {
    static MEM: OnceLock<GuestMemoryMmap> = OnceLock::new();
    MEM.get_or_init(|| GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 8 << 20)]).expect("8 MiB of memory"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = vmm::loader::load(data, mem()) {
        assert!(k.start >= firmware::layout::IVT_BDA_END && k.end <= 8 << 20, "loaded outside RAM: {k:?}");
    }
});
