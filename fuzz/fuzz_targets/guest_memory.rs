//! What the VMM reads from guest memory on the guest's word: the live-state block after a
//! timeout (and the CPU records and stamps it points to) and console doorbell records.
//! Arbitrary memory contents and addresses must never panic nor allocate beyond the bounds.
#![no_main]

use firmware::layout::LIVE_STATE_ADDR;
use libfuzzer_sys::fuzz_target;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Guest memory of the fuzzed VM: 2 MiB, enough for low memory and a record table.
const MEMORY: usize = 2 << 20;

thread_local! {
    static MEM: GuestMemoryMmap =
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEMORY)]).expect("fuzz memory");
}

fuzz_target!(|data: &[u8]| {
    // [vcpus u8][console address u32][block: 48 bytes][the rest at the records' address]
    if data.len() < 53 {
        return;
    }
    let vcpus = u32::from(data[0]) + 1;
    let console = u32::from_le_bytes([data[1], data[2], data[3], data[4]]);
    MEM.with(|mem| {
        let _ = mem.write_slice(&data[5..53], GuestAddress(LIVE_STATE_ADDR));
        let records = 0x10_0000;
        let n = (data.len() - 53).min(MEMORY - records);
        let _ = mem.write_slice(&data[53..53 + n], GuestAddress(records as u64));
        if let Ok(r) = vmm::report::live::read(mem, vcpus) {
            assert!(r.online <= r.cpus && r.cpus <= vcpus);
            let _ = r.summary();
        }
        if let Ok(text) = vmm::devices::console_port::read_record(mem, console) {
            assert!(text.len() <= firmware::layout::CONSOLE_MAX_LEN as usize);
        }
    });
});
