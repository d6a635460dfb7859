//! The guest program of the burst VM and its memory layout: every vCPU runs a 16-bit
//! real-mode loop that keeps writing, reading back and checking a counter of its own, and
//! checking a pattern the VMM wrote, all in RAM. A wrong value is reported through the exit
//! port; an access to memory that is no longer mapped exits to the VMM as MMIO. Either means
//! that memory the vCPU was using disappeared.

use firmware::layout::{EXIT_PORT, PAGE_SIZE};
use kvm_bindings::kvm_regs;
use kvm_ioctls::VcpuFd;

/// Guest RAM of the burst VM, at guest address 0 and offset 0 of the pool mapping.
pub const BURST_RAM_SIZE: u64 = 0x10_0000;
/// Where the guest program is copied (and where every vCPU starts, CS = 0).
pub const GUEST_CODE_ADDR: u64 = PAGE_SIZE;
/// Where the VMM writes [`GUEST_PATTERN`] for the vCPUs to check.
pub const GUEST_PATTERN_ADDR: u64 = 2 * PAGE_SIZE;
/// The pattern.
pub const GUEST_PATTERN: u32 = 0x5A17_C3E1;
/// The vCPUs' counters, one per [`GUEST_COUNTER_STRIDE`] bytes; DS points here.
pub const GUEST_COUNTERS_ADDR: u64 = 0x1_0000;
/// Bytes between two vCPUs' counters.
pub const GUEST_COUNTER_STRIDE: u64 = 16;
/// vCPUs whose counters DS:BX can address (BX is 16 bits).
pub const GUEST_MAX_VCPUS: u32 = (0x1_0000 / GUEST_COUNTER_STRIDE) as u32;
/// Status the guest writes to the exit port when its counter read back wrong.
pub const STATUS_COUNTER_MISMATCH: u32 = 1;
/// Status the guest writes to the exit port when the pattern read wrong.
pub const STATUS_PATTERN_MISMATCH: u32 = 2;
/// RFLAGS bit 1 is reserved and always 1 (Intel SDM Vol. 1, 3.4.3); interrupts stay off.
const RFLAGS_RESERVED: u64 = 1 << 1;

const _: () =
    assert!(GUEST_COUNTERS_ADDR.is_multiple_of(16) && GUEST_COUNTERS_ADDR < BURST_RAM_SIZE);
const _: () =
    assert!(GUEST_PATTERN_ADDR < GUEST_COUNTERS_ADDR && GUEST_CODE_ADDR < GUEST_PATTERN_ADDR);

// The loop, position independent (relative jumps only; addresses come in DS:BX and ES:DI).
// Per iteration: increment ESI, store it at DS:[BX], load it back and compare, load the
// pattern at ES:[DI] and compare. On a mismatch, write the status to the exit port forever.
core::arch::global_asm!(
    ".pushsection .rodata.sipi_memslot_burst_guest,\"a\",@progbits",
    ".globl sipi_memslot_burst_guest_start",
    "sipi_memslot_burst_guest_start:",
    ".code16",
    "    xor esi, esi",
    "2:",
    "    inc esi",
    "    mov dword ptr [bx], esi",
    "    mov eax, dword ptr [bx]",
    "    cmp eax, esi",
    "    jne 3f",
    "    mov eax, dword ptr es:[di]",
    "    cmp eax, {pattern}",
    "    jne 4f",
    "    jmp 2b",
    "3:",
    "    mov eax, {counter_mismatch}",
    "    jmp 5f",
    "4:",
    "    mov eax, {pattern_mismatch}",
    "5:",
    "    mov dx, {port}",
    "    out dx, eax",
    "    jmp 5b",
    ".code64",
    ".globl sipi_memslot_burst_guest_end",
    "sipi_memslot_burst_guest_end:",
    ".popsection",
    pattern = const GUEST_PATTERN,
    counter_mismatch = const STATUS_COUNTER_MISMATCH,
    pattern_mismatch = const STATUS_PATTERN_MISMATCH,
    port = const EXIT_PORT,
);

extern "C" {
    static sipi_memslot_burst_guest_start: u8;
    static sipi_memslot_burst_guest_end: u8;
}

/// The machine code of the guest loop.
pub fn code() -> &'static [u8] {
    let start = &raw const sipi_memslot_burst_guest_start;
    let end = &raw const sipi_memslot_burst_guest_end;
    // SAFETY: both symbols are defined by the global_asm! block above, in one read-only
    // section, with `end` after `start`; the bytes between them are the assembled loop, never
    // written.
    unsafe { std::slice::from_raw_parts(start, end.offset_from(start) as usize) }
}

/// Guest address of vCPU `index`'s counter.
pub fn counter_addr(index: u32) -> u64 {
    GUEST_COUNTERS_ADDR + u64::from(index) * GUEST_COUNTER_STRIDE
}

/// Puts vCPU `index` (fresh from KVM_CREATE_VCPU, in real mode) at the start of the loop.
pub fn setup_vcpu(vcpu: &VcpuFd, index: u32) -> Result<(), kvm_ioctls::Error> {
    let mut sregs = vcpu.get_sregs()?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    sregs.ds.base = GUEST_COUNTERS_ADDR;
    sregs.ds.selector = (GUEST_COUNTERS_ADDR >> 4) as u16;
    sregs.es.base = 0;
    sregs.es.selector = 0;
    vcpu.set_sregs(&sregs)?;
    let regs = kvm_regs {
        rip: GUEST_CODE_ADDR,
        rflags: RFLAGS_RESERVED,
        rbx: counter_addr(index) - GUEST_COUNTERS_ADDR,
        rdi: GUEST_PATTERN_ADDR,
        ..Default::default()
    };
    vcpu.set_regs(&regs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_is_assembled_and_small() {
        let code = code();
        // xor esi, esi in 16-bit code: operand-size prefix, then 31 F6.
        assert_eq!(&code[..3], &[0x66, 0x31, 0xF6]);
        assert!(code.len() < 64, "{} bytes", code.len());
        assert!((GUEST_CODE_ADDR + code.len() as u64) <= GUEST_PATTERN_ADDR);
    }
}
