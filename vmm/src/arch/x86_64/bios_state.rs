//! The machine state a PC BIOS leaves behind, for multiboot kernels.
//!
//! QEMU boots a multiboot kernel through its BIOS (SeaBIOS and its multiboot option ROM), so
//! such kernels find what SeaBIOS's POST set up, and kvm-unit-tests' `realmode` relies on it:
//! it goes back to real mode, runs `sti; hlt` with only IRQ 11 (masked) raised, and gets past
//! the `hlt` because the BIOS's timer interrupt wakes it. sipi has no BIOS, so for a
//! multiboot entry it leaves the same state itself (docs/boot.md, "What a multiboot kernel
//! finds"):
//!
//! - both 8259s initialised (ICW1-ICW4) with vector bases 0x08 and 0x70, and the masks
//!   SeaBIOS leaves for the devices it drives, of those sipi has: IRQ 0 (timer), 1 (8042
//!   keyboard) and 2 (cascade) open on the master, IRQ 8 (RTC), 12 (8042 mouse) and 13
//!   (FPU) on the slave (under QEMU a kernel also finds IRQ 6 and 14 open, for its floppy
//!   and IDE controllers);
//! - PIT channel 0 in mode 2 with a count of 0x10000, 18.2 Hz on IRQ 0 (SeaBIOS `pit_setup`);
//! - every real-mode IVT vector pointing at a handler in the BIOS area: the PIC's vectors at
//!   one that sends the EOI (both 8259s for the slave's; IRQ 8's also reads RTC register C,
//!   as a BIOS's does), every other vector at a bare IRET. Unlike SeaBIOS's, the timer
//!   handler keeps no tick count in the BIOS data area and calls no INT 1Ch.
//!
//! PVH and long-mode kernels are not booted through a BIOS (their boot protocols hand over
//! a machine no firmware touched), and sipi's own guest is one of them: they keep KVM's
//! reset state.

use firmware::layout::{
    BIOS_STUB_ADDR, BIOS_STUB_ROOM, BIOS_STUB_SEGMENT, CMOS_DATA_PORT, CMOS_INDEX_PORT, IVT_ADDR,
    IVT_BDA_END, IVT_VECTORS, REAL_MODE_PARAGRAPH,
};
use kvm_bindings::{kvm_irqchip, kvm_pic_state, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE};
use kvm_ioctls::VmFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::devices::cmos::RTC_REG_C;

