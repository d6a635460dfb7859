//! What a guest that never sent its report had reached: read from the live-state block
//! ([`firmware::report::live`]) once the vCPUs are stopped (after a `--timeout`, a signal, or
//! an exit without a report). Everything read is untrusted and bounded: the block is checked,
//! the record table must lie inside guest memory and list no more CPUs than the VM has.

use std::collections::BTreeMap;

use firmware::bytes::u64_at;
use firmware::layout::LIVE_STATE_ADDR;
use firmware::report::decode::cpu_record;
use firmware::report::live::{self, LiveError, LIVE_STATE_SIZE};
use firmware::report::{ApPhase, BspPhase, CpuState, CPU_RECORD_SIZE, STAMP_SLOTS};
use serde::Serialize;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Most stuck CPUs named in the summary line and the JSON.
const STUCK_LISTED: usize = 8;

/// Why the live state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LiveReadError {
    /// The block is absent or malformed.
    #[error("{0}")]
    Block(#[from] LiveError),
    /// The block lists more CPUs than the VM has.
    #[error("the live state lists {listed} CPUs but the VM has {vcpus}")]
    TooManyCpus { listed: u32, vcpus: u32 },
    /// What the block points to is not inside guest memory.
    #[error("the live state points outside guest memory ({0:#x})")]
    OutsideMemory(u64),
}

/// A CPU that had not come online.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Stuck {
    /// Its APIC ID.
    pub apic_id: u32,
    /// Its state (`listed`, `missing`, `offline`, or `invalid`).
    pub state: &'static str,
    /// The last phase it stamped (None: none).
    pub last_phase: Option<&'static str>,
}

/// What the guest had reached, for the JSON report's `reached` object.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Reached {
    /// The BSP's last stamped phase.
    pub bsp_phase: Option<&'static str>,
    /// The BSP's stamps by phase name (the ones reached).
    pub bsp_stamps: BTreeMap<&'static str, u64>,
    /// CPUs the guest knew of.
    pub cpus: u32,
    /// CPUs online.
    pub online: u32,
    /// CPUs by state name.
    pub states: BTreeMap<&'static str, u32>,
    /// CPUs by last phase reached (`none` for none).
    pub last_phases: BTreeMap<&'static str, u32>,
    /// Scenario operations and rounds completed.
    pub ops_done: u32,
    pub rounds_done: u32,
    /// The first CPUs that were not online.
    pub stuck: Vec<Stuck>,
}

/// Reads the live state of a stopped VM with `vcpus` vCPUs from `mem`.
pub fn read(mem: &GuestMemoryMmap, vcpus: u32) -> Result<Reached, LiveReadError> {
    let mut block = [0u8; LIVE_STATE_SIZE];
    mem.read_slice(&mut block, GuestAddress(LIVE_STATE_ADDR))
        .map_err(|_| LiveReadError::OutsideMemory(LIVE_STATE_ADDR))?;
    let s = live::decode(&block)?;
    if s.cpu_count > vcpus {
        return Err(LiveReadError::TooManyCpus {
            listed: s.cpu_count,
            vcpus,
        });
    }
    // Bounded: cpu_count <= vcpus <= KVM's maximum.
    let mut records = vec![0u8; s.cpu_count as usize * CPU_RECORD_SIZE];
    mem.read_slice(&mut records, GuestAddress(s.records_addr))
        .map_err(|_| LiveReadError::OutsideMemory(s.records_addr))?;
    let mut stamps = [0u8; 8 * STAMP_SLOTS];
    mem.read_slice(&mut stamps, GuestAddress(s.bsp_stamps_addr))
        .map_err(|_| LiveReadError::OutsideMemory(s.bsp_stamps_addr))?;
    let mut r = Reached {
        bsp_phase: None,
        bsp_stamps: BTreeMap::new(),
        cpus: s.cpu_count,
        online: 0,
        states: BTreeMap::new(),
        last_phases: BTreeMap::new(),
        ops_done: s.ops_done,
        rounds_done: s.rounds_done,
        stuck: Vec::new(),
    };
    for phase in BspPhase::ALL {
        let tsc = u64_at(&stamps, phase as usize * 8).unwrap_or(0);
        if tsc != 0 {
            r.bsp_stamps.insert(phase.name(), tsc);
            r.bsp_phase = Some(phase.name());
        }
    }
    for rec in records.chunks_exact(CPU_RECORD_SIZE).filter_map(cpu_record) {
        let state = CpuState::from_u8(rec.state).map_or("invalid", CpuState::name);
        let phase = usize::from(rec.last_phase)
            .checked_sub(1)
            .and_then(|i| ApPhase::ALL.get(i))
            .map(|p| p.name());
        *r.states.entry(state).or_default() += 1;
        *r.last_phases.entry(phase.unwrap_or("none")).or_default() += 1;
        if state == "online" {
            r.online += 1;
        } else if r.stuck.len() < STUCK_LISTED {
            r.stuck.push(Stuck {
                apic_id: rec.apic_id,
                state,
                last_phase: phase,
            });
        }
    }
    Ok(r)
}

