//! asyncio's idioms on tokio, through the public API: `triad::aio`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{expect, run_until};

use proptest::prelude::*;
use triad::TaskError;
use triad::aio::{self, AsyncJoinableQueue, GetError, PutError};

fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn gather_runs_tasks_in_parallel_on_a_multi_thread_runtime() {
    // Two tasks that each spin until both have arrived: only possible if they run at once.
    let rt = multi_thread(2);
    let arrived = Arc::new(AtomicUsize::new(0));
    let results = rt.block_on(aio::gather((0..2).map(|i| {
        let arrived = Arc::clone(&arrived);
        async move {
            arrived.fetch_add(1, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(10);
            while arrived.load(Ordering::SeqCst) < 2 {
                assert!(Instant::now() < deadline, "the tasks never ran together");
                std::hint::spin_loop();
            }
            i
        }
    })));
    assert_eq!(results, vec![Ok(0), Ok(1)]);
}

#[test]
fn map_bounded_reaches_but_never_exceeds_its_bound() {
    let rt = multi_thread(2);
    for concurrency in [1, 2, 5] {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let results = rt.block_on(aio::map_bounded(0..30u32, concurrency, |n| {
            let in_flight = Arc::clone(&in_flight);
            let peak = Arc::clone(&peak);
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2 + u64::from(n % 3))).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                n + 1
            }
        }));
        assert_eq!(peak.load(Ordering::SeqCst), concurrency);
        assert_eq!(results, (1..=30).map(Ok).collect::<Vec<_>>());
    }
}

#[test]
fn map_bounded_contains_panics() {
    let rt = multi_thread(2);
    let results = rt.block_on(aio::map_bounded(
        ["ok", "bad", "ok"],
        2,
        |page| async move {
            assert_ne!(page, "bad", "could not fetch {page}");
            page.len()
        },
    ));
    assert_eq!(results[0], Ok(2));
    assert!(
        matches!(&results[1], Err(TaskError::Panicked(m)) if m.contains("could not fetch bad"))
    );
    assert_eq!(results[2], Ok(2));
}

#[test]
fn to_thread_keeps_blocking_work_off_the_loop() {
    // On a one-thread loop, four blocking sleeps through to_thread overlap.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    run_until("four 100 ms sleeps overlap", || {
        let start = Instant::now();
        let results = rt.block_on(aio::gather((0..4).map(|i| {
            aio::to_thread(move || {
                std::thread::sleep(Duration::from_millis(100));
                i
            })
        })));
        let elapsed = start.elapsed();
        assert_eq!(
            results,
            (0..4)
                .map(|i| Ok(Ok(i)))
                .collect::<Vec<Result<Result<i32, TaskError>, TaskError>>>()
        );
        expect(elapsed < Duration::from_millis(350), || {
            format!("{elapsed:?}")
        })
    });
}

#[tokio::test(start_paused = true)]
async fn timeout_around_get_loses_no_item() {
    let queue = Arc::new(AsyncJoinableQueue::new(1));
    let producer = {
        let queue = Arc::clone(&queue);
        tokio::spawn(async move {
            for n in 0..5 {
                tokio::time::sleep(Duration::from_millis(35)).await;
                queue.put(n).await.unwrap();
            }
            queue.close();
        })
    };
    let mut got = Vec::new();
    let mut gave_up = 0;
    loop {
        match aio::timeout(Duration::from_millis(10), queue.get()).await {
            Ok(Ok(n)) => {
                got.push(n);
                queue.task_done().unwrap();
            }
            Ok(Err(GetError::Closed)) => break,
            Err(elapsed) => {
                assert_eq!(elapsed.after, Duration::from_millis(10));
                gave_up += 1;
            }
        }
    }
    producer.await.unwrap();
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    assert!(gave_up >= 10, "{gave_up}");
}

