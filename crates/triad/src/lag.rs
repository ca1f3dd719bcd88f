//! An event-loop lag monitor: notices when something blocks the loop, the seed's pitfall 1
//! (`time.sleep` inside a coroutine).
//!
//! A [`LagMonitor`] runs a heartbeat task on the runtime it watches. The heartbeat sleeps
//! [`LagOptions::interval`] in a loop and, each time it wakes, measures how late it woke: the
//! *lateness* is `woke_at - deadline`. A healthy loop wakes it within a millisecond or two
//! (tokio's timer has 1 ms granularity); a task that runs without yielding — a blocking
//! `std::thread::sleep`, a blocking read, a long CPU loop — keeps the loop from running the
//! heartbeat, and the lateness grows by however long it blocked. Lateness over
//! [`LagOptions::threshold`] (100 ms by default, asyncio debug mode's `slow_callback_duration`)
//! is a *stall*: it is counted in the [`LagReport`] and logged with `tracing::warn!`, as asyncio
//! debug mode logs "Executing <Task …> took 0.069 seconds".
//!
//! What it can see depends on the runtime. On a current-thread runtime (the asyncio model: one
//! loop, one thread) any blocking task stalls the heartbeat. On a multi-thread runtime other
//! workers keep the heartbeat running while one worker is blocked, so it reports only when the
//! whole runtime is starved (or the heartbeat was queued behind the blocked task); use
//! tokio-metrics' slow-poll counts for a per-task view there.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often the heartbeat beats, and how late a beat must be to count as a stall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagOptions {
    /// The heartbeat's sleep between beats (default 10 ms). Shorter notices short stalls sooner
    /// at the cost of more wake-ups; stalls shorter than the threshold are never reported anyway.
    pub interval: Duration,
    /// Lateness above this is a stall (default 100 ms, asyncio's `slow_callback_duration`).
    pub threshold: Duration,
}

impl Default for LagOptions {
    fn default() -> Self {
        LagOptions {
            interval: Duration::from_millis(10),
            threshold: Duration::from_millis(100),
        }
    }
}

/// What a [`LagMonitor`] has seen so far.
///
/// Every beat has a *lateness*: how long after its deadline the heartbeat actually woke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagReport {
    /// Beats completed (the heartbeat woke and measured its lateness).
    pub beats: u64,
    /// The largest lateness of any beat, stall or not (zero before the first beat).
    pub longest: Duration,
    /// The sum of the whole lateness of every stall (beats later than the threshold); lateness
    /// of beats within the threshold is not included, and neither is the threshold subtracted.
    /// It approximates the total time the loop was blocked by stalls.
    pub total_stalled: Duration,
    /// Beats whose lateness was above the threshold.
    pub stalls: u64,
    /// The threshold the monitor used.
    pub threshold: Duration,
    /// The interval the monitor used.
    pub interval: Duration,
}

/// Watches a tokio runtime for a blocked event loop. Stops when [`stop`](Self::stop)ped or
/// dropped.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use triad::{LagMonitor, LagOptions};
///
/// let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
/// let monitor = LagMonitor::start(rt.handle(), LagOptions::default());
/// rt.block_on(async {
///     // The pitfall: a blocking sleep inside async code holds up the whole loop.
///     tokio::spawn(async { std::thread::sleep(Duration::from_millis(150)) }).await.unwrap();
///     tokio::time::sleep(Duration::from_millis(20)).await;
/// });
/// let report = monitor.stop();
/// assert_eq!(report.stalls, 1);
/// assert!(report.longest >= Duration::from_millis(100));
/// ```
#[derive(Debug)]
pub struct LagMonitor {
    /// Shared with the heartbeat. A mutex rather than atomics so that [`report`](Self::report)
    /// is one consistent snapshot (its fields always describe the same set of beats); the lock is
    /// held for a few field updates once per beat and never across an `.await`, so it costs the
    /// loop nothing measurable against the millisecond lateness it measures.
    report: Arc<Mutex<LagReport>>,
    heartbeat: JoinHandle<()>,
}

