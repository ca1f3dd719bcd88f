//! A reference event loop, written the way the seed draws one (§5.3.1): a ready queue, a timer
//! heap and an epoll selector, around tasks that real [`Waker`]s put back on the ready queue.
//!
//! It is an exhibit, not a runtime: the lab measures it beside tokio and asyncio to show what
//! the parts of a loop do and cost, and it is written by hand on purpose, because the machinery
//! is the point. triad's own coroutine engine runs on tokio.
//!
//! One turn of the loop, as in the seed's diagram:
//! 1. run every task that was ready when the turn began, one at a time, each until it awaits
//!    something that is not ready (its `poll` returns `Pending`) or finishes;
//! 2. wake the tasks whose timers are due;
//! 3. ask the selector which descriptors are ready — without blocking when tasks are ready,
//!    otherwise blocking until the next timer is due — and wake the tasks waiting on them;
//! 4. repeat, until the future given to [`EventLoop::block_on`] finishes.
//!
//! Details worth knowing:
//! - A [`Waker`] may be called from any thread. It puts its task's id on the ready queue (a
//!   `VecDeque` behind a mutex) unless it is there already, and when the loop is blocked in
//!   `epoll_wait` it also writes to an eventfd that the selector watches, which wakes the loop.
//! - While tasks keep being ready, the selector is checked (without blocking) only every
//!   [`TURNS_BETWEEN_IO_CHECKS`] turns, so that switching between ready tasks costs no system
//!   call; tokio does the same (its `event_interval` is 61), while asyncio calls `select` with a
//!   zero timeout on every turn.
//! - Timers sit in a binary heap ordered by deadline, ties in the order they were armed.
//!   `epoll_wait`'s timeout is rounded up to the millisecond, so a timer never fires early and
//!   the loop never spins while it waits.
//! - A spawned task that panics is dropped and its [`JoinHandle`] yields [`TaskPanicked`] with
//!   the panic's message; the other tasks go on. A panic in the future given to `block_on`
//!   propagates to its caller.
//! - Tasks still pending when `block_on` returns stay in the loop (a later `block_on` runs them
//!   on) and are dropped with it. A loop with nothing ready, no timer and no descriptor or other
//!   thread that could wake a task waits forever, as asyncio and tokio would.

mod channel;
mod io;

use std::cell::{Cell, RefCell};
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rustix::event::{EventfdFlags, eventfd};

pub(crate) use channel::{Receiver, Sender, channel};
pub(crate) use io::AsyncFd;
use io::Selector;

/// Turns of ready tasks between two non-blocking looks at the selector while tasks stay ready.
const TURNS_BETWEEN_IO_CHECKS: u32 = 61;

/// A task's place in the loop: its slot and the slot's generation, so that a waker that
/// outlives its task cannot wake the slot's next tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TaskId {
    index: u32,
    generation: u32,
}

/// The id of the future given to `block_on`, which lives on `block_on`'s stack, not in a slot.
const MAIN_TASK: TaskId = TaskId {
    index: u32::MAX,
    generation: u32::MAX,
};

/// The ready queue: what wakers touch, from any thread.
struct ReadyQueue {
    state: Mutex<ReadyState>,
    /// An eventfd the selector watches; written to wake a loop blocked in `epoll_wait`.
    wake_fd: OwnedFd,
}

struct ReadyState {
    tasks: VecDeque<TaskId>,
    /// The loop found the queue empty and is (about to be) blocked in the selector.
    loop_is_waiting: bool,
}

impl ReadyQueue {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            state: Mutex::new(ReadyState {
                tasks: VecDeque::new(),
                loop_is_waiting: false,
            }),
            wake_fd: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?,
        })
    }

    fn lock(&self) -> MutexGuard<'_, ReadyState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, id: TaskId) {
        let wake_loop = {
            let mut state = self.lock();
            state.tasks.push_back(id);
            std::mem::take(&mut state.loop_is_waiting)
        };
        if wake_loop {
            // A full counter (EAGAIN) already wakes the loop; nothing else can fail here.
            let _ = rustix::io::write(&self.wake_fd, &1u64.to_ne_bytes());
        }
    }

    /// Takes every queued id into `batch`, leaving the queue empty.
    fn take_all(&self, batch: &mut Batch<'_>) {
        std::mem::swap(&mut self.lock().tasks, &mut batch.ids);
    }

    fn is_empty(&self) -> bool {
        self.lock().tasks.is_empty()
    }

    /// If nothing is ready, marks the loop as waiting (so that the next push writes to the
    /// eventfd) and returns true; the check and the mark happen under one lock, so no wake
    /// can fall between them.
    fn start_waiting(&self) -> bool {
        let mut state = self.lock();
        state.loop_is_waiting = state.tasks.is_empty();
        state.loop_is_waiting
    }

    /// The loop is back from the selector; `wake_fd_fired`: the eventfd was written, and is
    /// emptied here.
    fn stop_waiting(&self, wake_fd_fired: bool) {
        self.lock().loop_is_waiting = false;
        if wake_fd_fired {
            let mut counter = [0u8; 8];
            // EAGAIN (another read emptied it) is fine: there is nothing left to empty.
            let _ = rustix::io::read(&self.wake_fd, &mut counter);
        }
    }
}