#[test]
fn queue_pipeline_with_many_producers_and_consumers() {
    let rt = multi_thread(2);
    rt.block_on(async {
        let queue = Arc::new(AsyncJoinableQueue::new(4));
        let consumed = Arc::new(AtomicUsize::new(0));
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let queue = Arc::clone(&queue);
                let consumed = Arc::clone(&consumed);
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    while let Ok(n) = queue.get().await {
                        consumed.fetch_add(n, Ordering::SeqCst);
                        mine.push(n);
                        queue.task_done().unwrap();
                    }
                    mine
                })
            })
            .collect();
        let producers = aio::gather((0..4).map(|p| {
            let queue = Arc::clone(&queue);
            async move {
                for n in 0..100 {
                    queue.put(p * 100 + n).await.unwrap();
                }
            }
        }));
        assert!(producers.await.into_iter().all(|r| r.is_ok()));
        queue.join().await;
        assert_eq!(consumed.load(Ordering::SeqCst), (0..400).sum::<usize>());
        queue.close();
        assert_eq!(queue.put(1).await, Err(PutError::Closed(1)));
        let mut all: Vec<usize> = Vec::new();
        for consumer in consumers {
            all.extend(consumer.await.unwrap());
        }
        all.sort_unstable();
        assert_eq!(all, (0..400).collect::<Vec<_>>());
    });
}

/// How the consumer takes one item.
#[derive(Debug, Clone, Copy)]
enum Take {
    /// `get().await`.
    Get,
    /// `timeout(ms, get())`, retried until it gets one: gets dropped while waiting.
    Impatient(u64),
    /// `try_get()`, sleeping a little while empty (a yield loop would keep a paused clock
    /// from advancing).
    Try,
}

fn take() -> impl Strategy<Value = Take> {
    prop_oneof![
        Just(Take::Get),
        (1..3u64).prop_map(Take::Impatient),
        Just(Take::Try),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// One producer and one consumer task, each pausing at random (yields and short sleeps), the
    /// consumer taking items in random ways (some cancelled mid-wait): every item arrives exactly
    /// once, in the order it was put, and `join` returns once all are done.
    #[test]
    fn queue_delivers_every_item_once_in_fifo_order(
        capacity in 1..5usize,
        producer_pauses in prop::collection::vec(0..4u8, 0..60),
        consumer_takes in prop::collection::vec((take(), 0..4u8), 1..60),
        multi_thread_runtime in any::<bool>(),
    ) {
        let rt = if multi_thread_runtime {
            multi_thread(2)
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap()
        };
        let count = producer_pauses.len();
        let received = rt.block_on(async move {
            let queue = Arc::new(AsyncJoinableQueue::new(capacity));
            let producer = {
                let queue = Arc::clone(&queue);
                tokio::spawn(async move {
                    for (n, pause) in producer_pauses.into_iter().enumerate() {
                        pause_for(pause).await;
                        queue.put(n).await.unwrap();
                    }
                    queue.join().await;
                    queue.close();
                })
            };
            let consumer = {
                let queue = Arc::clone(&queue);
                tokio::spawn(async move {
                    let mut received = Vec::new();
                    for step in 0.. {
                        let (how, pause) = consumer_takes[step % consumer_takes.len()];
                        pause_for(pause).await;
                        let item = match how {
                            Take::Get => queue.get().await,
                            Take::Impatient(ms) => loop {
                                let wait = Duration::from_millis(ms);
                                if let Ok(item) = aio::timeout(wait, queue.get()).await {
                                    break item;
                                }
                            },
                            Take::Try => loop {
                                match queue.try_get() {
                                    Ok(item) => break Ok(item),
                                    Err(aio::TryGetError::Closed) => break Err(GetError::Closed),
                                    Err(aio::TryGetError::Empty) => pause_for(2).await,
                                }
                            },
                        };
                        match item {
                            Ok(n) => {
                                received.push(n);
                                queue.task_done().unwrap();
                            }
                            Err(GetError::Closed) => break,
                        }
                    }
                    received
                })
            };
            producer.await.unwrap();
            consumer.await.unwrap()
        });
        prop_assert_eq!(received, (0..count).collect::<Vec<_>>());
    }
}

async fn pause_for(pause: u8) {
    match pause {
        0 => {}
        1 => tokio::task::yield_now().await,
        2 => tokio::time::sleep(Duration::from_micros(300)).await,
        _ => tokio::time::sleep(Duration::from_millis(1)).await,
    }
}
