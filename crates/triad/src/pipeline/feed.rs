//! Items for a thread pool, queued so that a busy pool thread takes the next item itself
//! instead of being woken for each.
//!
//! A stage hands its pool one item at a time, from the event loop. Sending each as its own
//! job would wake a parked pool thread for every item — a futex round trip, several
//! microseconds on a VM, more than a small item's work. Instead items wait in one queue, and at
//! most `threads` *drainer* jobs run on the pool, each taking items until the queue is empty:
//! while items keep coming, pool threads stay awake and take them without a wake-up.
//!
//! The race to watch is an item queued just as the last drainer leaves: a submitter starts a
//! drainer only when fewer than `threads` run, and a drainer that finds the queue empty lowers
//! the count and then looks once more (under the queue's lock), taking up the item if one came.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::error::TaskError;
use crate::threads::ThreadPool;

type Reply<O> = oneshot::Sender<Result<O, TaskError>>;
type WorkOnThread<I, O> = dyn Fn(I) -> Result<O, TaskError> + Send + Sync;

/// One stage's queue in front of its thread pool.
pub(crate) struct Feed<I, O> {
    queue: Mutex<VecDeque<(I, Reply<O>)>>,
    /// Drainer jobs running on the pool now (at most `threads`).
    draining: AtomicUsize,
    threads: usize,
    work: Box<WorkOnThread<I, O>>,
}

impl<I: Send + 'static, O: Send + 'static> Feed<I, O> {
    pub(crate) fn new(
        threads: usize,
        work: impl Fn(I) -> Result<O, TaskError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Feed {
            queue: Mutex::new(VecDeque::new()),
            draining: AtomicUsize::new(0),
            threads: threads.max(1),
            work: Box::new(work),
        })
    }

    /// Queues `input` for the pool; its outcome arrives on the receiver (a panic in the work
    /// is [`TaskError::Panicked`]; a pool that went away, [`TaskError::Cancelled`]).
    pub(crate) fn submit(
        self: &Arc<Self>,
        pool: &ThreadPool,
        input: I,
    ) -> oneshot::Receiver<Result<O, TaskError>> {
        let (reply, receiver) = oneshot::channel();
        self.lock().push_back((input, reply));
        let running = self.draining.load(Ordering::SeqCst);
        if running < self.threads
            && self
                .draining
                .compare_exchange(running, running + 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            let feed = self.clone();
            pool.execute(move || feed.drain());
        }
        receiver
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(I, Reply<O>)>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes items until the queue is empty (see the module doc for the exit).
    fn drain(&self) {
        loop {
            let next = self.lock().pop_front();
            let Some((input, reply)) = next else {
                self.draining.fetch_sub(1, Ordering::SeqCst);
                let queue = self.lock();
                let running = self.draining.load(Ordering::SeqCst);
                if queue.is_empty()
                    || running >= self.threads
                    || self
                        .draining
                        .compare_exchange(running, running + 1, Ordering::SeqCst, Ordering::SeqCst)
                        .is_err()
                {
                    return;
                }
                continue;
            };
            if reply.is_closed() {
                continue; // its stage gave up on it (a timeout, a cancel)
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| (self.work)(input)))
                .unwrap_or_else(|panic| Err(TaskError::from_panic(panic)));
            let _ = reply.send(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_answered_once_whatever_the_timing() {
        let pool = ThreadPool::new(3).unwrap();
        let feed = Feed::new(3, |x: u64| {
            if x.is_multiple_of(97) {
                std::thread::yield_now();
            }
            Ok(x * 2)
        });
        for round in 0..20_u64 {
            let receivers: Vec<_> = (0..500)
                .map(|x| feed.submit(&pool, round * 1000 + x))
                .collect();
            for (x, receiver) in receivers.into_iter().enumerate() {
                let answer = receiver.blocking_recv().unwrap().unwrap();
                assert_eq!(answer, (round * 1000 + x as u64) * 2);
            }
            // Between rounds the drainers leave; the next round must start them again.
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn a_panic_is_the_items_error_and_the_feed_goes_on() {
        let pool = ThreadPool::new(1).unwrap();
        let feed = Feed::new(1, |x: u64| if x == 1 { panic!("one") } else { Ok(x) });
        let answers: Vec<_> = (0..3).map(|x| feed.submit(&pool, x)).collect();
        let answers: Vec<_> = answers
            .into_iter()
            .map(|r| r.blocking_recv().unwrap())
            .collect();
        assert_eq!(answers[0], Ok(0));
        assert!(matches!(&answers[1], Err(TaskError::Panicked(m)) if m == "one"));
        assert_eq!(answers[2], Ok(2));
    }
}
