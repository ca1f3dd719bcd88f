//! A fixed-size thread pool on a crossbeam channel.
//!
//! Workers are plain OS threads that take boxed jobs from one shared multi-consumer channel
//! (crossbeam's, lock-free on the fast path), as `concurrent.futures.ThreadPoolExecutor` does with
//! its work queue. We keep our own pool rather than rayon's because the engines need what a
//! fork-join pool does not give: a bounded number of jobs in flight fed lazily from an iterator
//! (so `imap` over a huge input does not materialise it), a handle per submitted job, results
//! that stream back as they finish, and a worker loop shaped like the process pool's, so the lab
//! compares the two models and not two different schedulers.
//!
//! A job that panics is contained by its worker, which goes on with the next job. Dropping the
//! pool closes the channel: workers finish the jobs already queued, then exit, and drop joins them.

use std::panic::{AssertUnwindSafe, catch_unwind};
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
    workers: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    /// Starts `threads` worker threads.
    pub fn new(threads: usize) -> Result<Self, EngineError> {
        if threads == 0 {
            return Err(EngineError::InvalidMode(
                "a thread pool needs at least one thread".into(),
            ));
        }
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        let mut workers = Vec::with_capacity(threads);
        for index in 0..threads {
            let queue: Receiver<Job> = queue.clone();
            let worker = std::thread::Builder::new()
                .name(format!("triad-worker-{index}"))
                .spawn(move || {
                    for job in queue {
                        // A job's own panic is its submitter's business (see `submit`); the
                        // worker only has to survive it.
                        let _ = catch_unwind(AssertUnwindSafe(job));
                    }
                })
                .map_err(|source| EngineError::Start {
                    what: "thread pool",
                    source,
                })?;
            workers.push(worker);
        }
        Ok(ThreadPool {
            jobs: Some(jobs),
            workers,
        })
    }

    /// How many worker threads the pool has.
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Queues `job` to run on a worker; it runs even if the pool is dropped before it starts.
    pub fn execute(&self, job: impl FnOnce() + Send + 'static) {
        self.jobs
            .as_ref()
            .expect("the channel is open until drop")
            .send(Box::new(job))
            .expect("workers hold the receiver until the pool drops");
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
        for worker in self.workers.drain(..) {
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
}
