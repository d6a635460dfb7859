//! How long the BSP waits for APs before it acts on their silence, and how often it tries
//! again: the terms that bringup ([`crate::bringup`]), teardown ([`crate::teardown`]) and
//! hotplug-torture ([`crate::torture`]) share. What each term is sized from, as measured on this
//! project's hosts: docs/host.md, "Bringup deadlines".
//!
//! A deadline is [`BASE_US`], plus [`PER_AP_US`] per outstanding AP, plus [`PER_CPU_US`] per
//! CPU in the VM ([`budget_us`]); each user restarts it on progress and doubles it when it
//! passes without any.

use crate::cpus;

/// The fixed part of the deadline: how long the BSP waits with no AP making progress (from the
/// kick, or from the last progress). Twice the longest such gap seen on a quiet host with no
/// AP lost.
const BASE_US: u64 = 50_000;
/// The part of the deadline per outstanding AP: the host CPU time an AP takes from its kick to
/// online in parallel bringup, rounded up, since the APs share two host cores.
const PER_AP_US: u64 = 2_000;
/// The part of the deadline per CPU in the VM: the first KVM_RUN of every vCPU thread, all
/// released together by the VMM, delays the first APs' start in proportion to the vCPU count.
const PER_CPU_US: u64 = 150;

/// How many times an AP that has not called in is kicked again.
pub(crate) const MAX_RETRIES: u16 = 3;
/// Times the BSP wakes an AP that has not gone offline when asked (each time twice as
/// patient) before it gives up on it and INITs it anyway.
pub(crate) const MAX_NUDGES: u32 = 3;

/// The deadline, in microseconds, for `outstanding` APs at the least patience.
pub(crate) fn budget_us(outstanding: usize) -> u64 {
    BASE_US + PER_AP_US * outstanding as u64 + PER_CPU_US * cpus::count() as u64
}
