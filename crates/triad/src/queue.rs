//! A bounded joinable queue for threads: the seed's producer-consumer queue.
//!
//! [`JoinableQueue`] is the Rust counterpart of Python's `queue.Queue` as the seed's
//! producer-consumer uses it. Producers [`put`](JoinableQueue::put) items, waiting while the queue
//! is full (that wait is the backpressure); consumers [`get`](JoinableQueue::get) them, waiting
//! while it is empty, and call [`task_done`](JoinableQueue::task_done) once per item they finish;
//! [`join`](JoinableQueue::join) waits until every item put has been finished. Where Python code
//! puts a sentinel per consumer to stop them, this queue has [`close`](JoinableQueue::close): it
//! wakes every waiting thread, refuses new items (handing them back), and lets consumers drain
//! what is left before `get` reports [`GetError::Closed`].
//!
//! It works as CPython's `queue.py` does: one mutex around a `VecDeque` and three condition
//! variables, `not_empty`, `not_full` and `all_done`. For a plain channel without
//! `task_done`/`join`, crossbeam-channel is faster. Under `--cfg triad_loom` the mutex and condition
//! variables are loom's, so `tests/loom_queue.rs` can check every interleaving of small models;
//! the `*_timeout` methods do not exist there, because loom does not model time (its
//! `Condvar::wait_timeout` never times out).

use std::collections::VecDeque;
use std::fmt;
use std::sync::PoisonError;
#[cfg(not(triad_loom))]
use std::time::{Duration, Instant};

use self::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The synchronisation primitives, swappable for loom's as crossbeam does.
mod sync {
    #[cfg(triad_loom)]
    pub(super) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
    #[cfg(not(triad_loom))]
    pub(super) use std::sync::{Arc, Condvar, Mutex, MutexGuard};
}

/// A bounded multi-producer multi-consumer FIFO queue with Python's `task_done` / `join`.
///
/// Cloning is cheap and gives another handle to the same queue (the state sits behind an
/// `Arc`), so hand each thread its own clone, as with crossbeam's channels.
/// The queue is never closed implicitly: dropping handles does not close it; call
/// [`close`](Self::close).
///
/// `unfinished()` counts the items put and not yet matched by a `task_done`: those still queued
/// plus those taken by `get` and still being worked on. `task_done` is accepted only for an item
/// already taken (see [`TaskDoneError`]).
///
/// # Examples
///
/// Two consumer threads sum what the producer puts; `join` returns once each item has been
/// marked done, and `close` then lets the consumers leave their loops.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::thread;
///
/// use triad::JoinableQueue;
///
/// let queue = JoinableQueue::new(4);
/// let total = Arc::new(AtomicU64::new(0));
/// let consumers: Vec<_> = (0..2)
///     .map(|_| {
///         let (queue, total) = (queue.clone(), Arc::clone(&total));
///         thread::spawn(move || {
///             while let Ok(n) = queue.get() {
///                 total.fetch_add(n, Ordering::Relaxed);
///                 queue.task_done().unwrap();
///             }
///         })
///     })
///     .collect();
///
/// for n in 1..=100 {
///     queue.put(n).unwrap(); // waits while 4 items are queued
/// }
/// queue.join(); // every item has been taken and marked done
/// assert_eq!(total.load(Ordering::Relaxed), 5050);
///
/// queue.close(); // consumers' `get` now returns `Err(GetError::Closed)`
/// for consumer in consumers {
///     consumer.join().unwrap();
/// }
/// assert_eq!(queue.put(101), Err(triad::PutError::Closed(101)));
/// ```
pub struct JoinableQueue<T> {
    inner: Arc<Inner<T>>,
}

/// What every handle shares.
struct Inner<T> {
    /// All mutable state, under one lock so that each condition is checked and changed
    /// atomically with respect to the waits on it.
    state: Mutex<State<T>>,
    /// The most items `state.items` may hold; at least 1 (a 0 would make every `put` wait
    /// forever). Immutable, so it lives outside the lock.
    capacity: usize,
    /// Signalled after an item is pushed (one getter per item) and on close (all getters).
    not_empty: Condvar,
    /// Signalled after an item is popped (one putter per freed slot) and on close (all putters).
    not_full: Condvar,
    /// Signalled (all joiners) when `unfinished()` drops to zero.
    all_done: Condvar,
}

