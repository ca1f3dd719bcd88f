//! asyncio's idioms on tokio: [`gather`], [`map_bounded`] (the crawler's `async with semaphore`),
//! [`AsyncJoinableQueue`] (`asyncio.Queue`), [`to_thread`] and [`timeout`] (`asyncio.wait_for`).
//!
//! Each function is a small layer over tokio that keeps the Python idiom's shape and makes its
//! failure modes explicit: a coroutine that panics does not take its siblings down, it becomes
//! that slot's [`TaskError::Panicked`], as `gather(..., return_exceptions=True)` would return the
//! exception in place. Futures handed to [`gather`] and [`map_bounded`] are spawned as tokio
//! tasks (as asyncio wraps coroutines in tasks), so they run concurrently, and in parallel on a
//! multi-thread runtime; dropping the gathering future aborts the tasks it spawned, as cancelling
//! `gather` cancels its children.
//!
//! Everything here needs a tokio runtime with the time driver for [`timeout`] and the blocking
//! pool for [`to_thread`]; both are on in `Runtime::new()` and `#[tokio::main]`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::{Future, IntoFuture};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::{JoinError, JoinHandle, JoinSet};

use crate::error::TaskError;
pub use crate::queue::{GetError, PutError, TaskDoneError, TryGetError, TryPutError};

/// A finished tokio task's failure as a [`TaskError`]: its panic, or its cancellation.
fn task_error(error: JoinError) -> TaskError {
    if error.is_panic() {
        TaskError::from_panic(error.into_panic())
    } else {
        TaskError::Cancelled
    }
}

/// Join handles that abort their tasks when dropped, so that dropping [`gather`]'s future
/// cancels the children it spawned (finished tasks ignore the abort).
struct AbortOnDrop<T>(Vec<JoinHandle<T>>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        for handle in &self.0 {
            handle.abort();
        }
    }
}

