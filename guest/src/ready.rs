//! Which APs exist yet: the VMM may start the BSP while it is still creating the other vCPUs
//! (`vmm --bsp-start early`), and an INIT or STARTUP sent to a vCPU that does not exist yet is
//! lost. Before kicking an AP the BSP asks sipi's vCPU-readiness port
//! ([`VCPUS_READY_PORT`]), which blocks in the VMM until that vCPU is ready and answers with a
//! bound below which every APIC ID is ready. The BSP remembers the bound, so it asks again only
//! for an AP beyond it: one question per batch of vCPUs the VMM finished meanwhile. It asks
//! only when its command line says the VMM starts it early (`sipi.early_start`); otherwise
//! every vCPU exists before the BSP runs.

use firmware::layout::{VCPUS_ALL_READY, VCPUS_READY_PORT};

use crate::global::Global;

/// Every vCPU with a lower APIC ID is known to be ready (BSP only). All of them unless the
/// VMM said it starts the BSP early ([`expect_early_start`]).
static BOUND: Global<u32> = Global::new(VCPUS_ALL_READY);

/// The VMM starts the BSP before every vCPU exists (`sipi.early_start`): from now on ask
/// before kicking an AP. Called once, before bringup.
pub(crate) fn expect_early_start() {
    // SAFETY: only the BSP runs bringup, the one user of this static.
    unsafe { *BOUND.get() = 0 };
}

/// Returns once the vCPU with APIC ID `apic_id` is ready to be kicked; with
/// [`VCPUS_ALL_READY`], once every vCPU is.
pub(crate) fn wait_for(apic_id: u32) {
    if known_ready(apic_id) {
        return;
    }
    // SAFETY: the readiness port takes a 32-bit write of an APIC ID and answers the 32-bit read
    // that follows; nothing else uses it.
    let bound = unsafe {
        crate::cpu::outl(VCPUS_READY_PORT, apic_id);
        crate::cpu::inl(VCPUS_READY_PORT)
    };
    // A VMM without the port answers with whatever an unassigned port reads as (QEMU: all
    // ones, which means all ready); a bound that does not cover the vCPU asked for can only
    // come from such a VMM, which created every vCPU before the BSP ran.
    let bound = if bound > apic_id {
        bound
    } else {
        VCPUS_ALL_READY
    };
    // SAFETY: only the BSP runs bringup, the one user of this static.
    unsafe { *BOUND.get() = bound.max(*BOUND.get()) };
}

/// True if the vCPU with APIC ID `apic_id` is known to be ready without asking.
pub(crate) fn known_ready(apic_id: u32) -> bool {
    // SAFETY: only the BSP runs bringup, the one user of this static.
    let known = unsafe { *BOUND.get() };
    known == VCPUS_ALL_READY || (apic_id != VCPUS_ALL_READY && apic_id < known)
}
