//! The boot timeline's views: the JSON `timeline` list and the human lines, Firecracker's
//! `Guest-boot-time` line for each boot timer event and one line per debug-port code
//! (docs/json.md, docs/devices.md).

use serde::Serialize;

/// Debug-port events printed in the human summary; the JSON has them all.
const DEBUG_PORT_SHOWN: usize = 16;

/// Which convention an event came through, as the JSON names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventSource {
    /// Firecracker's boot timer.
    BootTimer,
    /// Cloud Hypervisor's debug port (I/O port 0x80).
    DebugPort,
}

/// One event of the timeline (field names are a stable interface, docs/json.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// Microseconds since the VMM began the boot (the zero of `vmm_phases_us`).
    pub t_us: u64,
    /// The process's CPU time then, in microseconds (boot timer events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_us: Option<u64>,
    /// The vCPU that made it.
    pub vcpu: u32,
    /// The convention.
    pub source: EventSource,
    /// The byte written.
    pub code: u8,
    /// The debug port's range of the code (`firmware`, `bootloader`, `kernel`, `userspace`,
    /// `custom`); absent for the boot timer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<&'static str>,
}

impl TimelineEntry {
    /// A debug-port event: its range follows from its code.
    pub fn debug_port(t_us: u64, vcpu: u32, code: u8) -> Self {
        Self {
            t_us,
            cpu_us: None,
            vcpu,
            source: EventSource::DebugPort,
            code,
            range: Some(debug_port_range(code)),
        }
    }

    /// A boot timer event.
    pub fn boot_timer(t_us: u64, cpu_us: Option<u64>, vcpu: u32, code: u8) -> Self {
        Self {
            t_us,
            cpu_us,
            vcpu,
            source: EventSource::BootTimer,
            code,
            range: None,
        }
    }
}

/// The boot's timeline: the kept events and how many were not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootTimeline {
    /// The first events, in order.
    pub events: Vec<TimelineEntry>,
    /// Events after the cap, counted only.
    pub dropped: u64,
}

/// Cloud Hypervisor's range of a debug-port code (its docs/debug-port.md).
pub fn debug_port_range(code: u8) -> &'static str {
    match code {
        0x00..=0x1F => "firmware",
        0x20..=0x3F => "bootloader",
        0x40..=0x5F => "kernel",
        0x60..=0x7F => "userspace",
        0x80..=0xFF => "custom",
    }
}

/// The human lines of the timeline (empty without events).
pub(crate) fn render(t: &BootTimeline) -> String {
    let mut out = String::new();
    let mut debug_port = 0usize;
    for e in &t.events {
        match e.source {
            EventSource::BootTimer => {
                let cpu = e.cpu_us.map_or_else(
                    || "- CPU us - CPU ms".to_string(),
                    |c| format!("{c:>6} CPU us {} CPU ms", c / 1000),
                );
                out.push_str(&format!(
                    "timeline: Guest-boot-time = {:>6} us {} ms, {cpu} (vCPU {})\n",
                    e.t_us,
                    e.t_us / 1000,
                    e.vcpu
                ));
            }
            EventSource::DebugPort => {
                debug_port += 1;
                if debug_port <= DEBUG_PORT_SHOWN {
                    out.push_str(&format!(
                        "timeline: debug port {:#04x} ({}) at {} us on vCPU {}\n",
                        e.code,
                        e.range.unwrap_or("custom"),
                        e.t_us,
                        e.vcpu
                    ));
                }
            }
        }
    }
    let unlisted = debug_port.saturating_sub(DEBUG_PORT_SHOWN);
    if unlisted > 0 {
        out.push_str(&format!(
            "timeline: {unlisted} more debug-port events in the JSON's timeline\n"
        ));
    }
    if t.dropped > 0 {
        out.push_str(&format!(
            "timeline: {} more events past the timeline's bound, counted only\n",
            t.dropped
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_fall_in_cloud_hypervisors_ranges() {
        let r: Vec<_> = [0x00, 0x1F, 0x20, 0x3F, 0x40, 0x5F, 0x60, 0x7F, 0x80, 0xFF]
            .map(debug_port_range)
            .to_vec();
        assert_eq!(
            r,
            [
                "firmware",
                "firmware",
                "bootloader",
                "bootloader",
                "kernel",
                "kernel",
                "userspace",
                "userspace",
                "custom",
                "custom"
            ]
        );
    }

    #[test]
    fn the_boot_timer_line_reads_as_firecrackers() {
        let t = BootTimeline {
            events: vec![
                TimelineEntry::debug_port(10, 0, 0x41),
                TimelineEntry::boot_timer(12345, Some(2500), 1, 123),
            ],
            dropped: 0,
        };
        let s = render(&t);
        assert!(
            s.contains("timeline: debug port 0x41 (kernel) at 10 us on vCPU 0\n"),
            "{s}"
        );
        assert!(
            s.contains("Guest-boot-time =  12345 us 12 ms,   2500 CPU us 2 CPU ms (vCPU 1)"),
            "{s}"
        );
        assert!(!s.contains("more"));
        let json = serde_json::to_value(&t.events).unwrap();
        assert_eq!(json[0]["source"], "debug-port");
        assert_eq!(json[0]["range"], "kernel");
        assert_eq!(json[1]["source"], "boot-timer");
        assert!(json[1].get("range").is_none());
        assert_eq!(json[1]["cpu_us"], 2500);
    }

    #[test]
    fn a_long_timeline_is_summarised() {
        let t = BootTimeline {
            events: (0..40)
                .map(|i| TimelineEntry::debug_port(i, 0, 0x80))
                .collect(),
            dropped: 5,
        };
        let s = render(&t);
        assert_eq!(s.lines().count(), DEBUG_PORT_SHOWN + 2);
        assert!(
            s.ends_with(
                "timeline: 24 more debug-port events in the JSON's timeline\n\
                 timeline: 5 more events past the timeline's bound, counted only\n"
            ),
            "{s}"
        );
        assert_eq!(render(&BootTimeline::default()), "");
    }
}
