//! The seed's §2 diagram (图示对比), measured instead of drawn: concurrency is tasks taking
//! turns on one CPU, parallelism is tasks running at the same time on several.
//!
//! Two CPU-bound tasks each need a fixed amount of CPU time, in three settings: two threads
//! pinned to one CPU with `sched_setaffinity` (the kernel time-slices them), two threads free on
//! every core (they run side by side), and two coroutines on one tokio current-thread loop that
//! yield after every slice (they take turns by choice). A task spins on a little arithmetic and
//! reads the monotonic clock between steps; a gap of more than [`GAP_NS`] between two reads
//! means its thread was off the CPU, so every span is a stretch the task really ran, with the
//! CPU it ran on. From the spans: how long both tasks ran at once, how often the CPU passed from
//! one task to the other, and how long the kernel let a pinned thread run before switching.

use std::sync::Barrier;
use std::time::Duration;

use triad::workloads::sum_squares;
use triad::{Span, now_ns};

use crate::error::LabError;
use crate::experiments::affinity::{PinnedThread, first_allowed_cpu};
use crate::findings::Findings;
use crate::names::names;
use crate::plan::Measured;
use crate::results::{Implementation, Measurement};
use crate::stats::Summary;
use crate::timeline::{LaneBy, from_spans};

/// A pause between two clock reads longer than this means the thread was descheduled.
const GAP_NS: u64 = 50_000;
/// How many tasks each timeline shows.
const TASKS: u64 = 2;
/// The arithmetic between two clock reads (a fraction of a microsecond).
const STEP: u64 = 64;

names! {
    /// The three settings of the diagram, as their measurements name them.
    pub(super) enum Setting {
        /// Two threads pinned to one CPU.
        Pinned => "2 threads pinned to one CPU",
        /// Two threads free on every core.
        Free => "2 threads free on every core",
        /// Two coroutines on one thread.
        Coroutines => "2 coroutines on one thread",
    }
}

names! {
    /// What each run of a setting gives: the rest of the measurement names.
    enum Reading {
        /// How long both tasks ran at once.
        BothRunning => "both running",
        /// From the first start to the last end.
        Length => "timeline length",
        /// How many times the CPU passed from one task to the other.
        Alternations => "alternations",
        /// Every stretch a pinned task ran before being switched out (its last left out).
        RunBeforeSwitch => "run before a switch",
    }
}

impl Setting {
    fn measurement(self, reading: Reading) -> String {
        format!("{}: {}", self.name(), reading.name())
    }
}

/// Records every setting `repetitions` times, each task needing `work` of CPU time, into
/// `measured`: the measurements of every run, and the last run's timeline; coroutines yield
/// after every `slice`. A setting the machine refuses is left out, with a note.
pub(super) fn record(
    work: Duration,
    slice: Duration,
    repetitions: usize,
    cores: usize,
    measured: &mut Measured,
) -> Result<(), LabError> {
    let nanos = |duration: Duration| u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    let (work_ns, slice_ns) = (nanos(work), nanos(slice));
    let Ok(cpu) = first_allowed_cpu() else {
        return Err(LabError::engine(
            "gantt",
            "sched_getaffinity returned no CPU",
        ));
    };
    for &setting in Setting::ALL {
        let mut runs = Vec::new();
        for _ in 0..repetitions.max(1) {
            let spans = match setting {
                Setting::Pinned => threads(Some(cpu), work_ns),
                Setting::Free => threads(None, work_ns),
                Setting::Coroutines => coroutines(work_ns, slice_ns),
            };
            match spans {
                Ok(spans) => runs.push(spans),
                Err(error) => {
                    measured.note(format!(
                        "The timeline of {} was skipped: {error}.",
                        setting.name()
                    ));
                    break;
                }
            }
        }
        let Some(last) = runs.last() else {
            continue;
        };
        let title = match setting {
            Setting::Pinned => {
                format!("Concurrency: 2 threads pinned to CPU {cpu}, time-sliced by the kernel")
            }
            Setting::Free => format!("Parallelism: 2 threads free on {cores} core(s)"),
            Setting::Coroutines => format!(
                "Concurrency: 2 coroutines on one thread, yielding every {} ms",
                slice.as_millis()
            ),
        };
        measured.timeline(from_spans(title, last, LaneBy::Task));
        for measurement in summarise(setting, &runs) {
            measured.measurement(measurement);
        }
    }
    Ok(())
}

