//! Task spans: when and where each task ran, and their export to the Chrome Trace Event format.
//!
//! An engine given a [`Recorder`] notes one [`Span`] per task: the task's id (its input index),
//! the process and thread that ran it, the CPU it started on (`sched_getcpu`) and its start and
//! end on the monotonic clock, in nanoseconds — one clock for every thread and process of the
//! machine, so spans from several engines line up. Without a recorder the engines skip all of
//! it: the cost of recording off is one `Option` test per task.
//!
//! [`chrome_trace_json`] writes spans as complete (`"ph": "X"`) events, which Perfetto and
//! `chrome://tracing` open: one row per thread, which shows concurrency (interleaving on one
//! thread) against parallelism (overlap on several) as a picture.

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

use serde::{Deserialize, Serialize};

/// Nanoseconds on the system's monotonic clock (`CLOCK_MONOTONIC`), shared by all processes.
pub fn now_ns() -> u64 {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    time.tv_sec as u64 * 1_000_000_000 + time.tv_nsec as u64
}

/// One task's run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// The task's name (borrowed for tasks recorded in this process, owned once deserialised).
    pub name: Cow<'static, str>,
    /// The task's id within its run: the index of its input.
    pub task: u64,
    /// The process that ran it.
    pub pid: u32,
    /// The thread that ran it (the kernel's thread id).
    pub tid: u32,
    /// The CPU the task started on, when the kernel tells.
    pub cpu: Option<u32>,
    /// Start, in nanoseconds on [`now_ns`]'s clock.
    pub start_ns: u64,
    /// End, in nanoseconds on [`now_ns`]'s clock.
    pub end_ns: u64,
}

/// Where the current thread is: process, thread and CPU.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place {
    pid: u32,
    tid: u32,
    cpu: Option<u32>,
}

impl Place {
    pub(crate) fn here() -> Self {
        let (pid, tid) = thread_ids();
        Place {
            pid,
            tid,
            cpu: current_cpu(),
        }
    }
}

/// Forks seen by this process's children: bumped in each new child by a `pthread_atfork` hook.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_fork_in_child() {
    // Only an atomic add: a fork child handler may call async-signal-safe operations alone.
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// This thread's process and thread ids, cached per thread.
///
/// Two system calls per span cost more than the rest of recording on a VM (about 300 ns against
/// 85 ns per span, measured by the `overhead` bench), so the ids are cached. A forked child
/// inherits its parent thread's cache with the parent's ids in it, so the cache is keyed by a
/// fork generation that a `pthread_atfork` child hook bumps (glibc's `fork` runs the hooks).
fn thread_ids() -> (u32, u32) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: registers a child hook that only does an atomic add, which is async-signal-safe;
        // the hook is a plain `extern "C" fn` that lives for the whole program.
        let status = unsafe { libc::pthread_atfork(None, None, Some(count_fork_in_child)) };
        debug_assert_eq!(status, 0, "pthread_atfork fails only when out of memory");
    });
    thread_local! {
        // (fork generation, pid, tid); generation u64::MAX means "not read yet".
        static IDS: Cell<(u64, u32, u32)> = const { Cell::new((u64::MAX, 0, 0)) };
    }
    let generation = FORK_GENERATION.load(Ordering::Relaxed);
    IDS.with(|ids| {
        let (cached_generation, pid, tid) = ids.get();
        if cached_generation == generation {
            return (pid, tid);
        }
        let fresh = (
            std::process::id(),
            rustix::thread::gettid().as_raw_nonzero().get() as u32,
        );
        ids.set((generation, fresh.0, fresh.1));
        fresh
    })
}

fn current_cpu() -> Option<u32> {
    // SAFETY: sched_getcpu takes no arguments and only reads the calling thread's state.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).ok()
}

