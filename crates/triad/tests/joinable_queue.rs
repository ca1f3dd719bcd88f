//! `JoinableQueue` under load and against a model.
//!
//! - `many_producers_many_consumers_lose_and_duplicate_nothing`: 8 producers and 8 consumers
//!   over a queue of capacity 4 move 100k distinct ids; every id arrives exactly once, and
//!   `join` returns only after every `task_done`.
//! - `matches_model`: a proptest runs random single-threaded sequences of operations against a
//!   `VecDeque` plus counters and checks that every result and observable agrees.

#![cfg(not(triad_loom))]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use proptest::prelude::*;
use triad::{JoinableQueue, TaskDoneError, TryGetError, TryPutError};

#[test]
fn many_producers_many_consumers_lose_and_duplicate_nothing() {
    const PRODUCERS: usize = 8;
    const CONSUMERS: usize = 8;
    const PER_PRODUCER: usize = 12_500;
    const TOTAL: usize = PRODUCERS * PER_PRODUCER;

    let queue = JoinableQueue::new(4);
    let done = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(PRODUCERS + CONSUMERS));

    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let (queue, done, start) = (queue.clone(), Arc::clone(&done), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                let mut seen = Vec::new();
                while let Ok(id) = queue.get() {
                    seen.push(id);
                    done.fetch_add(1, Ordering::Relaxed);
                    queue.task_done().unwrap();
                }
                seen
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (queue, start) = (queue.clone(), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                for i in 0..PER_PRODUCER {
                    queue.put(p * PER_PRODUCER + i).unwrap();
                }
            })
        })
        .collect();
    for producer in producers {
        producer.join().unwrap();
    }

    queue.join();
    // The mutex orders every `task_done` before `join` returns, and each consumer counts before
    // its `task_done`.
    assert_eq!(done.load(Ordering::Relaxed), TOTAL);
    assert_eq!(queue.unfinished(), 0);
    assert!(queue.is_empty());

    queue.close();
    let mut count = vec![0u8; TOTAL];
    for consumer in consumers {
        for id in consumer.join().unwrap() {
            count[id] += 1;
        }
    }
    let wrong: Vec<_> = (0..TOTAL).filter(|&id| count[id] != 1).take(10).collect();
    assert!(wrong.is_empty(), "ids not received exactly once: {wrong:?}");
    assert_eq!(queue.task_done(), Err(TaskDoneError));
}

#[test]
fn join_blocks_until_the_last_task_done() {
    let queue = JoinableQueue::new(4);
    for n in 0..4 {
        queue.put(n).unwrap();
    }
    let worker = {
        let queue = queue.clone();
        thread::spawn(move || {
            for _ in 0..4 {
                queue.get().unwrap();
                thread::sleep(Duration::from_millis(5));
                queue.task_done().unwrap();
            }
        })
    };
    queue.join();
    assert_eq!(queue.unfinished(), 0);
    worker.join().unwrap();
}

#[derive(Debug, Clone)]
enum Op {
    Put(u16),
    TryPut(u16),
    TryGet,
    TaskDone,
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<u16>().prop_map(Op::Put),
        3 => any::<u16>().prop_map(Op::TryPut),
        4 => Just(Op::TryGet),
        3 => Just(Op::TaskDone),
        1 => Just(Op::Close),
    ]
}

/// The queue as a single thread sees it.
#[derive(Debug, Default)]
struct Model {
    items: VecDeque<u16>,
    in_progress: usize,
    closed: bool,
}

proptest! {
    #[test]
    fn matches_model(capacity in 1usize..5, ops in prop::collection::vec(op(), 0..64)) {
        let queue = JoinableQueue::new(capacity);
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Put(n) => {
                    // A full open queue would block a single thread forever: only put when the
                    // model says it will not wait.
                    if !model.closed && model.items.len() == capacity {
                        continue;
                    }
                    let got = queue.put(n).map_err(|e| e.into_inner());
                    if model.closed {
                        prop_assert_eq!(got, Err(n));
                    } else {
                        prop_assert_eq!(got, Ok(()));
                        model.items.push_back(n);
                    }
                }
                Op::TryPut(n) => {
                    let want = if model.closed {
                        Err(TryPutError::Closed(n))
                    } else if model.items.len() == capacity {
                        Err(TryPutError::Full(n))
                    } else {
                        model.items.push_back(n);
                        Ok(())
                    };
                    prop_assert_eq!(queue.try_put(n), want);
                }
                Op::TryGet => {
                    let want = match model.items.pop_front() {
                        Some(n) => {
                            model.in_progress += 1;
                            Ok(n)
                        }
                        None if model.closed => Err(TryGetError::Closed),
                        None => Err(TryGetError::Empty),
                    };
                    prop_assert_eq!(queue.try_get(), want);
                }
                Op::TaskDone => {
                    let want = if model.in_progress == 0 {
                        Err(TaskDoneError)
                    } else {
                        model.in_progress -= 1;
                        Ok(())
                    };
                    prop_assert_eq!(queue.task_done(), want);
                }
                Op::Close => {
                    model.closed = true;
                    queue.close();
                }
            }
            prop_assert_eq!(queue.len(), model.items.len());
            prop_assert_eq!(queue.is_empty(), model.items.is_empty());
            prop_assert_eq!(queue.is_full(), model.items.len() == capacity);
            prop_assert_eq!(queue.is_closed(), model.closed);
            prop_assert_eq!(queue.unfinished(), model.items.len() + model.in_progress);
            prop_assert_eq!(queue.join_timeout(Duration::ZERO), model.items.is_empty() && model.in_progress == 0);
        }
    }
}
