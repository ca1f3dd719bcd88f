//! The reference loop's own tests: ordering, timers, wakes from other threads, readiness,
//! many tasks, panics, and that it waits without spinning.

use std::cell::RefCell;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::*;

fn thread_cpu_time() -> Duration {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
}

#[test]
fn block_on_returns_the_output_and_joins_spawned_tasks() {
    let event_loop = EventLoop::new().unwrap();
    let sum = event_loop.block_on(async {
        let handles: Vec<_> = (1..=10u64).map(|i| spawn(async move { i * i })).collect();
        let mut sum = 0;
        for handle in handles {
            sum += handle.await.unwrap();
        }
        sum
    });
    assert_eq!(sum, 385);
    assert_eq!(event_loop.block_on(async { 7 }), 7);
}

#[test]
fn tasks_run_in_order_and_take_turns_at_each_await() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let event_loop = EventLoop::new().unwrap();
    event_loop.block_on({
        let log = Rc::clone(&log);
        async move {
            let tasks: Vec<_> = ["a", "b", "c"]
                .into_iter()
                .map(|name| {
                    let log = Rc::clone(&log);
                    spawn(async move {
                        for step in 0..3 {
                            log.borrow_mut().push(format!("{name}{step}"));
                            yield_now().await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        }
    });
    assert_eq!(
        log.borrow().join(" "),
        "a0 b0 c0 a1 b1 c1 a2 b2 c2",
        "one task at a time, each until it awaits, in the order they became ready"
    );
}

#[test]
fn timers_fire_in_deadline_order_and_never_early() {
    let fired = Rc::new(RefCell::new(Vec::new()));
    let event_loop = EventLoop::new().unwrap();
    event_loop.block_on({
        let fired = Rc::clone(&fired);
        async move {
            let start = Instant::now();
            let tasks: Vec<_> = [30u64, 10, 20, 10]
                .into_iter()
                .enumerate()
                .map(|(index, millis)| {
                    let fired = Rc::clone(&fired);
                    spawn(async move {
                        sleep(Duration::from_millis(millis)).await;
                        let elapsed = start.elapsed();
                        assert!(elapsed >= Duration::from_millis(millis), "{elapsed:?}");
                        fired.borrow_mut().push(index);
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        }
    });
    assert_eq!(*fired.borrow(), vec![1, 3, 2, 0]);
}

#[test]
fn a_waker_called_from_another_thread_wakes_the_blocked_loop() {
    let event_loop = EventLoop::new().unwrap();
    let start = Instant::now();
    let cpu = thread_cpu_time();
    let woken_after = event_loop.block_on(async {
        let mut handed_over = false;
        std::future::poll_fn(|cx| {
            if handed_over {
                return Poll::Ready(start.elapsed());
            }
            handed_over = true;
            let waker = cx.waker().clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(40));
                waker.wake();
            });
            Poll::Pending
        })
        .await
    });
    assert!(woken_after >= Duration::from_millis(40), "{woken_after:?}");
    assert!(woken_after < Duration::from_secs(5), "{woken_after:?}");
    let used = thread_cpu_time() - cpu;
    assert!(
        used < Duration::from_millis(20),
        "the loop blocked in epoll_wait: {used:?} of CPU in {woken_after:?}"
    );
}

#[test]
fn sleeping_uses_almost_no_cpu() {
    let event_loop = EventLoop::new().unwrap();
    let cpu = thread_cpu_time();
    let start = Instant::now();
    event_loop.block_on(sleep(Duration::from_millis(50)));
    let (wall, used) = (start.elapsed(), thread_cpu_time() - cpu);
    assert!(wall >= Duration::from_millis(50));
    assert!(
        used < Duration::from_millis(10),
        "{used:?} of CPU in {wall:?}"
    );
}

#[test]
fn readiness_on_a_socket_pair_carries_data_both_ways_and_reports_the_end() {
    let event_loop = EventLoop::new().unwrap();
    event_loop.block_on(async {
        let (left, right) = UnixStream::pair().unwrap();
        let left = AsyncFd::new(left.into()).unwrap();
        let right = AsyncFd::new(right.into()).unwrap();
        let echoer = spawn(async move {
            let mut buffer = [0u8; 5];
            right.read_exact(&mut buffer).await.unwrap();
            right.write_all(&buffer).await.unwrap();
            let mut rest = [0u8; 1];
            right.read_exact(&mut rest).await
        });
        sleep(Duration::from_millis(5)).await;
        left.write_all(b"hello").await.unwrap();
        let mut reply = [0u8; 5];
        left.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"hello");
        drop(left);
        let end = echoer.await.unwrap().unwrap_err();
        assert_eq!(end.kind(), std::io::ErrorKind::UnexpectedEof);
    });
}

#[test]
fn a_writer_waits_for_room_and_a_reader_makes_it() {
    const TOTAL: usize = 4 << 20;
    let event_loop = EventLoop::new().unwrap();
    event_loop.block_on(async {
        let (writer, reader) = UnixStream::pair().unwrap();
        let writer = AsyncFd::new(writer.into()).unwrap();
        let reader = AsyncFd::new(reader.into()).unwrap();
        let drained = spawn(async move {
            let mut buffer = vec![0u8; 64 << 10];
            let mut seen = 0;
            while seen < TOTAL {
                let chunk = (TOTAL - seen).min(buffer.len());
                reader.read_exact(&mut buffer[..chunk]).await.unwrap();
                assert!(buffer[..chunk].iter().all(|&b| b == 0xab));
                seen += chunk;
            }
            seen
        });
        writer.write_all(&vec![0xab; TOTAL]).await.unwrap();
        assert_eq!(drained.await.unwrap(), TOTAL);
    });
}

#[test]
fn ten_thousand_tasks_sleep_and_finish() {
    let event_loop = EventLoop::new().unwrap();
    let start = Instant::now();
    let finished = event_loop.block_on(async {
        let handles: Vec<_> = (0..10_000u64)
            .map(|i| {
                spawn(async move {
                    sleep(Duration::from_millis(1 + i % 5)).await;
                    yield_now().await;
                    1u64
                })
            })
            .collect();
        let mut finished = 0;
        for handle in handles {
            finished += handle.await.unwrap();
        }
        finished
    });
    assert_eq!(finished, 10_000);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_panicking_task_fails_its_handle_and_the_others_go_on() {
    let event_loop = EventLoop::new().unwrap();
    let (failure, survivor) = event_loop.block_on(async {
        let doomed = spawn(async {
            yield_now().await;
            panic!("deliberate panic in a task");
        });
        let survivor = spawn(async {
            sleep(Duration::from_millis(2)).await;
            "still here"
        });
        (doomed.await, survivor.await)
    });
    assert_eq!(
        failure,
        Err(TaskPanicked("deliberate panic in a task".to_owned()))
    );
    assert_eq!(survivor, Ok("still here"));
    assert_eq!(
        event_loop.block_on(async { spawn(async { 1 }).await }),
        Ok(1)
    );
}

#[test]
fn a_channel_carries_values_in_order_and_ends_with_its_senders() {
    let event_loop = EventLoop::new().unwrap();
    let received = event_loop.block_on(async {
        let (sender, mut receiver) = channel::<u32>();
        let second = sender.clone();
        spawn(async move {
            for value in 0..3 {
                sender.send(value).unwrap();
                yield_now().await;
            }
        });
        spawn(async move { second.send(99).unwrap() });
        let mut received = Vec::new();
        while let Some(value) = receiver.recv().await {
            received.push(value);
        }
        received
    });
    assert_eq!(received, vec![0, 99, 1, 2]);
}

#[test]
fn tasks_left_pending_are_dropped_with_the_loop() {
    let alive = Rc::new(());
    let event_loop = EventLoop::new().unwrap();
    event_loop.block_on({
        let alive = Rc::clone(&alive);
        async move {
            spawn(async move {
                let _held = alive;
                sleep(Duration::from_secs(3600)).await;
            });
            yield_now().await;
        }
    });
    assert_eq!(
        Rc::strong_count(&alive),
        2,
        "the task still waits in the loop"
    );
    drop(event_loop);
    assert_eq!(
        Rc::strong_count(&alive),
        1,
        "dropping the loop dropped the task"
    );
}

#[test]
fn a_task_ready_when_block_on_returns_runs_in_the_next_block_on() {
    let done = Rc::new(std::cell::Cell::new(false));
    let event_loop = EventLoop::new().unwrap();
    event_loop.block_on({
        let done = Rc::clone(&done);
        async move {
            let (sender, mut receiver) = channel::<()>();
            spawn(async move {
                // Wakes the main future, then queues itself behind it in the same turn.
                sender.send(()).unwrap();
                yield_now().await;
                done.set(true);
            });
            receiver.recv().await;
        }
    });
    assert!(
        !done.get(),
        "the task was still queued behind the finished main future"
    );
    event_loop.block_on(yield_now());
    assert!(done.get());
}

#[test]
#[should_panic(expected = "inside EventLoop::block_on")]
fn spawning_outside_a_running_loop_panics() {
    drop(spawn(async {}));
}

#[test]
#[should_panic(expected = "inside a running reference loop")]
fn block_on_inside_a_running_loop_panics() {
    let event_loop = EventLoop::new().unwrap();
    event_loop.block_on(async {
        EventLoop::new().unwrap().block_on(async {});
    });
}