/// The queue proper. Each `*_waiting` counter is incremented under the lock just before a wait
/// on its condition variable and decremented right after it, so a thread that changes the state
/// under the lock knows whether anyone can be waiting and skips the (system-call) notify when
/// no one is. A waiter always re-checks its condition before it looks at its deadline, so a
/// notification sent to one that is timing out is never lost: it takes the item or the slot.
struct State<T> {
    /// The queued items, oldest first. Invariant: `items.len() <= capacity`.
    items: VecDeque<T>,
    /// Items taken by a `get` whose `task_done` has not come yet. Python keeps a single
    /// `unfinished_tasks` counter (put minus done); we keep this part of it apart from
    /// `items.len()` so that `task_done` can refuse a call that no `get` accounts for, and so
    /// `items.len() + in_progress` is always the unfinished count and never underflows.
    in_progress: usize,
    /// Set once by `close` and never cleared: no item is accepted after it, and getters stop
    /// waiting once `items` is empty.
    closed: bool,
    /// Threads waiting on `not_empty`.
    getters_waiting: usize,
    /// Threads waiting on `not_full`.
    putters_waiting: usize,
    /// Threads waiting on `all_done`.
    joiners_waiting: usize,
}

impl<T> State<T> {
    fn unfinished(&self) -> usize {
        self.items.len() + self.in_progress
    }
}

/// How long an operation may wait for its condition.
#[derive(Clone, Copy)]
enum Block {
    /// Not at all: the `try_*` methods.
    No,
    /// As long as it takes.
    Forever,
    /// Until this instant.
    #[cfg(not(triad_loom))]
    Until(Instant),
}

impl Block {
    #[cfg(not(triad_loom))]
    fn after(timeout: Duration) -> Self {
        // A timeout too long to represent is as good as none.
        Instant::now()
            .checked_add(timeout)
            .map_or(Block::Forever, Block::Until)
    }
}

/// Why a private `put_with` / `get_with` gave up.
enum Stop {
    /// `Block::No`, and the condition did not hold.
    WouldBlock,
    /// The deadline passed.
    #[cfg_attr(triad_loom, allow(dead_code))] // only the `*_timeout` methods have deadlines
    Timeout,
    /// The queue is closed.
    Closed,
}

/// Waits once on `condvar`, counted in the counter that `waiting` selects. Returns the guard
/// again, or the reason not to wait: `Stop::WouldBlock` for `Block::No`, `Stop::Timeout` once the
/// deadline has passed. The caller re-checks its condition after every return (spurious wake-ups
/// and other threads getting there first are both possible).
fn wait_once<'a, T>(
    condvar: &Condvar,
    mut state: MutexGuard<'a, State<T>>,
    block: Block,
    waiting: fn(&mut State<T>) -> &mut usize,
) -> Result<MutexGuard<'a, State<T>>, Stop> {
    match block {
        Block::No => Err(Stop::WouldBlock),
        Block::Forever => {
            *waiting(&mut state) += 1;
            let mut state = condvar.wait(state).unwrap_or_else(PoisonError::into_inner);
            *waiting(&mut state) -= 1;
            Ok(state)
        }
        #[cfg(not(triad_loom))]
        Block::Until(deadline) => {
            let now = Instant::now();
            if now >= deadline {
                return Err(Stop::Timeout);
            }
            *waiting(&mut state) += 1;
            let (mut state, _) = condvar
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner);
            *waiting(&mut state) -= 1;
            Ok(state)
        }
    }
}