fn summarise(setting: Setting, runs: &[Vec<Span>]) -> Vec<Measurement> {
    let mut both_s = Vec::new();
    let mut length_s = Vec::new();
    let mut alternations = Vec::new();
    let mut run_lengths_s = Vec::new();
    for spans in runs {
        let start = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
        let end = spans.iter().map(|s| s.end_ns).max().unwrap_or(0);
        both_s.push(time_running_together(spans) as f64 / 1e9);
        length_s.push(end.saturating_sub(start) as f64 / 1e9);
        alternations.push(alternation_count(spans) as f64);
        run_lengths_s.extend(
            switched_out_stretches(spans)
                .into_iter()
                .map(|ns| ns as f64 / 1e9),
        );
    }
    let rust = |reading: Reading, unit: &str, samples| {
        Measurement::new(
            setting.measurement(reading),
            Implementation::Rust,
            unit,
            samples,
        )
    };
    let mut measurements = vec![
        rust(Reading::BothRunning, "s", both_s),
        rust(Reading::Length, "s", length_s),
        rust(Reading::Alternations, "count", alternations),
    ];
    if setting == Setting::Pinned {
        measurements.push(rust(Reading::RunBeforeSwitch, "s", run_lengths_s));
    }
    measurements
}

/// What the timelines of one setting showed, read back from its measurements.
#[derive(Debug)]
pub(super) struct Shown {
    /// The median over runs of the share of the timeline during which both tasks ran.
    pub(super) overlap: f64,
    /// The median over runs of how often the CPU passed from one task to the other.
    pub(super) alternations: f64,
    /// How long a pinned thread ran before a switch (`None` for the other settings).
    pub(super) run_lengths: Option<Summary>,
}

/// What `setting` showed, if it ran.
pub(super) fn shown(found: &Findings<'_>, setting: Setting) -> Option<Shown> {
    let reading = |reading| found.get(Implementation::Rust, &setting.measurement(reading), &[]);
    let both = reading(Reading::BothRunning)?;
    let length = reading(Reading::Length)?;
    let shares: Vec<f64> = both
        .samples
        .iter()
        .zip(&length.samples)
        .map(|(both, length)| if *length > 0.0 { both / length } else { 0.0 })
        .collect();
    Some(Shown {
        overlap: Summary::of(&shares).median,
        alternations: reading(Reading::Alternations)?.median(),
        run_lengths: reading(Reading::RunBeforeSwitch)
            .filter(|m| !m.samples.is_empty())
            .map(|m| m.summary),
    })
}

/// Two threads, pinned to `cpu` if given, each running `work_ns` of CPU time from a common start.
fn threads(pin: Option<usize>, work_ns: u64) -> Result<Vec<Span>, LabError> {
    let start = Barrier::new(TASKS as usize);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..TASKS)
            .map(|task| {
                let start = &start;
                scope.spawn(move || {
                    let pinned = pin
                        .map(PinnedThread::to)
                        .transpose()
                        .map_err(|e| LabError::os("pinning a timeline thread to one CPU", e));
                    // Both threads pass the barrier, pinned or not, so that neither waits for
                    // ever on a sibling that failed.
                    start.wait();
                    pinned.map(|_pin| run_on_cpu(task, work_ns))
                })
            })
            .collect();
        let mut spans = Vec::new();
        for handle in handles {
            let task_spans = handle
                .join()
                .map_err(|_| LabError::engine("gantt", "a timeline thread panicked"))??;
            spans.extend(task_spans);
        }
        Ok(spans)
    })
}

/// Two coroutines on a current-thread event loop, each running `work_ns` of CPU time in slices
/// of `slice_ns` and yielding to the loop after each.
fn coroutines(work_ns: u64, slice_ns: u64) -> Result<Vec<Span>, LabError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| LabError::os("starting a tokio event loop", e))?;
    runtime.block_on(async {
        let handles: Vec<_> = (0..TASKS)
            .map(|task| {
                tokio::spawn(async move {
                    let mut spans = Vec::new();
                    let mut ran = 0;
                    while ran < work_ns {
                        let slice = run_on_cpu(task, slice_ns.min(work_ns - ran));
                        ran += slice.iter().map(|s| s.end_ns - s.start_ns).sum::<u64>();
                        spans.extend(slice);
                        tokio::task::yield_now().await;
                    }
                    spans
                })
            })
            .collect();
        let mut spans = Vec::new();
        for handle in handles {
            spans.extend(
                handle
                    .await
                    .map_err(|e| LabError::engine("gantt coroutine", e))?,
            );
        }
        Ok(spans)
    })
}

