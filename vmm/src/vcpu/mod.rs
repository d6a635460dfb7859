//! vCPUs: each is created by the VM's thread in APIC ID order ([`set`]), configured on a setup
//! thread (CPUID, MSRs, FPU, and for the BSP the entry state) while the next is created, given
//! a thread that inherits the seccomp filter, held until released, then run by the one run
//! loop ([`run_loop`]) until the VM stops, and kicked out of KVM_RUN to stop ([`kick`]).

pub(crate) mod kick;
pub(crate) mod outcome;
pub(crate) mod run_loop;
pub(crate) mod set;

use std::sync::Arc;

use kvm_bindings::CpuId;
use kvm_ioctls::VcpuFd;
use seccompiler::BpfProgram;

pub(crate) use outcome::Outcome;
pub(crate) use run_loop::ExitHandler;
pub(crate) use set::VcpuSet;

use crate::arch::x86_64::cpuid::{self, CpuidParams};
use crate::arch::x86_64::regs::{self, RegsError, StartState};
use crate::arch::x86_64::topology::Topology;
use crate::arch::x86_64::tsc::{self, TscError};
use crate::config::TscSkew;
use crate::loader::{BootLayout, Entry};
use crate::seccomp::SeccompError;

/// Why a vCPU could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// KVM_CREATE_VCPU failed.
    #[error("cannot create vCPU {0}")]
    Create(u32, #[source] kvm_ioctls::Error),
    /// The CPUID could not be patched.
    #[error("cannot build the CPUID of vCPU {0}")]
    Cpuid(u32, #[source] cpuid::CpuidError),
    /// KVM_SET_CPUID2 failed.
    #[error("cannot set the CPUID of vCPU {0}")]
    SetCpuid(u32, #[source] kvm_ioctls::Error),
    /// Register setup failed.
    #[error("cannot set up the registers of vCPU {0}")]
    Regs(u32, #[source] RegsError),
    /// The test-only TSC skew could not be applied.
    #[error("cannot skew the TSC of vCPU {0}")]
    Tsc(u32, #[source] TscError),
    /// The thread could not be started.
    #[error("cannot start the thread of vCPU {0}")]
    Spawn(u32, #[source] std::io::Error),
    /// The vCPU threads' seccomp filter could not be built.
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// The vCPU setup or spawner thread could not be started, or is gone.
    #[error("cannot run the vCPU setup threads")]
    SetupThread(#[source] std::io::Error),
}

/// How every vCPU of a boot starts: the same for all of them but the BSP's entry.
pub(crate) struct BootVcpus {
    /// The VM's topology.
    pub topology: Topology,
    /// The BSP's entry into the kernel.
    pub entry: Entry,
    /// Where the BSP's GDT, page tables and hand-off are.
    pub layout: BootLayout,
    /// KVM's supported CPUID, patched per vCPU.
    pub cpuid: CpuId,
    /// The TSC frequency KVM gives every vCPU (read once, from the BSP's vCPU).
    pub tsc_khz: Option<u32>,
    /// Test only: the vCPU whose TSC the VMM moves ahead before it first runs.
    pub tsc_skew: Option<TscSkew>,
    /// The filter the spawner thread installs once, which every vCPU thread inherits (None:
    /// not confined).
    pub seccomp: Option<&'static BpfProgram>,
}

/// One vCPU and what it is to be.
pub(crate) struct Vcpu {
    fd: VcpuFd,
    index: u32,
    boot: Arc<BootVcpus>,
}

impl Vcpu {
    /// vCPU `index` of a boot, created by the caller.
    pub(crate) fn new(fd: VcpuFd, index: u32, boot: Arc<BootVcpus>) -> Self {
        Self { fd, index, boot }
    }

    /// The test-only TSC skew of this vCPU, if it has one.
    pub(crate) fn tsc_skew(&self) -> Option<u64> {
        self.boot
            .tsc_skew
            .filter(|s| s.vcpu == self.index)
            .map(|s| s.cycles)
    }

    /// Configures the vCPU (CPUID, MSRs, FPU, the BSP's entry state), on the setup thread
    /// ([`set`]).
    pub(crate) fn configure(&self) -> Result<(), VcpuError> {
        let i = self.index;
        let b = &self.boot;
        let mut cpuid = b.cpuid.clone();
        cpuid::patch(
            &mut cpuid,
            &CpuidParams {
                apic_id: b.topology.apic_id(i),
                vcpu_count: b.topology.vcpus(),
                tsc_khz: b.tsc_khz,
            },
        )
        .map_err(|e| VcpuError::Cpuid(i, e))?;
        self.fd
            .set_cpuid2(&cpuid)
            .map_err(|e| VcpuError::SetCpuid(i, e))?;
        let bsp = i == 0;
        let start = StartState {
            bsp,
            x2apic: b.topology.x2apic(),
        };
        regs::setup_common(&self.fd, start).map_err(|e| VcpuError::Regs(i, e))?;
        if bsp {
            regs::setup_bsp(&self.fd, b.entry, &b.layout).map_err(|e| VcpuError::Regs(i, e))?;
        }
        Ok(())
    }

    /// Once every vCPU of the VM exists (KVM gives a vCPU created after a TSC write that
    /// write's offset) and before any runs: applies this vCPU's test-only TSC skew.
    pub(crate) fn before_run(&self) -> Result<(), VcpuError> {
        let Some(cycles) = self.tsc_skew() else {
            return Ok(());
        };
        tsc::skew_tsc(&self.fd, cycles).map_err(|e| VcpuError::Tsc(self.index, e))
    }

    /// Runs the vCPU until the VM stops.
    pub(crate) fn run(&mut self, handler: &impl ExitHandler) {
        let start = StartState {
            bsp: self.index == 0,
            x2apic: self.boot.topology.x2apic(),
        };
        run_loop::run(&mut self.fd, self.index, start, handler);
    }
}