impl<T> JoinableQueue<T> {
    /// Creates an empty open queue that holds at most `capacity` items.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0. Python's `Queue(maxsize=0)` means *unbounded*, and a queue that can
    /// hold nothing would make every `put` wait forever, so 0 is refused rather than guessed at.
    /// For an effectively unbounded queue pass `usize::MAX` (memory is allocated as items
    /// arrive, not up front).
    pub fn new(capacity: usize) -> Self {
        assert!(
            capacity >= 1,
            "JoinableQueue::new: capacity must be at least 1 (Python's maxsize=0 means \
             unbounded; pass usize::MAX for that)"
        );
        let state = State {
            items: VecDeque::with_capacity(capacity.min(1024)),
            in_progress: 0,
            closed: false,
            getters_waiting: 0,
            putters_waiting: 0,
            joiners_waiting: 0,
        };
        JoinableQueue {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                capacity,
                not_empty: Condvar::new(),
                not_full: Condvar::new(),
                all_done: Condvar::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // No code of ours panics while holding the lock, and every state change keeps the
        // invariants at each step, so a poisoned lock still guards consistent state.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `item` at the back, waiting while the queue is full.
    ///
    /// Fails with [`PutError::Closed`], handing `item` back, if the queue is or becomes closed
    /// before there is room.
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_with(item, Block::Forever)
            .map_err(|(item, stop)| match stop {
                Stop::Closed => PutError::Closed(item),
                Stop::WouldBlock | Stop::Timeout => unreachable!("`put` waits forever"),
            })
    }

    /// Adds `item` at the back if there is room now.
    ///
    /// Fails with [`TryPutError::Full`] or [`TryPutError::Closed`], handing `item` back; a closed
    /// queue reports `Closed` even when it is also full.
    pub fn try_put(&self, item: T) -> Result<(), TryPutError<T>> {
        self.put_with(item, Block::No)
            .map_err(|(item, stop)| match stop {
                Stop::Closed => TryPutError::Closed(item),
                Stop::WouldBlock | Stop::Timeout => TryPutError::Full(item),
            })
    }

    /// Adds `item` at the back, waiting at most `timeout` for room.
    ///
    /// Fails with [`PutTimeoutError::Timeout`] or [`PutTimeoutError::Closed`], handing `item`
    /// back. Not available under `--cfg triad_loom`, which does not model time.
    #[cfg(not(triad_loom))]
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutTimeoutError<T>> {
        self.put_with(item, Block::after(timeout))
            .map_err(|(item, stop)| match stop {
                Stop::Closed => PutTimeoutError::Closed(item),
                Stop::WouldBlock | Stop::Timeout => PutTimeoutError::Timeout(item),
            })
    }

    fn put_with(&self, item: T, block: Block) -> Result<(), (T, Stop)> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return Err((item, Stop::Closed));
            }
            if state.items.len() < self.inner.capacity {
                break;
            }
            match wait_once(&self.inner.not_full, state, block, |s| {
                &mut s.putters_waiting
            }) {
                Ok(guard) => state = guard,
                Err(stop) => return Err((item, stop)),
            }
        }
        state.items.push_back(item);
        let wake = state.getters_waiting > 0;
        drop(state);
        if wake {
            self.inner.not_empty.notify_one();
        }
        Ok(())
    }

    /// Removes and returns the front item, waiting while the queue is empty.
    ///
    /// Items put before [`close`](Self::close) are still delivered; fails with
    /// [`GetError::Closed`] only once the queue is closed and empty. Each item returned should be
    /// matched by one [`task_done`](Self::task_done).
    pub fn get(&self) -> Result<T, GetError> {
        self.get_with(Block::Forever).map_err(|stop| match stop {
            Stop::Closed => GetError::Closed,
            Stop::WouldBlock | Stop::Timeout => unreachable!("`get` waits forever"),
        })
    }

    /// Removes and returns the front item if there is one now.
    ///
    /// Fails with [`TryGetError::Empty`], or [`TryGetError::Closed`] if the queue is closed and
    /// empty.
    pub fn try_get(&self) -> Result<T, TryGetError> {
        self.get_with(Block::No).map_err(|stop| match stop {
            Stop::Closed => TryGetError::Closed,
            Stop::WouldBlock | Stop::Timeout => TryGetError::Empty,
        })
    }

    /// Removes and returns the front item, waiting at most `timeout` for one.
    ///
    /// Fails with [`GetTimeoutError::Timeout`], or [`GetTimeoutError::Closed`] once the queue is
    /// closed and empty. Not available under `--cfg triad_loom`, which does not model time.
    #[cfg(not(triad_loom))]
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetTimeoutError> {
        self.get_with(Block::after(timeout))
            .map_err(|stop| match stop {
                Stop::Closed => GetTimeoutError::Closed,
                Stop::WouldBlock | Stop::Timeout => GetTimeoutError::Timeout,
            })
    }

    fn get_with(&self, block: Block) -> Result<T, Stop> {
        let mut state = self.lock();
        let item = loop {
            if let Some(item) = state.items.pop_front() {
                break item;
            }
            if state.closed {
                return Err(Stop::Closed);
            }
            state = wait_once(&self.inner.not_empty, state, block, |s| {
                &mut s.getters_waiting
            })?;
        };
        state.in_progress += 1;
        let wake = state.putters_waiting > 0;
        drop(state);
        if wake {
            self.inner.not_full.notify_one();
        }
        Ok(item)
    }

    /// Marks one item taken by `get` as finished, as Python's `Queue.task_done`.
    ///
    /// When this finishes the last unfinished item, every thread in [`join`](Self::join) wakes.
    /// Fails with [`TaskDoneError`], changing nothing, if there is no taken item left to finish:
    /// that is, if `task_done` has been called as many times as items were taken. (Python only
    /// raises once the calls outnumber the items *put*; this is stricter, so a `task_done` for an
    /// item still queued cannot make `join` return early.)
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        let mut state = self.lock();
        if state.in_progress == 0 {
            return Err(TaskDoneError);
        }
        state.in_progress -= 1;
        let wake = state.unfinished() == 0 && state.joiners_waiting > 0;
        drop(state);
        if wake {
            self.inner.all_done.notify_all();
        }
        Ok(())
    }

    /// Waits until every item ever put has been taken and marked done by
    /// [`task_done`](Self::task_done); returns at once if there is none.
    ///
    /// [`close`](Self::close) does not end the wait: items queued before it must still be taken
    /// and finished.
    pub fn join(&self) {
        let mut state = self.lock();
        while state.unfinished() > 0 {
            state = match wait_once(&self.inner.all_done, state, Block::Forever, |s| {
                &mut s.joiners_waiting
            }) {
                Ok(guard) => guard,
                Err(_) => unreachable!("`join` waits forever"),
            };
        }
    }

    /// Like [`join`](Self::join) but waits at most `timeout`; returns whether every item was
    /// finished. Not available under `--cfg triad_loom`, which does not model time.
    #[cfg(not(triad_loom))]
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        let block = Block::after(timeout);
        let mut state = self.lock();
        while state.unfinished() > 0 {
            match wait_once(&self.inner.all_done, state, block, |s| {
                &mut s.joiners_waiting
            }) {
                Ok(guard) => state = guard,
                Err(_) => return false,
            }
        }
        true
    }

    /// Closes the queue: from now on `put` hands its item back, and `get` returns the items
    /// still queued and then fails with [`GetError::Closed`]. Wakes every thread waiting in a
    /// put or a get so it can see this. Closing twice is harmless. [`join`](Self::join) is not
    /// affected.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        drop(state);
        self.inner.not_empty.notify_all();
        self.inner.not_full.notify_all();
    }

    /// Whether [`close`](Self::close) has been called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The number of items queued now (not counting those taken and not yet done).
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether no item is queued now.
    pub fn is_empty(&self) -> bool {
        self.lock().items.is_empty()
    }

    /// Whether the queue holds `capacity` items now, so that `put` would wait.
    pub fn is_full(&self) -> bool {
        self.lock().items.len() >= self.inner.capacity
    }

    /// The most items the queue holds at once, as given to [`new`](Self::new).
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// The items put and not yet matched by a [`task_done`](Self::task_done): those queued plus
    /// those taken and still in progress. [`join`](Self::join) waits for this to reach 0.
    pub fn unfinished(&self) -> usize {
        self.lock().unfinished()
    }
}

