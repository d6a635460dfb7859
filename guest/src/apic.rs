//! The local APIC (Intel SDM Vol. 3A, chapter 11), in x2APIC mode when the CPU supports it,
//! else in xAPIC mode at [`LAPIC_BASE`], and the inter-processor interrupts that start the APs
//! (INIT and STARTUP, Intel SDM Vol. 3A, 11.6 and 9.4).
//!
//! The BSP enables its APIC with [`LocalApic::enable`]. An AP's APIC is enabled by the AP's
//! CPL-0 entry code, in the same mode, with the values [`ap_apic_base`] and [`SVR_ENABLED`]
//! (see [`crate::trampoline`]): three emulated instructions there instead of five supervisor
//! calls here.
//!
//! Sending IPIs: in x2APIC mode the ICR is MSR 0x830, which CPL-3 code reaches through a
//! supervisor call (see [`crate::supervisor`] for its cost); [`LocalApic::kick`] and
//! [`LocalApic::kick_all_but_self`] therefore send the INIT, STARTUP, STARTUP sequences of a
//! whole list of APs, or the broadcast, in one call. In xAPIC mode the ICR is MMIO that CPL-3
//! code writes directly (every page is user-accessible). What each costs on kvm_pvm:
//! guest/README.md, "Running on kvm_pvm", and docs/host.md, "Costs per operation".

use core::sync::atomic::{AtomicU8, Ordering};

use crate::cpu::{self, msr};
use crate::supervisor;
use firmware::layout::{LAPIC_BASE, SIPI_VECTOR};

/// IA32_APIC_BASE bits (Intel SDM Vol. 3A, 11.4.4, Figure 11-5).
pub(crate) mod base {
    /// x2APIC mode enable (EXTD).
    pub(crate) const X2APIC_ENABLE: u64 = 1 << 10;
    /// APIC global enable (EN).
    pub(crate) const ENABLE: u64 = 1 << 11;
    /// The APIC base physical address, bits 12 and up (the address width is the CPU's).
    pub(crate) const ADDRESS_MASK: u64 = !0xFFF & ((1 << 52) - 1);
}

/// Interrupt command register fields (Intel SDM Vol. 3A, 11.6.1, Figure 11-12; in x2APIC mode
/// 11.12.9, Figure 11-28), as bits of the 64-bit ICR value.
pub(crate) mod icr {
    /// Delivery mode 101b: INIT.
    pub(crate) const DELIVERY_MODE_INIT: u64 = 0b101 << 8;
    /// Delivery mode 110b: Start-Up (the vector is the start page number).
    pub(crate) const DELIVERY_MODE_STARTUP: u64 = 0b110 << 8;
    /// Delivery status (xAPIC only): the previous IPI is still being sent.
    pub(crate) const DELIVERY_STATUS_PENDING: u64 = 1 << 12;
    /// Delivery mode 000b: Fixed (the vector in bits 7:0 is delivered as an interrupt).
    pub(crate) const DELIVERY_MODE_FIXED: u64 = 0b000 << 8;
    /// Level: assert (the SDM's MP initialization examples set it for INIT and STARTUP alike).
    pub(crate) const LEVEL_ASSERT: u64 = 1 << 14;
    /// Destination shorthand 11b: all excluding self.
    pub(crate) const SHORTHAND_ALL_EXCLUDING_SELF: u64 = 0b11 << 18;
    /// The destination field in x2APIC mode: bits 63:32, the 32-bit x2APIC ID.
    pub(crate) const X2APIC_DESTINATION_SHIFT: u32 = 32;
    /// The destination field in xAPIC mode: bits 63:56 (ICR high, bits 31:24), an 8-bit ID.
    pub(crate) const XAPIC_DESTINATION_SHIFT: u32 = 56;
    /// The INIT IPI's low half: INIT, level assert, no shorthand.
    pub(crate) const INIT: u64 = DELIVERY_MODE_INIT | LEVEL_ASSERT;
    /// The STARTUP IPI's low half that starts an AP at the trampoline (vector
    /// [`super::SIPI_VECTOR`]).
    pub(crate) const STARTUP: u64 =
        DELIVERY_MODE_STARTUP | LEVEL_ASSERT | super::SIPI_VECTOR as u64;
}

