//! The measure step's side of the lab: what an experiment plans, and the [`Bench`] that runs it.
//!
//! An experiment's `measure` sets up what its runs share (pools, servers, raised limits), then
//! lists the work in a [`Plan`]:
//! - a [`Series`]: samples of one quantity, `Repeat::samples` of them after
//!   `Repeat::warm_up` untimed runs (of the sampler itself, or of a lighter load given to
//!   [`Series::warmed_by`]), turned into measurements when the series ends; series
//!   given together to [`Plan::rounds`] are sampled in turn, one sample of each per round (all
//!   warm-ups first), so that a burst of load from elsewhere falls on several of them rather
//!   than on every sample of one;
//! - a step ([`Plan::step`]) that records what it measured itself, for work that is one
//!   session (a ping-pong whose partner lives through all its batches, a fork of a large
//!   parent);
//! - the CPython baseline ([`Plan::python`]).
//!
//! [`Bench::run`] runs the plan in order. It knows every step before the first runs, so the
//! progress it reports (one tick per sample, step or baseline) has the right total from the
//! start. A failed step fails the experiment; a failed CPython baseline does not: it becomes a
//! note, and the Rust figures stay.

use std::path::PathBuf;

use crate::error::LabError;
use crate::experiment::Scale;
use crate::machine::Machine;
use crate::python::{Baseline, Python};
use crate::results::{Measurement, Timeline};

/// How often a quantity is sampled: untimed warm-up runs first, then the runs kept.
///
/// ```
/// use triad_lab::plan::Repeat;
///
/// let mut runs = 0;
/// let kept = Repeat::new(1, 3).run(|| -> Result<u32, ()> { runs += 1; Ok(runs) });
/// assert_eq!(kept, Ok(vec![2, 3, 4]));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeat {
    /// Runs made and thrown away first (caches, pools and allocators warm up).
    pub warm_up: usize,
    /// Runs kept, one sample each.
    pub samples: usize,
}

impl Repeat {
    /// `warm_up` runs thrown away, then `samples` kept.
    pub const fn new(warm_up: usize, samples: usize) -> Self {
        Self { warm_up, samples }
    }

    /// `samples` runs kept after one warm-up run.
    pub const fn after_one(samples: usize) -> Self {
        Self::new(1, samples)
    }

    /// Runs `body` [`warm_up`](Self::warm_up) times, then [`samples`](Self::samples) times,
    /// and returns what the kept runs returned; the first error ends it.
    pub fn run<R, E>(self, mut body: impl FnMut() -> Result<R, E>) -> Result<Vec<R>, E> {
        for _ in 0..self.warm_up {
            body()?;
        }
        (0..self.samples).map(|_| body()).collect()
    }

    /// Like [`run`](Self::run), timing each run: the kept runs' wall times, in seconds.
    pub fn time<E>(self, mut body: impl FnMut() -> Result<(), E>) -> Result<Vec<f64>, E> {
        self.run(|| {
            let start = std::time::Instant::now();
            body()?;
            Ok(start.elapsed().as_secs_f64())
        })
    }

    /// The runs made in all, warm-ups included.
    pub const fn runs(self) -> usize {
        self.warm_up + self.samples
    }
}

/// What an experiment measured: the measurements, timelines and notes its plan recorded.
///
/// Only [`Bench::run`] makes one, so an experiment's `measure` cannot succeed without running
/// its plan through the lab.
#[derive(Debug)]
pub struct Measured {
    measurements: Vec<Measurement>,
    timelines: Vec<Timeline>,
    notes: Vec<String>,
}