impl<T> Clone for JoinableQueue<T> {
    /// Another handle to the same queue.
    fn clone(&self) -> Self {
        JoinableQueue {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("JoinableQueue")
            .field("len", &state.items.len())
            .field("capacity", &self.inner.capacity)
            .field("unfinished", &state.unfinished())
            .field("closed", &state.closed)
            .finish_non_exhaustive()
    }
}

/// The error of `put` on a [`JoinableQueue`] or an [`AsyncJoinableQueue`](crate::aio::AsyncJoinableQueue): the item, handed back.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PutError<T> {
    /// The queue is closed.
    #[error("put on a closed queue")]
    Closed(T),
}

/// The error of `try_put` on a [`JoinableQueue`] or an [`AsyncJoinableQueue`](crate::aio::AsyncJoinableQueue): why, and the item, handed back.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryPutError<T> {
    /// The queue holds `capacity` items.
    #[error("put on a full queue")]
    Full(T),
    /// The queue is closed.
    #[error("put on a closed queue")]
    Closed(T),
}

/// The error of [`JoinableQueue::put_timeout`]: why, and the item, handed back.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PutTimeoutError<T> {
    /// The queue stayed full for the whole timeout.
    #[error("timed out waiting for room in the queue")]
    Timeout(T),
    /// The queue is closed.
    #[error("put on a closed queue")]
    Closed(T),
}

