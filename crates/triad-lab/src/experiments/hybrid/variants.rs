//! The mixed item and the seven ways `hybrid` runs a batch of them.
//!
//! One item ([`Work`]) is the seed's §8.2 shape in small: fetch (a round trip to the delay
//! server that answers after `fetch_ms`), compute (`sum_squares(squares)`, about 2 ms of CPU),
//! save (a `write_ms` wait). [`Engines`] holds what the variants share and start before any
//! timing — the event loop, the thread pool, the two process pools — and [`Engines::run`] runs
//! one batch in one [`Variant`], checks every answer, and returns its [`Reading`]: the wall
//! time, the loop's longest stall (for the two variants on one loop) and the pipeline's
//! per-stage shares (for the pipeline).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;
use triad::pipeline::{Pipeline, PipelineMetrics, Stage};
use triad::workloads::sum_squares;
use triad::{LagMonitor, LagOptions, Mode, ProcessPool, Recorder, Runner, StartMethod, TaskError};

use super::Variant;
use crate::error::LabError;
use crate::experiments::delay_server::{round_trip, round_trip_async};

/// One mixed item: what to fetch, how much to compute, how long to save.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Work {
    /// The delay server's port on 127.0.0.1.
    pub(super) port: u16,
    /// How long the server waits before it answers.
    pub(super) fetch_ms: u64,
    /// The CPU work: `sum_squares(squares)`.
    pub(super) squares: u64,
    /// The save: a wait of this long.
    pub(super) write_ms: u64,
}

impl Work {
    fn write(self) -> Duration {
        Duration::from_millis(self.write_ms)
    }

    fn echoed(self, echoed: u64) -> Result<(), String> {
        if echoed == self.fetch_ms {
            Ok(())
        } else {
            Err(format!(
                "a fetch of {} ms came back as {echoed}",
                self.fetch_ms
            ))
        }
    }
}

/// One item on blocking calls: a blocking socket, the computation, a blocking sleep.
#[triad::task]
fn item(work: Work) -> Result<u128, String> {
    work.echoed(round_trip::call(work.port, work.fetch_ms)?)?;
    let sum = sum_squares::call(work.squares);
    std::thread::sleep(work.write());
    Ok(sum)
}

/// One item as a coroutine: the fetch and the save await, the computation runs on the loop
/// (holding it, as a CPU-bound step in an asyncio coroutine does).
async fn item_async(work: Work) -> Result<u128, String> {
    work.echoed(round_trip_async::call(work.port, work.fetch_ms).await?)?;
    let sum = sum_squares::call(work.squares);
    tokio::time::sleep(work.write()).await;
    Ok(sum)
}

/// The seed's §6.7 "process pool with coroutines inside": one worker process's share of the
/// batch, `count` items as coroutines on an event loop of its own (`asyncio.run` in the seed).
#[triad::task]
fn partition(work: Work, count: u64) -> Result<Vec<u128>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("an event loop in the worker: {e}"))?;
    runtime.block_on(async {
        let handles: Vec<_> = (0..count).map(|_| tokio::spawn(item_async(work))).collect();
        let mut sums = Vec::with_capacity(handles.len());
        for handle in handles {
            sums.push(handle.await.map_err(|e| e.to_string())??);
        }
        Ok(sums)
    })
}

/// The heartbeat of the loop variants: a beat every millisecond (tokio's timer tick); the
/// report's `longest` is what the lab reads, so the threshold only sets what is logged.
const LAG: LagOptions = LagOptions {
    interval: Duration::from_millis(1),
    threshold: Duration::from_millis(5),
};

/// What one batch measured.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Reading {
    /// Wall time of the batch.
    pub(super) seconds: f64,
    /// The loop's longest stall (the heartbeat's largest lateness), for the loop variants.
    pub(super) stall: Option<f64>,
    /// For the pipeline: how long it took to start (its event loop, and its process pool up to
    /// the first worker's hello), before its time began, as the other variants' pools start
    /// before theirs.
    pub(super) start: Option<f64>,
    /// The pipeline's figures at the end of the run, for the pipeline.
    pub(super) metrics: Option<PipelineMetrics>,
}

impl Reading {
    fn time(seconds: f64) -> Self {
        Reading {
            seconds,
            stall: None,
            start: None,
            metrics: None,
        }
    }
}

