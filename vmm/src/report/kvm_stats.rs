//! KVM's own counters of a boot, per window between the VMM's snapshots: the JSON `kvm_stats`
//! object and the human block. The windows are `setup_to_doorbell` (from every vCPU set up and
//! not yet run to the guest's report doorbell: bringup) and `doorbell_to_exit` (from the
//! doorbell to the VM's end); a boot without a doorbell has one window, `setup_to_exit`.
//! A cumulative counter's window value is the difference of its ends; any other counter's is
//! its value at the window's end. Histograms are left out. docs/kvm_stats.md says what the
//! counters mean; docs/json.md lists the fields.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::kvm_stats::{Counter, Kind, Layout, Values};

/// The per-vCPU counters summarised over the APs and shown for the BSP.
pub const KEY_COUNTERS: &[&str] = &[
    "exits",
    "io_exits",
    "mmio_exits",
    "halt_exits",
    "irq_exits",
    "insn_emulation",
    "pf_taken",
    "pf_fixed",
    "halt_wait_ns",
];

/// One vCPU's values of a window (None without both of its ends).
type VcpuWindow = Option<Vec<u64>>;

/// The snapshots of one statistics file: after setup, at the doorbell, at exit.
#[derive(Debug, Default)]
pub(crate) struct Snapshots {
    /// Every vCPU set up, none run yet.
    pub setup: Option<Values>,
    /// The guest's first report doorbell.
    pub doorbell: Option<Values>,
    /// The VM's end (the vCPU left its run loop).
    pub exit: Option<Values>,
}

/// One file's snapshots with the layout they were read with.
#[derive(Debug)]
pub(crate) struct FileSnapshots<'a> {
    pub layout: &'a Layout,
    pub snapshots: &'a Snapshots,
}

/// One set of counters' values over each window, in the order of its `counters` list.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Windows<T> {
    /// From setup to the report doorbell (bringup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup_to_doorbell: Option<T>,
    /// From the report doorbell to the VM's end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doorbell_to_exit: Option<T>,
    /// From setup to the VM's end, for a boot without a doorbell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup_to_exit: Option<T>,
}

/// A list of counters and their values over each window.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CounterTable<T> {
    /// The counters' names, once.
    pub counters: Vec<String>,
    /// The values per window, in the order of `counters`.
    #[serde(flatten)]
    pub windows: Windows<T>,
}

/// One key counter over the APs in one window.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ApSummary {
    /// Over every AP.
    pub sum: u64,
    pub min: u64,
    pub median: u64,
    pub max: u64,
    /// The AP with the largest value.
    pub max_vcpu: u32,
}

/// The key counters of one window: the BSP's values and the APs' summary.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct WindowSummary {
    /// The BSP's (vCPU 0's) value of each key counter it has.
    pub bsp: BTreeMap<String, u64>,
    /// Each key counter over the APs that have it.
    pub aps: BTreeMap<String, ApSummary>,
}

/// KVM's counters of one boot: the JSON `kvm_stats` object.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KvmStats {
    /// False on a host without KVM's binary statistics.
    pub available: bool,
    /// Why the counters are unavailable or incomplete (null when all were read).
    pub unavailable_reason: Option<String>,
    /// The VM's counters.
    pub vm: Option<CounterTable<Vec<u64>>>,
    /// Each vCPU's counters, one list per vCPU index (null for a vCPU without both ends of
    /// the window).
    pub vcpu: Option<CounterTable<Vec<Option<Vec<u64>>>>>,
    /// The key counters per window: BSP and APs.
    pub summary: Windows<WindowSummary>,
    /// Key counters this host's KVM does not have.
    pub missing: Vec<String>,
}

impl KvmStats {
    /// The counters of a host without statistics.
    pub(crate) fn unavailable(reason: String) -> Self {
        Self {
            available: false,
            unavailable_reason: Some(reason),
            vm: None,
            vcpu: None,
            summary: Windows::default(),
            missing: Vec::new(),
        }
    }

