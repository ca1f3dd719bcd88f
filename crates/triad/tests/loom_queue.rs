//! loom models of `JoinableQueue`: every interleaving of a few small scenarios.
//!
//! Run with
//!
//! ```text
//! RUSTFLAGS="--cfg triad_loom" cargo test -p triad --release --test loom_queue
//! ```
//!
//! (`triad_loom`, not `loom`: `--cfg loom` would also switch tokio to its loom build, which has
//! no `tokio::net`, and the crate's dev-dependencies need it.)
//!
//! Each model sets its preemption bound in code, so `LOOM_MAX_PREEMPTIONS` is not needed (and is
//! ignored): 3 for the small models, 2 for `two_producers_one_consumer_capacity_one`, which takes
//! about 2 s at 2 and about 35 s at 3 on the 2-core dev machine (the whole file runs in about
//! 3 s in release). Bound 2 still finds a lost wake-up: making `put` skip its `notify_one` when
//! one getter waits makes that model deadlock. The timeout methods are not
//! modelled: loom has no clock.

#![cfg(triad_loom)]

use loom::model::Builder;
use loom::thread;
use triad::{GetError, JoinableQueue, PutError, TryGetError};

/// Checks `f` under every interleaving with at most `preemptions` preemptions.
fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(f);
}

/// Two producers and one consumer over capacity 1: the consumer gets each item exactly once,
/// each producer's items in order, and `join` returns after the last `task_done`.
#[test]
fn two_producers_one_consumer_capacity_one() {
    model(2, || {
        let queue = JoinableQueue::new(1);
        let producers: Vec<_> = [[1, 2], [3, 4]]
            .into_iter()
            .map(|items| {
                let queue = queue.clone();
                thread::spawn(move || {
                    for item in items {
                        queue.put(item).unwrap();
                    }
                })
            })
            .collect();
        let consumer = {
            let queue = queue.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                for _ in 0..4 {
                    got.push(queue.get().unwrap());
                    queue.task_done().unwrap();
                }
                got
            })
        };
        for producer in producers {
            producer.join().unwrap();
        }
        queue.join();
        assert_eq!(queue.unfinished(), 0);
        let got = consumer.join().unwrap();
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [1, 2, 3, 4], "lost or duplicated: {got:?}");
        let position = |n| got.iter().position(|&x| x == n).unwrap();
        assert!(
            position(1) < position(2) && position(3) < position(4),
            "{got:?}"
        );
        assert_eq!(queue.try_get(), Err(TryGetError::Empty));
    });
}

/// Two consumers, one producer: two items over capacity 1 reach the two consumers exactly once
/// in total (a `notify_one` is never lost), and close then releases them.
#[test]
fn one_producer_two_consumers_then_close() {
    model(3, || {
        let queue = JoinableQueue::new(1);
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let queue = queue.clone();
                thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Ok(item) = queue.get() {
                        got.push(item);
                        queue.task_done().unwrap();
                    }
                    got
                })
            })
            .collect();
        queue.put(1).unwrap();
        queue.put(2).unwrap();
        queue.join();
        queue.close();
        let mut got: Vec<i32> = consumers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
    });
}

/// `join` returns only once every item has been marked done, never on `get` alone.
#[test]
fn join_returns_only_after_all_task_done() {
    model(3, || {
        let queue = JoinableQueue::new(2);
        queue.put(1).unwrap();
        queue.put(2).unwrap();
        let done = loom::sync::Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let worker = {
            let (queue, done) = (queue.clone(), done.clone());
            thread::spawn(move || {
                for _ in 0..2 {
                    queue.get().unwrap();
                    done.fetch_add(1, loom::sync::atomic::Ordering::Relaxed);
                    queue.task_done().unwrap();
                }
            })
        };
        queue.join();
        assert_eq!(done.load(loom::sync::atomic::Ordering::Relaxed), 2);
        assert_eq!(queue.unfinished(), 0);
        worker.join().unwrap();
    });
}

/// `close` wakes a getter blocked on an empty queue and a putter blocked on a full one.
#[test]
fn close_wakes_blocked_getter_and_putter() {
    model(3, || {
        let empty = JoinableQueue::<u8>::new(1);
        let full = JoinableQueue::new(1);
        full.put(0u8).unwrap();
        let getter = {
            let queue = empty.clone();
            thread::spawn(move || queue.get())
        };
        let putter = {
            let queue = full.clone();
            thread::spawn(move || queue.put(1))
        };
        empty.close();
        full.close();
        assert_eq!(getter.join().unwrap(), Err(GetError::Closed));
        assert_eq!(putter.join().unwrap(), Err(PutError::Closed(1)));
        assert_eq!(full.get(), Ok(0));
    });
}

/// Items put before `close` are delivered to a getter racing with it; then `Closed`.
#[test]
fn close_drains_before_reporting_closed() {
    model(3, || {
        let queue = JoinableQueue::new(2);
        let producer = {
            let queue = queue.clone();
            thread::spawn(move || {
                queue.put(1).unwrap();
                queue.close();
            })
        };
        assert_eq!(queue.get(), Ok(1));
        assert_eq!(queue.get(), Err(GetError::Closed));
        producer.join().unwrap();
    });
}
