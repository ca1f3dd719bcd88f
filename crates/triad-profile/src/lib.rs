//! triad-profile: run a command (or a closure), watch it, and say whether it is CPU-bound,
//! IO-bound or mixed, why, and what to run it with — the seed's `TaskProfiler` (section 8.1) and
//! decision tree (section 7).
//!
//! # Layout
//!
//! - [`recording`]: what a run recorded — the contract between sampling and analysis.
//! - [`run`]: run a command and sample its process tree from `/proc` into a [`Recording`]
//!   (private helpers: `guard`, the process between the profiler and the command that keeps
//!   the tree together; `proc`, reading `/proc`, with what sleeping threads are blocked in;
//!   `forward`, catching signals to pass on).
//! - [`classify`]: [`analyse`] a recording into [`Figures`], a [`Verdict`] with confidence and
//!   evidence, and [`Advice`] (model and worker count); the thresholds are named constants there.
//! - [`report`]: [`render_text`] (the human report, ≤ 30 lines) and [`render_json`] (schema
//!   `triad-profile/2`, documented in `SCHEMA.md`).
//! - [`repeat`]: one command profiled several times: each run's verdict, and their agreement.
//! - [`measure`](mod@measure): [`measure`](fn@measure) a closure on the calling thread and get
//!   the same [`Analysis`].

#![warn(missing_docs)]

pub mod classify;
mod forward;
mod guard;
pub mod measure;
mod proc;
pub mod recording;
pub mod repeat;
pub mod report;
pub mod run;

pub use classify::{Advice, Analysis, Figures, IoWait, Model, Phase, SetAside, Verdict, analyse};
pub use measure::measure;
pub use recording::{Exit, Lang, Recording, Sample, ThreadRecord, Totals, WaitCounts, WaitKind};
pub use report::{render_json, render_text};
pub use run::{Relayed, RunError, RunOptions, profile, profile_relaying_stdout};

#[cfg(test)]
mod synth;
