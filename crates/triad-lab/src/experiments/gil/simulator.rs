//! A simulated GIL: CPython's global interpreter lock, rebuilt the way `Python/ceval_gil.c`
//! builds it (the "new GIL" of CPython 3.2 and later), for Rust threads to run under.
//!
//! One flag, `locked`, guarded by a mutex, says whether some thread holds the lock. A thread
//! that wants it waits on a condition variable for at most one *switch interval*; if the holder
//! has not changed by then, it sets `drop_request`. The holder looks at that flag between two
//! "bytecodes" ([`Held::check`]) and, when it is set, drops the lock and — FORCE_SWITCHING —
//! waits until another thread has taken it, so that it cannot grab the lock straight back. A
//! blocking call ([`Held::blocking`], CPython's `Py_BEGIN_ALLOW_THREADS`) drops the lock for its
//! whole duration without waiting for anyone. So at most one thread runs "bytecode" at a time,
//! a CPU-bound thread keeps the lock for about one interval when others want it, and waiting
//! on IO lets the others run. Every hold is logged (thread, CPU, start, end), so a run can be
//! drawn as a timeline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// CPython's default switch interval (`sys.getswitchinterval()`).
pub(crate) const SWITCH_INTERVAL: Duration = Duration::from_millis(5);

/// The lock and its bookkeeping.
#[derive(Debug)]
pub(crate) struct Gil {
    state: Mutex<State>,
    /// Threads waiting for the lock sleep here (`gil->cond`).
    released: Condvar,
    /// A holder that was asked to drop waits here until another thread takes the lock
    /// (`gil->switch_cond`).
    taken: Condvar,
    /// Set by a waiter that waited a whole interval; read by the holder between bytecodes
    /// without the mutex (`gil_drop_request`).
    drop_request: AtomicBool,
    interval: Duration,
}

#[derive(Debug, Default)]
struct State {
    locked: bool,
    /// How many times the lock was taken (`switch_number`).
    switches: u64,
    /// Threads inside `take`, waiting for the lock.
    waiting: usize,
    /// The hold in progress.
    current: Option<Hold>,
    /// Every finished hold, in order.
    holds: Vec<Hold>,
}

/// One thread's turn with the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hold {
    /// The kernel's id of the thread that held it.
    pub(crate) tid: u32,
    /// The CPU that thread was on when it took the lock.
    pub(crate) cpu: Option<u32>,
    /// When it took the lock, on [`triad::now_ns`]'s clock.
    pub(crate) start_ns: u64,
    /// When it let go.
    pub(crate) end_ns: u64,
    /// Whether it let go because another thread asked (rather than to block, or at the end).
    pub(crate) forced: bool,
}

impl Hold {
    /// How long the lock was held.
    pub(crate) fn duration(&self) -> Duration {
        Duration::from_nanos(self.end_ns.saturating_sub(self.start_ns))
    }
}

impl Gil {
    /// A free lock with this switch interval.
    pub(crate) fn new(interval: Duration) -> Self {
        Gil {
            state: Mutex::new(State::default()),
            released: Condvar::new(),
            taken: Condvar::new(),
            drop_request: AtomicBool::new(false),
            interval,
        }
    }

