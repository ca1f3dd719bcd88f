//! One stage at work: the driver loop every kind of stage shares, and what each kind does with
//! an item (a future on the loop, a closure on a thread pool, a task on an engine).
//!
//! The driver holds `slots` permits. For each item it takes a free slot, then the next item
//! from its input channel (time spent waiting there with a free slot is *starved*), and spawns
//! a tokio task that does the item's work (*busy*), sends the result on (time spent waiting for
//! room downstream is *blocked*), and gives the slot back. A slot is therefore held until the
//! item is downstream: when the next stage is full, this one's slots fill, it stops reading, and
//! its own input fills in turn — backpressure, stage by stage, back to the source.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;

use super::metrics::StageCounters;
use super::{Envelope, ItemError};
use crate::error::TaskError;
use crate::trace::{Recorder, Span, now_ns};

/// A boxed future of one item's outcome in a stage.
pub(crate) type Work<O> = Pin<Box<dyn Future<Output = Result<O, TaskError>> + Send>>;

/// What a stage does with one item.
pub(crate) type WorkFn<I, O> = Arc<dyn Fn(I) -> Work<O> + Send + Sync>;

/// Stops every part of a run: set once, seen by every waiter.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancel(Arc<(AtomicBool, Notify)>);

impl Cancel {
    pub(crate) fn cancel(&self) {
        self.0.0.store(true, Ordering::SeqCst);
        self.0.1.notify_waiters();
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.0.load(Ordering::SeqCst)
    }

    /// Resolves once [`cancel`](Self::cancel) has been called.
    pub(crate) async fn cancelled(&self) {
        loop {
            let notified = self.0.1.notified();
            tokio::pin!(notified);
            // Registered before the flag is read, so a cancel in between is not missed.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// Where a stage's item spans go: one row per slot (synthetic thread ids `stage × 1000 + slot`,
/// so that a trace shows each stage's slots as lanes, side by side with the others').
#[derive(Clone)]
pub(crate) struct Lanes {
    recorder: Option<Arc<Recorder>>,
    base: u32,
    free: Arc<Mutex<Vec<u32>>>,
}

impl Lanes {
    pub(crate) fn new(recorder: Option<Arc<Recorder>>, stage: usize, slots: usize) -> Self {
        let base = (stage as u32 + 1) * 1000;
        Lanes {
            recorder,
            base,
            free: Arc::new(Mutex::new((0..slots.min(999) as u32).rev().collect())),
        }
    }

    fn take(&self) -> u32 {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or(999)
    }

    fn give_back(&self, lane: u32) {
        if lane < 999 {
            self.free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(lane);
        }
    }
}

/// How a stage was asked to run, beside its work.
pub(crate) struct StageSetup<I, O> {
    pub(crate) work: WorkFn<I, O>,
    pub(crate) counters: Arc<StageCounters>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) lanes: Lanes,
}

/// Runs one stage until its input ends (then finishes what it holds) or the run is cancelled.
pub(crate) async fn drive<I, O>(
    mut input: mpsc::Receiver<Envelope<I>>,
    output: mpsc::Sender<Envelope<O>>,
    setup: StageSetup<I, O>,
    cancel: Cancel,
) where
    I: Send + 'static,
    O: Send + 'static,
{
    let StageSetup {
        work,
        counters,
        timeout,
        lanes,
    } = setup;
    let slots = Arc::new(Semaphore::new(counters.slots.max(1)));
    let mut running = JoinSet::new();
    loop {
        // Waiting for a slot is the stage being full; waiting for an item with a slot free is
        // the stage being starved.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = cancel.cancelled() => return,
        };
        let starving = Instant::now();
        let envelope = tokio::select! {
            envelope = input.recv() => envelope,
            () = cancel.cancelled() => return,
        };
        StageCounters::add(&counters.starved_ns, starving);
        let Some(envelope) = envelope else { break };
        counters.received.fetch_add(1, Ordering::Relaxed);
        while running.try_join_next().is_some() {}
        running.spawn(process(
            envelope,
            slot,
            work.clone(),
            output.clone(),
            counters.clone(),
            timeout,
            lanes.clone(),
        ));
    }
    // The input has ended: finish what is in flight, unless the run is cancelled meanwhile.
    tokio::select! {
        () = async { while running.join_next().await.is_some() {} } => {}
        () = cancel.cancelled() => running.abort_all(),
    }
}

/// One item through one stage: its work (unless it failed upstream), then on downstream.
async fn process<I, O>(
    envelope: Envelope<I>,
    slot: OwnedSemaphorePermit,
    work: WorkFn<I, O>,
    output: mpsc::Sender<Envelope<O>>,
    counters: Arc<StageCounters>,
    timeout: Option<Duration>,
    lanes: Lanes,
) where
    I: Send + 'static,
    O: Send + 'static,
{
    let Envelope {
        index,
        item,
        window,
    } = envelope;
    let outcome = match item {
        // Failed upstream: it passes this stage by, as it is.
        Err(failure) => Err(failure),
        Ok(input) => {
            counters.items_in.fetch_add(1, Ordering::Relaxed);
            let lane = lanes.take();
            let started = Instant::now();
            let start_ns = now_ns();
            // A panic in the call that makes the future is the item's, as one inside it is.
            let future = match std::panic::catch_unwind(AssertUnwindSafe(|| work(input))) {
                Ok(future) => future,
                Err(panic) => Box::pin(std::future::ready(Err(TaskError::from_panic(panic)))),
            };
            let future = AssertUnwindSafe(future).catch_unwind();
            let result = match timeout {
                Some(limit) => match tokio::time::timeout(limit, future).await {
                    Ok(result) => result,
                    Err(_) => Ok(Err(TaskError::Timeout)),
                },
                None => future.await,
            }
            .unwrap_or_else(|panic| Err(TaskError::from_panic(panic)));
            let elapsed = started.elapsed();
            StageCounters::add(&counters.busy_ns, started);
            crate::monitor::count(counters.kind.monitor_kind(), elapsed, result.is_err());
            if let Some(recorder) = &lanes.recorder {
                recorder.push(Span {
                    name: counters.name.clone(),
                    task: index,
                    pid: std::process::id(),
                    tid: lanes.base + lane,
                    cpu: None,
                    start_ns,
                    end_ns: now_ns(),
                });
            }
            lanes.give_back(lane);
            match result {
                Ok(output) => {
                    counters.items_out.fetch_add(1, Ordering::Relaxed);
                    Ok(output)
                }
                Err(error) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    Err(ItemError {
                        index,
                        stage: counters.name.to_string(),
                        error,
                    })
                }
            }
        }
    };
    let blocked = Instant::now();
    // A closed output means the run is being torn down; the item goes with it.
    let envelope = Envelope {
        index,
        item: outcome,
        window,
    };
    if output.send(envelope).await.is_ok() {
        counters.sent.fetch_add(1, Ordering::Relaxed);
    }
    StageCounters::add(&counters.blocked_ns, blocked);
    drop(slot);
}
