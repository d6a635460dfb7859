//! The allowlist as a classic BPF program shaped to be cheap to install.
//!
//! A thread that installs a seccomp filter pays the kernel to JIT-compile it and then to run it
//! once for every system call number (~460 on x86_64, and again for 32-bit calls) to find those
//! it always allows, which later skip the filter (`seccomp_cache_prepare`, under a lock shared
//! by the whole process). sipi installs it once per boot, but it is on the way to the first
//! vCPU thread. seccompiler lays a filter out as one test per system call after another, two
//! instructions run for every number that does not match: for sipi's allowlist up to 69 run
//! per number. This layout tests the number with a binary search instead: at most 25 run (what
//! each layout costs to install: docs/benchmarks.md, "Seccomp"). seccompiler still
//! installs the program; the tests check, for every system call number and every argument value
//! that matters, that it decides exactly as seccompiler's own compilation of the same allowlist
//! does.
//!
//! The layout: the architecture check (another architecture kills the process, as with
//! seccompiler), the load of the number, the search, whose leaves jump to ALLOW, to the
//! argument checks of their system call, or to TRAP; the argument checks; `RET ALLOW`;
//! `RET TRAP`. Classic BPF only jumps forward, by at most 255 for a conditional jump, and
//! everything here is laid out forward.

use std::mem::offset_of;

use libc::seccomp_data;
use seccompiler::{sock_filter, BpfProgram};

use super::Allow;

/// `AUDIT_ARCH_X86_64`: EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
/// (include/uapi/linux/audit.h).
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
/// The kernel's limit on a classic BPF program's length (include/uapi/linux/bpf_common.h).
const BPF_MAXINSNS: usize = 4096;
/// Where the program loads the system call number: after the three instructions of the
/// architecture check.
const LOAD_NR_AT: usize = 3;
/// Most system calls a leaf of the search tests one after another.
const LEAF_SIZE: usize = 3;

/// Opcodes, as `struct sock_filter` holds them (`code` is 16 bits).
const LD_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const AND: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Offsets in `struct seccomp_data`.
const NR_OFFSET: u32 = offset_of!(seccomp_data, nr) as u32;
const ARCH_OFFSET: u32 = offset_of!(seccomp_data, arch) as u32;
const ARGS_OFFSET: u32 = offset_of!(seccomp_data, args) as u32;
/// Size of one argument in `seccomp_data`.
const ARG_SIZE: u32 = 8;
/// Arguments a system call has.
const ARG_COUNT: u8 = 6;

/// Why an allowlist does not make a program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    /// A system call number is not one (negative or too large).
    #[error("system call number {0} is out of range")]
    BadSyscall(i64),
    /// A system call is listed twice.
    #[error("system call {0} is listed twice")]
    Duplicate(i64),
    /// An argument index is not one.
    #[error("system call {0} checks argument {1}, which does not exist")]
    BadArgument(i64, u8),
    /// A jump does not fit classic BPF.
    #[error("the program is too large for classic BPF jumps")]
    TooLarge,
}

/// Where a jump goes.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The next instruction.
    Next,
    /// `RET ALLOW`.
    Allow,
    /// `RET TRAP`.
    Trap,
    /// Instruction `n`.
    At(usize),
    /// The argument checks of allowlist entry `n` (in number order).
    Checks(usize),
}

/// An instruction whose jumps are not resolved yet.
#[derive(Debug, Clone, Copy)]
struct Insn {
    code: u16,
    k: u32,
    jt: Target,
    jf: Target,
}

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        k,
        jt: Target::Next,
        jf: Target::Next,
    }
}

fn jump(code: u16, k: u32, jt: Target, jf: Target) -> Insn {
    Insn { code, k, jt, jf }
}

/// One allowlist entry, checked.
#[derive(Debug, Clone, Copy)]
struct Entry {
    nr: u32,
    allow: Allow,
}

