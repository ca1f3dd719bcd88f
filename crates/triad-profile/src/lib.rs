//! triad-profile: run a command (or a closure), watch it, and say whether it is CPU-bound,
//! IO-bound or mixed, why, and what to run it with — the seed's `TaskProfiler` (section 8.1) and
//! decision tree (section 7).
//!
//! # Layout
//!
//! - [`recording`]: what a run recorded — the contract between sampling and analysis.
//! - [`run`]: run a command and sample its process tree from `/proc` into a [`Recording`]
//!   (private helpers: `proc`, parsing `/proc`; `forward`, passing signals on to the command).

#![warn(missing_docs)]

mod forward;
mod proc;
pub mod recording;
pub mod run;

pub use recording::{Exit, Lang, Recording, Sample, Totals};
pub use run::{RunError, RunOptions, profile};