/// The error of `get` on a [`JoinableQueue`] or an [`AsyncJoinableQueue`](crate::aio::AsyncJoinableQueue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GetError {
    /// The queue is closed and empty.
    #[error("get on a closed and empty queue")]
    Closed,
}

/// The error of `try_get` on a [`JoinableQueue`] or an [`AsyncJoinableQueue`](crate::aio::AsyncJoinableQueue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryGetError {
    /// The queue is empty (and open).
    #[error("get on an empty queue")]
    Empty,
    /// The queue is closed and empty.
    #[error("get on a closed and empty queue")]
    Closed,
}

/// The error of [`JoinableQueue::get_timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GetTimeoutError {
    /// The queue stayed empty (and open) for the whole timeout.
    #[error("timed out waiting for an item")]
    Timeout,
    /// The queue is closed and empty.
    #[error("get on a closed and empty queue")]
    Closed,
}

/// The error of `task_done` on a [`JoinableQueue`] or an [`AsyncJoinableQueue`](crate::aio::AsyncJoinableQueue): it was called more times than items were taken,
/// the counterpart of Python's `ValueError('task_done() called too many times')`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("task_done() called more times than items were taken from the queue")]
pub struct TaskDoneError;

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Closed(item) => item,
        }
    }
}

impl<T> TryPutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            TryPutError::Full(item) | TryPutError::Closed(item) => item,
        }
    }
}

impl<T> PutTimeoutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutTimeoutError::Timeout(item) | PutTimeoutError::Closed(item) => item,
        }
    }
}

// Debug without `T: Debug`, as crossbeam's `SendError`, so that `unwrap` and `?` into boxed
// errors work for any item type.
impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Debug for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPutError::Full(_) => f.write_str("Full(..)"),
            TryPutError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Debug for PutTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutTimeoutError::Timeout(_) => f.write_str("Timeout(..)"),
            PutTimeoutError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

#[cfg(all(test, not(triad_loom)))]
mod tests {
    use std::thread;
    use std::time::{Duration, Instant};

    use super::*;

    const SHORT: Duration = Duration::from_millis(30);

    #[test]
    fn fifo_order() {
        let q = JoinableQueue::new(8);
        for n in 0..8 {
            q.put(n).unwrap();
        }
        let got: Vec<_> = (0..8).map(|_| q.get().unwrap()).collect();
        assert_eq!(got, (0..8).collect::<Vec<_>>());
        // Interleaved puts and gets keep the order too.
        q.put(100).unwrap();
        q.put(101).unwrap();
        assert_eq!(q.try_get(), Ok(100));
        q.put(102).unwrap();
        assert_eq!(q.try_get(), Ok(101));
        assert_eq!(q.try_get(), Ok(102));
    }

    #[test]
    #[should_panic(expected = "capacity must be at least 1")]
    fn zero_capacity_panics() {
        let _ = JoinableQueue::<u8>::new(0);
    }

    #[test]
    fn huge_capacity_is_effectively_unbounded() {
        let q = JoinableQueue::new(usize::MAX);
        for n in 0..10_000 {
            q.try_put(n).unwrap();
        }
        assert_eq!(q.len(), 10_000);
        assert!(!q.is_full());
    }

    #[test]
    fn accessors() {
        let q = JoinableQueue::new(2);
        assert_eq!(q.capacity(), 2);
        assert!(q.is_empty() && !q.is_full() && !q.is_closed());
        q.put('a').unwrap();
        q.put('b').unwrap();
        assert!(q.is_full());
        assert_eq!((q.len(), q.unfinished()), (2, 2));
        q.get().unwrap();
        assert_eq!((q.len(), q.unfinished()), (1, 2));
        q.task_done().unwrap();
        assert_eq!((q.len(), q.unfinished()), (1, 1));
        let debug = format!("{q:?}");
        assert!(
            debug.contains("len: 1") && debug.contains("capacity: 2"),
            "{debug}"
        );
    }

