//! What the sharing experiments (`race`, `ipc`, `pool-chunking`, `fork-cow`) do alike: add
//! CPython's output to the report, and read the measurements back for the table, charts and
//! verdicts — a lookup by name, implementation and parameters, the implementations that ran,
//! and the rule most of their verdicts follow.

use crate::python::PythonOutput;
use crate::results::{ExperimentReport, Implementation, Measurement, Outcome};
use crate::stats::Summary;

/// Adds what the CPython baseline measured and noted to `report`, or a note that it did not
/// run (no `python3`).
pub(super) fn add_python(report: &mut ExperimentReport, python: Option<&PythonOutput>) {
    let measurements = crate::python::measurements_and_notes(python.cloned(), &mut report.notes);
    report.measurements.extend(measurements);
}

/// An experiment's measurements, looked up by name, implementation and parameters.
#[derive(Debug, Clone, Copy)]
pub(super) struct Findings<'a> {
    measurements: &'a [Measurement],
}

impl<'a> Findings<'a> {
    pub(super) fn new(measurements: &'a [Measurement]) -> Self {
        Findings { measurements }
    }

    /// The measurement `name` of `implementation` whose parameters include every pair given.
    pub(super) fn find(
        &self,
        name: &str,
        implementation: Implementation,
        params: &[(&str, serde_json::Value)],
    ) -> Option<&'a Measurement> {
        self.measurements.iter().find(|m| {
            m.name == name
                && m.implementation == implementation
                && params
                    .iter()
                    .all(|(key, value)| m.params.get(*key) == Some(value))
        })
    }

    /// The summary of [`find`](Self::find)'s measurement.
    pub(super) fn summary(
        &self,
        name: &str,
        implementation: Implementation,
        params: &[(&str, serde_json::Value)],
    ) -> Option<&'a Summary> {
        self.find(name, implementation, params).map(|m| &m.summary)
    }

    /// Rust, and CPython when any of its measurements is there.
    pub(super) fn implementations(&self) -> Vec<Implementation> {
        let python = self
            .measurements
            .iter()
            .any(|m| m.implementation == Implementation::Python);
        if python {
            vec![Implementation::Rust, Implementation::Python]
        } else {
            vec![Implementation::Rust]
        }
    }
}

/// How an implementation is named in tables and charts.
pub(super) fn name(implementation: Implementation) -> &'static str {
    match implementation {
        Implementation::Rust => "Rust",
        Implementation::Python => "CPython",
    }
}

/// A claim that holds when a measured value reaches `threshold`: confirmed when every value
/// does, refuted when none does, depends when some do (or when nothing was measured).
pub(super) fn outcome_by_threshold(values: &[f64], threshold: f64) -> Outcome {
    Outcome::from_checks(values.iter().map(|v| *v >= threshold))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_none_or_some() {
        assert_eq!(outcome_by_threshold(&[2.0, 3.0], 2.0), Outcome::Confirmed);
        assert_eq!(outcome_by_threshold(&[1.0, 1.5], 2.0), Outcome::Refuted);
        assert_eq!(outcome_by_threshold(&[1.0, 3.0], 2.0), Outcome::Depends);
        assert_eq!(outcome_by_threshold(&[], 2.0), Outcome::Depends);
    }

    #[test]
    fn lookups_match_name_implementation_and_params() {
        let measurements = [
            Measurement::new("rtt", Implementation::Rust, "s", vec![1.0]).param("size", 64),
            Measurement::new("rtt", Implementation::Rust, "s", vec![2.0]).param("size", 4096),
            Measurement::new("rtt", Implementation::Python, "s", vec![3.0]).param("size", 64),
        ];
        let findings = Findings::new(&measurements);
        let median = |implementation, size: usize| {
            findings
                .summary("rtt", implementation, &[("size", size.into())])
                .map(|s| s.median)
        };
        assert_eq!(median(Implementation::Rust, 4096), Some(2.0));
        assert_eq!(median(Implementation::Python, 64), Some(3.0));
        assert_eq!(median(Implementation::Python, 4096), None);
        assert_eq!(findings.implementations().len(), 2);
        assert_eq!(Findings::new(&measurements[..2]).implementations().len(), 1);
    }
}