/// The IA32_APIC_BASE an AP's entry code writes: the default base, enabled, and in x2APIC mode
/// when `x2apic` (the BSP's mode). An AP's BSP flag (bit 8) is clear.
pub(crate) const fn ap_apic_base(x2apic: bool) -> u64 {
    LAPIC_BASE | base::ENABLE | if x2apic { base::X2APIC_ENABLE } else { 0 }
}

/// Local APIC registers, as xAPIC MMIO offsets (Intel SDM Vol. 3A, Table 11-1). In x2APIC mode
/// register `offset` is MSR `0x800 + offset / 16` (Intel SDM Vol. 3A, 11.12.1.2, Table 11-6).
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub(crate) enum Register {
    /// Local APIC ID.
    Id = 0x20,
    /// Spurious-interrupt vector register.
    SpuriousVector = 0xF0,
    /// End of interrupt: write 0 when an interrupt's handler is done.
    Eoi = 0xB0,
    /// Interrupt command register, bits 31:0 (in x2APIC mode the whole 64-bit ICR).
    IcrLow = 0x300,
    /// Interrupt command register, bits 63:32 (xAPIC only).
    IcrHigh = 0x310,
}

/// 1 once the BSP has enabled its local APIC in x2APIC mode, 0 in xAPIC mode: every AP runs its
/// APIC in the BSP's mode, and the wake-up interrupt's stub (CPL 0, see [`crate::idt`]) reads
/// this byte to signal the end of the interrupt the right way.
pub(crate) static X2APIC_MODE: AtomicU8 = AtomicU8::new(0);

/// First MSR of the x2APIC register space.
const X2APIC_MSR_BASE: u32 = 0x800;

/// SVR bit 8: APIC software enable (Intel SDM Vol. 3A, 11.9, Figure 11-23).
const SVR_APIC_SOFTWARE_ENABLE: u32 = 1 << 8;
/// SVR bits 7:0: the spurious-interrupt vector.
const SVR_VECTOR_MASK: u32 = 0xFF;
/// The spurious-interrupt vector the kernel programs (0xFF, as Linux and most kernels do).
const SPURIOUS_VECTOR: u32 = 0xFF;
/// The SVR of an enabled APIC: software enable, spurious vector 0xFF, the other bits clear as
/// after reset (focus checking on, no EOI broadcast suppression). An AP's entry writes it.
pub(crate) const SVR_ENABLED: u32 = SPURIOUS_VECTOR | SVR_APIC_SOFTWARE_ENABLE;
/// In xAPIC mode the APIC ID is in bits 31:24 of the ID register.
pub(crate) const XAPIC_ID_SHIFT: u32 = 24;
/// Polls of the xAPIC delivery status before an IPI is sent anyway.
const ICR_IDLE_POLL_LIMIT: u32 = 1000;

/// Where an IPI goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Destination {
    /// The CPU with this APIC ID.
    ApicId(u32),
    /// Every CPU but the sender (the all-excluding-self shorthand).
    AllExcludingSelf,
}

/// The IPIs the kernel sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ipi {
    /// INIT: the target resets and waits for a STARTUP IPI.
    Init,
    /// STARTUP: a target waiting for it starts in real mode at the trampoline.
    Startup,
    /// A fixed interrupt with this vector (32-255).
    Fixed(u8),
}

/// How the local APIC is accessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Memory-mapped registers at [`LAPIC_BASE`].
    XApic,
    /// MSRs 0x800 and up.
    X2Apic,
}

