//! What the cost experiments (`switch-cost`, `spawn-cost`, `memory-per-unit`, `c10k`) share:
//! the process's memory as `/proc/self/status` tells it, a fresh worker process for each
//! measurement that must not inherit another's heap, claims judged against every
//! implementation measured (all agree: confirmed, none: refuted, some: depends), and a bar
//! chart of Rust's and CPython's medians side by side.

use std::io;
use std::thread::JoinHandle;

use triad::{ProcessPool, StartMethod, Task};

use super::findings;
use crate::error::LabError;
use crate::results::{
    Chart, ChartKind, Implementation, Measurement, Outcome, Point, Scale, Series, Verdict,
};
use crate::stats::format_with_spread;

/// This process's memory, in bytes, from `/proc/self/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Memory {
    /// `VmRSS`: pages resident in RAM now.
    pub(crate) resident: u64,
    /// `VmSize`: the address space reserved (mapped), resident or not.
    pub(crate) reserved: u64,
    /// `VmHWM`: the most ever resident (since start, or since [`reset_peak`]).
    pub(crate) peak_resident: u64,
}

/// Reads this process's memory.
pub(crate) fn read_memory() -> io::Result<Memory> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    parse_status(&status)
        .ok_or_else(|| io::Error::other("VmRSS, VmSize or VmHWM missing from /proc/self/status"))
}

/// Makes `VmHWM` equal to the current `VmRSS`, so that a later read gives the peak of what
/// follows (Linux's `clear_refs` value 5).
pub(crate) fn reset_peak() -> io::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")
}

fn parse_status(status: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find_map(|line| line.strip_prefix(name))?;
        let kib: u64 = line
            .trim_start_matches(':')
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    Some(Memory {
        resident: field("VmRSS")?,
        reserved: field("VmSize")?,
        peak_resident: field("VmHWM")?,
    })
}

/// Runs `task` on `input` in a new worker process (forked from triad's fork server, used for
/// nothing else, so its memory readings start from a clean heap) and unwraps the task's own
/// result; `what` names the job in errors.
pub(crate) fn run_in_fresh_worker<T, O>(task: T, input: T::Input, what: &str) -> Result<O, LabError>
where
    T: Task<Output = Result<O, String>>,
{
    let pool = ProcessPool::builder()
        .workers(1)
        .max_tasks_per_child(1)
        .start_method(StartMethod::ForkServer)
        .build()
        .map_err(|error| LabError::engine("starting a worker process", error))?;
    let outcome = pool
        .submit(task, input)
        .map_err(|error| LabError::engine(what, error))?
        .wait();
    pool.join();
    outcome
        .map_err(|error| LabError::engine(what, error))?
        .map_err(|error| LabError::engine(what, error))
}

/// The name of a measurement of `what` for `unit`, such as `tokio task: resident per unit`.
pub(crate) fn labelled(unit: &str, what: &str) -> String {
    format!("{unit}: {what}")
}

/// A measurement's `count` parameter (0 if it has none).
pub(crate) fn count_of(measurement: &Measurement) -> u64 {
    measurement
        .params
        .get("count")
        .and_then(|count| count.as_u64())
        .unwrap_or(0)
}

/// Starts up to `count` threads, each running what `make` returns (with `stack` bytes of stack,
/// or Rust's default), stopping at the first the system refuses; returns the threads started
/// and, if it stopped short, why.
pub(crate) fn spawn_threads<F>(
    count: u64,
    stack: Option<u64>,
    mut make: impl FnMut() -> F,
) -> (Vec<JoinHandle<()>>, Option<String>)
where
    F: FnOnce() + Send + 'static,
{
    let mut threads = Vec::new();
    for _ in 0..count {
        let mut builder = std::thread::Builder::new();
        if let Some(bytes) = stack {
            builder = builder.stack_size(bytes as usize);
        }
        match builder.spawn(make()) {
            Ok(thread) => threads.push(thread),
            Err(error) => {
                let why = format!("thread {}: {error}", threads.len() + 1);
                return (threads, Some(why));
            }
        }
    }
    (threads, None)
}

/// The note for a run that started `reached` of the `asked` units of `label`, and why.
pub(crate) fn shortfall_note(label: &str, asked: u64, reached: u64, why: &str) -> String {
    format!("{label}: only {reached} of {asked} started ({why}).")
}

/// A claim checked against each implementation (or variant) measured: confirmed when every
/// check holds, refuted when none does, depends when some do.
#[derive(Debug, Default)]
pub(crate) struct Checks {
    items: Vec<(String, bool)>,
}

impl Checks {
    /// Adds one check: what was measured (with its value) and whether the claim holds for it.
    pub(crate) fn check(&mut self, measured: impl Into<String>, holds: bool) {
        self.items.push((measured.into(), holds));
    }

    /// Confirmed, refuted or depends, as the checks say (depends when there are none).
    pub(crate) fn outcome(&self) -> Outcome {
        Outcome::from_checks(self.items.iter().map(|(_, holds)| *holds))
    }

