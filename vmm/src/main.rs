//! `vmm`: boot a many-vCPU KVM virtual machine and report what bringing its CPUs online cost.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use vmm::cli::Cli;
use vmm::status::Status;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line, as for every other error; the full usage is one --help away.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid command line").trim();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("error: {first} (see 'vmm --help')");
            return ExitCode::from(Status::Usage.code());
        }
    };
    // Diagnostics go through `log`; RUST_LOG chooses how many (docs/cli.md, "Environment").
    vmm::logging::init(cli.boot.quiet);
    ExitCode::from(vmm::cli::run(&cli).code())
}
