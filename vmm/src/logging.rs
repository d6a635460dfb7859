//! The VMM's diagnostics on stderr, through the `log` facade: the binary installs
//! `env_logger` with [`init`], honouring `RUST_LOG` (docs/cli.md, "Environment"). At the
//! default level the lines are what they always were: a warning reads `warning: ...`, a note
//! (the `acpi-s3: ...` lines) is printed as it is. `RUST_LOG=debug` adds the VMM's lifecycle.

use std::io::Write;

use log::Level;

/// The filter when `RUST_LOG` is unset: the VMM's warnings and notes, nothing from other crates.
const DEFAULT_FILTER: &str = "vmm=info";

/// The filter when `RUST_LOG` is unset and `--quiet` is given: no warnings or notes.
const QUIET_FILTER: &str = "vmm=error";

/// Installs the logger for the process: `RUST_LOG` when set, else [`DEFAULT_FILTER`] (or
/// [`QUIET_FILTER`] when `quiet`). Lines go to stderr, never coloured. A second call does
/// nothing.
pub fn init(quiet: bool) {
    let default = if quiet { QUIET_FILTER } else { DEFAULT_FILTER };
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format(|out, record| {
            writeln!(
                out,
                "{}",
                line(record.level(), record.target(), record.args())
            )
        })
        .write_style(env_logger::WriteStyle::Never)
        .try_init();
}

/// One stderr line: `warning: ...` and `error: ...` as the VMM always wrote them, a note as it
/// is, and the debug levels with their level and module (the target `RUST_LOG` filters on).
fn line(level: Level, target: &str, message: &std::fmt::Arguments<'_>) -> String {
    match level {
        Level::Error => format!("error: {message}"),
        Level::Warn => format!("warning: {message}"),
        Level::Info => format!("{message}"),
        Level::Debug => format!("debug: [{target}] {message}"),
        Level::Trace => format!("trace: [{target}] {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_level_lines_read_as_before() {
        let l = |level| line(level, "vmm::devices::unknown", &format_args!("a b"));
        assert_eq!(l(Level::Warn), "warning: a b");
        assert_eq!(l(Level::Info), "a b");
        assert_eq!(l(Level::Error), "error: a b");
        assert_eq!(l(Level::Debug), "debug: [vmm::devices::unknown] a b");
    }
}
