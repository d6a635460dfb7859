//! The guest's report and the outcome of a boot: the report read from guest memory with every
//! size bounded and checked against the VM it came from ([`check`]), its statistics
//! ([`stats`]), the live state of a guest that never reported ([`live`]), and the typed
//! outcome of a boot ([`outcome`]) with its two views, JSON ([`json`]) and the human summary
//! ([`text`]). The scenario block (what the guest did after bringup) is in [`scenario`].

mod check;
pub mod details;
mod error;
mod json;
pub mod kvm_stats;
pub mod live;
pub mod measurement;
mod outcome;
mod scenario;
pub(crate) mod stamps;
pub mod stats;
mod text;
pub mod timeline;

pub use check::decode;
pub(crate) use check::{decode_for, read};
pub use error::ReportCheckError;
pub(crate) use json::JsonReport;
pub use outcome::{BootOutcome, BspStartReport, VmmPhasesUs};
pub(crate) use scenario::scenario_failure;
pub(crate) use text::render_summary;

#[cfg(test)]
mod tests;