/// The ids taken from the ready queue for one turn. Ids not run when it is dropped — the
/// main future finished, or panicked, in the middle of the turn — go back to the front of the
/// queue, so that their tasks (marked as queued) are not forgotten.
struct Batch<'a> {
    ids: VecDeque<TaskId>,
    queue: &'a ReadyQueue,
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        let mut state = self.queue.lock();
        for id in self.ids.drain(..).rev() {
            state.tasks.push_front(id);
        }
    }
}

/// What a task's [`Waker`] points to.
struct TaskWaker {
    id: TaskId,
    queue: Arc<ReadyQueue>,
    /// The id is on the ready queue and the task has not been polled since.
    queued: AtomicBool,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, AtomicOrdering::AcqRel) {
            self.queue.push(self.id);
        }
    }
}

/// A spawned task: its future and what wakes it.
struct Task {
    future: Pin<Box<dyn Future<Output = ()>>>,
    wake_state: Arc<TaskWaker>,
    waker: Waker,
    /// Told when the future panics, to fail the task's `JoinHandle`.
    on_panic: Rc<dyn PanicSink>,
}

struct Slot {
    generation: u32,
    task: Option<Task>,
}

/// The tasks, in slots reused through a free list.
#[derive(Default)]
struct TaskSlab {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl TaskSlab {
    fn reserve(&mut self) -> TaskId {
        match self.free.pop() {
            Some(index) => TaskId {
                index,
                generation: self.slots[index as usize].generation,
            },
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    task: None,
                });
                TaskId {
                    index: (self.slots.len() - 1) as u32,
                    generation: 0,
                }
            }
        }
    }

    fn slot(&mut self, id: TaskId) -> Option<&mut Slot> {
        self.slots
            .get_mut(id.index as usize)
            .filter(|slot| slot.generation == id.generation)
    }

    /// Takes the task out to poll it; `None` for a finished task's stale id.
    fn take(&mut self, id: TaskId) -> Option<Task> {
        self.slot(id)?.task.take()
    }

    fn put(&mut self, id: TaskId, task: Task) {
        if let Some(slot) = self.slot(id) {
            slot.task = Some(task);
        }
    }

    /// Frees a finished task's slot for a new generation.
    fn release(&mut self, id: TaskId) {
        if let Some(slot) = self.slot(id) {
            // Modulo 2^32 on purpose: a stale id is told apart unless its slot is reused 2^32
            // times while it is held.
            slot.generation = slot.generation.wrapping_add(1);
            self.free.push(id.index);
        }
    }
}

/// A timer in the heap: wake `waker` at `deadline`.
struct Timer {
    deadline: Instant,
    /// Order of arming, to break ties between equal deadlines.
    sequence: u64,
    waker: Waker,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Timer {}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timer {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deadline, self.sequence).cmp(&(other.deadline, other.sequence))
    }
}

/// The loop's state, shared by the loop and (through a thread-local) the futures it runs.
struct Core {
    ready: Arc<ReadyQueue>,
    tasks: RefCell<TaskSlab>,
    timers: RefCell<BinaryHeap<Reverse<Timer>>>,
    next_timer_sequence: Cell<u64>,
    selector: Selector,
}

impl Core {
    fn spawn_boxed(&self, future: Pin<Box<dyn Future<Output = ()>>>, on_panic: Rc<dyn PanicSink>) {
        let id = self.tasks.borrow_mut().reserve();
        let wake_state = Arc::new(TaskWaker {
            id,
            queue: Arc::clone(&self.ready),
            queued: AtomicBool::new(true),
        });
        let task = Task {
            future,
            waker: Waker::from(Arc::clone(&wake_state)),
            wake_state,
            on_panic,
        };
        self.tasks.borrow_mut().put(id, task);
        self.ready.push(id);
    }