/// Spins until this thread has been on a CPU for `work_ns`, returning one span per stretch it
/// ran without being switched out.
fn run_on_cpu(task: u64, work_ns: u64) -> Vec<Span> {
    let pid = std::process::id();
    let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
    let span = |cpu: usize, start_ns: u64, end_ns: u64| Span {
        name: "work".into(),
        task,
        pid,
        tid,
        cpu: u32::try_from(cpu).ok(),
        start_ns,
        end_ns,
    };
    let mut spans = Vec::new();
    let mut ran = 0;
    let mut stretch_start = now_ns();
    let mut cpu = rustix::thread::sched_getcpu();
    let mut last = stretch_start;
    loop {
        std::hint::black_box(sum_squares::call(std::hint::black_box(STEP)));
        let now = now_ns();
        if now - last > GAP_NS {
            spans.push(span(cpu, stretch_start, last));
            ran += last - stretch_start;
            stretch_start = now;
            cpu = rustix::thread::sched_getcpu();
        }
        last = now;
        if ran + (last - stretch_start) >= work_ns {
            spans.push(span(cpu, stretch_start, last));
            return spans;
        }
    }
}

/// Nanoseconds during which two or more of `spans` ran at once (a task's own spans never
/// overlap, so that is time two tasks ran together).
pub(super) fn time_running_together(spans: &[Span]) -> u64 {
    let mut edges: Vec<(u64, i32)> = spans
        .iter()
        .flat_map(|s| [(s.start_ns, 1), (s.end_ns.max(s.start_ns), -1)])
        .collect();
    // Ends before starts at the same instant: touching spans do not overlap.
    edges.sort_unstable();
    let mut running = 0;
    let mut since = 0;
    let mut together = 0;
    for (at, change) in edges {
        if running >= 2 {
            together += at - since;
        }
        running += change;
        since = at;
    }
    together
}

/// How many times, in order of start, a span belongs to another task than the one before it.
pub(super) fn alternation_count(spans: &[Span]) -> usize {
    let mut ordered: Vec<&Span> = spans.iter().collect();
    ordered.sort_by_key(|s| s.start_ns);
    ordered
        .windows(2)
        .filter(|w| w[0].task != w[1].task)
        .count()
}

/// The lengths of the stretches after which a task was switched out: all but each task's last.
fn switched_out_stretches(spans: &[Span]) -> Vec<u64> {
    let mut lengths = Vec::new();
    for task in 0..TASKS {
        let mut own: Vec<&Span> = spans.iter().filter(|s| s.task == task).collect();
        own.sort_by_key(|s| s.start_ns);
        own.pop();
        lengths.extend(own.iter().map(|s| s.end_ns - s.start_ns));
    }
    lengths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(task: u64, start_ns: u64, end_ns: u64) -> Span {
        Span {
            name: "work".into(),
            task,
            pid: 1,
            tid: 1,
            cpu: Some(0),
            start_ns,
            end_ns,
        }
    }

    #[test]
    fn overlap_counts_only_time_two_tasks_share() {
        let interleaved = [span(0, 0, 10), span(1, 10, 20), span(0, 20, 30)];
        assert_eq!(time_running_together(&interleaved), 0);
        assert_eq!(alternation_count(&interleaved), 2);
        let side_by_side = [span(0, 0, 30), span(1, 5, 25), span(1, 28, 40)];
        assert_eq!(time_running_together(&side_by_side), 20 + 2);
        assert_eq!(alternation_count(&side_by_side), 1);
        assert_eq!(time_running_together(&[]), 0);
    }

    #[test]
    fn the_last_stretch_of_each_task_is_not_a_switch() {
        let spans = [span(0, 0, 3), span(1, 3, 7), span(0, 7, 8), span(1, 8, 9)];
        let mut lengths = switched_out_stretches(&spans);
        lengths.sort_unstable();
        assert_eq!(lengths, vec![3, 4]);
    }

    #[test]
    fn a_task_runs_for_its_work_and_no_stretch_hides_a_gap() {
        let spans = run_on_cpu(7, 2_000_000);
        let ran: u64 = spans.iter().map(|s| s.end_ns - s.start_ns).sum();
        assert!(ran >= 2_000_000, "{ran}");
        assert!(spans.iter().all(|s| s.task == 7 && s.cpu.is_some()));
        assert!(
            spans
                .windows(2)
                .all(|w| w[1].start_ns - w[0].end_ns > GAP_NS)
        );
    }

    #[test]
    fn coroutines_never_run_together() {
        let spans = coroutines(3_000_000, 1_000_000).unwrap();
        assert_eq!(time_running_together(&spans), 0);
        assert!(alternation_count(&spans) >= 2, "{spans:?}");
    }
}
