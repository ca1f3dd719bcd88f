//! `triad lab`: the seed's experiments, measured on this machine, beside the seed's claims and
//! beside CPython.
//!
//! Each experiment measures one question the seed answers with prose — is a process pool
//! faster for CPU work, what does a context switch cost, how much memory does a coroutine
//! take — in two steps ([`Experiment`]): `measure` runs a plan of samples on the lab's
//! [`Bench`], which owns the warm-ups, repetitions, progress and the CPython
//! baseline; `judge` reads the measurements back through [`Findings`] and returns the table,
//! charts and a verdict on each claim. [`run`] runs the chosen experiments in order, reporting
//! progress to an [`Observer`]; the [`report`] module writes `results.json`, `report.md` and
//! a self-contained `index.html`.
//!
//! Experiments that start worker processes need [`triad::init`] to have run first in `main`.
//!
//! # Layout
//!
//! - [`experiment`]: the [`Experiment`] trait (measure, then judge), [`Scale`] and the
//!   [`ByScale`] tables every experiment sizes itself with.
//! - [`plan`]: the measure step's [`Plan`](plan::Plan) of series, steps and baselines, the
//!   [`Repeat`](plan::Repeat) of warm-ups and samples, and the [`Bench`] that
//!   runs a plan.
//! - [`findings`]: [`Findings`], the one lookup of measurements, for judges, tests and readers
//!   of `results.json`.
//! - `verdict` (private): what judges share — the verdict on a claim, checks over
//!   implementations, labelled values as evidence; `names` (private): the `names!` table
//!   through which an experiment records and looks up its measurements.
//! - [`experiments`]: the catalogue, one module per experiment, in run order. Among them:
//!   - `experiments/event_loop/reference_loop/`: the reference event loop written the seed's
//!     way (ready queue, timer heap, epoll selector, wakers), timed against tokio and asyncio;
//!   - `experiments/gil/simulator.rs`: the GIL simulator (one global lock handed over after a
//!     5 ms switch interval, as CPython's `ceval_gil.c`);
//!   - `experiments/cpu_bound/gantt.rs`: the seed's concurrency-against-parallelism diagram,
//!     measured as timelines.
//!   - `experiments/server_models/`: one HTTP JSON API in every server model, and the load
//!     generator that `many-fetches` shares; `experiments/decision.rs`: the verdict on a row of
//!     the seed's quick decision table (§9).
//! - [`python`]: finding `python3` and running the baseline scripts of `python/`.
//! - [`results`]: the data of `results.json` (schema in `SCHEMA.md`); [`stats`]: medians and
//!   spreads; [`timeline`]: spans to Gantt rows; [`machine`]: the machine header; `procfs`
//!   (private): the `kB` lines of `/proc` files.
//! - [`report`]: the terminal text, `report.md`, `index.html` (with [`report::svg`] charts),
//!   the seed's own tables measured ([`report::seed_table`], [`report::decision_table`]).

pub mod error;
pub mod experiment;
pub mod experiments;
#[doc(hidden)]
pub use experiments::fuzz_http;
pub mod findings;
pub mod machine;
mod names;
pub mod plan;
mod procfs;
pub mod python;
pub mod report;
pub mod results;
pub mod stats;
pub mod timeline;
mod verdict;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub use error::LabError;
pub use experiment::{About, ByScale, Experiment, Judgement, Scale};
pub use findings::Findings;
pub use machine::Machine;
pub use python::{Python, PythonChoice};
pub use results::{ExperimentReport, LabReport, SCHEMA};

use plan::{Bench, Interpreter};

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Toy, quick or full sizes.
    pub scale: Scale,
    /// Only these experiment ids, in catalogue order (`None`: all).
    pub only: Option<Vec<String>>,
    /// Whether to run the CPython baselines.
    pub python: PythonChoice,
}