    /// Polls task `id` once, if it still exists.
    fn run_task(&self, id: TaskId) {
        let Some(mut task) = self.tasks.borrow_mut().take(id) else {
            return;
        };
        task.wake_state.queued.store(false, AtomicOrdering::Release);
        let mut cx = Context::from_waker(&task.waker);
        match catch_unwind(AssertUnwindSafe(|| task.future.as_mut().poll(&mut cx))) {
            Ok(Poll::Pending) => self.tasks.borrow_mut().put(id, task),
            Ok(Poll::Ready(())) => {
                self.tasks.borrow_mut().release(id);
                drop(task);
            }
            Err(payload) => {
                self.tasks.borrow_mut().release(id);
                let on_panic = Rc::clone(&task.on_panic);
                drop(task);
                on_panic.panicked(panic_message(payload.as_ref()));
            }
        }
    }

    fn add_timer(&self, deadline: Instant, waker: Waker) {
        let sequence = self.next_timer_sequence.get();
        self.next_timer_sequence.set(sequence + 1);
        self.timers.borrow_mut().push(Reverse(Timer {
            deadline,
            sequence,
            waker,
        }));
    }

    /// Wakes the tasks of every timer that is due.
    fn fire_due_timers(&self) {
        if self.timers.borrow().is_empty() {
            return;
        }
        let now = Instant::now();
        loop {
            let due = {
                let mut timers = self.timers.borrow_mut();
                match timers.peek() {
                    Some(Reverse(timer)) if timer.deadline <= now => timers.pop(),
                    _ => None,
                }
            };
            match due {
                Some(Reverse(timer)) => timer.waker.wake(),
                None => break,
            }
        }
    }

    /// How long the selector may block: until the next timer, or without end.
    fn time_to_next_timer(&self) -> Option<Duration> {
        self.timers
            .borrow()
            .peek()
            .map(|Reverse(timer)| timer.deadline.saturating_duration_since(Instant::now()))
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

thread_local! {
    /// The loop whose `block_on` runs on this thread, for `spawn`, `sleep` and `AsyncFd`.
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
}

/// Runs `f` with the loop running on this thread.
///
/// # Panics
///
/// Outside [`EventLoop::block_on`]: the loop's futures need their loop, as asyncio's need a
/// running loop.
fn with_current<R>(f: impl FnOnce(&Rc<Core>) -> R) -> R {
    CURRENT.with_borrow(|current| {
        f(current
            .as_ref()
            .expect("the reference loop's futures run inside EventLoop::block_on"))
    })
}

/// Makes a loop the thread's current one while it lives.
struct Entered;

impl Entered {
    fn enter(core: &Rc<Core>) -> Self {
        CURRENT.with_borrow_mut(|current| {
            assert!(
                current.is_none(),
                "EventLoop::block_on called inside a running reference loop"
            );
            *current = Some(Rc::clone(core));
        });
        Entered
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with_borrow_mut(|current| *current = None);
    }
}

/// The reference event loop. See the [module documentation](self).
pub(crate) struct EventLoop {
    core: Rc<Core>,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop").finish_non_exhaustive()
    }
}

impl EventLoop {
    /// A loop with its epoll selector and wake eventfd.
    pub(crate) fn new() -> std::io::Result<Self> {
        let ready = Arc::new(ReadyQueue::new()?);
        let selector = Selector::new(&ready.wake_fd)?;
        Ok(Self {
            core: Rc::new(Core {
                ready,
                tasks: RefCell::default(),
                timers: RefCell::default(),
                next_timer_sequence: Cell::new(0),
                selector,
            }),
        })
    }