/// This CPU's enabled local APIC.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalApic {
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
    pub(crate) fn enable() -> Self {
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
        X2APIC_MODE.store(u8::from(x2apic), Ordering::Release);
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

    /// This CPU's local APIC once it is enabled: on an AP, enabled by its entry code in the
    /// BSP's mode (see [`ap_apic_base`]), which the BSP recorded in [`X2APIC_MODE`].
    pub(crate) fn current() -> Self {
        let x2apic = X2APIC_MODE.load(Ordering::Acquire) != 0;
        Self {
            mode: if x2apic { Mode::X2Apic } else { Mode::XApic },
        }
    }

    /// The access mode.
    pub(crate) fn mode(self) -> Mode {
        self.mode
    }

    /// This CPU's APIC ID (the 32-bit x2APIC ID in x2APIC mode, the 8-bit ID otherwise).
    pub(crate) fn id(self) -> u32 {
        match self.mode {
            Mode::X2Apic => self.read(Register::Id),
            Mode::XApic => self.read(Register::Id) >> XAPIC_ID_SHIFT,
        }
    }

    /// True if `apic_id` can be addressed in this mode: any 32-bit ID in x2APIC mode, 0..=254
    /// in xAPIC mode (0xFF is the broadcast ID).
    pub(crate) fn can_address(self, apic_id: u32) -> bool {
        self.mode == Mode::X2Apic || apic_id <= firmware::acpi::madt::MAX_XAPIC_ID
    }

    /// The 64-bit ICR value of `ipi` to `dest`.
    ///
    /// # Panics
    ///
    /// If `dest` cannot be addressed in this mode (see [`Self::can_address`]): a bug.
    fn icr(self, ipi: Ipi, dest: Destination) -> u64 {
        let low = match ipi {
            Ipi::Init => icr::INIT,
            Ipi::Startup => icr::STARTUP,
            Ipi::Fixed(vector) => icr::DELIVERY_MODE_FIXED | icr::LEVEL_ASSERT | u64::from(vector),
        };
        match dest {
            Destination::AllExcludingSelf => low | icr::SHORTHAND_ALL_EXCLUDING_SELF,
            Destination::ApicId(id) => {
                assert!(self.can_address(id), "APIC ID {id} cannot be addressed");
                let shift = match self.mode {
                    Mode::X2Apic => icr::X2APIC_DESTINATION_SHIFT,
                    Mode::XApic => icr::XAPIC_DESTINATION_SHIFT,
                };
                low | (u64::from(id) << shift)
            }
        }
    }

    /// Sends `ipi` to `dest`.
    pub(crate) fn send(self, ipi: Ipi, dest: Destination) {
        let value = self.icr(ipi, dest);
        match self.mode {
            // SAFETY: the ICR MSR exists in x2APIC mode, and a write only sends the IPI; INIT
            // and STARTUP never target this CPU (an ID other than the BSP's, or a shorthand
            // excluding self: see crate::bringup), and a fixed interrupt is only ever the
            // wake-up that CPUs halted in `supervisor::wait_while` expect (see crate::idt).
            Mode::X2Apic => unsafe { supervisor::wrmsr(x2apic_msr(Register::IcrLow), value) },
            Mode::XApic => {
                self.wait_icr_idle();
                self.write(Register::IcrHigh, (value >> 32) as u32);
                self.write(Register::IcrLow, value as u32);
            }
        }
    }

    /// Starts every AP in `apic_ids`, in order: for each, records the TSC in the same place of
    /// `stamps` just before its INIT, then sends INIT, STARTUP, STARTUP, with no delay between
    /// them (Linux does the same on modern CPUs; the STARTUP IPIs are ignored by a CPU that is
    /// not waiting for one).
    ///
    /// # Panics
    ///
    /// If the slices differ in length, or an ID cannot be addressed: bugs in the caller.
    pub(crate) fn kick(self, apic_ids: &[u32], stamps: &mut [u64]) {
        assert_eq!(apic_ids.len(), stamps.len());
        match self.mode {
            Mode::X2Apic => {
                // SAFETY: every ID is an AP (not this CPU) that the caller means to start; the
                // call writes only `stamps`.
                unsafe { supervisor::kick_x2apic(apic_ids, stamps, 0) }
            }
            Mode::XApic => {
                for (id, stamp) in apic_ids.iter().zip(stamps.iter_mut()) {
                    *stamp = cpu::rdtsc();
                    self.send(Ipi::Init, Destination::ApicId(*id));
                    self.send(Ipi::Startup, Destination::ApicId(*id));
                    self.send(Ipi::Startup, Destination::ApicId(*id));
                }
            }
        }
    }

    /// Parks every AP in `apic_ids` in wait-for-SIPI, in order: for each, records the TSC in the
    /// same place of `stamps` just before its INIT, then sends INIT (in x2APIC mode, all in one
    /// supervisor call).
    ///
    /// # Panics
    ///
    /// If the slices differ in length, or an ID cannot be addressed: bugs in the caller.
    pub(crate) fn park(self, apic_ids: &[u32], stamps: &mut [u64]) {
        assert_eq!(apic_ids.len(), stamps.len());
        match self.mode {
            Mode::X2Apic => {
                // SAFETY: every ID is an AP (not this CPU) that has parked itself and that the
                // caller means to reset; the call writes only `stamps`.
                unsafe { supervisor::init_x2apic(apic_ids, stamps) }
            }
            Mode::XApic => {
                for (id, stamp) in apic_ids.iter().zip(stamps.iter_mut()) {
                    *stamp = cpu::rdtsc();
                    self.send(Ipi::Init, Destination::ApicId(*id));
                }
            }
        }
    }

    /// Starts every AP at once: INIT, STARTUP, STARTUP with the all-excluding-self shorthand,
    /// back to back (in x2APIC mode in one supervisor call). Returns the TSC just before the
    /// INIT.
    pub(crate) fn kick_all_but_self(self) -> u64 {
        match self.mode {
            Mode::X2Apic => {
                let mut stamp = [0];
                // SAFETY: the shorthand excludes this CPU; every other CPU is an AP the caller
                // means to start. The call writes only `stamp`.
                unsafe {
                    supervisor::kick_x2apic(
                        &[0],
                        &mut stamp,
                        icr::SHORTHAND_ALL_EXCLUDING_SELF as u32,
                    )
                };
                stamp[0]
            }
            Mode::XApic => {
                let stamp = cpu::rdtsc();
                self.send(Ipi::Init, Destination::AllExcludingSelf);
                self.send(Ipi::Startup, Destination::AllExcludingSelf);
                self.send(Ipi::Startup, Destination::AllExcludingSelf);
                stamp
            }
        }
    }

    /// Waits (bounded) until the xAPIC has sent the previous IPI (Intel SDM Vol. 3A, 11.6.1:
    /// software checks the delivery status before writing the ICR again).
    fn wait_icr_idle(self) {
        for _ in 0..ICR_IDLE_POLL_LIMIT {
            if u64::from(self.read(Register::IcrLow)) & icr::DELIVERY_STATUS_PENDING == 0 {
                return;
            }
            core::hint::spin_loop();
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
            // the callers write only values valid for it (ICR writes go through `send`).
            Mode::X2Apic => unsafe { supervisor::wrmsr(x2apic_msr(reg), u64::from(value)) },
            // SAFETY: as in `read`: an aligned 32-bit write to a register of the enabled,
            // uncacheable xAPIC page; the callers write only values valid for it.
            Mode::XApic => unsafe { xapic_register(reg).write_volatile(value) },
        }
    }
}

/// The x2APIC MSR of `reg`.
pub(crate) const fn x2apic_msr(reg: Register) -> u32 {
    X2APIC_MSR_BASE + (reg as u32 >> 4)
}

/// The xAPIC MMIO address of `reg`.
fn xapic_register(reg: Register) -> *mut u32 {
    (LAPIC_BASE + u64::from(reg as u32)) as *mut u32
}