/// What the variants run on, started before any timing.
pub(super) struct Engines {
    /// The one event loop of the two loop variants (a current-thread runtime, as asyncio's).
    event_loop: Runtime,
    /// A pool of one thread per item.
    threads: Runner,
    /// A pool of one worker process per item.
    processes: Runner,
    /// One worker process per core, each running its share as coroutines.
    partitions: Runner,
    /// Worker processes of the pipeline's CPU stage (one per core).
    cores: usize,
    /// Items in a batch.
    items: usize,
    /// Every item's answer: `sum_squares(squares)`.
    answer: u128,
}

impl std::fmt::Debug for Engines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engines")
            .field("cores", &self.cores)
            .field("items", &self.items)
            .finish_non_exhaustive()
    }
}

/// A pool of `workers` processes forked from triad's fork server. While it lives the server
/// does too, so the pipeline's own pools (default start method) fork from it as well.
fn fork_server_pool(workers: usize) -> Result<Runner, LabError> {
    let pool = ProcessPool::builder()
        .workers(workers)
        .start_method(StartMethod::ForkServer)
        .build()
        .map_err(|e| LabError::engine(format!("starting {workers} worker processes"), e))?;
    Ok(Runner::from_pool(pool))
}

impl Engines {
    /// Starts every engine for batches of `items` on `cores` cores.
    pub(super) fn start(items: usize, cores: usize, answer: u128) -> Result<Self, LabError> {
        let event_loop = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LabError::os("an event loop", e))?;
        let threads = Runner::new(Mode::Threads(items))
            .map_err(|e| LabError::engine(format!("starting {items} threads"), e))?;
        Ok(Engines {
            event_loop,
            threads,
            processes: fork_server_pool(items)?,
            partitions: fork_server_pool(cores)?,
            cores,
            items,
            answer,
        })
    }

    /// Runs a batch of `count` items (`self.items`, or fewer for a warm-up) as `variant`,
    /// checking every answer.
    pub(super) fn run(
        &self,
        variant: Variant,
        work: Work,
        count: usize,
    ) -> Result<Reading, LabError> {
        let failed =
            |why: String| LabError::engine(format!("{count} items, {}", variant.name()), why);
        let check = |sums: Vec<Result<u128, String>>| -> Result<(), LabError> {
            if sums.len() != count {
                return Err(failed(format!("{} answers for {count} items", sums.len())));
            }
            match sums.into_iter().find(|sum| *sum != Ok(self.answer)) {
                None => Ok(()),
                Some(Ok(wrong)) => Err(failed(format!(
                    "an item computed {wrong} instead of {}",
                    self.answer
                ))),
                Some(Err(why)) => Err(failed(why)),
            }
        };
        let flat = |results: Vec<Result<Result<u128, String>, TaskError>>| {
            results
                .into_iter()
                .map(|r| r.map_err(|e| e.to_string()).and_then(|inner| inner))
                .collect::<Vec<_>>()
        };
        let inputs = std::iter::repeat_n(work, count);
        let started = Instant::now();
        let reading = match variant {
            Variant::Serial => {
                let sums: Vec<_> = inputs.map(item::call).collect();
                let reading = Reading::time(started.elapsed().as_secs_f64());
                check(sums)?;
                reading
            }
            Variant::LoopBlockingIo | Variant::Loop => {
                let (sums, reading) = self.on_loop(variant == Variant::LoopBlockingIo, work, count);
                check(sums)?;
                reading
            }
            Variant::Threads | Variant::Processes => {
                let runner = match variant {
                    Variant::Threads => &self.threads,
                    _ => &self.processes,
                };
                let sums = flat(runner.map(item, inputs));
                let reading = Reading::time(started.elapsed().as_secs_f64());
                check(sums)?;
                reading
            }
            Variant::ProcessesWithCoroutines => {
                let shares = shares(count, self.cores);
                let results = self
                    .partitions
                    .map(partition, shares.iter().map(|&n| (work, n)));
                let reading = Reading::time(started.elapsed().as_secs_f64());
                let mut sums = Vec::with_capacity(count);
                for result in results {
                    match result.map_err(|e| e.to_string()).and_then(|inner| inner) {
                        Ok(share) => sums.extend(share.into_iter().map(Ok)),
                        Err(why) => sums.push(Err(why)),
                    }
                }
                check(sums)?;
                reading
            }
            Variant::Pipeline => {
                let (sums, reading) =
                    pipeline(work, count, self.cores, None).map_err(|e| failed(e.to_string()))?;
                check(sums)?;
                reading
            }
        };
        Ok(reading)
    }

    /// A batch as coroutines on the one event loop, watched by a [`LagMonitor`]: with
    /// `blocking`, each coroutine makes the blocking calls of [`item`] (the seed's pitfall 1);
    /// without, it awaits its waits ([`item_async`]) and computes on the loop.
    fn on_loop(
        &self,
        blocking: bool,
        work: Work,
        count: usize,
    ) -> (Vec<Result<u128, String>>, Reading) {
        self.event_loop.block_on(async {
            let monitor = LagMonitor::spawn(LAG);
            let started = Instant::now();
            let handles: Vec<_> = (0..count)
                .map(|_| {
                    if blocking {
                        tokio::spawn(async move { item::call(work) })
                    } else {
                        tokio::spawn(item_async(work))
                    }
                })
                .collect();
            let mut sums = Vec::with_capacity(count);
            for handle in handles {
                sums.push(
                    handle
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|inner| inner),
                );
            }
            let seconds = started.elapsed().as_secs_f64();
            // A stall is measured when the heartbeat wakes: let it wake once more after the
            // last one, or a loop blocked to the very end would go unreported.
            tokio::time::sleep(2 * LAG.interval).await;
            let stall = monitor.stop().longest.as_secs_f64();
            (
                sums,
                Reading {
                    seconds,
                    stall: Some(stall),
                    start: None,
                    metrics: None,
                },
            )
        })
    }
}