    /// The counters of a boot from its snapshots (`vcpus[i]` is vCPU i's, None if its file
    /// could not be opened); `reason` says why some are missing.
    pub(crate) fn build(
        vm: Option<FileSnapshots<'_>>,
        vcpus: &[Option<FileSnapshots<'_>>],
        reason: Option<String>,
    ) -> Self {
        let names = |l: &Layout| -> Vec<String> {
            l.counters()
                .iter()
                .filter(|c| c.size == 1)
                .map(|c| c.name.clone())
                .collect()
        };
        let vm_table = vm.map(|f| {
            let counters = names(f.layout);
            let cols = columns(f.layout, &counters);
            let windows = windows(f.snapshots, |a, b| window(f.layout, &cols, a, b));
            CounterTable {
                counters,
                windows: Windows {
                    setup_to_doorbell: windows.setup_to_doorbell.flatten(),
                    doorbell_to_exit: windows.doorbell_to_exit.flatten(),
                    setup_to_exit: windows.setup_to_exit.flatten(),
                },
            }
        });
        let first = vcpus.iter().flatten().next();
        let vcpu_table = first.map(|f| {
            let counters = names(f.layout);
            // Each vCPU's windows, computed once.
            let each: Vec<Option<Windows<VcpuWindow>>> = vcpus
                .iter()
                .map(|v| {
                    v.as_ref().map(|v| {
                        let cols = columns(v.layout, &counters);
                        windows(v.snapshots, |a, b| window(v.layout, &cols, a, b))
                    })
                })
                .collect();
            let per = |pick: fn(&Windows<VcpuWindow>) -> Option<VcpuWindow>| {
                let all: Vec<VcpuWindow> = each
                    .iter()
                    .map(|w| w.as_ref().and_then(|w| pick(w).flatten()))
                    .collect();
                all.iter().any(Option::is_some).then_some(all)
            };
            CounterTable {
                windows: Windows {
                    setup_to_doorbell: per(|w| w.setup_to_doorbell.clone()),
                    doorbell_to_exit: per(|w| w.doorbell_to_exit.clone()),
                    setup_to_exit: per(|w| w.setup_to_exit.clone()),
                },
                counters,
            }
        });
        let missing = match first {
            Some(f) => KEY_COUNTERS
                .iter()
                .filter(|n| f.layout.counter(n).is_none())
                .map(|n| (*n).to_string())
                .collect(),
            None => Vec::new(),
        };
        let summary = match &vcpu_table {
            Some(t) => Windows {
                setup_to_doorbell: t
                    .windows
                    .setup_to_doorbell
                    .as_ref()
                    .map(|w| summarise(&t.counters, w)),
                doorbell_to_exit: t
                    .windows
                    .doorbell_to_exit
                    .as_ref()
                    .map(|w| summarise(&t.counters, w)),
                setup_to_exit: t
                    .windows
                    .setup_to_exit
                    .as_ref()
                    .map(|w| summarise(&t.counters, w)),
            },
            None => Windows::default(),
        };
        Self {
            available: vm_table.is_some() || vcpu_table.is_some(),
            unavailable_reason: reason,
            vm: vm_table,
            vcpu: vcpu_table,
            summary,
            missing,
        }
    }

    /// The bringup window (`setup_to_doorbell`, or `setup_to_exit` without a doorbell) and
    /// its name.
    pub fn bringup(&self) -> Option<(&'static str, &Vec<Option<Vec<u64>>>)> {
        let t = self.vcpu.as_ref()?;
        match (&t.windows.setup_to_doorbell, &t.windows.setup_to_exit) {
            (Some(w), _) => Some(("setup to doorbell", w)),
            (None, Some(w)) => Some(("setup to exit", w)),
            _ => None,
        }
    }

    /// Where counter `name` is in the per-vCPU lists.
    pub fn vcpu_index(&self, name: &str) -> Option<usize> {
        self.vcpu.as_ref()?.counters.iter().position(|c| c == name)
    }
}

/// A snapshot pair per window, each mapped through `f(start, end)`.
fn windows<T>(s: &Snapshots, f: impl Fn(&[u64], &[u64]) -> T) -> Windows<Option<T>> {
    let pair = |a: &Option<Values>, b: &Option<Values>| match (a, b) {
        (Some(a), Some(b)) => Some(f(a, b)),
        _ => None,
    };
    match s.doorbell {
        Some(_) => Windows {
            setup_to_doorbell: Some(pair(&s.setup, &s.doorbell)),
            doorbell_to_exit: Some(pair(&s.doorbell, &s.exit)),
            setup_to_exit: None,
        },
        None => Windows {
            setup_to_doorbell: None,
            doorbell_to_exit: None,
            setup_to_exit: Some(pair(&s.setup, &s.exit)),
        },
    }
}

/// Each of `counters` as `layout` describes it (None for a counter this file lacks, which only a vCPU whose KVM differed could show).
/// Every vCPU's file normally has the same layout as the first, whose single-value counters
/// `counters` are, in order: then no name is looked up.
fn columns<'l>(layout: &'l Layout, counters: &[String]) -> Vec<Option<&'l Counter>> {
    let single: Vec<&Counter> = layout.counters().iter().filter(|c| c.size == 1).collect();
    let same = single.len() == counters.len()
        && single.iter().zip(counters).all(|(c, name)| c.name == *name);
    counters
        .iter()
        .enumerate()
        .map(|(i, name)| match same {
            true => single.get(i).copied(),
            false => layout.counter(name).filter(|c| c.size == 1),
        })
        .collect()
}

