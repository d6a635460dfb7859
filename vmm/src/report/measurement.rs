//! Measurement truth: did measuring add exits inside the guest's timed windows? sipi's guest
//! promises that it writes only to memory from its vCPUs' first run until its one report
//! doorbell, so every AP's count of exits to the VMM in that window must be 0, and the count
//! of the vCPU that rang the doorbell (the BSP) must be the doorbell's one exit, plus one per
//! ACPI S3 suspend the scenario asked for (its PM1a control write), plus one per access to the
//! vCPU-readiness port (`--bsp-start early`: the BSP asks before kicking an AP whose vCPU may
//! not exist yet). A count above that is a
//! violation: the guest's TSC stamps then include exits that the protocol rules out, and the
//! run fails (docs/kvm_stats.md).

use serde::Serialize;

/// The window the counts cover, as the JSON names it.
const WINDOW: &str = "first-run-to-doorbell";

/// A vCPU with more exits in the window than the protocol allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowViolation {
    /// The vCPU.
    pub vcpu: u32,
    /// Its exits to the VMM in the window.
    pub exits: u32,
    /// The exits the protocol allows it there.
    pub allowed: u32,
}

/// The counts and their check (field names are a stable interface, docs/json.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Measurement {
    /// What the counts cover: from each vCPU's first KVM_RUN to the first report doorbell.
    pub window: &'static str,
    /// The vCPU that rang the doorbell (the BSP).
    pub doorbell_vcpu: u32,
    /// The exits the doorbell's vCPU may make in the window: the doorbell, each suspend, and
    /// each access to the vCPU-readiness port.
    pub doorbell_vcpu_allowed: u32,
    /// Port I/O and MMIO exits to the VMM in the window, by vCPU index.
    pub userspace_exits: Vec<u32>,
    /// The vCPUs with more exits in the window than allowed.
    pub violations: Vec<WindowViolation>,
}

impl Measurement {
    /// Checks `counts` (by vCPU) of a boot whose doorbell `doorbell_vcpu` rang after the guest
    /// suspended the VM `suspends` times and accessed the vCPU-readiness port `ready` times.
    pub fn check(counts: Vec<u32>, doorbell_vcpu: u32, suspends: u32, ready: u32) -> Self {
        let doorbell_vcpu_allowed = suspends.saturating_add(1).saturating_add(ready);
        let violations = counts
            .iter()
            .enumerate()
            .filter_map(|(v, &exits)| {
                let allowed = match v == doorbell_vcpu as usize {
                    true => doorbell_vcpu_allowed,
                    false => 0,
                };
                (exits > allowed).then_some(WindowViolation {
                    vcpu: v as u32,
                    exits,
                    allowed,
                })
            })
            .collect();
        Self {
            window: WINDOW,
            doorbell_vcpu,
            doorbell_vcpu_allowed,
            userspace_exits: counts,
            violations,
        }
    }

    /// The one-line error of a run with violations (None without).
    pub fn error(&self) -> Option<String> {
        let first = self.violations.first()?;
        let more = match self.violations.len() {
            1 => String::new(),
            n => format!(" and {} more vCPUs", n - 1),
        };
        Some(format!(
            "the measurement is not clean: vCPU {} made {} to the VMM before the report doorbell, where the protocol allows {}{more}",
            first.vcpu,
            exits(first.exits),
            first.allowed
        ))
    }

    /// The human line.
    pub(crate) fn render(&self) -> String {
        let doorbell = self
            .userspace_exits
            .get(self.doorbell_vcpu as usize)
            .copied()
            .unwrap_or(0);
        let verdict = if self.violations.is_empty() {
            "clean".to_string()
        } else {
            let v: Vec<String> = self
                .violations
                .iter()
                .map(|v| format!("vCPU {} {}", v.vcpu, exits(v.exits)))
                .collect();
            format!("VIOLATED by {}", v.join(", "))
        };
        format!(
            "measurement: exits to the VMM before the report doorbell: vCPU {} {doorbell} (the doorbell included), other vCPUs {}: {verdict}\n",
            self.doorbell_vcpu,
            self.userspace_exits.iter().map(|&n| u64::from(n)).sum::<u64>() - u64::from(doorbell)
        )
    }
}

/// "1 exit", "2 exits".
fn exits(n: u32) -> String {
    match n {
        1 => "1 exit".to_string(),
        n => format!("{n} exits"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_doorbells_vcpu_may_exit_in_the_window() {
        let m = Measurement::check(vec![1, 0, 0, 0], 0, 0, 0);
        assert!(m.violations.is_empty());
        assert_eq!(m.error(), None);
        assert!(m
            .render()
            .ends_with("vCPU 0 1 (the doorbell included), other vCPUs 0: clean\n"));
        let m = Measurement::check(vec![3, 0, 0, 0], 0, 2, 0);
        assert!(m.violations.is_empty(), "a doorbell and two suspends");
        let m = Measurement::check(vec![5, 0, 0, 0], 0, 0, 4);
        assert!(
            m.violations.is_empty(),
            "a doorbell and two readiness questions"
        );
        let m = Measurement::check(vec![6, 0, 0, 0], 0, 0, 4);
        assert_eq!(
            m.violations.len(),
            1,
            "one exit more than the questions explain"
        );
        let m = Measurement::check(vec![0, 2, 1, 0, 2], 1, 0, 0);
        assert_eq!(
            m.violations,
            [
                WindowViolation {
                    vcpu: 1,
                    exits: 2,
                    allowed: 1
                },
                WindowViolation {
                    vcpu: 2,
                    exits: 1,
                    allowed: 0
                },
                WindowViolation {
                    vcpu: 4,
                    exits: 2,
                    allowed: 0
                }
            ]
        );
        let e = m.error().unwrap();
        assert!(
            e.contains("vCPU 1 made 2 exits") && e.contains("allows 1 and 2 more vCPUs"),
            "{e}"
        );
        assert!(m
            .render()
            .contains("VIOLATED by vCPU 1 2 exits, vCPU 2 1 exit, vCPU 4 2 exits"));
        let j = serde_json::to_value(&m).unwrap();
        assert_eq!(j["violations"][1]["vcpu"], 2);
        assert_eq!(j["userspace_exits"], serde_json::json!([0, 2, 1, 0, 2]));
    }
}