/// `count` items in `workers` shares as even as they go, none empty.
pub(super) fn shares(count: usize, workers: usize) -> Vec<u64> {
    let workers = workers.clamp(1, count.max(1));
    (0..workers)
        .map(|w| (count / workers + usize::from(w < count % workers)) as u64)
        .filter(|&n| n > 0)
        .collect()
}

/// A batch through `triad::pipeline`: fetch on the event loop (every item in flight at once),
/// compute on `cores` worker processes, save on the event loop. A pipeline runs once, so each
/// batch builds its own loop and process pool: [`Reading::start`] is that, and the batch's time
/// starts when the pipeline has started (its pool starts its second worker on demand, inside
/// the time, as `Mode::Processes` does).
pub(super) fn pipeline(
    work: Work,
    count: usize,
    cores: usize,
    recorder: Option<Arc<Recorder>>,
) -> Result<(Vec<Result<u128, String>>, Reading), triad::EngineError> {
    let building = Instant::now();
    let slots = count.max(1);
    let mut pipeline = Pipeline::new()
        .then(Stage::future(
            "fetch",
            slots,
            move |work: Work| async move {
                work.echoed(round_trip_async::call(work.port, work.fetch_ms).await?)?;
                Ok::<_, String>(work.squares)
            },
        ))
        .then(Stage::task("compute", Mode::Processes(cores), sum_squares))
        .then(Stage::future("save", slots, move |sum: u128| async move {
            tokio::time::sleep(work.write()).await;
            Ok::<_, String>(sum)
        }));
    if let Some(recorder) = recorder {
        pipeline = pipeline.record(recorder);
    }
    let mut results = pipeline.run(std::iter::repeat_n(work, count))?;
    let start = building.elapsed().as_secs_f64();
    let started = Instant::now();
    let sums: Vec<Result<u128, String>> = results
        .by_ref()
        .map(|r| r.map_err(|e| e.to_string()))
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    let metrics = results.metrics();
    Ok((
        sums,
        Reading {
            seconds,
            stall: None,
            start: Some(start),
            metrics: Some(metrics),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_split_the_batch_evenly_and_add_up() {
        assert_eq!(shares(16, 2), [8, 8]);
        assert_eq!(shares(5, 2), [3, 2]);
        assert_eq!(shares(2, 4), [1, 1]);
        assert_eq!(shares(1, 1), [1]);
        for (count, workers) in [(7, 3), (64, 5), (3, 8)] {
            let split = shares(count, workers);
            assert_eq!(split.iter().sum::<u64>(), count as u64);
            assert!(split.iter().all(|&n| n > 0));
        }
    }

    #[test]
    fn a_wrong_echo_is_an_error() {
        let work = Work {
            port: 1,
            fetch_ms: 20,
            squares: 10,
            write_ms: 0,
        };
        assert_eq!(work.echoed(20), Ok(()));
        assert!(work.echoed(21).unwrap_err().contains("came back as 21"));
    }
}