impl Reached {
    /// One clause for the error line: "it had reached all_online with 7/8 CPUs online (not
    /// online: APIC ID 3 missing after kick)".
    pub fn summary(&self) -> String {
        let mut s = format!(
            "it had reached {} with {}/{} CPUs online",
            self.bsp_phase.unwrap_or("no BSP phase"),
            self.online,
            self.cpus
        );
        if self.ops_done > 0 || self.rounds_done > 0 {
            s.push_str(&format!(
                ", {} scenario operations and {} rounds done",
                self.ops_done, self.rounds_done
            ));
        }
        if !self.stuck.is_empty() {
            let names: Vec<String> = self
                .stuck
                .iter()
                .take(3)
                .map(|c| match c.last_phase {
                    Some(p) => format!("APIC ID {} {} after {p}", c.apic_id, c.state),
                    None => format!("APIC ID {} {}, no phase reached", c.apic_id, c.state),
                })
                .collect();
            let more = self.cpus - self.online - names.len() as u32;
            s.push_str(&format!(" (not online: {}", names.join(", ")));
            if more > 0 {
                s.push_str(&format!(" and {more} more"));
            }
            s.push(')');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware::report::encode::write_cpu_record;
    use firmware::report::live::LiveState;
    use firmware::report::{CpuRecord, BOOT_RECORDS_OFFSET};

    const RECORDS: u64 = 0x10_0000;
    const STAMPS: u64 = 0x20_0000;

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 4 << 20)]).unwrap()
    }

    fn publish(mem: &GuestMemoryMmap, s: &LiveState) {
        let mut block = [0u8; LIVE_STATE_SIZE];
        live::encode(&mut block, s).unwrap();
        mem.write_slice(&block, GuestAddress(LIVE_STATE_ADDR))
            .unwrap();
    }

    fn state(cpus: u32) -> LiveState {
        LiveState {
            records_addr: RECORDS,
            cpu_count: cpus,
            bsp_stamps_addr: STAMPS,
            ops_done: 5,
            rounds_done: 0,
        }
    }

    #[test]
    fn a_stuck_boot_reads_as_what_it_reached() {
        let mem = memory();
        assert!(matches!(
            read(&mem, 4),
            Err(LiveReadError::Block(LiveError::Absent))
        ));
        publish(&mem, &state(3));
        // write_cpu_record writes at a boot report's record offset.
        let mut buf = vec![0u8; BOOT_RECORDS_OFFSET + 3 * CPU_RECORD_SIZE];
        for (i, (st, phase)) in [(1, 6), (1, 6), (2, 1)].into_iter().enumerate() {
            let r = CpuRecord {
                apic_id: i as u32,
                state: st,
                last_phase: phase,
                ..Default::default()
            };
            write_cpu_record(&mut buf, i, &r).unwrap();
        }
        mem.write_slice(&buf[BOOT_RECORDS_OFFSET..], GuestAddress(RECORDS))
            .unwrap();
        let stamps: Vec<u8> = [10u64, 20, 30, 40, 0, 0, 0, 0]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        mem.write_slice(&stamps, GuestAddress(STAMPS)).unwrap();
        let r = read(&mem, 4).unwrap();
        assert_eq!(r.bsp_phase, Some("bringup_start"));
        assert_eq!((r.cpus, r.online, r.ops_done), (3, 2, 5));
        assert_eq!(r.states.get("missing"), Some(&1));
        assert_eq!(r.last_phases.get("online"), Some(&2));
        assert_eq!(
            r.stuck,
            vec![Stuck {
                apic_id: 2,
                state: "missing",
                last_phase: Some("kick")
            }]
        );
        let line = r.summary();
        assert!(
            line.contains("reached bringup_start with 2/3 CPUs online"),
            "{line}"
        );
        assert!(line.contains("APIC ID 2 missing after kick"), "{line}");
    }

    #[test]
    fn hostile_live_states_are_refused() {
        let mem = memory();
        publish(&mem, &state(9));
        assert!(matches!(
            read(&mem, 8),
            Err(LiveReadError::TooManyCpus { listed: 9, .. })
        ));
        publish(
            &mem,
            &LiveState {
                records_addr: 8 << 30,
                ..state(2)
            },
        );
        assert!(matches!(
            read(&mem, 8),
            Err(LiveReadError::OutsideMemory(_))
        ));
        publish(
            &mem,
            &LiveState {
                bsp_stamps_addr: (4 << 20) - 8,
                ..state(2)
            },
        );
        assert!(matches!(
            read(&mem, 8),
            Err(LiveReadError::OutsideMemory(_))
        ));
    }
}