/// Runs every future as its own tokio task and returns their outputs in input order, like
/// `asyncio.gather(*coros, return_exceptions=True)`.
///
/// All futures are spawned before the first is awaited, so they run concurrently (and in
/// parallel on a multi-thread runtime). A future that panics yields [`TaskError::Panicked`] in
/// its slot; one that was aborted (or whose runtime shut down) yields [`TaskError::Cancelled`].
/// Dropping the returned future aborts the tasks that have not finished.
///
/// # Panics
///
/// If called outside a tokio runtime (`tokio::spawn` needs one).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use triad::{TaskError, aio};
///
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let results = rt.block_on(aio::gather((1..=3u64).map(|n| async move {
///     tokio::time::sleep(Duration::from_millis(30 - 10 * n)).await;
///     if n == 2 { panic!("two") }
///     n * 10
/// })));
/// assert_eq!(results, vec![Ok(10), Err(TaskError::Panicked("two".into())), Ok(30)]);
/// ```
pub async fn gather<I, F>(futures: I) -> Vec<Result<F::Output, TaskError>>
where
    I: IntoIterator<Item = F>,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut handles = AbortOnDrop(futures.into_iter().map(tokio::spawn).collect());
    let mut results = Vec::with_capacity(handles.0.len());
    for handle in &mut handles.0 {
        results.push(handle.await.map_err(task_error));
    }
    results
}

/// Runs `f(input)` for every input with at most `concurrency` futures in flight, and returns the
/// outputs in input order — the crawler's `async with semaphore: ...` around each fetch.
///
/// Instead of spawning a task per input that first waits on a semaphore, this keeps a
/// [`JoinSet`] capped at `concurrency` tasks: an input is pulled from the iterator, and `f`
/// called on it, only when a slot is free, so a long or lazy input iterator is consumed as the
/// work proceeds and never materialised as waiting tasks. The effect is the semaphore's: never
/// more than `concurrency` in flight, and exactly `concurrency` while enough inputs remain.
///
/// `f` runs on the caller's task (it only builds the future); the future runs as a tokio task.
/// A future that panics yields [`TaskError::Panicked`] in its slot (a panic in `f` itself
/// propagates to the caller). A `concurrency` of 0 is treated as 1. Dropping the returned future
/// aborts the tasks in flight.
///
/// # Panics
///
/// If called outside a tokio runtime, or if `f` panics.
///
/// # Examples
///
/// ```
/// use triad::aio;
///
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let lengths = rt.block_on(aio::map_bounded(["a", "bb", "ccc"], 2, |page| async move {
///     tokio::task::yield_now().await; // a fetch would go here
///     page.len()
/// }));
/// assert_eq!(lengths, vec![Ok(1), Ok(2), Ok(3)]);
/// ```
pub async fn map_bounded<I, F, Fut>(
    inputs: I,
    concurrency: usize,
    mut f: F,
) -> Vec<Result<Fut::Output, TaskError>>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let concurrency = concurrency.max(1);
    let mut inputs = inputs.into_iter().fuse();
    let mut in_flight = JoinSet::new();
    // Task id -> input index; a JoinError carries the id, so a panic still finds its slot.
    let mut index_of = HashMap::new();
    let mut slots: Vec<Option<Result<Fut::Output, TaskError>>> = Vec::new();
    loop {
        while in_flight.len() < concurrency {
            let Some(input) = inputs.next() else { break };
            let abort = in_flight.spawn(f(input));
            index_of.insert(abort.id(), slots.len());
            slots.push(None);
        }
        let Some(joined) = in_flight.join_next_with_id().await else {
            break;
        };
        let (id, result) = match joined {
            Ok((id, output)) => (id, Ok(output)),
            Err(error) => (error.id(), Err(task_error(error))),
        };
        let index = index_of
            .remove(&id)
            .expect("every spawned task has an index");
        slots[index] = Some(result);
    }
    slots
        .into_iter()
        .map(|slot| slot.expect("every input yields exactly one result"))
        .collect()
}

/// Runs the blocking function `f` on tokio's blocking thread pool and awaits its result, like
/// `asyncio.to_thread(f)`.
///
/// Use it for anything that would block the event loop: file IO, a blocking client, a CPU-heavy
/// step. A panic in `f` yields [`TaskError::Panicked`]. As in Python, the thread cannot be
/// interrupted: dropping the returned future stops waiting, but `f` runs to completion.
///
/// # Panics
///
/// If called outside a tokio runtime.
///
/// # Examples
///
/// ```
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let sum = rt.block_on(triad::aio::to_thread(|| (1..=100u64).sum::<u64>()));
/// assert_eq!(sum, Ok(5050));
/// ```
pub async fn to_thread<F, T>(f: F) -> Result<T, TaskError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(task_error)
}

/// A [`timeout`] ran out before its future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {after:?}: the operation did not finish in time and was cancelled")]
pub struct Elapsed {
    /// The time limit that ran out.
    pub after: Duration,
}

/// Awaits `future` for at most `duration`, like `asyncio.wait_for(aw, timeout)`.
///
/// A thin wrapper over [`tokio::time::timeout`] whose error says how long it waited. When time
/// runs out the future is dropped, which is how tokio cancels it (asyncio raises
/// `CancelledError` inside the coroutine instead).
///
/// # Panics
///
/// If polled outside a tokio runtime with the time driver enabled.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use triad::aio;
///
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     assert_eq!(aio::timeout(Duration::from_secs(1), async { 7 }).await, Ok(7));
///     let slow = tokio::time::sleep(Duration::from_secs(60));
///     let err = aio::timeout(Duration::from_millis(10), slow).await.unwrap_err();
///     assert_eq!(err.after, Duration::from_millis(10));
/// });
/// ```
pub async fn timeout<F: IntoFuture>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    tokio::time::timeout(duration, future)
        .await
        .map_err(|_| Elapsed { after: duration })
}

/// What the queue's mutex guards.
struct State<T> {
    items: VecDeque<T>,
    /// Items taken by `get` and not yet marked [`task_done`](AsyncJoinableQueue::task_done).
    /// Counting taken items (not put ones) means a `task_done` for an item still queued is
    /// refused, so `join` can never return while an item waits; the thread queue does the same.
    in_progress: usize,
    closed: bool,
}

impl<T> State<T> {
    /// Items put and not yet marked done: those queued plus those in progress.
    fn unfinished(&self) -> usize {
        self.items.len() + self.in_progress
    }
}

/// A bounded FIFO queue for tasks, with `task_done` / `join`: Python's `asyncio.Queue`.
///
/// Producers [`put`](Self::put) (waiting while the queue is full, which is the backpressure),
/// consumers [`get`](Self::get) (waiting while it is empty) and call
/// [`task_done`](Self::task_done) once each item is handled; [`join`](Self::join) waits until
/// every item ever put has been handled. [`close`](Self::close) is `Queue.shutdown()`: waiters
/// wake, puts fail and hand their item back, gets drain what is left and then fail.
/// Share it between tasks with an `Arc`.
///
/// **Cancel safety.** [`get`](Self::get) is cancel-safe: an item is taken out only in the same
/// synchronous step that returns it, so a `get` dropped while waiting (in `select!` or under
/// [`timeout`]) loses nothing. [`put`](Self::put) is cancel-safe in that a dropped `put` did
/// not enqueue its item, but the item is dropped with it; use [`try_put`](Self::try_put) to keep
/// it. [`join`](Self::join) is cancel-safe.
///
/// **How it works.** The state (items, unfinished count, closed flag) lives behind a
/// `std::sync::Mutex`, and three [`tokio::sync::Notify`]s wake waiters: "not empty", "not full"
/// and "all done". A std mutex rather than tokio's: the lock is only ever held for a few
/// pointer operations and never across an `.await`, so it cannot block the event loop for any
/// noticeable time, it is cheaper than an async mutex, and it lets `try_put`, `try_get`,
/// `task_done` and `close` be plain synchronous calls usable from any thread. A waiter
/// registers with its `Notify` (`Notified::enable`) *before* checking the state, so a wake-up
/// between the check and the wait cannot be missed; a `notify_one` received by a waiter that is
/// then dropped is passed on by tokio to the next waiter.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use triad::aio::AsyncJoinableQueue;
///
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     let queue = Arc::new(AsyncJoinableQueue::new(2));
///     let consumer = {
///         let queue = Arc::clone(&queue);
///         tokio::spawn(async move {
///             let mut sum = 0;
///             while let Ok(n) = queue.get().await {
///                 sum += n;
///                 queue.task_done().unwrap();
///             }
///             sum
///         })
///     };
///     for n in 1..=10 {
///         queue.put(n).await.unwrap(); // waits while 2 items are queued
///     }
///     queue.join().await; // every item handled
///     queue.close();
///     assert_eq!(consumer.await.unwrap(), 55);
/// });
/// ```
pub struct AsyncJoinableQueue<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    not_empty: Notify,
    not_full: Notify,
    all_done: Notify,
}

impl<T> AsyncJoinableQueue<T> {
    /// A queue that holds at most `capacity` items.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0 (a queue that can hold nothing would block every `put`).
    pub fn new(capacity: usize) -> Self {
        assert!(
            capacity > 0,
            "an AsyncJoinableQueue needs a capacity of at least 1"
        );
        AsyncJoinableQueue {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(capacity.min(1024)),
                in_progress: 0,
                closed: false,
            }),
            capacity,
            not_empty: Notify::new(),
            not_full: Notify::new(),
            all_done: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // No code that can panic runs under the lock, so poisoning cannot leave a broken state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `item` at the back, waiting while the queue is full.
    ///
    /// Fails only when the queue is closed (before or while waiting), handing the item back.
    pub async fn put(&self, item: T) -> Result<(), PutError<T>> {
        let mut item = item;
        loop {
            let notified = self.not_full.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            match self.try_put(item) {
                Ok(()) => return Ok(()),
                Err(TryPutError::Closed(back)) => return Err(PutError::Closed(back)),
                Err(TryPutError::Full(back)) => item = back,
            }
            notified.await;
        }
    }

    /// Puts `item` at the back if there is room now.
    pub fn try_put(&self, item: T) -> Result<(), TryPutError<T>> {
        {
            let mut state = self.lock();
            if state.closed {
                return Err(TryPutError::Closed(item));
            }
            if state.items.len() >= self.capacity {
                return Err(TryPutError::Full(item));
            }
            state.items.push_back(item);
        }
        self.not_empty.notify_one();
        Ok(())
    }

    /// Takes the item at the front, waiting while the queue is empty.
    ///
    /// Fails only when the queue is closed and empty. Cancel-safe (see the type's docs).
    pub async fn get(&self) -> Result<T, GetError> {
        loop {
            let notified = self.not_empty.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            match self.try_get() {
                Ok(item) => return Ok(item),
                Err(TryGetError::Closed) => return Err(GetError::Closed),
                Err(TryGetError::Empty) => {}
            }
            notified.await;
        }
    }

    /// Takes the item at the front if there is one now.
    pub fn try_get(&self) -> Result<T, TryGetError> {
        let item = {
            let mut state = self.lock();
            match state.items.pop_front() {
                Some(item) => {
                    state.in_progress += 1;
                    item
                }
                None if state.closed => return Err(TryGetError::Closed),
                None => return Err(TryGetError::Empty),
            }
        };
        self.not_full.notify_one();
        Ok(item)
    }

    /// Marks one item taken with `get` as handled; [`join`](Self::join) returns when every item
    /// put has been marked.
    ///
    /// Fails, changing nothing, if called more times than items were taken.
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        let all_done = {
            let mut state = self.lock();
            if state.in_progress == 0 {
                return Err(TaskDoneError);
            }
            state.in_progress -= 1;
            state.unfinished() == 0
        };
        if all_done {
            self.all_done.notify_waiters();
        }
        Ok(())
    }

    /// Waits until every item put so far has been marked [`task_done`](Self::task_done).
    ///
    /// Returns at once if nothing is unfinished. Closing the queue does not end a `join`: it
    /// still waits for the items already put to be handled.
    pub async fn join(&self) {
        loop {
            let notified = self.all_done.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.lock().unfinished() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Closes the queue: waiting and future `put`s fail with their item, `get`s take the items
    /// left and then fail. Closing twice does nothing more.
    pub fn close(&self) {
        self.lock().closed = true;
        self.not_empty.notify_waiters();
        self.not_full.notify_waiters();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// How many items are queued now.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether no item is queued now.
    pub fn is_empty(&self) -> bool {
        self.lock().items.is_empty()
    }

    /// The most items the queue holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many items were put and not yet marked [`task_done`](Self::task_done).
    pub fn unfinished(&self) -> usize {
        self.lock().unfinished()
    }
}

impl<T> fmt::Debug for AsyncJoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("AsyncJoinableQueue")
            .field("len", &state.items.len())
            .field("capacity", &self.capacity)
            .field("unfinished", &state.unfinished())
            .field("closed", &state.closed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn gather_keeps_input_order_and_contains_panics() {
        let results = gather(vec![
            Box::pin(async { 1 }) as std::pin::Pin<Box<dyn Future<Output = i32> + Send>>,
            Box::pin(async { panic!("second") }),
            Box::pin(async { 3 }),
        ])
        .await;
        assert_eq!(
            results,
            vec![Ok(1), Err(TaskError::Panicked("second".into())), Ok(3)]
        );
        let empty: Vec<Result<(), TaskError>> = gather(Vec::<std::future::Ready<()>>::new()).await;
        assert!(empty.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn gather_runs_concurrently() {
        let start = tokio::time::Instant::now();
        let results = gather((0..10).map(|i| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            i
        }))
        .await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert_eq!(
            results.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_gather_aborts_its_tasks() {
        let finished = Arc::new(AtomicUsize::new(0));
        let futures = (0..3).map(|_| {
            let finished = Arc::clone(&finished);
            async move {
                tokio::time::sleep(Duration::from_secs(10)).await;
                finished.fetch_add(1, Ordering::SeqCst);
            }
        });
        assert!(
            timeout(Duration::from_secs(1), gather(futures))
                .await
                .is_err()
        );
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(finished.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn aborted_task_is_cancelled() {
        let handle = tokio::spawn(std::future::pending::<()>());
        handle.abort();
        assert_eq!(handle.await.map_err(task_error), Err(TaskError::Cancelled));
    }

    #[tokio::test(start_paused = true)]
    async fn map_bounded_caps_in_flight_and_keeps_order() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let results = map_bounded(0..20u64, 3, |n| {
            let in_flight = Arc::clone(&in_flight);
            let peak = Arc::clone(&peak);
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                // Uneven durations so tasks finish out of order.
                tokio::time::sleep(Duration::from_millis(10 * (20 - n))).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                if n == 7 {
                    panic!("seven");
                }
                n * 2
            }
        })
        .await;
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        for (n, result) in results.into_iter().enumerate() {
            if n == 7 {
                assert_eq!(result, Err(TaskError::Panicked("seven".into())));
            } else {
                assert_eq!(result, Ok(n as u64 * 2));
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn map_bounded_pulls_inputs_lazily() {
        let pulled = Arc::new(AtomicUsize::new(0));
        let inputs = {
            let pulled = Arc::clone(&pulled);
            (0..100).inspect(move |_| {
                pulled.fetch_add(1, Ordering::SeqCst);
            })
        };
        let run = map_bounded(inputs, 4, |n| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            n
        });
        // After 1.5 s only the first wave (4) and the second (4) can have been pulled.
        assert!(timeout(Duration::from_millis(1500), run).await.is_err());
        assert_eq!(pulled.load(Ordering::SeqCst), 8);
    }

    #[tokio::test]
    async fn map_bounded_zero_concurrency_means_one() {
        let results = map_bounded([1, 2], 0, |n| async move { n }).await;
        assert_eq!(results, vec![Ok(1), Ok(2)]);
    }

    #[tokio::test]
    async fn to_thread_runs_off_the_loop_and_contains_panics() {
        let loop_thread = std::thread::current().id();
        let ran_on = to_thread(|| std::thread::current().id()).await.unwrap();
        assert_ne!(ran_on, loop_thread);
        let failed = to_thread(|| -> u8 { panic!("blocking boom") }).await;
        assert_eq!(failed, Err(TaskError::Panicked("blocking boom".into())));
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_reports_its_limit() {
        let limit = Duration::from_millis(250);
        let err = timeout(limit, std::future::pending::<()>())
            .await
            .unwrap_err();
        assert_eq!(err, Elapsed { after: limit });
        assert!(err.to_string().contains("timed out after 250ms"), "{err}");
        assert_eq!(timeout(limit, async { "done" }).await, Ok("done"));
    }

    #[test]
    fn queue_try_operations() {
        let queue = AsyncJoinableQueue::new(2);
        assert_eq!(queue.try_get(), Err(TryGetError::Empty));
        queue.try_put('a').unwrap();
        queue.try_put('b').unwrap();
        assert_eq!(queue.try_put('c'), Err(TryPutError::Full('c')));
        assert_eq!((queue.len(), queue.unfinished()), (2, 2));
        assert_eq!(queue.try_get(), Ok('a'));
        queue.task_done().unwrap();
        assert_eq!(queue.unfinished(), 1);
        // 'b' is queued but not taken: marking it done would let `join` return early.
        assert_eq!(queue.task_done(), Err(TaskDoneError));
        queue.close();
        assert_eq!(queue.try_put('d').unwrap_err().into_inner(), 'd');
        assert_eq!(queue.try_get(), Ok('b'));
        assert_eq!(queue.try_get(), Err(TryGetError::Closed));
        queue.task_done().unwrap();
        assert_eq!(queue.task_done(), Err(TaskDoneError));
        assert_eq!(queue.unfinished(), 0);
        assert!(format!("{queue:?}").contains("closed: true"));
    }

    #[test]
    fn errors_need_no_debug_items() {
        struct Opaque;
        fn is_error<E: std::error::Error + Send + Sync + 'static>() {}
        is_error::<PutError<Opaque>>();
        is_error::<TryPutError<Opaque>>();
        assert_eq!(format!("{:?}", TryPutError::Full(Opaque)), "Full(..)");
        assert_eq!(
            PutError::Closed(Opaque).to_string(),
            "put on a closed queue"
        );
    }

    #[test]
    #[should_panic(expected = "capacity of at least 1")]
    fn queue_rejects_zero_capacity() {
        let _ = AsyncJoinableQueue::<()>::new(0);
    }

    #[tokio::test(start_paused = true)]
    async fn put_waits_while_full() {
        let queue = Arc::new(AsyncJoinableQueue::new(1));
        queue.put(1).await.unwrap();
        assert!(timeout(Duration::from_secs(1), queue.put(2)).await.is_err());
        let putter = {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move { queue.put(3).await })
        };
        tokio::task::yield_now().await;
        assert!(!putter.is_finished());
        assert_eq!(queue.get().await, Ok(1));
        putter.await.unwrap().unwrap();
        assert_eq!(queue.try_get(), Ok(3));
    }

    #[tokio::test(start_paused = true)]
    async fn close_wakes_waiters() {
        let queue = Arc::new(AsyncJoinableQueue::<u8>::new(1));
        let getter = {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move { queue.get().await })
        };
        queue.put(1).await.unwrap();
        assert_eq!(getter.await.unwrap(), Ok(1));
        queue.put(2).await.unwrap();
        let putter = {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move { queue.put(3).await })
        };
        tokio::task::yield_now().await;
        queue.close();
        assert_eq!(putter.await.unwrap(), Err(PutError::Closed(3)));
        assert_eq!(queue.get().await, Ok(2));
        assert_eq!(queue.get().await, Err(GetError::Closed));
        let waiting_getter = {
            let queue = Arc::new(AsyncJoinableQueue::<u8>::new(1));
            let inner = Arc::clone(&queue);
            let handle = tokio::spawn(async move { inner.get().await });
            tokio::task::yield_now().await;
            queue.close();
            handle
        };
        assert_eq!(waiting_getter.await.unwrap(), Err(GetError::Closed));
    }

    #[tokio::test(start_paused = true)]
    async fn join_waits_for_task_done() {
        let queue = Arc::new(AsyncJoinableQueue::new(4));
        queue.join().await; // nothing unfinished
        for n in 0..3 {
            queue.put(n).await.unwrap();
        }
        let worker = {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move {
                for _ in 0..3 {
                    queue.get().await.unwrap();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    queue.task_done().unwrap();
                }
            })
        };
        let start = tokio::time::Instant::now();
        queue.join().await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        worker.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn get_dropped_by_timeout_loses_nothing() {
        let queue = Arc::new(AsyncJoinableQueue::new(4));
        // Two gets give up while waiting.
        for _ in 0..2 {
            assert!(
                timeout(Duration::from_millis(10), queue.get())
                    .await
                    .is_err()
            );
        }
        let (first, second) = {
            let a = Arc::clone(&queue);
            let b = Arc::clone(&queue);
            (
                tokio::spawn(async move { timeout(Duration::from_secs(5), a.get()).await }),
                tokio::spawn(async move { b.get().await }),
            )
        };
        tokio::task::yield_now().await;
        // Notify the first waiter, then cancel it before it runs: the wake-up must pass on.
        queue.try_put(1).unwrap();
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        assert_eq!(second.await.unwrap(), Ok(1));
        queue.try_put(2).unwrap();
        assert_eq!(queue.get().await, Ok(2));
        assert!(queue.is_empty());
    }
}