/// The program that allows what `allowlist` allows and traps every other system call.
pub(super) fn program(allowlist: &[(i64, Allow)]) -> Result<BpfProgram, ProgramError> {
    let entries = entries(allowlist)?;
    let mut insns = vec![
        stmt(LD_ABS, ARCH_OFFSET),
        jump(JEQ, AUDIT_ARCH_X86_64, Target::At(LOAD_NR_AT), Target::Next),
        stmt(RET, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(LD_ABS, NR_OFFSET),
    ];
    debug_assert_eq!(insns[LOAD_NR_AT].k, NR_OFFSET);
    let indexed: Vec<(usize, Entry)> = entries.iter().copied().enumerate().collect();
    search(&mut insns, &indexed);
    let mut checks = vec![None; entries.len()];
    for (i, e) in entries.iter().enumerate() {
        if e.allow != Allow::Always {
            checks[i] = Some(insns.len());
            argument_checks(&mut insns, e.allow);
        }
    }
    let allow = insns.len();
    insns.push(stmt(RET, libc::SECCOMP_RET_ALLOW));
    let trap = insns.len();
    insns.push(stmt(RET, libc::SECCOMP_RET_TRAP));
    if insns.len() > BPF_MAXINSNS {
        return Err(ProgramError::TooLarge);
    }
    let resolve = |at: usize, t: Target| -> Result<usize, ProgramError> {
        let to = match t {
            Target::Next => at + 1,
            Target::Allow => allow,
            Target::Trap => trap,
            Target::At(n) => n,
            Target::Checks(n) => checks[n].ok_or(ProgramError::TooLarge)?,
        };
        // Forward only: the offset counts from the next instruction.
        to.checked_sub(at + 1).ok_or(ProgramError::TooLarge)
    };
    insns
        .iter()
        .enumerate()
        .map(|(at, i)| {
            let short = |t| u8::try_from(resolve(at, t)?).map_err(|_| ProgramError::TooLarge);
            Ok(match i.code {
                JA => sock_filter {
                    code: JA,
                    jt: 0,
                    jf: 0,
                    k: u32::try_from(resolve(at, i.jt)?).map_err(|_| ProgramError::TooLarge)?,
                },
                JEQ | JGE => sock_filter {
                    code: i.code,
                    jt: short(i.jt)?,
                    jf: short(i.jf)?,
                    k: i.k,
                },
                code => sock_filter {
                    code,
                    jt: 0,
                    jf: 0,
                    k: i.k,
                },
            })
        })
        .collect()
}

/// The allowlist checked and sorted by system call number.
fn entries(allowlist: &[(i64, Allow)]) -> Result<Vec<Entry>, ProgramError> {
    let mut entries = Vec::with_capacity(allowlist.len());
    for &(nr, allow) in allowlist {
        let n = u32::try_from(nr).map_err(|_| ProgramError::BadSyscall(nr))?;
        let args: Vec<u8> = match allow {
            Allow::Always => Vec::new(),
            Allow::OneOf { arg, .. } => vec![arg],
            Allow::Masked(conditions) => conditions.iter().map(|c| c.0).collect(),
        };
        if let Some(bad) = args.into_iter().find(|a| *a >= ARG_COUNT) {
            return Err(ProgramError::BadArgument(nr, bad));
        }
        entries.push(Entry { nr: n, allow });
    }
    entries.sort_by_key(|e| e.nr);
    if let Some(w) = entries.windows(2).find(|w| w[0].nr == w[1].nr) {
        return Err(ProgramError::Duplicate(i64::from(w[0].nr)));
    }
    Ok(entries)
}

/// Appends the binary search over `entries` (sorted; each with its index), with the number in
/// the accumulator: a number found jumps to ALLOW or to its argument checks, any other to TRAP.
fn search(insns: &mut Vec<Insn>, entries: &[(usize, Entry)]) {
    if entries.len() <= LEAF_SIZE {
        let Some(last) = entries.len().checked_sub(1) else {
            insns.push(jump(JA, 0, Target::Trap, Target::Trap));
            return;
        };
        for (i, (index, e)) in entries.iter().enumerate() {
            let hit = match e.allow {
                Allow::Always => Target::Allow,
                _ => Target::Checks(*index),
            };
            let miss = if i == last {
                Target::Trap
            } else {
                Target::Next
            };
            insns.push(jump(JEQ, e.nr, hit, miss));
        }
        return;
    }
    let mid = entries.len() / 2;
    let split = insns.len();
    insns.push(jump(JGE, entries[mid].1.nr, Target::Next, Target::Next));
    search(insns, &entries[..mid]);
    insns[split].jt = Target::At(insns.len());
    search(insns, &entries[mid..]);
}

/// Offset of the low 32 bits of argument `arg` (x86_64 is little-endian).
fn arg_low(arg: u8) -> u32 {
    ARGS_OFFSET + u32::from(arg) * ARG_SIZE
}

/// Appends the checks of an entry that is not always allowed: they end at ALLOW or TRAP.
fn argument_checks(insns: &mut Vec<Insn>, allow: Allow) {
    match allow {
        Allow::Always => insns.push(jump(JA, 0, Target::Allow, Target::Allow)),
        Allow::OneOf { arg, values } => {
            insns.push(stmt(LD_ABS, arg_low(arg)));
            let Some(last) = values.len().checked_sub(1) else {
                insns.push(jump(JA, 0, Target::Trap, Target::Trap));
                return;
            };
            for (i, v) in values.iter().enumerate() {
                let miss = if i == last {
                    Target::Trap
                } else {
                    Target::Next
                };
                insns.push(jump(JEQ, *v, Target::Allow, miss));
            }
        }
        Allow::Masked(conditions) => {
            let last = conditions.len().saturating_sub(1);
            for (i, &(arg, mask, value)) in conditions.iter().enumerate() {
                insns.push(stmt(LD_ABS, arg_low(arg)));
                insns.push(stmt(AND, mask));
                let hit = if i == last {
                    Target::Allow
                } else {
                    Target::Next
                };
                insns.push(jump(JEQ, value & mask, hit, Target::Trap));
            }
            if conditions.is_empty() {
                insns.push(jump(JA, 0, Target::Allow, Target::Allow));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };

    use super::*;
    use crate::seccomp::ALLOWLIST;

    /// `AUDIT_ARCH_I386`: a 32-bit system call from a 64-bit process.
    const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
    /// The x32 ABI's bit in system call numbers.
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    /// Numbers tested: every x86_64 system call and then some.
    const NR_LIMIT: u32 = 600;

    /// seccompiler's compilation of `allowlist`: the reference.
    fn reference(allowlist: &[(i64, Allow)]) -> BpfProgram {
        let cond = |arg, op, value| {
            SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, u64::from(value)).unwrap()
        };
        let rules: BTreeMap<i64, Vec<SeccompRule>> = allowlist
            .iter()
            .map(|&(nr, allow)| {
                let rules = match allow {
                    Allow::Always => Vec::new(),
                    Allow::OneOf { arg, values } => values
                        .iter()
                        .map(|v| SeccompRule::new(vec![cond(arg, SeccompCmpOp::Eq, *v)]).unwrap())
                        .collect(),
                    Allow::Masked(conditions) => {
                        let c = conditions
                            .iter()
                            .map(|&(arg, mask, value)| {
                                cond(arg, SeccompCmpOp::MaskedEq(u64::from(mask)), value)
                            })
                            .collect();
                        vec![SeccompRule::new(c).unwrap()]
                    }
                };
                (nr, rules)
            })
            .collect();
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Trap,
            SeccompAction::Allow,
            TargetArch::x86_64,
        )
        .unwrap();
        BpfProgram::try_from(filter).unwrap()
    }

    /// Runs a classic BPF seccomp program (the subset seccompiler and this module emit) on
    /// `data`; returns its verdict and the instructions it ran.
    fn run(program: &[sock_filter], data: &seccomp_data) -> (u32, usize) {
        let mut bytes = [0u8; std::mem::size_of::<seccomp_data>()];
        bytes[0..4].copy_from_slice(&data.nr.to_le_bytes());
        bytes[4..8].copy_from_slice(&data.arch.to_le_bytes());
        bytes[8..16].copy_from_slice(&data.instruction_pointer.to_le_bytes());
        for (i, a) in data.args.iter().enumerate() {
            let at = ARGS_OFFSET as usize + i * ARG_SIZE as usize;
            bytes[at..at + 8].copy_from_slice(&a.to_le_bytes());
        }
        let (mut acc, mut pc, mut ran) = (0u32, 0usize, 0usize);
        loop {
            let i = &program[pc];
            ran += 1;
            pc += 1;
            let branch = |taken: bool| usize::from(if taken { i.jt } else { i.jf });
            match i.code {
                LD_ABS => {
                    let at = i.k as usize;
                    acc = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
                }
                AND => acc &= i.k,
                JA => pc += i.k as usize,
                JEQ => pc += branch(acc == i.k),
                JGE => pc += branch(acc >= i.k),
                c if c == (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16 => {
                    pc += branch(acc > i.k)
                }
                c if c == (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16 => {
                    pc += branch(acc & i.k != 0)
                }
                RET => return (i.k, ran),
                other => panic!("opcode {other:#x} is not in the tested subset"),
            }
        }
    }

    fn data(arch: u32, nr: u32, args: [u64; 6]) -> seccomp_data {
        seccomp_data {
            nr: nr as i32,
            arch,
            instruction_pointer: 0x40_1000,
            args,
        }
    }

    /// Argument values that matter to the allowlist's checks, and a few that do not.
    fn interesting_values() -> Vec<u64> {
        let mut v = vec![0, 1, u64::MAX, 0xAE01, 1 << 32];
        for (_, allow) in ALLOWLIST {
            match *allow {
                Allow::Always => {}
                Allow::OneOf { values, .. } => {
                    for x in values {
                        v.extend([u64::from(*x), u64::from(*x) | 1 << 32, u64::from(*x) + 1]);
                    }
                }
                Allow::Masked(conditions) => {
                    for (_, mask, value) in conditions {
                        let (m, x) = (u64::from(*mask), u64::from(*value));
                        v.extend([x, x | !m, !x & m, (!x & m) | 0x22, x | 0x22]);
                    }
                }
            }
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    #[test]
    fn the_program_decides_as_seccompilers_does() {
        let ours = program(ALLOWLIST).unwrap();
        let theirs = reference(ALLOWLIST);
        let checked: Vec<u32> = ALLOWLIST
            .iter()
            .filter(|(_, a)| *a != Allow::Always)
            .map(|(nr, _)| *nr as u32)
            .collect();
        let values = interesting_values();
        let mut nrs: Vec<u32> = (0..NR_LIMIT).collect();
        nrs.extend([
            X32_SYSCALL_BIT,
            X32_SYSCALL_BIT | 1,
            X32_SYSCALL_BIT | 16,
            u32::MAX,
        ]);
        let mut cases = 0;
        for arch in [AUDIT_ARCH_X86_64, AUDIT_ARCH_I386] {
            for &nr in &nrs {
                let mut argsets = vec![[0; 6], [u64::MAX; 6]];
                if checked.contains(&nr) {
                    for a in &values {
                        for b in &values {
                            for c in &values {
                                argsets.push([0, *a, *b, *c, 0, 0]);
                            }
                        }
                    }
                }
                for args in argsets {
                    let d = data(arch, nr, args);
                    assert_eq!(
                        run(&ours, &d).0,
                        run(&theirs, &d).0,
                        "arch {arch:#x}, system call {nr}, arguments {args:x?}"
                    );
                    cases += 1;
                }
            }
        }
        assert!(cases > 10_000, "{cases} cases");
    }

    #[test]
    fn the_program_is_short_and_quick_to_decide() {
        let ours = program(ALLOWLIST).unwrap();
        let theirs = reference(ALLOWLIST);
        // What the kernel runs for each number when it installs the filter: a search here, a
        // scan of the list in seccompiler's layout (69 instructions for some numbers; 25 here,
        // most of them the ioctl's request checks).
        let most = |p: &[sock_filter]| {
            (0..NR_LIMIT)
                .map(|nr| run(p, &data(AUDIT_ARCH_X86_64, nr, [0; 6])).1)
                .max()
                .unwrap()
        };
        assert!(
            ours.len() * 2 < theirs.len(),
            "{} vs {}",
            ours.len(),
            theirs.len()
        );
        assert!(
            most(&ours) * 2 < most(&theirs),
            "{} vs {}",
            most(&ours),
            most(&theirs)
        );
    }

    #[test]
    fn bad_allowlists_are_refused() {
        let always = Allow::Always;
        assert_eq!(program(&[(-1, always)]), Err(ProgramError::BadSyscall(-1)));
        assert_eq!(
            program(&[(1, always), (1, always)]),
            Err(ProgramError::Duplicate(1))
        );
        let bad_arg = Allow::OneOf {
            arg: 6,
            values: &[1],
        };
        assert_eq!(
            program(&[(1, bad_arg)]),
            Err(ProgramError::BadArgument(1, 6))
        );
        // Nothing allowed: every system call traps.
        let none = program(&[]).unwrap();
        let (verdict, _) = run(&none, &data(AUDIT_ARCH_X86_64, 1, [0; 6]));
        assert_eq!(verdict, libc::SECCOMP_RET_TRAP);
    }

    #[test]
    fn too_many_system_calls_for_short_jumps_are_refused() {
        let many: Vec<(i64, Allow)> = (0..400).map(|nr| (nr, Allow::Always)).collect();
        // Leaves jump to the shared RET ALLOW at the end, beyond 255 instructions.
        assert_eq!(program(&many), Err(ProgramError::TooLarge));
    }
}
