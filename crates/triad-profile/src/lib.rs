//! triad-profile: run a command (or a closure), watch it, and say whether it is CPU-bound,
//! IO-bound or mixed, why, and what to run it with — the seed's `TaskProfiler` (section 8.1) and
//! decision tree (section 7).
//!
//! # Layout
//!
//! - [`recording`]: what a run recorded — the contract between sampling and analysis.

#![warn(missing_docs)]

pub mod recording;

pub use recording::{Exit, Lang, Recording, Sample, Totals};
