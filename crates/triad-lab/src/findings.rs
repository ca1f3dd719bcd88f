//! The one way to read measurements back: by implementation, name and parameters.
//!
//! An experiment's `judge` reads what its `measure` recorded only through [`Findings`]; the
//! tests read reports through it too, and so can anyone holding a `results.json`. Besides the
//! measurements it carries the scale of the run and the machine it ran on, the two other
//! things a verdict may depend on.

use serde_json::Value;

use crate::experiment::Scale;
use crate::machine::Machine;
use crate::results::{ExperimentReport, Implementation, LabReport, Measurement};
use crate::stats::Summary;

/// A fixed parameter of a measurement, as a lookup names it: `("size", 4096.into())`.
pub type Param<'k> = (&'k str, Value);

/// Measurements, with the scale and machine they were taken at, to be looked up.
///
/// ```
/// use triad_lab::results::{Implementation, Measurement};
/// use triad_lab::{Findings, Machine, Scale};
///
/// let measurements = [
///     Measurement::new("rtt", Implementation::Rust, "s", vec![1.0]).param("size", 64),
///     Measurement::new("rtt", Implementation::Rust, "s", vec![2.0]).param("size", 4096),
/// ];
/// let machine = Machine::default();
/// let found = Findings::new(&measurements, Scale::Toy, &machine);
/// let big = found.get(Implementation::Rust, "rtt", &[("size", 4096.into())]);
/// assert_eq!(big.map(|m| m.median()), Some(2.0));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Findings<'a> {
    measurements: &'a [Measurement],
    scale: Scale,
    machine: &'a Machine,
}

impl<'a> Findings<'a> {
    /// `measurements`, taken at `scale` on `machine`.
    pub fn new(measurements: &'a [Measurement], scale: Scale, machine: &'a Machine) -> Self {
        Self {
            measurements,
            scale,
            machine,
        }
    }

    /// The measurements of `experiment`, one of `lab`'s reports (an unknown scale reads as
    /// quick).
    pub fn of(lab: &'a LabReport, experiment: &'a ExperimentReport) -> Self {
        let scale = Scale::from_name(&lab.scale).unwrap_or_default();
        Self::new(&experiment.measurements, scale, &lab.machine)
    }

    /// The scale of the run.
    pub fn scale(&self) -> Scale {
        self.scale
    }

    /// The machine the run was on.
    pub fn machine(&self) -> &'a Machine {
        self.machine
    }

    /// The measurement `name` of `implementation` whose parameters include every pair of
    /// `params` (the first, if several do).
    pub fn get(
        &self,
        implementation: Implementation,
        name: &str,
        params: &[Param<'_>],
    ) -> Option<&'a Measurement> {
        self.every(implementation, name).find(|m| {
            params
                .iter()
                .all(|(key, value)| m.params.get(*key) == Some(value))
        })
    }

    /// The summary of [`get`](Self::get)'s measurement.
    pub fn summary(
        &self,
        implementation: Implementation,
        name: &str,
        params: &[Param<'_>],
    ) -> Option<&'a Summary> {
        self.get(implementation, name, params).map(|m| &m.summary)
    }

    /// Every measurement `name` of `implementation`, whatever its parameters, in the order
    /// taken.
    pub fn every(
        &self,
        implementation: Implementation,
        name: &str,
    ) -> impl Iterator<Item = &'a Measurement> {
        self.measurements
            .iter()
            .filter(move |m| m.implementation == implementation && m.name == name)
    }

    /// Whether anything of `implementation` was measured.
    pub fn ran(&self, implementation: Implementation) -> bool {
        self.measurements
            .iter()
            .any(|m| m.implementation == implementation)
    }

    /// Rust, and CPython when any of its measurements is there.
    pub fn implementations(&self) -> Vec<Implementation> {
        [Implementation::Rust, Implementation::Python]
            .into_iter()
            .filter(|i| *i == Implementation::Rust || self.ran(*i))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_match_implementation_name_and_every_param_given() {
        let measurements = [
            Measurement::new("rtt", Implementation::Rust, "s", vec![1.0]).param("size", 64),
            Measurement::new("rtt", Implementation::Rust, "s", vec![2.0])
                .param("size", 4096)
                .param("placement", "one-cpu"),
            Measurement::new("rtt", Implementation::Python, "s", vec![3.0]).param("size", 64),
        ];
        let machine = Machine::default();
        let found = Findings::new(&measurements, Scale::Toy, &machine);
        let median = |implementation, params: &[Param<'_>]| {
            found
                .summary(implementation, "rtt", params)
                .map(|s| s.median)
        };
        assert_eq!(
            median(Implementation::Rust, &[("size", 4096.into())]),
            Some(2.0)
        );
        assert_eq!(
            median(
                Implementation::Rust,
                &[("size", 4096.into()), ("placement", "one-cpu".into())]
            ),
            Some(2.0)
        );
        assert_eq!(median(Implementation::Rust, &[]), Some(1.0), "the first");
        assert_eq!(
            median(Implementation::Python, &[("size", 64.into())]),
            Some(3.0)
        );
        assert_eq!(
            median(Implementation::Python, &[("size", 4096.into())]),
            None
        );
        assert_eq!(found.every(Implementation::Rust, "rtt").count(), 2);
        assert_eq!(
            found
                .get(Implementation::Rust, "other", &[])
                .map(|m| m.median()),
            None
        );
        assert_eq!(
            found.implementations(),
            [Implementation::Rust, Implementation::Python]
        );
        let rust_only = Findings::new(&measurements[..2], Scale::Toy, &machine);
        assert_eq!(rust_only.implementations(), [Implementation::Rust]);
        assert!(!rust_only.ran(Implementation::Python));
    }
}
