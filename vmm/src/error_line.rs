//! One line for an error and its sources, as every `error:` line of `vmm` prints it.

/// Formats an error and its sources on one line, skipping a source whose text the line
/// already contains.
pub fn error_line(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = s.source();
    }
    line
}