/// Why the BIOS state could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BiosStateError {
    /// A KVM ioctl on the in-kernel PIC or PIT failed.
    #[error("cannot {0} for the multiboot kernel's BIOS state")]
    Ioctl(&'static str, #[source] kvm_ioctls::Error),
    /// The IVT or its handlers could not be written into guest memory.
    #[error("cannot write the real-mode IVT and its handlers into guest memory")]
    Memory(#[source] vm_memory::GuestMemoryError),
}

/// The master 8259's command port (IBM PC/AT).
const PIC_MASTER_CMD_PORT: u8 = 0x20;
/// The slave 8259's command port.
const PIC_SLAVE_CMD_PORT: u8 = 0xA0;
/// OCW2 non-specific end of interrupt (Intel 8259A datasheet, OCW2).
const PIC_EOI: u8 = 0x20;
/// The master's vector base a PC BIOS programs: IRQ 0-7 at INT 08h-0Fh (IBM PC/AT BIOS).
const PIC_MASTER_BASE: u8 = 0x08;
/// The slave's vector base a PC BIOS programs: IRQ 8-15 at INT 70h-77h.
const PIC_SLAVE_BASE: u8 = 0x70;
/// Lines per 8259.
const PIC_LINES: u8 = 8;
/// The PIT's IRQ (IBM PC/AT).
const PIT_IRQ: u8 = 0;
/// The keyboard's IRQ (8042 port 1).
const KEYBOARD_IRQ: u8 = 1;
/// The master's input the slave is cascaded on (ICW3).
const PIC_CASCADE_IRQ: u8 = 2;
/// The RTC's IRQ, the slave's first.
const RTC_IRQ: u8 = 8;
/// The PS/2 mouse's IRQ (8042 port 2).
const MOUSE_IRQ: u8 = 12;
/// The FPU error IRQ.
const FPU_IRQ: u8 = 13;
/// The mask of IRQ `irq` in its 8259's IMR.
const fn imr_bit(irq: u8) -> u8 {
    1 << (irq % PIC_LINES)
}
/// The master's mask: SeaBIOS opens the lines of the devices it found and drives; of sipi's
/// devices that is the timer and the 8042's keyboard port, with the cascade.
const PIC_MASTER_MASK: u8 = !(imr_bit(PIT_IRQ) | imr_bit(KEYBOARD_IRQ) | imr_bit(PIC_CASCADE_IRQ));
/// The slave's mask: the RTC, the 8042's mouse port and the FPU error open.
const PIC_SLAVE_MASK: u8 = !(imr_bit(RTC_IRQ) | imr_bit(MOUSE_IRQ) | imr_bit(FPU_IRQ));
/// The RTC's vector.
const RTC_IRQ_VECTOR: u8 = PIC_SLAVE_BASE + RTC_IRQ - PIC_LINES;

/// PIT channel 0's mode after a BIOS: mode 2, rate generator (SeaBIOS `pit_setup`).
const PIT_MODE_RATE_GENERATOR: u8 = 2;
/// The PIT's access mode "low byte then high byte" (Intel 8254 datasheet, control word RW
/// bits), and KVM's read/write state for a word access (arch/x86/kvm/i8254.c RW_STATE_WORD0).
const PIT_ACCESS_WORD: u8 = 3;
/// A count of 0 loads 0x10000: 1193182 Hz / 65536 = 18.2 Hz, the PC's timer tick.
const PIT_COUNT_18_2_HZ: u32 = 0;

/// x86 instruction bytes of the handlers (Intel SDM Vol. 2): PUSH AX, POP AX, IRET,
/// MOV AL imm8, OUT imm8 AL, IN AL imm8.
const PUSH_AX: u8 = 0x50;
const POP_AX: u8 = 0x58;
const IRET: u8 = 0xCF;
const MOV_AL: u8 = 0xB0;
const OUT_AL: u8 = 0xE6;
const IN_AL: u8 = 0xE4;

/// The bare IRET every vector without a device points at.
const IRET_HANDLER: &[u8] = &[IRET];
/// EOI to the master: IRQ 0-7.
const MASTER_HANDLER: &[u8] = &[
    PUSH_AX,
    MOV_AL,
    PIC_EOI,
    OUT_AL,
    PIC_MASTER_CMD_PORT,
    POP_AX,
    IRET,
];
/// EOI to the slave, then the master: IRQ 9-15.
const SLAVE_HANDLER: &[u8] = &[
    PUSH_AX,
    MOV_AL,
    PIC_EOI,
    OUT_AL,
    PIC_SLAVE_CMD_PORT,
    OUT_AL,
    PIC_MASTER_CMD_PORT,
    POP_AX,
    IRET,
];
/// IRQ 8: read RTC register C (which acknowledges the RTC's interrupt), then EOI to both.
const RTC_HANDLER: &[u8] = &[
    PUSH_AX,
    MOV_AL,
    RTC_REG_C,
    OUT_AL,
    CMOS_INDEX_PORT as u8,
    IN_AL,
    CMOS_DATA_PORT as u8,
    MOV_AL,
    PIC_EOI,
    OUT_AL,
    PIC_SLAVE_CMD_PORT,
    OUT_AL,
    PIC_MASTER_CMD_PORT,
    POP_AX,
    IRET,
];
/// The handlers, in the order they are laid out from [`BIOS_STUB_ADDR`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handler {
    Iret,
    Master,
    Slave,
    Rtc,
}

impl Handler {
    const ALL: [Handler; 4] = [Handler::Iret, Handler::Master, Handler::Slave, Handler::Rtc];