impl Measured {
    fn new() -> Self {
        Self {
            measurements: Vec::new(),
            timelines: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a measurement.
    pub fn measurement(&mut self, measurement: Measurement) {
        self.measurements.push(measurement);
    }

    /// Adds a timeline, drawn as a Gantt chart.
    pub fn timeline(&mut self, timeline: Timeline) {
        self.timelines.push(timeline);
    }

    /// Adds a note about how the measuring went (a size skipped, a limit met).
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The measurements, timelines and notes.
    pub fn into_parts(self) -> (Vec<Measurement>, Vec<Timeline>, Vec<String>) {
        (self.measurements, self.timelines, self.notes)
    }
}

/// A series of samples: a sampler run as its [`Repeat`] says, and what turns its readings into
/// measurements.
pub struct Series<'r> {
    repeat: Repeat,
    sampler: Box<dyn Sampler + 'r>,
    /// What a warm-up run runs, when not the sampler itself.
    warm_up: Option<Box<dyn FnMut() -> Result<(), LabError> + 'r>>,
}

impl std::fmt::Debug for Series<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series")
            .field("repeat", &self.repeat)
            .finish_non_exhaustive()
    }
}

/// A series with its reading type erased, so that a plan holds series of any kind.
trait Sampler {
    /// Takes one reading; `keep` is false during the warm-up.
    fn take(&mut self, keep: bool) -> Result<(), LabError>;
    /// Records the kept readings.
    fn finish(self: Box<Self>, measured: &mut Measured);
}

struct Readings<R, S, F> {
    sample: S,
    kept: Vec<R>,
    finish: F,
}

impl<R, S, F> Sampler for Readings<R, S, F>
where
    S: FnMut() -> Result<R, LabError>,
    F: FnOnce(Vec<R>, &mut Measured),
{
    fn take(&mut self, keep: bool) -> Result<(), LabError> {
        let reading = (self.sample)()?;
        if keep {
            self.kept.push(reading);
        }
        Ok(())
    }

    fn finish(self: Box<Self>, measured: &mut Measured) {
        (self.finish)(self.kept, measured);
    }
}

impl<'r> Series<'r> {
    /// Readings of `sample`, taken as `repeat` says; the kept ones go to `finish`, which
    /// records them (as one measurement or several: a run may read several quantities).
    pub fn new<R: 'r>(
        repeat: Repeat,
        sample: impl FnMut() -> Result<R, LabError> + 'r,
        finish: impl FnOnce(Vec<R>, &mut Measured) + 'r,
    ) -> Self {
        Self {
            repeat,
            sampler: Box::new(Readings {
                sample,
                kept: Vec::with_capacity(repeat.samples),
                finish,
            }),
            warm_up: None,
        }
    }

    /// The same series, whose warm-up runs run `warm_up` instead of the sampler: a lighter
    /// load that starts what the samples use (a pool's workers, a runtime's threads).
    pub fn warmed_by(self, warm_up: impl FnMut() -> Result<(), LabError> + 'r) -> Self {
        Self {
            warm_up: Some(Box::new(warm_up)),
            ..self
        }
    }

    /// One warm-up run.
    fn warm(&mut self) -> Result<(), LabError> {
        match &mut self.warm_up {
            Some(warm_up) => warm_up(),
            None => self.sampler.take(false),
        }
    }

    /// Samples of `measurement` (given without any), one per kept run of `sample`.
    pub fn of(
        measurement: Measurement,
        repeat: Repeat,
        sample: impl FnMut() -> Result<f64, LabError> + 'r,
    ) -> Self {
        Self::new(repeat, sample, move |samples, measured| {
            measured.measurement(measurement.with_samples(samples));
        })
    }
}

/// A step that measures in one go and records what it found.
type OneOff<'r> = Box<dyn FnOnce(&mut Measured) -> Result<(), LabError> + 'r>;

/// One thing a plan runs.
enum Step<'r> {
    /// Series sampled in turn.
    Rounds(Vec<Series<'r>>),
    /// A step that records what it measured.
    Once(OneOff<'r>),
    /// A CPython baseline.
    Python(Baseline),
    /// A note, recorded in its place.
    Note(String),
}

impl Step<'_> {
    /// Progress ticks: one per run of a series, one per step or baseline.
    fn ticks(&self) -> u64 {
        match self {
            Step::Rounds(series) => series.iter().map(|s| s.repeat.runs() as u64).sum(),
            Step::Once(_) | Step::Python(_) => 1,
            Step::Note(_) => 0,
        }
    }
}