/// Hears about the lab's progress, for a progress bar and tables printed as they come.
pub trait Observer {
    /// The lab is about to start, on `machine`, with these run-wide notes.
    fn begin(&mut self, machine: &Machine, notes: &[String]);
    /// Experiment `index` (from 0) of `count` is starting.
    fn started(&mut self, index: usize, count: usize, experiment: &dyn Experiment);
    /// The running experiment finished `done` of `total` steps.
    fn progress(&mut self, done: u64, total: u64);
    /// The running experiment finished.
    fn finished(&mut self, report: &ExperimentReport);
    /// The running experiment failed; the lab goes on with the next one.
    fn failed(&mut self, experiment: &dyn Experiment, error: &LabError);
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Observer for Quiet {
    fn begin(&mut self, _: &Machine, _: &[String]) {}
    fn started(&mut self, _: usize, _: usize, _: &dyn Experiment) {}
    fn progress(&mut self, _: u64, _: u64) {}
    fn finished(&mut self, _: &ExperimentReport) {}
    fn failed(&mut self, _: &dyn Experiment, _: &LabError) {}
}

/// The experiments `config` selects, in catalogue order; an unknown id is an error.
pub fn select(config: &Config) -> Result<Vec<&'static dyn Experiment>, LabError> {
    let catalogue = experiments::catalogue();
    let Some(only) = &config.only else {
        return Ok(catalogue.to_vec());
    };
    if let Some(unknown) = only
        .iter()
        .find(|id| !catalogue.iter().any(|e| e.id() == id.as_str()))
    {
        return Err(LabError::UnknownExperiment {
            id: unknown.clone(),
            known: catalogue
                .iter()
                .map(|e| e.id())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(catalogue
        .iter()
        .copied()
        .filter(|e| only.iter().any(|id| id == e.id()))
        .collect())
}

/// Runs the experiments `config` selects. An experiment that fails is reported to the
/// observer and listed in [`LabReport::failures`]; the others still run.
pub fn run(config: &Config, observer: &mut dyn Observer) -> Result<LabReport, LabError> {
    let chosen = select(config)?;
    let started = Instant::now();
    let started_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut machine = Machine::detect();
    let mut notes = Vec::new();
    let interpreter = interpreter(config.python, &mut notes)?;
    if let Interpreter::Ready { python, .. } = &interpreter {
        machine.python = Some(format!("CPython {}", python.version()));
    }
    observer.begin(&machine, &notes);
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for (index, experiment) in chosen.iter().enumerate() {
        observer.started(index, chosen.len(), *experiment);
        match run_one(*experiment, config.scale, &machine, &interpreter, observer) {
            Ok(report) => {
                observer.finished(&report);
                reports.push(report);
            }
            Err(error) => {
                observer.failed(*experiment, &error);
                failures.push(results::Failure {
                    id: experiment.id().to_owned(),
                    error: error.to_string(),
                });
            }
        }
    }
    Ok(LabReport {
        schema: SCHEMA.to_owned(),
        started_unix_s,
        elapsed_s: started.elapsed().as_secs_f64(),
        scale: config.scale.name().to_owned(),
        machine,
        notes,
        experiments: reports,
        failures,
    })
}

/// How this run measures CPython, as `choice` asks; what it says about that goes in `notes`
/// (the first of which the header shows beside the machine).
fn interpreter(choice: PythonChoice, notes: &mut Vec<String>) -> Result<Interpreter, LabError> {
    if choice == PythonChoice::Off {
        notes.push("Python: off (--python off): no CPython baselines in this run.".to_owned());
        return Ok(Interpreter::Off);
    }
    let found = Python::find().and_then(|python| {
        let (scratch, note) = python::scratch_dir()?;
        notes.extend(note);
        Ok(Interpreter::Ready { python, scratch })
    });
    match found {
        Ok(ready) => Ok(ready),
        Err(why) if choice == PythonChoice::On => Err(LabError::PythonMissing(why)),
        Err(why) => {
            notes.push(format!(
                "Python: not found ({why}): no CPython baselines in this run."
            ));
            Ok(Interpreter::Missing(why))
        }
    }
}

/// Measures and judges one experiment: its report, or why it could not measure.
fn run_one(
    experiment: &dyn Experiment,
    scale: Scale,
    machine: &Machine,
    interpreter: &Interpreter,
    observer: &mut dyn Observer,
) -> Result<ExperimentReport, LabError> {
    let begun = Instant::now();
    let measured = {
        let mut progress = |done, total| observer.progress(done, total);
        experiment.measure(Bench::new(scale, machine, interpreter, &mut progress))?
    };
    let (measurements, timelines, mut notes) = measured.into_parts();
    let judgement = experiment.judge(&Findings::new(&measurements, scale, machine));
    notes.extend(judgement.notes);
    let about = experiment.about();
    Ok(ExperimentReport {
        id: about.id.to_owned(),
        title: about.title.to_owned(),
        seed_section: about.seed_section.to_owned(),
        method: judgement.method,
        measurements,
        table: judgement.table,
        charts: judgement.charts,
        timelines,
        verdicts: judgement.verdicts,
        notes,
        elapsed_s: begun.elapsed().as_secs_f64(),
    })
}
