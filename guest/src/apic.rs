//! The local APIC (Intel SDM Vol. 3A, chapter 11), in x2APIC mode when the CPU supports it,
//! else in xAPIC mode at [`LAPIC_BASE`]. Each CPU enables its own APIC with
//! [`LocalApic::enable`]; the BSP and the APs run the same code.

use crate::cpu::{self, msr};
use crate::supervisor;
use firmware::layout::LAPIC_BASE;

/// IA32_APIC_BASE bits (Intel SDM Vol. 3A, 11.4.4, Figure 11-5).
mod base {
    /// x2APIC mode enable (EXTD).
    pub const X2APIC_ENABLE: u64 = 1 << 10;
    /// APIC global enable (EN).
    pub const ENABLE: u64 = 1 << 11;
    /// The APIC base physical address, bits 12 and up (the address width is the CPU's).
    pub const ADDRESS_MASK: u64 = !0xFFF & ((1 << 52) - 1);
}

/// Local APIC registers, as xAPIC MMIO offsets (Intel SDM Vol. 3A, Table 11-1). In x2APIC mode
/// register `offset` is MSR `0x800 + offset / 16` (Intel SDM Vol. 3A, 11.12.1.2, Table 11-6).
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
enum Register {
    /// Local APIC ID.
    Id = 0x20,
    /// Spurious-interrupt vector register.
    SpuriousVector = 0xF0,
}

/// First MSR of the x2APIC register space.
const X2APIC_MSR_BASE: u32 = 0x800;

/// SVR bit 8: APIC software enable (Intel SDM Vol. 3A, 11.9, Figure 11-23).
const SVR_APIC_SOFTWARE_ENABLE: u32 = 1 << 8;
/// SVR bits 7:0: the spurious-interrupt vector.
const SVR_VECTOR_MASK: u32 = 0xFF;
/// The spurious-interrupt vector the kernel programs (0xFF, as Linux and most kernels do).
const SPURIOUS_VECTOR: u32 = 0xFF;
/// In xAPIC mode the APIC ID is in bits 31:24 of the ID register.
const XAPIC_ID_SHIFT: u32 = 24;

/// How the local APIC is accessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Memory-mapped registers at [`LAPIC_BASE`].
    XApic,
    /// MSRs 0x800 and up.
    X2Apic,
}

/// This CPU's enabled local APIC.
#[derive(Debug, Clone, Copy)]
pub struct LocalApic {
    mode: Mode,
}

impl LocalApic {
    /// Enables this CPU's local APIC, in x2APIC mode if CPUID.1:ECX[21] says it exists, and
    /// software-enables it with spurious vector 0xFF. Interrupts stay masked (IF=0).
    ///
    /// # Panics
    ///
    /// In xAPIC mode, if the APIC is not at [`LAPIC_BASE`], where the identity map makes its
    /// registers uncacheable.
    pub fn enable() -> Self {
        let x2apic = cpu::has_x2apic();
        // SAFETY: IA32_APIC_BASE exists on every CPU with a local APIC (all x86-64 CPUs).
        let mut value = unsafe { supervisor::rdmsr(msr::IA32_APIC_BASE) };
        // A disabled APIC must be enabled in xAPIC mode before it may switch to x2APIC mode
        // (Intel SDM Vol. 3A, 11.12.5, Figure 11-27), so the bits are set one write at a time.
        let mut steps = [base::ENABLE, 0];
        if x2apic {
            steps[1] = base::X2APIC_ENABLE;
        }
        for bit in steps {
            if value & bit != bit {
                value |= bit;
                // SAFETY: setting EN, then EXTD when CPUID reports x2APIC support, follows the
                // valid state transitions; interrupts are masked, so no interrupt can observe
                // the APIC half-configured.
                unsafe { supervisor::wrmsr(msr::IA32_APIC_BASE, value) };
            }
        }
        let apic = Self {
            mode: if x2apic { Mode::X2Apic } else { Mode::XApic },
        };
        if apic.mode == Mode::XApic {
            let address = value & base::ADDRESS_MASK;
            assert!(
                address == LAPIC_BASE,
                "the local APIC is at {address:#x}, not at {LAPIC_BASE:#x}"
            );
        }
        let svr = apic.read(Register::SpuriousVector);
        apic.write(
            Register::SpuriousVector,
            (svr & !SVR_VECTOR_MASK) | SPURIOUS_VECTOR | SVR_APIC_SOFTWARE_ENABLE,
        );
        apic
    }

    /// The access mode.
    pub fn mode(self) -> Mode {
        self.mode
    }

    /// This CPU's APIC ID (the 32-bit x2APIC ID in x2APIC mode, the 8-bit ID otherwise).
    pub fn id(self) -> u32 {
        match self.mode {
            Mode::X2Apic => self.read(Register::Id),
            Mode::XApic => self.read(Register::Id) >> XAPIC_ID_SHIFT,
        }
    }

    /// Reads a 32-bit register.
    fn read(self, reg: Register) -> u32 {
        match self.mode {
            // SAFETY: the APIC is in x2APIC mode, where this MSR is a readable APIC register;
            // the registers read here (ID, SVR) have no read side effects. The high half of
            // the MSR is reserved for these registers.
            Mode::X2Apic => unsafe { supervisor::rdmsr(x2apic_msr(reg)) as u32 },
            // SAFETY: the APIC is enabled in xAPIC mode at LAPIC_BASE (checked in `enable`),
            // which the boot page tables map uncacheable; the register is 16-byte aligned
            // inside the APIC page, and an aligned 32-bit read is the access the SDM requires.
            Mode::XApic => unsafe { xapic_register(reg).read_volatile() },
        }
    }

    /// Writes a 32-bit register.
    fn write(self, reg: Register, value: u32) {
        match self.mode {
            // SAFETY: the APIC is in x2APIC mode, where this MSR is a writable APIC register;
            // the callers write only values valid for it.
            Mode::X2Apic => unsafe { supervisor::wrmsr(x2apic_msr(reg), u64::from(value)) },
            // SAFETY: as in `read`: an aligned 32-bit write to a register of the enabled,
            // uncacheable xAPIC page; the callers write only values valid for it.
            Mode::XApic => unsafe { xapic_register(reg).write_volatile(value) },
        }
    }
}

/// The x2APIC MSR of `reg`.
fn x2apic_msr(reg: Register) -> u32 {
    X2APIC_MSR_BASE + (reg as u32 >> 4)
}

/// The xAPIC MMIO address of `reg`.
fn xapic_register(reg: Register) -> *mut u32 {
    (LAPIC_BASE + u64::from(reg as u32)) as *mut u32
}