    /// Runs the loop until `future` finishes, and returns its output.
    ///
    /// # Panics
    ///
    /// When called inside a running reference loop, when `future` panics, or when the selector
    /// fails (`epoll_wait` on the loop's own epoll descriptor cannot fail but for a bug).
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        let core = &self.core;
        let _entered = Entered::enter(core);
        let main_state = Arc::new(TaskWaker {
            id: MAIN_TASK,
            queue: Arc::clone(&core.ready),
            queued: AtomicBool::new(false),
        });
        let main_waker = Waker::from(Arc::clone(&main_state));
        let mut future = pin!(future);
        main_waker.wake_by_ref();
        let mut batch = Batch {
            ids: VecDeque::new(),
            queue: &core.ready,
        };
        let mut busy_turns = 0u32;
        loop {
            // 1. Run the tasks that are ready, one at a time.
            core.ready.take_all(&mut batch);
            while let Some(id) = batch.ids.pop_front() {
                if id != MAIN_TASK {
                    core.run_task(id);
                    continue;
                }
                main_state.queued.store(false, AtomicOrdering::Release);
                if let Poll::Ready(output) =
                    future.as_mut().poll(&mut Context::from_waker(&main_waker))
                {
                    return output;
                }
            }
            // 2. Wake the tasks whose timers are due.
            core.fire_due_timers();
            // 3. Look for ready descriptors: block only when nothing else is ready.
            if core.ready.is_empty() {
                busy_turns = 0;
                if core.ready.start_waiting() {
                    core.selector
                        .select(core.time_to_next_timer(), |fired| {
                            core.ready.stop_waiting(fired);
                        })
                        .expect("epoll_wait on the reference loop's selector");
                    core.fire_due_timers();
                }
            } else {
                busy_turns += 1;
                if busy_turns.is_multiple_of(TURNS_BETWEEN_IO_CHECKS) {
                    core.selector
                        .select(Some(Duration::ZERO), |fired| {
                            core.ready.stop_waiting(fired);
                        })
                        .expect("epoll_wait on the reference loop's selector");
                }
            }
        }
    }
}

/// Why a task has no output: it panicked, with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskPanicked(pub(crate) String);

/// Where a task's output goes: its `JoinHandle`'s state.
struct JoinState<T> {
    outcome: Option<Result<T, TaskPanicked>>,
    waiter: Option<Waker>,
    delivered: bool,
}

fn finish<T>(state: &RefCell<JoinState<T>>, outcome: Result<T, TaskPanicked>) {
    let waiter = {
        let mut state = state.borrow_mut();
        state.outcome = Some(outcome);
        state.waiter.take()
    };
    if let Some(waiter) = waiter {
        waiter.wake();
    }
}

/// Told when a task's future panics.
trait PanicSink {
    fn panicked(&self, message: String);
}

impl<T> PanicSink for RefCell<JoinState<T>> {
    fn panicked(&self, message: String) {
        finish(self, Err(TaskPanicked(message)));
    }
}

/// Awaits a spawned task's output. Dropping it detaches the task, which runs on.
pub(crate) struct JoinHandle<T> {
    state: Rc<RefCell<JoinState<T>>>,
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle").finish_non_exhaustive()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, TaskPanicked>;

    /// # Panics
    ///
    /// When polled again after it returned `Ready`.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.state.borrow_mut();
        assert!(!state.delivered, "JoinHandle polled after it completed");
        match state.outcome.take() {
            Some(outcome) => {
                state.delivered = true;
                Poll::Ready(outcome)
            }
            None => {
                state.waiter = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Starts `future` as a task of the running loop; it first runs on the loop's next turn.
///
/// # Panics
///
/// Outside [`EventLoop::block_on`].
pub(crate) fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let state = Rc::new(RefCell::new(JoinState {
        outcome: None,
        waiter: None,
        delivered: false,
    }));
    let completion = Rc::clone(&state);
    let task = async move {
        let output = future.await;
        finish(&completion, Ok(output));
    };
    let on_panic: Rc<dyn PanicSink> = state.clone();
    with_current(|core| core.spawn_boxed(Box::pin(task), on_panic));
    JoinHandle { state }
}

/// Finishes after `duration`, through the loop's timer heap.
pub(crate) fn sleep(duration: Duration) -> Sleep {
    Sleep {
        deadline: Instant::now() + duration,
        armed_for: None,
    }
}

/// The future of [`sleep`].
#[derive(Debug)]
pub(crate) struct Sleep {
    deadline: Instant,
    /// The waker its timer was armed with, if any.
    armed_for: Option<Waker>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let armed = self
            .armed_for
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()));
        if !armed {
            with_current(|core| core.add_timer(self.deadline, cx.waker().clone()));
            self.armed_for = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Gives the other ready tasks a turn: the seed's `await asyncio.sleep(0)`.
pub(crate) fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[derive(Debug)]
pub(crate) struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests;