    #[test]
    fn try_put_full_hands_item_back() {
        let q = JoinableQueue::new(1);
        q.try_put(String::from("a")).unwrap();
        let err = q.try_put(String::from("b")).unwrap_err();
        assert_eq!(err, TryPutError::Full(String::from("b")));
        assert_eq!(err.to_string(), "put on a full queue");
        assert_eq!(format!("{err:?}"), "Full(..)");
        assert_eq!(err.into_inner(), "b");
    }

    #[test]
    fn try_put_closed_wins_over_full() {
        let q = JoinableQueue::new(1);
        q.put(1).unwrap();
        q.close();
        let err = q.try_put(2).unwrap_err();
        assert_eq!(err, TryPutError::Closed(2));
        assert_eq!(err.to_string(), "put on a closed queue");
        assert_eq!(format!("{err:?}"), "Closed(..)");
    }

    #[test]
    fn put_closed_hands_item_back() {
        let q = JoinableQueue::new(1);
        q.close();
        let err = q.put(vec![1, 2]).unwrap_err();
        assert_eq!(err, PutError::Closed(vec![1, 2]));
        assert_eq!(err.to_string(), "put on a closed queue");
        assert_eq!(format!("{err:?}"), "Closed(..)");
        assert_eq!(err.into_inner(), vec![1, 2]);
    }

    #[test]
    fn put_timeout_times_out_when_full() {
        let q = JoinableQueue::new(1);
        q.put(1).unwrap();
        let start = Instant::now();
        let err = q.put_timeout(2, SHORT).unwrap_err();
        assert!(start.elapsed() >= SHORT);
        assert_eq!(err, PutTimeoutError::Timeout(2));
        assert_eq!(err.to_string(), "timed out waiting for room in the queue");
        assert_eq!(format!("{err:?}"), "Timeout(..)");
        assert_eq!(err.into_inner(), 2);
        // Zero timeout: an immediate verdict.
        assert_eq!(
            q.put_timeout(3, Duration::ZERO),
            Err(PutTimeoutError::Timeout(3))
        );
    }

    #[test]
    fn put_timeout_succeeds_when_room_appears_or_with_room() {
        let q = JoinableQueue::new(1);
        q.put_timeout(1, Duration::ZERO).unwrap();
        let getter = {
            let q = q.clone();
            thread::spawn(move || {
                thread::sleep(SHORT);
                q.get().unwrap()
            })
        };
        q.put_timeout(2, Duration::from_secs(10)).unwrap();
        assert_eq!(getter.join().unwrap(), 1);
        assert_eq!(q.try_get(), Ok(2));
        // A timeout too long for `Instant` is no timeout.
        q.put_timeout(3, Duration::MAX).unwrap();
    }

    #[test]
    fn put_timeout_closed() {
        let q = JoinableQueue::new(1);
        q.close();
        let err = q.put_timeout(1, SHORT).unwrap_err();
        assert_eq!(err, PutTimeoutError::Closed(1));
        assert_eq!(format!("{err:?}"), "Closed(..)");
        assert_eq!(err.into_inner(), 1);
    }

    #[test]
    fn try_get_empty_and_closed() {
        let q = JoinableQueue::<u8>::new(1);
        assert_eq!(q.try_get(), Err(TryGetError::Empty));
        assert_eq!(TryGetError::Empty.to_string(), "get on an empty queue");
        q.close();
        assert_eq!(q.try_get(), Err(TryGetError::Closed));
        assert_eq!(
            TryGetError::Closed.to_string(),
            "get on a closed and empty queue"
        );
    }

    #[test]
    fn get_timeout_times_out_and_closes() {
        let q = JoinableQueue::<u8>::new(1);
        let start = Instant::now();
        assert_eq!(q.get_timeout(SHORT), Err(GetTimeoutError::Timeout));
        assert!(start.elapsed() >= SHORT);
        assert_eq!(
            GetTimeoutError::Timeout.to_string(),
            "timed out waiting for an item"
        );
        q.put(7).unwrap();
        assert_eq!(q.get_timeout(Duration::ZERO), Ok(7));
        q.close();
        assert_eq!(q.get_timeout(SHORT), Err(GetTimeoutError::Closed));
    }

    #[test]
    fn get_timeout_gets_an_item_put_while_waiting() {
        let q = JoinableQueue::new(1);
        let putter = {
            let q = q.clone();
            thread::spawn(move || {
                thread::sleep(SHORT);
                q.put(5).unwrap();
            })
        };
        assert_eq!(q.get_timeout(Duration::from_secs(10)), Ok(5));
        putter.join().unwrap();
    }

