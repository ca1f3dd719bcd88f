//! The shape of an experiment and what it may ask of the lab while it runs.
//!
//! An experiment is a unit struct implementing [`Experiment`]. Its `run` reads the scale from the
//! [`Context`] (toy for tests, quick, full), measures, optionally runs its CPython baseline through
//! [`Context::python`], and returns an [`ExperimentReport`] with its raw samples, table, charts
//! and verdicts. The lab fills in the id, title, seed section and elapsed time.

use crate::error::LabError;
use crate::python::{Python, PythonOutput};
use crate::results::ExperimentReport;

/// How big the lab's runs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scale {
    /// The smallest sizes that still exercise every path: for tests (well under a second each).
    Toy,
    /// The default: the whole lab in at most 90 s on a 2-core machine.
    #[default]
    Quick,
    /// Larger sizes and more repetitions: at most 10 minutes.
    Full,
}

impl Scale {
    /// The lowercase name used in `results.json`.
    pub fn name(self) -> &'static str {
        match self {
            Scale::Toy => "toy",
            Scale::Quick => "quick",
            Scale::Full => "full",
        }
    }

    /// One of three values by scale.
    pub fn pick<T>(self, toy: T, quick: T, full: T) -> T {
        match self {
            Scale::Toy => toy,
            Scale::Quick => quick,
            Scale::Full => full,
        }
    }
}

/// One of the lab's experiments.
pub trait Experiment: Sync {
    /// Short stable id, such as `cpu-bound`; what `--only` takes.
    fn id(&self) -> &'static str;
    /// A title for people.
    fn title(&self) -> &'static str;
    /// The seed's section(s) it comes from, such as `2, 4`.
    fn seed_section(&self) -> &'static str;
    /// Measures and reports. Long loops call [`Context::progress`].
    fn run(&self, ctx: &mut Context<'_>) -> Result<ExperimentReport, LabError>;
}

/// What a running experiment may ask of the lab.
pub struct Context<'a> {
    scale: Scale,
    python: Option<&'a Python>,
    progress: &'a mut dyn FnMut(u64, u64),
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("scale", &self.scale)
            .field("python", &self.python)
            .finish_non_exhaustive()
    }
}

impl<'a> Context<'a> {
    /// A context at `scale`, with CPython if given, reporting progress to `progress(done, total)`.
    pub fn new(
        scale: Scale,
        python: Option<&'a Python>,
        progress: &'a mut dyn FnMut(u64, u64),
    ) -> Self {
        Self {
            scale,
            python,
            progress,
        }
    }

    /// The scale of this run.
    pub fn scale(&self) -> Scale {
        self.scale
    }

    /// One of three values by scale.
    pub fn pick<T>(&self, toy: T, quick: T, full: T) -> T {
        self.scale.pick(toy, quick, full)
    }

    /// Reports that `done` of `total` steps are finished.
    pub fn progress(&mut self, done: u64, total: u64) {
        (self.progress)(done, total);
    }

    /// Whether the CPython baselines run in this lab.
    pub fn has_python(&self) -> bool {
        self.python.is_some()
    }

    /// Runs the CPython baseline `name` (source usually from `include_str!`) with `args`.
    /// `Ok(None)` when the lab runs without Python: say so in a note, it is not a failure.
    pub fn python(
        &mut self,
        name: &str,
        source: &str,
        args: &[String],
    ) -> Result<Option<PythonOutput>, LabError> {
        match self.python {
            Some(python) => python.run(name, source, args).map(Some),
            None => Ok(None),
        }
    }
}
