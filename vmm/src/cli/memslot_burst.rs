//! `vmm memslot-burst`: runs the burst, prints its figures, writes JSON, returns the status.

use super::args::MemslotBurstArgs;
use super::fail;
use crate::error_line::error_line;
use crate::memslot_burst::{self, BurstConfig, Mode};
use crate::output::JsonOutput;
use crate::status::Status;

/// Runs the burst `args` describe and returns the exit status.
pub(super) fn run(args: &MemslotBurstArgs) -> Status {
    let json_out = match args.json.as_deref().map(JsonOutput::prepare).transpose() {
        Ok(j) => j,
        Err(e) => return fail(Status::Usage, &error_line(&e)),
    };
    let cfg = BurstConfig {
        changes: args.changes,
        vcpus: args.vcpus,
        mode: if args.naive {
            Mode::Naive
        } else {
            Mode::Batched
        },
        changes_per_transaction: None,
        kvm_device: args.kvm_device.clone(),
        seccomp: !crate::seccomp::disabled(),
    };
    let report = match memslot_burst::run(&cfg) {
        Ok(r) => r,
        Err(e) => return fail(e.status(), &error_line(&e)),
    };
    print!("{}", memslot_burst::render(&report));
    if let Some(out) = json_out {
        if let Err(e) = out.write(&report) {
            return fail(Status::Host, &error_line(&e));
        }
    }
    match &report.error {
        Some(message) => fail(Status::GuestFailure, message),
        None => Status::Ok,
    }
}
