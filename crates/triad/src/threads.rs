//! A thread pool on a crossbeam channel that starts its threads as work needs them.
//!
//! Workers are plain OS threads that take boxed jobs from one shared multi-consumer channel
//! (crossbeam's, lock-free on the fast path), as `concurrent.futures.ThreadPoolExecutor` does with
//! its work queue. We keep our own pool rather than rayon's because the engines need what a
//! fork-join pool does not give: a bounded number of jobs in flight fed lazily from an iterator
//! (so `imap` over a huge input does not materialise it), a handle per submitted job, results
//! that stream back as they finish, and a worker loop shaped like the process pool's, so the lab
//! compares the two models and not two different schedulers.
//!
//! Like `ThreadPoolExecutor`, the pool starts one thread at once and another only when a job
//! arrives while every thread is busy, up to its size: a pool of 10,000 threads given one job
//! runs one thread. The size is checked against what the system allows first (see `limits`).
//!
//! A job that panics is contained by its worker, which goes on with the next job. Dropping the
//! pool closes the channel: workers finish the jobs already queued, then exit, and drop joins them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::error::{EngineError, TaskError};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A pool of worker threads that run submitted closures.
///
/// # Examples
///
/// ```
/// let pool = triad::ThreadPool::new(2).unwrap();
/// let handle = pool.submit(|| 6 * 7);
/// assert_eq!(handle.wait(), Ok(42));
/// let failed = pool.submit(|| -> u8 { panic!("no") });
/// assert!(failed.wait().is_err());
/// ```
#[derive(Debug)]
pub struct ThreadPool {
    // `Option` so that drop can close the channel before joining the workers.
    jobs: Option<Sender<Job>>,
    queue: Receiver<Job>,
    size: usize,
    /// Threads waiting for a job, less the jobs sent to them and not yet taken: a new job
    /// starts a thread only when this is zero.
    idle: Arc<AtomicUsize>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl ThreadPool {
    /// A pool of up to `threads` worker threads; one starts now, the others as jobs need them.
    ///
    /// # Errors
    ///
    /// [`EngineError::InvalidMode`] for zero threads, [`EngineError::TooManyThreads`] for more
    /// than the system allows, and [`EngineError::Start`] if not even one thread starts.
    pub fn new(threads: usize) -> Result<Self, EngineError> {
        if threads == 0 {
            return Err(EngineError::InvalidMode(
                "a thread pool needs at least one thread".into(),
            ));
        }
        crate::limits::check_threads(threads)?;
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        let pool = ThreadPool {
            jobs: Some(jobs),
            queue,
            size: threads,
            idle: Arc::new(AtomicUsize::new(0)),
            workers: Mutex::new(Vec::new()),
        };
        pool.start_thread(true)
            .map_err(|source| EngineError::Start {
                what: "thread pool",
                source,
            })?;
        Ok(pool)
    }

    /// Starts one more thread: idle, or with the job about to be sent as its first.
    fn start_thread(&self, idle_at_start: bool) -> std::io::Result<()> {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let queue = self.queue.clone();
        let idle = self.idle.clone();
        let worker = std::thread::Builder::new()
            .name(format!("triad-worker-{}", workers.len()))
            .spawn(move || {
                let mut counted = true;
                loop {
                    if !counted {
                        idle.fetch_add(1, Ordering::AcqRel);
                    }
                    counted = false;
                    let Ok(job) = queue.recv() else { break };
                    // A job's own panic is its submitter's business (see `submit`); the
                    // worker only has to survive it.
                    let _ = catch_unwind(AssertUnwindSafe(job));
                }
            })?;
        workers.push(worker);
        // A thread counts itself idle only after each job; one started idle is counted here.
        if idle_at_start {
            self.idle.fetch_add(1, Ordering::AcqRel);
        }
        Ok(())
    }

    /// The most worker threads the pool runs.
    pub fn threads(&self) -> usize {
        self.size
    }

    /// How many worker threads have started so far.
    pub fn started(&self) -> usize {
        self.workers.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Queues `job` to run on a worker; it runs even if the pool is dropped before it starts.
    /// If every thread is busy and the pool is not at its size, another thread starts (if the
    /// system refuses it, the job waits for one of the threads already there).
    pub fn execute(&self, job: impl FnOnce() + Send + 'static) {
        let claimed = self
            .idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |idle| {
                idle.checked_sub(1)
            })
            .is_ok();
        if !claimed && self.started() < self.size {
            // This job is the new thread's first (or, if the system refuses a thread, it waits
            // for one of those already there).
            let _ = self.start_thread(false);
        }
        self.jobs
            .as_ref()
            .expect("the channel is open until drop")
            .send(Box::new(job))
            .expect("the pool holds a receiver until it drops");
    }

    /// Queues `job` and returns a handle to wait for its result.
    pub fn submit<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> JobHandle<T> {
        let (result_tx, result_rx) = crossbeam_channel::bounded(1);
        self.execute(move || {
            let result = catch_unwind(AssertUnwindSafe(job)).map_err(TaskError::from_panic);
            let _ = result_tx.send(result);
        });
        JobHandle { result: result_rx }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        drop(self.jobs.take());
        let workers = std::mem::take(self.workers.get_mut().unwrap_or_else(|p| p.into_inner()));
        for worker in workers {
            let _ = worker.join();
        }
    }
}

/// The pending result of [`ThreadPool::submit`].
#[derive(Debug)]
pub struct JobHandle<T> {
    result: Receiver<Result<T, TaskError>>,
}

impl<T> JobHandle<T> {
    /// Blocks until the job has run; a panic in it is [`TaskError::Panicked`].
    pub fn wait(self) -> Result<T, TaskError> {
        self.result.recv().unwrap_or(Err(TaskError::Cancelled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_threads_is_an_error() {
        assert!(matches!(
            ThreadPool::new(0),
            Err(EngineError::InvalidMode(_))
        ));
    }

    #[test]
    fn drop_runs_every_queued_job() {
        let done = Arc::new(AtomicUsize::new(0));
        {
            let pool = ThreadPool::new(3).unwrap();
            for _ in 0..1000 {
                let done = done.clone();
                pool.execute(move || {
                    done.fetch_add(1, Ordering::Relaxed);
                });
            }
        }
        assert_eq!(done.load(Ordering::Relaxed), 1000);
    }

    #[test]
    fn a_panicking_job_does_not_kill_its_worker() {
        let pool = ThreadPool::new(1).unwrap();
        let bad = pool.submit(|| -> () { panic!("bad job") });
        assert_eq!(bad.wait(), Err(TaskError::Panicked("bad job".into())));
        assert_eq!(pool.submit(|| 5).wait(), Ok(5));
    }

    #[test]
    fn jobs_run_on_distinct_named_threads() {
        let pool = ThreadPool::new(2).unwrap();
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let barrier = barrier.clone();
                pool.submit(move || {
                    barrier.wait();
                    std::thread::current().name().unwrap().to_owned()
                })
            })
            .collect();
        let names: Vec<_> = handles.into_iter().map(|h| h.wait().unwrap()).collect();
        assert_ne!(names[0], names[1]);
        assert!(names.iter().all(|n| n.starts_with("triad-worker-")));
    }

    #[test]
    fn a_huge_pool_given_one_job_starts_one_thread() {
        let pool = ThreadPool::new(10_000).unwrap();
        assert_eq!(pool.submit(|| 1).wait(), Ok(1));
        assert_eq!(pool.started(), 1);
        assert_eq!(pool.threads(), 10_000);
    }

    #[test]
    fn jobs_that_wait_for_each_other_get_a_thread_each() {
        // Four jobs that can only finish together: the pool must start a thread for each.
        let pool = ThreadPool::new(8).unwrap();
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let barrier = barrier.clone();
                pool.submit(move || barrier.wait().is_leader())
            })
            .collect();
        let leaders = handles
            .into_iter()
            .map(|h| h.wait().unwrap())
            .filter(|leader| *leader)
            .count();
        assert_eq!(leaders, 1);
        assert!((4..=8).contains(&pool.started()));
    }

    #[test]
    fn a_pool_larger_than_the_system_allows_is_refused_with_the_limit() {
        let error = ThreadPool::new(usize::MAX / 2).unwrap_err();
        assert!(
            matches!(error, EngineError::TooManyThreads { .. }),
            "{error}"
        );
    }
}