/// The values of the counters `columns` over the window from `start` to `end` (0 for a
/// counter the file lacks).
fn window(layout: &Layout, columns: &[Option<&Counter>], start: &[u64], end: &[u64]) -> Vec<u64> {
    let value = |values: &[u64], c: &Counter| {
        layout
            .values_of(values, c)
            .and_then(|v| v.first().copied())
            .unwrap_or(0)
    };
    columns
        .iter()
        .map(|col| {
            let Some(c) = *col else {
                return 0;
            };
            match c.kind == Kind::Cumulative {
                true => value(end, c).saturating_sub(value(start, c)),
                false => value(end, c),
            }
        })
        .collect()
}

/// The key counters of one window of per-vCPU values.
fn summarise(counters: &[String], per_vcpu: &[Option<Vec<u64>>]) -> WindowSummary {
    let mut s = WindowSummary::default();
    for name in KEY_COUNTERS {
        let Some(k) = counters.iter().position(|c| c == name) else {
            continue;
        };
        if let Some(v) = per_vcpu.first().and_then(|v| v.as_ref()) {
            s.bsp.insert((*name).to_string(), v[k]);
        }
        let mut aps: Vec<(u64, u32)> = per_vcpu
            .iter()
            .enumerate()
            .skip(1)
            .filter_map(|(i, v)| Some((v.as_ref()?[k], i as u32)))
            .collect();
        if aps.is_empty() {
            continue;
        }
        aps.sort_unstable();
        let max = aps[aps.len() - 1].0;
        // The lowest-numbered AP of those with the largest value.
        let max_vcpu = aps.iter().find(|a| a.0 == max).map_or(0, |a| a.1);
        s.aps.insert(
            (*name).to_string(),
            ApSummary {
                sum: aps.iter().map(|a| a.0).fold(0, u64::saturating_add),
                min: aps[0].0,
                median: aps[(aps.len() - 1) / 2].0,
                max,
                max_vcpu,
            },
        );
    }
    s
}

