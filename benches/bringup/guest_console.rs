//! Reading sipi's guest summary from its serial console, for VMMs that have no sipi report:
//! the guest prints `sipi-guest: cpus=N online=N missing=0 ... bringup_cycles=C` there.

/// Reads `key=value` from the guest's `sipi-guest:` summary lines.
pub fn field(console: &str, key: &str) -> Option<f64> {
    console
        .lines()
        .filter(|l| l.contains("sipi-guest:"))
        .flat_map(|l| l.split([' ', ',']))
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// Checks the summary says every one of `n` CPUs came online, none missing.
pub fn all_online(console: &str, n: u32) -> Result<(), String> {
    let online = field(console, "online").ok_or("no sipi-guest summary on the console")?;
    let missing = field(console, "missing").unwrap_or(f64::NAN);
    if online != f64::from(n) || missing != 0.0 {
        return Err(format!("{online} of {n} CPUs online, {missing} missing"));
    }
    Ok(())
}

/// The guest's bringup in microseconds: `bringup_us` when it printed one, else
/// `bringup_cycles` converted with `tsc_khz` (what KVM reported to sipi on this host; other
/// VMMs do not give the guest the TSC frequency). NaN when neither is known.
pub fn bringup_us(console: &str, tsc_khz: Option<f64>) -> f64 {
    let from_cycles = field(console, "bringup_cycles")
        .zip(tsc_khz)
        .map(|(c, k)| c * 1000.0 / k);
    field(console, "bringup_us")
        .or(from_cycles)
        .unwrap_or(f64::NAN)
}
