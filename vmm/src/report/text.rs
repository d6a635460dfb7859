//! The human view of a boot's outcome: the summary `vmm` prints.

use firmware::report::BspPhase;

use super::details::TscSyncJson;
use super::outcome::BootOutcome;
use super::scenario::render_scenario;
use super::stamps::cycles_to_us;
use super::stats;

/// Slowest CPUs listed without `--per-cpu`.
const SLOWEST_SHOWN: usize = 5;

/// The human summary printed after a boot; `per_cpu` lists every CPU's phases.
pub(crate) fn render_summary(j: &BootOutcome, per_cpu: bool) -> String {
    let mut out = String::new();
    let mhz = f64::from(j.tsc_khz) / 1000.0;
    match (&j.boot, j.exit_via) {
        // A kernel that sent no report (a foreign one) says nothing about its CPUs: say how it
        // ended instead of "0/N online".
        (None, Some(via)) => out.push_str(&format!(
            "sipi: {} vCPUs, no report, the guest ended via {via}, TSC {mhz:.3} MHz, status {}\n",
            j.vcpus,
            j.status.name()
        )),
        _ => out.push_str(&format!(
            "sipi: {}/{} vCPUs online, TSC {mhz:.3} MHz, status {}\n",
            j.online,
            j.vcpus,
            j.status.name()
        )),
    }
    if let Some(b) = &j.boot {
        let mode = if b.x2apic { "x2APIC" } else { "xAPIC" };
        out.push_str(&format!(
            "guest: BSP APIC ID {} ({mode}), {} CPUs in the MADT, bringup {} / kick {}\n",
            b.bsp_apic_id, b.madt_cpus, b.bringup, b.kick
        ));
        let entry = b
            .bsp_stamps
            .get(BspPhase::Entry.name())
            .copied()
            .unwrap_or(0);
        let mut line = String::from("guest phases (since entry):");
        for p in BspPhase::ALL.iter().skip(1) {
            if let Some(&t) = b.bsp_stamps.get(p.name()) {
                let c = t.saturating_sub(entry);
                match cycles_to_us(c, j.tsc_khz) {
                    Some(us) => line.push_str(&format!(" {} {us:.1} us;", p.name())),
                    None => line.push_str(&format!(" {} {c} cycles;", p.name())),
                }
            }
        }
        out.push_str(line.trim_end_matches(';'));
        out.push('\n');
        if let Some(line) = render_tsc_sync(&b.tsc_sync, j.tsc_khz) {
            out.push_str(&line);
        }
    }
    if let Some(s) = &j.stats {
        if !s.cpus.is_empty() {
            out.push_str(&stats::render(s, j.tsc_khz, per_cpu, SLOWEST_SHOWN));
        }
    }
    if let Some(text) = j
        .boot
        .as_ref()
        .and_then(|b| render_scenario(&b.scenario, j.tsc_khz))
    {
        out.push_str(&text);
    }
    out.push_str(&super::timeline::render(&j.timeline));
    if let Some(m) = &j.measurement {
        out.push_str(&m.render());
    }
    if let Some(k) = &j.kvm_stats {
        out.push_str(&super::kvm_stats::render(k, per_cpu));
    }
    let p = &j.vmm_phases_us;
    let report = p.report.map_or_else(|| "-".to_string(), |r| r.to_string());
    let exit = p.exit.map_or_else(|| "-".to_string(), |r| r.to_string());
    out.push_str(&format!(
        "vmm phases (us): open_kvm {} | create_vm {} | memory {} | load_kernel {} | acpi {} | create_vcpus {} | first_run {} | report {report} | exit {exit} | teardown {} | total {}\n",
        p.open_kvm, p.create_vm, p.memory, p.load_kernel, p.acpi, p.create_vcpus, p.first_run, p.teardown, p.total
    ));
    out
}

/// The TSC check's line of the human summary (None when no check ran).
fn render_tsc_sync(t: &TscSyncJson, tsc_khz: u32) -> Option<String> {
    let synchronised = t.synchronised?;
    let cost = match cycles_to_us(t.cycles, tsc_khz) {
        Some(us) => format!("{us:.1} us"),
        None => format!("{} cycles", t.cycles),
    };
    let verdict = if synchronised {
        "synchronised".to_string()
    } else {
        let cpus: Vec<String> = t
            .out_of_sync
            .iter()
            .take(SLOWEST_SHOWN)
            .map(|c| format!("CPU#{} (APIC {}) by {} cycles", c.cpu, c.apic_id, c.value))
            .collect();
        let more = if t.out_of_sync.len() > SLOWEST_SHOWN {
            ", ..."
        } else {
            ""
        };
        format!("NOT synchronised: {}{more}", cpus.join(", "))
    };
    let adjust = if !t.tsc_adjust_supported {
        "no IA32_TSC_ADJUST".to_string()
    } else if t.tsc_adjust_nonzero.is_empty() {
        "IA32_TSC_ADJUST 0 everywhere".to_string()
    } else {
        format!(
            "IA32_TSC_ADJUST not 0 on {} CPUs",
            t.tsc_adjust_nonzero.len()
        )
    };
    Some(format!(
        "tsc sync: {}, {cost}, {} CPUs checked, max warp {} cycles ({} warps): {verdict}; {adjust}\n",
        t.strategy, t.checked_cpus, t.max_warp_cycles, t.warps
    ))
}