impl LagMonitor {
    /// Starts a heartbeat on the runtime behind `handle`.
    ///
    /// The first beat's deadline is one interval from now. On a current-thread runtime the loop
    /// only runs inside `block_on`, so time spent outside `block_on` after `start` counts as
    /// lateness: start the monitor just before entering the runtime, or from inside it with
    /// [`spawn`](Self::spawn).
    pub fn start(handle: &Handle, options: LagOptions) -> LagMonitor {
        let report = Arc::new(Mutex::new(LagReport {
            beats: 0,
            longest: Duration::ZERO,
            total_stalled: Duration::ZERO,
            stalls: 0,
            threshold: options.threshold,
            interval: options.interval,
        }));
        let first_deadline = Instant::now() + options.interval;
        let heartbeat = handle.spawn(heartbeat(Arc::clone(&report), options, first_deadline));
        LagMonitor { report, heartbeat }
    }

    /// Starts a heartbeat on the current runtime: [`start`](Self::start) with
    /// [`Handle::current`].
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let monitor = triad::LagMonitor::spawn(triad::LagOptions::default());
    /// tokio::time::sleep(std::time::Duration::from_millis(50)).await; // yields: no stall
    /// assert_eq!(monitor.report().stalls, 0);
    /// # });
    /// ```
    pub fn spawn(options: LagOptions) -> LagMonitor {
        LagMonitor::start(&Handle::current(), options)
    }

    /// What the monitor has seen so far; callable at any time, from any thread.
    pub fn report(&self) -> LagReport {
        *self.report.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the heartbeat and returns the final report. Dropping the monitor also stops it.
    pub fn stop(self) -> LagReport {
        // Drop aborts the heartbeat; it only ever stops at its sleep, between beats, so the
        // report is never half-updated.
        self.report()
    }
}

impl Drop for LagMonitor {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

async fn heartbeat(report: Arc<Mutex<LagReport>>, options: LagOptions, first_deadline: Instant) {
    let mut deadline = first_deadline;
    loop {
        tokio::time::sleep_until(deadline).await;
        let woke = Instant::now();
        let lateness = woke.saturating_duration_since(deadline);
        let stalled = lateness > options.threshold;
        {
            let mut report = report.lock().unwrap_or_else(PoisonError::into_inner);
            report.beats += 1;
            report.longest = report.longest.max(lateness);
            if stalled {
                report.stalls += 1;
                report.total_stalled += lateness;
            }
        }
        if stalled {
            tracing::warn!(
                stall_ms = lateness.as_secs_f64() * 1e3,
                threshold_ms = options.threshold.as_secs_f64() * 1e3,
                "event loop was blocked for {:.3} seconds (heartbeat woke {:?} late, threshold \
                 {:?}): a task ran without yielding — a blocking call such as \
                 std::thread::sleep inside async code?",
                lateness.as_secs_f64(),
                lateness,
                options.threshold,
            );
        }
        // From when it woke, not from the old deadline: after a stall the heartbeat goes on
        // beating at its interval instead of firing a burst of catch-up beats.
        deadline = woke + options.interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn healthy_loop_has_no_stalls() {
        let monitor = LagMonitor::spawn(LagOptions::default());
        tokio::time::sleep(Duration::from_millis(105)).await;
        let report = monitor.stop();
        assert_eq!(report.beats, 10);
        assert_eq!(report.stalls, 0);
        assert_eq!(report.longest, Duration::ZERO);
        assert_eq!(report.total_stalled, Duration::ZERO);
        assert_eq!(report.threshold, Duration::from_millis(100));
        assert_eq!(report.interval, Duration::from_millis(10));
    }

    #[test]
    fn stop_ends_the_heartbeat() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let monitor = LagMonitor::start(rt.handle(), LagOptions::default());
        let report = Arc::clone(&monitor.report);
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(35)).await });
        let beats = monitor.stop().beats;
        assert!(beats >= 1, "{beats}");
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(35)).await });
        assert_eq!(report.lock().unwrap().beats, beats);
    }
}
