//! The shape of an experiment: two steps, `measure` then `judge`, and what the lab does around
//! them.
//!
//! An experiment is a unit struct implementing [`Experiment`]. Its sizes live in one
//! [`ByScale`] table (toy for tests, quick, full), read by both steps. [`Experiment::measure`]
//! builds a [`Plan`](crate::plan::Plan) — series of samples, one-off steps, the CPython
//! baseline — and hands it to the lab's [`Bench`], which runs the warm-ups and repetitions,
//! reports progress, runs CPython and merges what it printed, and returns the
//! [`Measured`] data. [`Experiment::judge`] then reads those
//! measurements through [`Findings`] only, and returns the method, table, charts, verdicts and
//! notes. The lab adds the id, title, seed section and elapsed time, and assembles the
//! [`ExperimentReport`](crate::results::ExperimentReport).
//!
//! Because `judge` sees nothing but the findings (and the scale and machine they carry), a
//! report can be judged again from its `results.json`: a new rule for verdicts applies to old
//! runs without measuring again.

use crate::error::LabError;
use crate::findings::Findings;
use crate::plan::{Bench, Measured};
use crate::results::{Chart, Table, Verdict};

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

    /// The scale called `name` in `results.json`.
    pub fn from_name(name: &str) -> Option<Self> {
        [Scale::Toy, Scale::Quick, Scale::Full]
            .into_iter()
            .find(|scale| scale.name() == name)
    }
}

/// One value per scale: how every experiment sizes itself, in one table per experiment.
///
/// ```
/// use triad_lab::{ByScale, Scale};
///
/// const ROUNDS: ByScale<u64> = ByScale::new(10, 1_000, 10_000);
/// assert_eq!(*ROUNDS.at(Scale::Quick), 1_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByScale<T> {
    /// At [`Scale::Toy`].
    pub toy: T,
    /// At [`Scale::Quick`].
    pub quick: T,
    /// At [`Scale::Full`].
    pub full: T,
}

impl<T> ByScale<T> {
    /// The three values, smallest scale first.
    pub const fn new(toy: T, quick: T, full: T) -> Self {
        Self { toy, quick, full }
    }

    /// The value at `scale`.
    pub fn at(&self, scale: Scale) -> &T {
        match scale {
            Scale::Toy => &self.toy,
            Scale::Quick => &self.quick,
            Scale::Full => &self.full,
        }
    }
}

/// Who an experiment is: what `--only` takes and what the report shows above its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct About {
    /// Short stable id, such as `cpu-bound`.
    pub id: &'static str,
    /// A title for people.
    pub title: &'static str,
    /// The seed's section(s) it comes from, such as `2, 4`.
    pub seed_section: &'static str,
}

/// What [`Experiment::judge`] makes of the measurements.
#[derive(Debug, Clone, Default)]
pub struct Judgement {
    /// How it was measured, in a few sentences: sizes, repetitions, what is timed.
    pub method: String,
    /// The summary table, as printed.
    pub table: Table,
    /// Charts for the HTML report (at least one).
    pub charts: Vec<Chart>,
    /// One verdict per claim of the seed.
    pub verdicts: Vec<Verdict>,
    /// What a reader should know about the figures (caveats, what each row runs).
    pub notes: Vec<String>,
}

/// One of the lab's experiments, in two steps.
pub trait Experiment: Sync {
    /// Its id, title and seed section.
    fn about(&self) -> About;

    /// Its id (what `--only` takes).
    fn id(&self) -> &'static str {
        self.about().id
    }

    /// Measures: builds a plan of what to run and runs it on `bench` (`bench.run(plan)`),
    /// which returns the only value this may return on success.
    fn measure(&self, bench: Bench<'_>) -> Result<Measured, LabError>;

    /// Reads what was measured, through `findings` only, for the report.
    fn judge(&self, findings: &Findings<'_>) -> Judgement;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_read_back_from_their_names() {
        for scale in [Scale::Toy, Scale::Quick, Scale::Full] {
            assert_eq!(Scale::from_name(scale.name()), Some(scale));
        }
        assert_eq!(Scale::from_name("huge"), None);
        let table = ByScale::new("a", "b", "c");
        assert_eq!(*table.at(Scale::Full), "c");
    }
}