    /// Every check, with whether the claim holds for it.
    pub(crate) fn evidence(&self) -> String {
        if self.items.is_empty() {
            return "nothing was measured".to_owned();
        }
        self.items
            .iter()
            .map(|(measured, holds)| {
                format!(
                    "{measured} ({})",
                    if *holds { "agrees" } else { "disagrees" }
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The verdict on `claim` (the seed's words: `quote`).
    pub(crate) fn verdict(&self, claim: &str, quote: &str) -> Verdict {
        Verdict {
            claim: claim.to_owned(),
            quote: quote.to_owned(),
            outcome: self.outcome(),
            evidence: self.evidence(),
        }
    }
}

/// A table cell: the median with its spread, or a dash when nothing was measured.
pub(crate) fn cell(measurement: Option<&Measurement>, format: impl Fn(f64) -> String) -> String {
    measurement.map_or_else(
        || "—".to_owned(),
        |m| format_with_spread(&m.summary, format),
    )
}

/// A table cell with `numerator ÷ denominator` of two medians, or a dash.
pub(crate) fn ratio_cell(
    numerator: Option<&Measurement>,
    denominator: Option<&Measurement>,
) -> String {
    match (numerator, denominator) {
        (Some(n), Some(d)) if d.median() > 0.0 => format!("{:.1}×", n.median() / d.median()),
        _ => "—".to_owned(),
    }
}

/// A bar chart, a category at a time, of Rust's and CPython's medians (with their quartiles)
/// side by side, on a log scale.
#[derive(Debug)]
pub(crate) struct SideBySide {
    categories: Vec<String>,
    rust: Series,
    python: Series,
}

impl SideBySide {
    pub(crate) fn new() -> Self {
        let series = |implementation| Series {
            label: findings::name(implementation).into(),
            points: Vec::new(),
        };
        SideBySide {
            categories: Vec::new(),
            rust: series(Implementation::Rust),
            python: series(Implementation::Python),
        }
    }

    /// Adds `category`, with a bar for each of `measured` in its language's series.
    pub(crate) fn add<'a>(
        &mut self,
        category: String,
        measured: impl IntoIterator<Item = &'a Measurement>,
    ) {
        let x = self.categories.len() as f64;
        self.categories.push(category);
        for m in measured {
            let series = match m.implementation {
                Implementation::Rust => &mut self.rust,
                Implementation::Python => &mut self.python,
            };
            series.points.push(Point::from_summary(x, &m.summary));
        }
    }

    /// The chart, titled `title`, with its axes labelled `x_label` and `y_label`.
    pub(crate) fn chart(self, title: impl Into<String>, x_label: &str, y_label: &str) -> Chart {
        Chart {
            title: title.into(),
            kind: ChartKind::Bar,
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Log,
            categories: self.categories,
            series: vec![self.rust, self.python],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_bytes() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmSize:\t  8000 kB\nVmHWM:\t   300 kB\n\
                      VmRSS:\t   200 kB\nThreads:\t1\n";
        assert_eq!(
            parse_status(status),
            Some(Memory {
                resident: 200 * 1024,
                reserved: 8000 * 1024,
                peak_resident: 300 * 1024,
            })
        );
        assert_eq!(parse_status("VmRSS:\t1 kB\n"), None);
    }

    #[test]
    fn this_process_has_memory() {
        let memory = read_memory().unwrap();
        assert!(memory.resident > 0 && memory.reserved >= memory.resident);
        assert!(memory.peak_resident >= memory.resident);
    }

    #[test]
    fn checks_give_the_outcome_of_all_none_or_some() {
        let mut checks = Checks::default();
        assert_eq!(checks.outcome(), Outcome::Depends);
        checks.check("a 1 µs", true);
        assert_eq!(checks.outcome(), Outcome::Confirmed);
        checks.check("b 9 µs", false);
        assert_eq!(checks.outcome(), Outcome::Depends);
        assert_eq!(checks.evidence(), "a 1 µs (agrees); b 9 µs (disagrees)");
        let mut none = Checks::default();
        none.check("c", false);
        assert_eq!(none.verdict("claim", "quote").outcome, Outcome::Refuted);
    }

    #[test]
    fn side_by_side_bars_stand_at_their_category() {
        let rust = Measurement::new("a", Implementation::Rust, "s", vec![1.0, 2.0, 3.0]);
        let python = Measurement::new("a", Implementation::Python, "s", vec![4.0]);
        let mut bars = SideBySide::new();
        bars.add("both".to_owned(), [&rust, &python]);
        bars.add("CPython only".to_owned(), Some(&python));
        bars.add("neither".to_owned(), None);
        let chart = bars.chart("title", "x", "y");
        assert_eq!(chart.categories, ["both", "CPython only", "neither"]);
        assert_eq!((chart.kind, chart.y_scale), (ChartKind::Bar, Scale::Log));
        let [rust_bars, python_bars] = &chart.series[..] else {
            panic!("two series: {:?}", chart.series)
        };
        assert_eq!(
            (rust_bars.label.as_str(), python_bars.label.as_str()),
            ("Rust", "CPython")
        );
        let xs = |series: &Series| series.points.iter().map(|p| p.x).collect::<Vec<_>>();
        assert_eq!(xs(rust_bars), [0.0]);
        assert_eq!(xs(python_bars), [0.0, 1.0]);
        assert_eq!(rust_bars.points[0].y, 2.0);
    }
}