/// What an experiment will run, in order; `'r` is how long what its steps borrow lives.
#[derive(Default)]
pub struct Plan<'r> {
    steps: Vec<Step<'r>>,
}

impl std::fmt::Debug for Plan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("steps", &self.steps.len())
            .finish()
    }
}

impl<'r> Plan<'r> {
    /// An empty plan.
    pub fn new() -> Self {
        Self { steps: Vec::new() }
    }

    /// A series, sampled on its own.
    pub fn series(&mut self, series: Series<'r>) {
        self.steps.push(Step::Rounds(vec![series]));
    }

    /// Series sampled in turn: every warm-up run first, then in each round one sample of each
    /// series that still wants one.
    pub fn rounds(&mut self, series: Vec<Series<'r>>) {
        if !series.is_empty() {
            self.steps.push(Step::Rounds(series));
        }
    }

    /// A step that measures in one go and records what it found.
    pub fn step(&mut self, step: impl FnOnce(&mut Measured) -> Result<(), LabError> + 'r) {
        self.steps.push(Step::Once(Box::new(step)));
    }

    /// The CPython baseline, run at this point of the plan (while what the plan borrows, such
    /// as a server the script talks to, is alive).
    pub fn python(&mut self, baseline: Baseline) {
        self.steps.push(Step::Python(baseline));
    }

    /// A note about the measuring, recorded in its place.
    pub fn note(&mut self, note: impl Into<String>) {
        self.steps.push(Step::Note(note.into()));
    }
}

/// Whether and how this lab run measures CPython.
#[derive(Debug)]
pub(crate) enum Interpreter {
    /// Turned off (`--python off`).
    Off,
    /// Wanted but not available, and why.
    Missing(String),
    /// `python3`, and the writable directory its scripts are written to.
    Ready {
        /// The interpreter.
        python: Python,
        /// Where scripts go (`TMPDIR` for them too).
        scratch: PathBuf,
    },
}

impl Interpreter {
    /// The note an experiment gets when its baseline does not run.
    fn absent_note(&self) -> Option<String> {
        match self {
            Interpreter::Off => Some(
                "CPython baselines are off in this run (--python off): no CPython figures."
                    .to_owned(),
            ),
            Interpreter::Missing(why) => Some(format!(
                "No CPython baseline in this run ({why}): no CPython figures."
            )),
            Interpreter::Ready { .. } => None,
        }
    }
}

/// What a running experiment's `measure` may ask of the lab, and where its plan runs.
pub struct Bench<'a> {
    scale: Scale,
    machine: &'a Machine,
    interpreter: &'a Interpreter,
    progress: &'a mut dyn FnMut(u64, u64),
}

impl std::fmt::Debug for Bench<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bench")
            .field("scale", &self.scale)
            .field("interpreter", &self.interpreter)
            .finish_non_exhaustive()
    }
}

impl<'a> Bench<'a> {
    pub(crate) fn new(
        scale: Scale,
        machine: &'a Machine,
        interpreter: &'a Interpreter,
        progress: &'a mut dyn FnMut(u64, u64),
    ) -> Self {
        Self {
            scale,
            machine,
            interpreter,
            progress,
        }
    }

    /// The scale of this run.
    pub fn scale(&self) -> Scale {
        self.scale
    }