    #[test]
    fn get_drains_after_close_then_fails() {
        let q = JoinableQueue::new(3);
        q.put(1).unwrap();
        q.put(2).unwrap();
        q.close();
        assert!(q.is_closed());
        assert_eq!(q.get(), Ok(1));
        assert_eq!(q.try_get(), Ok(2));
        assert_eq!(q.get(), Err(GetError::Closed));
        assert_eq!(
            GetError::Closed.to_string(),
            "get on a closed and empty queue"
        );
        q.close(); // idempotent
        assert_eq!(q.get(), Err(GetError::Closed));
    }

    #[test]
    fn close_wakes_blocked_getter_and_putter() {
        let empty = JoinableQueue::<u8>::new(1);
        let full = JoinableQueue::new(1);
        full.put(0u8).unwrap();
        let getter = {
            let q = empty.clone();
            thread::spawn(move || q.get())
        };
        let putter = {
            let q = full.clone();
            thread::spawn(move || q.put(1))
        };
        thread::sleep(SHORT); // let both block
        empty.close();
        full.close();
        assert_eq!(getter.join().unwrap(), Err(GetError::Closed));
        assert_eq!(putter.join().unwrap(), Err(PutError::Closed(1)));
        // The item queued before close is still there.
        assert_eq!(full.get(), Ok(0));
    }

    #[test]
    fn blocked_put_proceeds_when_an_item_is_taken() {
        let q = JoinableQueue::new(1);
        q.put(1).unwrap();
        let putter = {
            let q = q.clone();
            thread::spawn(move || q.put(2))
        };
        thread::sleep(SHORT);
        assert_eq!(q.get(), Ok(1));
        putter.join().unwrap().unwrap();
        assert_eq!(q.get(), Ok(2));
    }

    #[test]
    fn task_done_over_call_is_an_error() {
        let q = JoinableQueue::new(2);
        assert_eq!(q.task_done(), Err(TaskDoneError));
        q.put(1).unwrap();
        // Put but not yet taken: Python would accept this; we do not.
        assert_eq!(q.task_done(), Err(TaskDoneError));
        q.get().unwrap();
        assert_eq!(q.task_done(), Ok(()));
        assert_eq!(q.task_done(), Err(TaskDoneError));
        assert_eq!(q.unfinished(), 0);
        assert_eq!(
            TaskDoneError.to_string(),
            "task_done() called more times than items were taken from the queue"
        );
    }

    #[test]
    fn join_returns_at_once_when_nothing_is_unfinished() {
        let q = JoinableQueue::<u8>::new(1);
        q.join();
        assert!(q.join_timeout(Duration::ZERO));
    }

    #[test]
    fn join_waits_for_task_done_not_for_get() {
        let q = JoinableQueue::new(2);
        q.put(1).unwrap();
        q.put(2).unwrap();
        assert!(!q.join_timeout(SHORT));
        q.get().unwrap();
        q.get().unwrap();
        assert!(!q.join_timeout(Duration::ZERO), "taken is not done");
        q.task_done().unwrap();
        assert!(!q.join_timeout(Duration::ZERO));
        let joiner = {
            let q = q.clone();
            thread::spawn(move || q.join())
        };
        thread::sleep(SHORT);
        q.task_done().unwrap();
        joiner.join().unwrap();
        assert!(q.join_timeout(Duration::ZERO));
    }

    #[test]
    fn close_does_not_release_join() {
        let q = JoinableQueue::new(1);
        q.put(1).unwrap();
        q.close();
        assert!(!q.join_timeout(SHORT));
        q.get().unwrap();
        q.task_done().unwrap();
        assert!(q.join_timeout(Duration::ZERO));
    }

    #[test]
    fn errors_are_send_sync_static_errors() {
        fn is_error<E: std::error::Error + Send + Sync + 'static>() {}
        // `T` need not be `Debug`.
        struct Opaque;
        is_error::<PutError<Opaque>>();
        is_error::<TryPutError<Opaque>>();
        is_error::<PutTimeoutError<Opaque>>();
        is_error::<GetError>();
        is_error::<TryGetError>();
        is_error::<GetTimeoutError>();
        is_error::<TaskDoneError>();
        fn is_send_sync<Q: Send + Sync>() {}
        is_send_sync::<JoinableQueue<Opaque>>();
    }
}