    /// The handler's code.
    const fn code(self) -> &'static [u8] {
        match self {
            Handler::Iret => IRET_HANDLER,
            Handler::Master => MASTER_HANDLER,
            Handler::Slave => SLAVE_HANDLER,
            Handler::Rtc => RTC_HANDLER,
        }
    }

    /// The handler interrupt `vector` gets.
    fn of(vector: u8) -> Self {
        let master = PIC_MASTER_BASE..PIC_MASTER_BASE + PIC_LINES;
        let slave = PIC_SLAVE_BASE..PIC_SLAVE_BASE + PIC_LINES;
        match vector {
            v if v == RTC_IRQ_VECTOR => Handler::Rtc,
            v if slave.contains(&v) => Handler::Slave,
            v if master.contains(&v) => Handler::Master,
            _ => Handler::Iret,
        }
    }
}

/// Bytes of all the handlers.
const HANDLERS_SIZE: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < Handler::ALL.len() {
        n += Handler::ALL[i].code().len();
        i += 1;
    }
    n
};
const _: () = assert!(HANDLERS_SIZE as u64 <= BIOS_STUB_ROOM);
/// The 8-bit port operands above are the ports' full numbers.
const _: () = assert!(CMOS_INDEX_PORT <= 0xFF && CMOS_DATA_PORT <= 0xFF);
/// A real-mode IVT entry: a 16-bit offset, then a 16-bit segment.
const IVT_ENTRY_SIZE: usize = 4;
const _: () = assert!((IVT_VECTORS * IVT_ENTRY_SIZE) as u64 <= IVT_BDA_END - IVT_ADDR);

/// The handlers' bytes and the 256 far pointers of the IVT.
fn build() -> (Vec<u8>, Vec<u8>) {
    let segment_base = u64::from(BIOS_STUB_SEGMENT) * REAL_MODE_PARAGRAPH;
    let mut code = Vec::with_capacity(HANDLERS_SIZE);
    let mut offsets = [0u16; Handler::ALL.len()];
    for h in Handler::ALL {
        // In segment F000h by layout's assertion: the offset fits 16 bits.
        offsets[h as usize] = (BIOS_STUB_ADDR + code.len() as u64 - segment_base) as u16;
        code.extend_from_slice(h.code());
    }
    let mut ivt = Vec::with_capacity(IVT_VECTORS * IVT_ENTRY_SIZE);
    for vector in 0..=u8::MAX {
        ivt.extend_from_slice(&offsets[Handler::of(vector) as usize].to_le_bytes());
        ivt.extend_from_slice(&BIOS_STUB_SEGMENT.to_le_bytes());
    }
    (code, ivt)
}

/// Leaves the BIOS state above in `vm` and `mem`: IVT and handlers, both 8259s, PIT
/// channel 0. Done once, before any vCPU runs.
pub(crate) fn leave(vm: &VmFd, mem: &GuestMemoryMmap) -> Result<(), BiosStateError> {
    let (code, ivt) = build();
    mem.write_slice(&code, GuestAddress(BIOS_STUB_ADDR))
        .map_err(BiosStateError::Memory)?;
    mem.write_slice(&ivt, GuestAddress(IVT_ADDR))
        .map_err(BiosStateError::Memory)?;
    init_pic(vm, KVM_IRQCHIP_PIC_MASTER, PIC_MASTER_BASE, PIC_MASTER_MASK)?;
    init_pic(vm, KVM_IRQCHIP_PIC_SLAVE, PIC_SLAVE_BASE, PIC_SLAVE_MASK)?;
    start_pit(vm)
}

/// Puts one 8259 where ICW1-ICW4 (edge triggered, cascaded, 8086 mode) and then OCW1 `mask`
/// leave it: vectors from `base`. KVM's other fields (ELCR and its mask, the cascade wiring
/// it models itself) are kept.
fn init_pic(vm: &VmFd, chip_id: u32, base: u8, mask: u8) -> Result<(), BiosStateError> {
    let mut chip = kvm_irqchip {
        chip_id,
        ..Default::default()
    };
    vm.get_irqchip(&mut chip)
        .map_err(|e| BiosStateError::Ioctl("read the in-kernel 8259", e))?;
    // SAFETY: KVM_GET_IRQCHIP for a PIC chip_id filled the `pic` member, and every bit
    // pattern is a valid `kvm_pic_state` (sixteen u8 fields).
    let old = unsafe { chip.chip.pic };
    chip.chip.pic = kvm_pic_state {
        irq_base: base,
        imr: mask,
        init4: 1,
        init_state: 0,
        elcr: old.elcr,
        elcr_mask: old.elcr_mask,
        ..Default::default()
    };
    vm.set_irqchip(&chip)
        .map_err(|e| BiosStateError::Ioctl("initialise the in-kernel 8259", e))
}