    /// The machine the lab runs on (its cores are the CPUs this process may use).
    pub fn machine(&self) -> &'a Machine {
        self.machine
    }

    /// The interpreter and the directory for its scripts, for an experiment that runs CPython
    /// itself (a server it puts load on); else the note to record instead.
    pub(crate) fn python(&self) -> Result<(&'a Python, &'a std::path::Path), String> {
        match self.interpreter {
            Interpreter::Ready { python, scratch } => Ok((python, scratch)),
            absent => Err(absent.absent_note().unwrap_or_default()),
        }
    }

    /// Runs `plan`, step by step, reporting progress; what it recorded.
    pub fn run(self, plan: Plan<'_>) -> Result<Measured, LabError> {
        let total: u64 = plan.steps.iter().map(Step::ticks).sum();
        let mut done = 0;
        let progress = self.progress;
        let mut tick = || {
            done += 1;
            progress(done, total);
        };
        let mut measured = Measured::new();
        for step in plan.steps {
            match step {
                Step::Rounds(mut series) => {
                    for one in &mut series {
                        for _ in 0..one.repeat.warm_up {
                            one.warm()?;
                            tick();
                        }
                    }
                    let rounds = series.iter().map(|s| s.repeat.samples).max().unwrap_or(0);
                    for round in 0..rounds {
                        for one in &mut series {
                            if round < one.repeat.samples {
                                one.sampler.take(true)?;
                                tick();
                            }
                        }
                    }
                    for one in series {
                        one.sampler.finish(&mut measured);
                    }
                }
                Step::Once(step) => {
                    step(&mut measured)?;
                    tick();
                }
                Step::Python(baseline) => {
                    run_baseline(self.interpreter, &baseline, &mut measured);
                    tick();
                }
                Step::Note(note) => measured.note(note),
            }
        }
        Ok(measured)
    }
}

