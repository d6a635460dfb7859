//! The `vmm` command line: clap's view of it ([`args`]), its resolution into a validated
//! configuration ([`resolve`]), and the two commands, a boot ([`boot`]) and
//! `vmm memslot-burst` ([`memslot_burst`]), which print their views of the outcome and return
//! the exit status. The top of the VMM: nothing below imports it.

mod args;
mod boot;
mod memslot_burst;
mod resolve;
#[cfg(test)]
mod tests;

pub use args::{BootArgs, Cli, Command, MemslotBurstArgs};

use crate::status::Status;

/// Runs the `vmm` command line and returns the exit status.
pub fn run(cli: &Cli) -> Status {
    match &cli.command {
        Some(Command::MemslotBurst(args)) => memslot_burst::run(args),
        None => boot::run(&cli.boot),
    }
}

/// Prints the one-line error and returns `status`.
fn fail(status: Status, message: &str) -> Status {
    eprintln!("error: {message}");
    status
}
