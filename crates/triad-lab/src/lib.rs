//! `triad lab`: the seed's experiments, measured on this machine, beside the seed's claims and
//! beside CPython.
//!
//! Each experiment ([`experiments`]) measures one question the seed answers with prose — is a
//! process pool faster for CPU work, what does a context switch cost, how much memory does a
//! coroutine take — and returns raw samples, a table, charts and a verdict on each claim. [`run`]
//! runs the chosen experiments in order, reporting progress to an [`Observer`]; the [`report`]
//! module writes `results.json`, `report.md` and a self-contained `index.html`.
//!
//! Experiments that start worker processes need [`triad::init`] to have run first in `main`.

pub mod error;
pub mod experiment;
pub mod experiments;
pub mod machine;
pub mod python;
pub mod report;
pub mod results;
pub mod stats;
pub mod timeline;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub use error::LabError;
pub use experiment::{Context, Experiment, Scale};
pub use machine::Machine;
pub use python::{Python, PythonChoice};
pub use results::{ExperimentReport, LabReport, SCHEMA};

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
    let python = match config.python {
        PythonChoice::Off => {
            notes.push("CPython baselines were turned off (--python off).".to_owned());
            None
        }
        PythonChoice::Auto => match Python::find() {
            Ok(python) => Some(python),
            Err(why) => {
                notes.push(format!(
                    "No CPython baselines: python3 was not found ({why})."
                ));
                None
            }
        },
        PythonChoice::On => Some(Python::find().map_err(LabError::PythonMissing)?),
    };
    machine.python = python.as_ref().map(|p| format!("CPython {}", p.version()));
    observer.begin(&machine, &notes);
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for (index, experiment) in chosen.iter().enumerate() {
        observer.started(index, chosen.len(), *experiment);
        let begun = Instant::now();
        let outcome = {
            let mut progress = |done, total| observer.progress(done, total);
            let mut ctx = Context::new(config.scale, python.as_ref(), &mut progress);
            experiment.run(&mut ctx)
        };
        match outcome {
            Ok(mut report) => {
                report.id = experiment.id().to_owned();
                report.title = experiment.title().to_owned();
                report.seed_section = experiment.seed_section().to_owned();
                report.elapsed_s = begun.elapsed().as_secs_f64();
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