/// Starts PIT channel 0 as SeaBIOS leaves it: mode 2, count 0x10000, gate high.
fn start_pit(vm: &VmFd) -> Result<(), BiosStateError> {
    let mut pit = vm
        .get_pit2()
        .map_err(|e| BiosStateError::Ioctl("read the in-kernel PIT", e))?;
    let ch = &mut pit.channels[0];
    ch.count = PIT_COUNT_18_2_HZ;
    ch.mode = PIT_MODE_RATE_GENERATOR;
    ch.rw_mode = PIT_ACCESS_WORD;
    ch.read_state = PIT_ACCESS_WORD;
    ch.write_state = PIT_ACCESS_WORD;
    ch.bcd = 0;
    ch.gate = 1;
    vm.set_pit2(&pit)
        .map_err(|e| BiosStateError::Ioctl("start the in-kernel PIT", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The far pointer of `vector` as (segment, offset).
    fn far(ivt: &[u8], vector: usize) -> (u16, u16) {
        let e = &ivt[vector * IVT_ENTRY_SIZE..(vector + 1) * IVT_ENTRY_SIZE];
        (
            u16::from_le_bytes([e[2], e[3]]),
            u16::from_le_bytes([e[0], e[1]]),
        )
    }

    /// The handler bytes a far pointer reaches.
    fn reached(code: &[u8], (seg, off): (u16, u16)) -> &[u8] {
        let addr = u64::from(seg) * REAL_MODE_PARAGRAPH + u64::from(off);
        &code[(addr - BIOS_STUB_ADDR) as usize..]
    }

    #[test]
    fn every_vector_reaches_its_handler_in_the_bios_area() {
        let (code, ivt) = build();
        assert_eq!(ivt.len(), 1024);
        assert!(code.len() as u64 <= BIOS_STUB_ROOM);
        for v in 0..256 {
            let h = reached(&code, far(&ivt, v));
            let want = match v {
                0x70 => RTC_HANDLER,
                0x71..=0x77 => SLAVE_HANDLER,
                0x08..=0x0F => MASTER_HANDLER,
                _ => IRET_HANDLER,
            };
            assert_eq!(&h[..want.len()], want, "vector {v:#x}");
        }
        // IRQ 0's handler: push ax; mov al, 0x20; out 0x20, al; pop ax; iret.
        assert_eq!(
            reached(&code, far(&ivt, 8))[..7],
            [0x50, 0xB0, 0x20, 0xE6, 0x20, 0x58, 0xCF]
        );
        // IRQ 11 (vector 0x73): EOI to the slave (0xA0) and the master.
        assert_eq!(
            reached(&code, far(&ivt, 0x73))[..9],
            [0x50, 0xB0, 0x20, 0xE6, 0xA0, 0xE6, 0x20, 0x58, 0xCF]
        );
    }

    #[test]
    fn the_masks_are_seabios_s_for_sipi_s_devices() {
        // Under QEMU a multiboot kernel reads 0xB8 and 0x8E: IRQ 6 (floppy) and 14 (IDE)
        // open too, for devices sipi does not have.
        assert_eq!(PIC_MASTER_MASK, 0xB8 | imr_bit(6));
        assert_eq!(PIC_SLAVE_MASK, 0x8E | imr_bit(14));
        assert_eq!((PIC_MASTER_MASK, PIC_SLAVE_MASK), (0xF8, 0xCE));
        assert_eq!(RTC_IRQ_VECTOR, 0x70);
    }
}
