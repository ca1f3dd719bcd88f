//! What the cost experiments (`switch-cost`, `spawn-cost`, `memory-per-unit`, `c10k`) share:
//! the process's memory as `/proc/self/status` tells it, a fresh worker process for each
//! measurement that must not inherit another's heap, threads started up to what the system
//! allows, table cells, and a bar chart of Rust's and CPython's medians side by side.

use std::io;
use std::thread::JoinHandle;

use triad::{ProcessPool, StartMethod, Task};

use crate::error::LabError;
use crate::plan::{Repeat, Series as Runs};
use crate::procfs::kib_field;
use crate::results::{Chart, ChartKind, Implementation, Measurement, Point, Scale, Series};
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
    let field = |name: &str| kib_field(status, name);
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

/// What a run in a fresh worker says of the units it was asked to start.
pub(crate) trait Started {
    /// How many it started (fewer than asked when the system refused more).
    fn reached(&self) -> u64;
    /// Why it started fewer than asked.
    fn stopped(&self) -> Option<&str>;
}

/// A quantity read of every run: its name (after the units' label), its unit, and how to read
/// it from a run's output.
pub(crate) type Reading<O> = (&'static str, &'static str, fn(&O) -> f64);

/// `runs` runs of `task` on `input`, each in a fresh worker ([`run_in_fresh_worker`]; `what`
/// names the job in errors), that start `count` units of `label`. For each `(quantity, unit,
/// value)` of `readings`, a measurement `label: quantity` of `value` of every run, at the
/// smallest count the runs reached; a run that started fewer than asked leaves a note.
pub(crate) fn in_fresh_workers<T, O, const N: usize>(
    label: &'static str,
    count: u64,
    runs: usize,
    (task, input, what): (T, T::Input, &'static str),
    readings: [Reading<O>; N],
) -> Runs<'static>
where
    T: Task<Output = Result<O, String>> + Copy + 'static,
    T::Input: Clone + 'static,
    O: Started + 'static,
{
    Runs::new(
        Repeat::new(0, runs),
        move || run_in_fresh_worker(task, input.clone(), what),
        move |outputs: Vec<O>, measured| {
            let reached = outputs.iter().map(O::reached).min().unwrap_or(count);
            for output in &outputs {
                if let Some(why) = output.stopped() {
                    measured.note(shortfall_note(label, count, output.reached(), why));
                }
            }
            for (quantity, unit, value) in readings {
                measured.measurement(
                    Measurement::new(
                        labelled(label, quantity),
                        Implementation::Rust,
                        unit,
                        outputs.iter().map(value).collect(),
                    )
                    .param("count", reached),
                );
            }
        },
    )
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
            match usize::try_from(bytes) {
                Ok(bytes) => builder = builder.stack_size(bytes),
                Err(_) => return (threads, Some(format!("a stack of {bytes} bytes"))),
            }
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
fn shortfall_note(label: &str, asked: u64, reached: u64, why: &str) -> String {
    format!("{label}: only {reached} of {asked} started ({why}).")
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
        let series = |implementation: Implementation| Series {
            label: implementation.label().into(),
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