/// Runs `baseline` and adds what it measured and noted; a baseline that cannot run, or fails,
/// leaves a note instead.
fn run_baseline(interpreter: &Interpreter, baseline: &Baseline, measured: &mut Measured) {
    let Interpreter::Ready { python, scratch } = interpreter else {
        measured.notes.extend(interpreter.absent_note());
        return;
    };
    match python.run(baseline, scratch) {
        Ok(output) => {
            measured.measurements.extend(output.measurements);
            measured.notes.extend(output.notes);
        }
        Err(error) => measured.note(format!(
            "The CPython baseline did not finish, so this experiment shows Rust's figures \
             only: {error}."
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Implementation;

    fn bench_run(plan: Plan<'_>, interpreter: &Interpreter) -> (Measured, Vec<(u64, u64)>) {
        let machine = Machine::default();
        let mut ticks = Vec::new();
        let mut progress = |done, total| ticks.push((done, total));
        let bench = Bench::new(Scale::Toy, &machine, interpreter, &mut progress);
        let measured = bench.run(plan).expect("the plan runs");
        (measured, ticks)
    }

    #[test]
    fn rounds_take_every_warm_up_first_then_one_sample_of_each_in_turn() {
        let order = std::cell::RefCell::new(Vec::new());
        let sampler = |name: &'static str| {
            let order = &order;
            let mut count = 0;
            move || {
                count += 1;
                order.borrow_mut().push(format!("{name}{count}"));
                Ok(f64::from(count))
            }
        };
        let template = |name| Measurement::new(name, Implementation::Rust, "s", Vec::new());
        let mut plan = Plan::new();
        plan.rounds(vec![
            Series::of(template("a"), Repeat::new(1, 2), sampler("a")),
            Series::of(template("b"), Repeat::new(1, 3), sampler("b")),
        ]);
        plan.note("after");
        let (measured, ticks) = bench_run(plan, &Interpreter::Off);
        assert_eq!(*order.borrow(), ["a1", "b1", "a2", "b2", "a3", "b3", "b4"]);
        let (measurements, _, notes) = measured.into_parts();
        assert_eq!(measurements[0].samples, [2.0, 3.0]);
        assert_eq!(measurements[1].samples, [2.0, 3.0, 4.0]);
        assert_eq!(measurements[1].summary.n, 3);
        assert_eq!(notes, ["after"]);
        let expected: Vec<(u64, u64)> = (1..=7).map(|done| (done, 7)).collect();
        assert_eq!(
            ticks, expected,
            "one tick per run, the total known from the start"
        );
    }

    #[test]
    fn a_series_may_warm_up_with_a_lighter_run() {
        let warmed = std::cell::Cell::new(0);
        let mut plan = Plan::new();
        let template = Measurement::new("a", Implementation::Rust, "s", Vec::new());
        plan.series(
            Series::of(template, Repeat::new(2, 1), || Ok(7.0)).warmed_by(|| {
                warmed.set(warmed.get() + 1);
                Ok(())
            }),
        );
        let (measured, ticks) = bench_run(plan, &Interpreter::Off);
        assert_eq!(warmed.get(), 2);
        assert_eq!(measured.into_parts().0[0].samples, [7.0]);
        assert_eq!(ticks.len(), 3);
    }

    #[test]
    fn a_failing_step_fails_the_plan() {
        let machine = Machine::default();
        let mut progress = |_, _| {};
        let bench = Bench::new(Scale::Toy, &machine, &Interpreter::Off, &mut progress);
        let mut plan = Plan::new();
        plan.step(|_| Err(LabError::engine("a step", "broke")));
        let error = bench.run(plan).unwrap_err();
        assert_eq!(error.to_string(), "a step: broke");
    }

    #[test]
    fn a_baseline_that_cannot_run_is_a_note_and_the_rest_stays() {
        let mut plan = Plan::new();
        plan.step(|measured| {
            measured.measurement(Measurement::new(
                "rust",
                Implementation::Rust,
                "s",
                vec![1.0],
            ));
            Ok(())
        });
        plan.python(Baseline::new("echo", "", Vec::<String>::new()));
        let missing = Interpreter::Missing("python3 was not found".to_owned());
        let (measured, ticks) = bench_run(plan, &missing);
        let (measurements, _, notes) = measured.into_parts();
        assert_eq!(measurements.len(), 1);
        assert!(notes[0].contains("python3 was not found"), "{notes:?}");
        assert_eq!(ticks.last(), Some(&(2, 2)));
    }

    #[test]
    fn a_failing_baseline_is_a_note_and_the_rust_figures_stay() {
        let Ok(python) = Python::find() else {
            eprintln!("python3 not found; nothing to test");
            return;
        };
        let (scratch, _) = crate::python::scratch_dir().unwrap();
        let ready = Interpreter::Ready { python, scratch };
        let mut plan = Plan::new();
        let template = Measurement::new("rust", Implementation::Rust, "s", Vec::new());
        plan.series(Series::of(template, Repeat::new(0, 2), || Ok(1.0)));
        plan.python(Baseline::new(
            "boom",
            "raise SystemExit('the interpreter gave up')",
            Vec::<String>::new(),
        ));
        let (measured, _) = bench_run(plan, &ready);
        let (measurements, _, notes) = measured.into_parts();
        assert_eq!(measurements.len(), 1);
        assert_eq!(measurements[0].samples, [1.0, 1.0]);
        let [note] = &notes[..] else {
            panic!("one note: {notes:?}")
        };
        assert!(note.contains("did not finish"), "{note}");
        assert!(note.contains("the interpreter gave up"), "{note}");
    }

    #[test]
    fn repeat_keeps_the_runs_after_the_warm_up_and_stops_at_an_error() {
        let mut calls = 0;
        let kept = Repeat::new(2, 2).run(|| -> Result<i32, &str> {
            calls += 1;
            Ok(calls)
        });
        assert_eq!(kept, Ok(vec![3, 4]));
        let mut calls = 0;
        let failed = Repeat::new(0, 5).run(|| {
            calls += 1;
            if calls == 2 { Err("second") } else { Ok(()) }
        });
        assert_eq!((failed, calls), (Err("second"), 2));
        let times = Repeat::after_one(3).time(|| Ok::<(), ()>(())).unwrap();
        assert_eq!(times.len(), 3);
        assert_eq!(Repeat::new(2, 3).runs(), 5);
    }
}