/// The human block: exits and emulated instructions during bringup for the BSP, the median
/// AP and the worst AP, or for every CPU with `per_cpu`; nothing without counters.
pub(crate) fn render(k: &KvmStats, per_cpu: bool) -> String {
    // A host without statistics was said once, on stderr, when the boot began.
    let Some((window, per_vcpu)) = k.bringup() else {
        return String::new();
    };
    let (Some(ex), emu) = (k.vcpu_index("exits"), k.vcpu_index("insn_emulation")) else {
        return String::new();
    };
    let cell = |i: usize| -> Option<String> {
        let v = per_vcpu.get(i)?.as_ref()?;
        let emulated = emu.map_or_else(|| "missing".to_string(), |e| v[e].to_string());
        Some(format!("{} exits, {emulated} emulated", v[ex]))
    };
    let mut out = format!("kvm exits ({window}):");
    if per_cpu {
        for i in 0..per_vcpu.len() {
            if let Some(c) = cell(i) {
                out.push_str(&format!("\n  vCPU {i}: {c}"));
            }
        }
        out.push('\n');
        return out;
    }
    if let Some(c) = cell(0) {
        out.push_str(&format!(" BSP {c}"));
    }
    let mut aps: Vec<(u64, usize)> = per_vcpu
        .iter()
        .enumerate()
        .skip(1)
        .filter_map(|(i, v)| Some((v.as_ref()?[ex], i)))
        .collect();
    aps.sort_unstable();
    if let (Some(&(_, median)), Some(&(_, worst))) =
        (aps.get((aps.len().max(1) - 1) / 2), aps.last())
    {
        if let (Some(m), Some(w)) = (cell(median), cell(worst)) {
            out.push_str(&format!(
                "; median AP (vCPU {median}) {m}; worst AP (vCPU {worst}) {w}"
            ));
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kvm_stats::parse::{DESC_SIZE, HEADER_SIZE};

    const NAME_SIZE: usize = 16;

    /// A statistics file's layout with scalar counters `(name, type flags)`.
    fn layout(counters: &[(&str, u32)]) -> Layout {
        let desc_offset = HEADER_SIZE;
        let data_offset = desc_offset + counters.len() * (DESC_SIZE + NAME_SIZE);
        let mut b = Vec::new();
        for v in [0, NAME_SIZE, counters.len(), 0, desc_offset, data_offset] {
            b.extend_from_slice(&(v as u32).to_le_bytes());
        }
        for (i, (name, flags)) in counters.iter().enumerate() {
            b.extend_from_slice(&flags.to_le_bytes());
            b.extend_from_slice(&0i16.to_le_bytes());
            b.extend_from_slice(&1u16.to_le_bytes());
            b.extend_from_slice(&(i as u32 * 8).to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            let mut n = name.as_bytes().to_vec();
            n.resize(NAME_SIZE, 0);
            b.extend_from_slice(&n);
        }
        Layout::read(b.as_slice()).unwrap()
    }

    fn snaps(setup: &[u64], doorbell: Option<&[u64]>, exit: &[u64]) -> Snapshots {
        Snapshots {
            setup: Some(setup.to_vec()),
            doorbell: doorbell.map(<[u64]>::to_vec),
            exit: Some(exit.to_vec()),
        }
    }

    #[test]
    fn windows_are_differences_of_cumulative_counters_and_ends_of_the_others() {
        let l = layout(&[
            ("exits", kvm_bindings::KVM_STATS_TYPE_CUMULATIVE),
            ("blocking", kvm_bindings::KVM_STATS_TYPE_INSTANT),
        ]);
        let vcpus = [
            snaps(&[0, 0], Some(&[10, 1]), &[12, 0]),
            snaps(&[0, 0], Some(&[5, 1]), &[5, 1]),
            snaps(&[1, 0], Some(&[8, 0]), &[9, 1]),
            // A vCPU that never reached the doorbell snapshot has no windows.
            Snapshots {
                setup: Some(vec![0, 0]),
                ..Snapshots::default()
            },
        ];
        let views: Vec<_> = vcpus
            .iter()
            .map(|s| {
                Some(FileSnapshots {
                    layout: &l,
                    snapshots: s,
                })
            })
            .collect();
        let k = KvmStats::build(None, &views, None);
        assert!(k.available);
        let t = k.vcpu.as_ref().unwrap();
        assert_eq!(t.counters, ["exits", "blocking"]);
        assert_eq!(
            t.windows.setup_to_doorbell.as_deref(),
            Some(&[Some(vec![10, 1]), Some(vec![5, 1]), Some(vec![7, 0]), None][..])
        );
        assert_eq!(
            t.windows.doorbell_to_exit.as_deref(),
            Some(&[Some(vec![2, 0]), Some(vec![0, 1]), Some(vec![1, 1]), None][..])
        );
        assert_eq!(t.windows.setup_to_exit, None);
        let s = k.summary.setup_to_doorbell.as_ref().unwrap();
        assert_eq!(s.bsp["exits"], 10);
        assert_eq!(
            s.aps["exits"],
            ApSummary {
                sum: 12,
                min: 5,
                median: 5,
                max: 7,
                max_vcpu: 2
            }
        );
        // The key counters this file lacks are named, not guessed.
        assert!(k.missing.contains(&"io_exits".to_string()));
        assert!(!k.missing.contains(&"exits".to_string()));
        let text = render(&k, false);
        assert_eq!(
            text,
            "kvm exits (setup to doorbell): BSP 10 exits, missing emulated; median AP (vCPU 1) 5 exits, missing emulated; worst AP (vCPU 2) 7 exits, missing emulated\n"
        );
    }

    #[test]
    fn a_vcpu_whose_file_differs_is_read_by_counter_name() {
        let first = layout(&[
            ("exits", kvm_bindings::KVM_STATS_TYPE_CUMULATIVE),
            ("blocking", kvm_bindings::KVM_STATS_TYPE_INSTANT),
        ]);
        // The same counters in the other order, and one more.
        let other = layout(&[
            ("extra", kvm_bindings::KVM_STATS_TYPE_CUMULATIVE),
            ("blocking", kvm_bindings::KVM_STATS_TYPE_INSTANT),
            ("exits", kvm_bindings::KVM_STATS_TYPE_CUMULATIVE),
        ]);
        // A file without one of the first file's counters: 0 for it.
        let fewer = layout(&[("blocking", kvm_bindings::KVM_STATS_TYPE_INSTANT)]);
        let a = snaps(&[1, 0], None, &[4, 1]);
        let b = snaps(&[9, 0, 2], None, &[99, 1, 7]);
        let c = snaps(&[0], None, &[1]);
        let v = [
            Some(FileSnapshots {
                layout: &first,
                snapshots: &a,
            }),
            Some(FileSnapshots {
                layout: &other,
                snapshots: &b,
            }),
            Some(FileSnapshots {
                layout: &fewer,
                snapshots: &c,
            }),
        ];
        let k = KvmStats::build(None, &v, None);
        let t = k.vcpu.unwrap();
        assert_eq!(t.counters, ["exits", "blocking"]);
        assert_eq!(
            t.windows.setup_to_exit,
            Some(vec![Some(vec![3, 1]), Some(vec![5, 1]), Some(vec![0, 1])])
        );
    }

    #[test]
    fn without_a_doorbell_there_is_one_window() {
        let l = layout(&[("exits", kvm_bindings::KVM_STATS_TYPE_CUMULATIVE)]);
        let s = snaps(&[3], None, &[10]);
        let v = [Some(FileSnapshots {
            layout: &l,
            snapshots: &s,
        })];
        let k = KvmStats::build(None, &v, None);
        let t = k.vcpu.unwrap();
        assert_eq!(t.windows.setup_to_exit, Some(vec![Some(vec![7])]));
        assert_eq!(t.windows.setup_to_doorbell, None);
    }

    #[test]
    fn a_host_without_statistics_says_why() {
        let k = KvmStats::unavailable("this KVM has no binary statistics".into());
        let j = serde_json::to_value(&k).unwrap();
        assert_eq!(j["available"], false);
        assert_eq!(j["unavailable_reason"], "this KVM has no binary statistics");
        assert_eq!(j["vcpu"], serde_json::Value::Null);
        assert_eq!(render(&k, true), "");
    }
}