/// Collects spans from any number of threads. Share it with `Arc` and give it to a
/// [`Runner`](crate::Runner) with [`Runner::record`](crate::Runner::record).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// # #[triad::task] fn square(x: u64) -> u64 { x * x }
/// let recorder = Arc::new(triad::Recorder::new());
/// let runner = triad::Runner::new(triad::Mode::Threads(2)).unwrap().record(recorder.clone());
/// runner.map(square, 0..10);
/// assert_eq!(recorder.spans().len(), 10);
/// let json = triad::chrome_trace_json(&recorder.spans());
/// assert!(json.starts_with('{'));
/// ```
#[derive(Debug, Default)]
pub struct Recorder {
    // A plain mutex: a push holds it for a few nanoseconds and never across an await.
    spans: Mutex<Vec<Span>>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Recorder::default()
    }

    /// Adds one span.
    pub fn push(&self, span: Span) {
        self.spans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(span);
    }

    /// A copy of the spans so far, ordered by start.
    pub fn spans(&self) -> Vec<Span> {
        let mut spans = self.spans.lock().unwrap_or_else(|e| e.into_inner()).clone();
        spans.sort_by_key(|span| (span.start_ns, span.task));
        spans
    }

    /// Removes and returns the spans so far, ordered by start.
    pub fn take(&self) -> Vec<Span> {
        let mut spans = std::mem::take(&mut *self.spans.lock().unwrap_or_else(|e| e.into_inner()));
        spans.sort_by_key(|span| (span.start_ns, span.task));
        spans
    }

    /// Records a span that started at `start_ns` at `place` and ends now.
    pub(crate) fn finish(
        &self,
        name: impl Into<Cow<'static, str>>,
        task: u64,
        place: Place,
        start_ns: u64,
    ) {
        self.push(Span {
            name: name.into(),
            task,
            pid: place.pid,
            tid: place.tid,
            cpu: place.cpu,
            start_ns,
            end_ns: now_ns(),
        });
    }
}

#[derive(Serialize)]
struct ChromeTrace<'a> {
    #[serde(rename = "traceEvents")]
    trace_events: Vec<ChromeEvent<'a>>,
    #[serde(rename = "displayTimeUnit")]
    display_time_unit: &'static str,
}

#[derive(Serialize)]
struct ChromeEvent<'a> {
    name: &'a str,
    cat: &'static str,
    ph: &'static str,
    /// Microseconds, as the format requires; fractional to keep nanosecond detail.
    ts: f64,
    dur: f64,
    pid: u32,
    tid: u32,
    args: ChromeArgs,
}

#[derive(Serialize)]
struct ChromeArgs {
    task: u64,
    cpu: Option<u32>,
}

/// The spans as a Chrome Trace Event JSON document (one complete event per span), with times
/// relative to the earliest span.
pub fn chrome_trace_json(spans: &[Span]) -> String {
    let origin = spans.iter().map(|span| span.start_ns).min().unwrap_or(0);
    let trace = ChromeTrace {
        trace_events: spans
            .iter()
            .map(|span| ChromeEvent {
                name: &span.name,
                cat: "task",
                ph: "X",
                ts: (span.start_ns - origin) as f64 / 1_000.0,
                dur: span.end_ns.saturating_sub(span.start_ns) as f64 / 1_000.0,
                pid: span.pid,
                tid: span.tid,
                args: ChromeArgs {
                    task: span.task,
                    cpu: span.cpu,
                },
            })
            .collect(),
        display_time_unit: "ns",
    };
    serde_json::to_string(&trace).expect("spans always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_monotonic_and_in_nanoseconds() {
        let a = now_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = now_ns();
        assert!(b - a >= 2_000_000, "{a} -> {b}");
        assert!(b - a < 2_000_000_000);
    }

    #[test]
    fn place_names_this_thread() {
        let here = Place::here();
        assert_eq!(here.pid, std::process::id());
        let other = std::thread::spawn(Place::here).join().unwrap();
        assert_ne!(here.tid, other.tid);
        assert!(here.cpu.is_some(), "Linux reports the current CPU");
    }

    #[test]
    fn a_forked_child_sees_its_own_ids_not_its_parents_cache() {
        let parent = Place::here();
        // SAFETY: the child calls only async-signal-safe operations (getpid, gettid, a
        // thread-local `Cell` with const initialisation, atomic loads) and ends with `_exit`.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork failed");
        if child == 0 {
            let here = Place::here();
            // SAFETY: getpid has no preconditions.
            let pid = unsafe { libc::getpid() } as u32;
            // In a fresh child the one thread's id is the process id.
            let right = here.pid == pid && here.tid == pid && here.pid != parent.pid;
            // SAFETY: `_exit` ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(if right { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
        let waited = unsafe { libc::waitpid(child, &mut status, 0) };
        assert_eq!(waited, child);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child saw stale ids"
        );
        assert_eq!(
            Place::here().tid,
            parent.tid,
            "the parent's cache is untouched"
        );
    }

    #[test]
    fn chrome_export_has_one_complete_event_per_span() {
        let recorder = Recorder::new();
        for task in 0..3 {
            recorder.finish("t", task, Place::here(), now_ns());
        }
        let json: serde_json::Value =
            serde_json::from_str(&chrome_trace_json(&recorder.spans())).unwrap();
        let events = json["traceEvents"].as_array().unwrap();
        assert_eq!(events.len(), 3);
        for event in events {
            assert_eq!(event["ph"], "X");
            assert!(event["ts"].as_f64().unwrap() >= 0.0);
            assert!(event["dur"].as_f64().unwrap() >= 0.0);
        }
    }
}
