//! `vmm` (a boot): resolve the configuration, open the outputs, boot, print the summary, write
//! the JSON, and return the status.

use super::args::BootArgs;
use super::fail;
use crate::error_line::error_line;
use crate::output::{self, JsonOutput};
use crate::report::{render_summary, JsonReport};
use crate::status::Status;
use crate::vm;

/// Boots as `args` say and returns the exit status.
pub(super) fn run(args: &BootArgs) -> Status {
    let mut cfg = match args.resolve() {
        Ok(cfg) => cfg,
        Err(message) => return fail(Status::Usage, &message),
    };
    let json_out = match args.json.as_deref().map(JsonOutput::prepare).transpose() {
        Ok(j) => j,
        Err(e) => return fail(Status::Usage, &error_line(&e)),
    };
    cfg.console = match output::console(args.console.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(Status::Usage, &error_line(&e)),
    };
    // The process exits right after this: the kernel ends the VM's halted vCPU threads and
    // closes the VM then, without any of them returning to user space.
    let outcome = match vm::boot_and_keep(cfg) {
        Ok((o, remains)) => {
            remains.abandon();
            o
        }
        Err(e) => return fail(e.status(), &error_line(&e)),
    };
    if !args.quiet {
        print!("{}", render_summary(&outcome, args.per_cpu));
    }
    if let Some(out) = json_out {
        if let Err(e) = out.write(&JsonReport::from(&outcome)) {
            return fail(Status::Host, &error_line(&e));
        }
    }
    match &outcome.error {
        Some(message) => fail(outcome.status, message),
        None => outcome.status,
    }
}