    /// Waits for the lock and holds it until the [`Held`] is dropped.
    pub(crate) fn acquire(&self) -> Held<'_> {
        self.take();
        Held { gil: self }
    }

    /// How many times the lock has been taken.
    #[cfg(test)]
    pub(crate) fn switches(&self) -> u64 {
        self.lock_state().switches
    }

    /// Every finished hold so far, in order.
    pub(crate) fn holds(&self) -> Vec<Hold> {
        self.lock_state().holds.clone()
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one assignment.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `take_gil`: wait until the lock is free; after a whole interval without a switch, ask
    /// the holder to drop it.
    fn take(&self) {
        let mut state = self.lock_state();
        state.waiting += 1;
        while state.locked {
            let switches = state.switches;
            let (next, waited) = self
                .released
                .wait_timeout(state, self.interval)
                .unwrap_or_else(|e| e.into_inner());
            state = next;
            if waited.timed_out() && state.locked && state.switches == switches {
                self.drop_request.store(true, Ordering::SeqCst);
            }
        }
        state.waiting -= 1;
        state.locked = true;
        state.switches += 1;
        state.current = Some(Hold {
            tid: rustix::thread::gettid().as_raw_nonzero().get() as u32,
            cpu: u32::try_from(rustix::thread::sched_getcpu()).ok(),
            start_ns: triad::now_ns(),
            end_ns: 0,
            forced: false,
        });
        // Whoever asked for a switch has it now (or will ask again after its next interval).
        self.drop_request.store(false, Ordering::SeqCst);
        self.taken.notify_all();
    }

    /// `drop_gil`: free the lock and wake a waiter; when `forced`, wait until some other
    /// thread has taken it.
    fn release(&self, forced: bool) {
        let mut state = self.lock_state();
        state.locked = false;
        if let Some(mut hold) = state.current.take() {
            hold.end_ns = triad::now_ns();
            hold.forced = forced;
            state.holds.push(hold);
        }
        self.released.notify_one();
        if forced {
            let switches = state.switches;
            while state.switches == switches && state.waiting > 0 {
                state = self.taken.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

/// The lock, held by the current thread.
#[derive(Debug)]
pub(crate) struct Held<'a> {
    gil: &'a Gil,
}

impl Held<'_> {
    /// Between two bytecodes: if another thread asked for the lock, hand it over and wait to
    /// get it back (the eval loop's `eval_breaker` check).
    pub(crate) fn check(&mut self) {
        if self.gil.drop_request.load(Ordering::Relaxed) {
            self.gil.release(true);
            self.gil.take();
        }
    }

    /// Runs a blocking call with the lock released, as CPython does around `sleep`, `read`
    /// and `write`.
    pub(crate) fn blocking<R>(&mut self, call: impl FnOnce() -> R) -> R {
        self.gil.release(false);
        let result = call();
        self.gil.take();
        result
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.gil.release(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    /// About a microsecond of arithmetic.
    fn bytecode() -> u64 {
        (0..200_u64).map(|i| std::hint::black_box(i * i)).sum()
    }

    #[test]
    fn one_thread_at_a_time_runs_bytecode() {
        let gil = Gil::new(Duration::from_millis(1));
        let inside = AtomicUsize::new(0);
        let steps = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let (gil, inside, steps) = (&gil, &inside, &steps);
                scope.spawn(move || {
                    let mut held = gil.acquire();
                    for step in 0..3_000 {
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                        std::hint::black_box(bytecode());
                        inside.fetch_sub(1, Ordering::SeqCst);
                        steps.fetch_add(1, Ordering::Relaxed);
                        if thread == 0 && step % 500 == 0 {
                            held.blocking(|| std::thread::sleep(Duration::from_micros(200)));
                        } else {
                            held.check();
                        }
                    }
                });
            }
        });
        assert_eq!(steps.load(Ordering::Relaxed), 12_000);
        assert!(gil.switches() >= 4);
    }

    #[test]
    fn a_waiting_thread_gets_the_lock_after_about_one_interval() {
        let interval = Duration::from_millis(5);
        let mut waits = Vec::new();
        for _ in 0..5 {
            let gil = Gil::new(interval);
            let holding = Barrier::new(2);
            let stop = AtomicBool::new(false);
            let waited = std::thread::scope(|scope| {
                scope.spawn(|| {
                    let mut held = gil.acquire();
                    holding.wait();
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::black_box(bytecode());
                        held.check();
                    }
                });
                holding.wait();
                let asked = Instant::now();
                let held = gil.acquire();
                let waited = asked.elapsed();
                stop.store(true, Ordering::Relaxed);
                drop(held);
                waited
            });
            waits.push(waited);
        }
        waits.sort();
        let median = waits[waits.len() / 2];
        assert!(median >= interval / 2, "{waits:?}");
        assert!(median <= 4 * interval, "{waits:?}");
    }

    #[test]
    fn a_blocking_call_lets_another_thread_in_at_once() {
        let gil = Gil::new(Duration::from_millis(50));
        let blocking = Barrier::new(2);
        let waited = std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut held = gil.acquire();
                held.blocking(|| {
                    blocking.wait();
                    std::thread::sleep(Duration::from_millis(100));
                });
            });
            blocking.wait();
            let asked = Instant::now();
            let held = gil.acquire();
            let waited = asked.elapsed();
            drop(held);
            waited
        });
        assert!(waited < Duration::from_millis(40), "{waited:?}");
    }

    #[test]
    fn cpu_bound_threads_take_turns_of_about_one_interval() {
        let interval = Duration::from_millis(2);
        let gil = Gil::new(interval);
        let turns = [AtomicUsize::new(0), AtomicUsize::new(0)];
        let enough =
            |turns: &[AtomicUsize; 2]| turns.iter().all(|t| t.load(Ordering::Relaxed) >= 3);
        let start = Barrier::new(2);
        // Until each thread has had three turns; the deadline only bounds a broken lock.
        let deadline = Instant::now() + Duration::from_secs(5);
        std::thread::scope(|scope| {
            for mine in &turns {
                let (gil, start, turns) = (&gil, &start, &turns);
                scope.spawn(move || {
                    start.wait();
                    let mut held = gil.acquire();
                    let mut last = gil.switches();
                    while !enough(turns) && Instant::now() < deadline {
                        std::hint::black_box(bytecode());
                        held.check();
                        let now = gil.switches();
                        if now != last {
                            mine.fetch_add(1, Ordering::Relaxed);
                            last = now;
                        }
                    }
                });
            }
        });
        assert!(enough(&turns), "{turns:?}");
        let mut sorted: Vec<Duration> = gil
            .holds()
            .iter()
            .filter(|h| h.forced)
            .map(Hold::duration)
            .collect();
        assert!(!sorted.is_empty());
        sorted.sort();
        let median = sorted[sorted.len() / 2];
        assert!(
            median >= interval / 2 && median <= 10 * interval,
            "{sorted:?}"
        );
    }

    #[test]
    fn a_lone_thread_is_never_asked_to_drop() {
        let gil = Gil::new(Duration::from_millis(1));
        let mut held = gil.acquire();
        let until = Instant::now() + Duration::from_millis(10);
        while Instant::now() < until {
            held.check();
        }
        drop(held);
        let holds = gil.holds();
        assert_eq!(holds.len(), 1);
        assert!(!holds[0].forced && holds[0].duration() >= Duration::from_millis(10));
        assert_eq!(gil.switches(), 1);
    }
}
