//! The memory bound: an image may start decoding only once the bytes its header says it will
//! need (see `decode::Header::cost`) fit beside those of the images already in flight.
//!
//! Admission is first come, first served (a ticket each): a large image waiting for room is
//! not overtaken by small ones for ever. An image larger than the whole bound runs alone, once
//! everything before it has finished; the bound is then that one image's own need.

use std::sync::{Condvar, Mutex, PoisonError};

/// The bytes in flight, and who may go next.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    state: Mutex<State>,
    /// Woken when bytes are released or the next ticket's turn comes.
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    in_use: u64,
    in_flight: usize,
    next_ticket: u64,
    serving: u64,
    peak: u64,
    most_in_flight: usize,
}

/// Bytes held by one image; released when dropped.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    budget: &'a Budget,
    bytes: u64,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Self {
        Budget {
            limit: limit.max(1),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    /// Waits for this caller's turn and for room for `bytes`, then holds them.
    pub(crate) fn acquire(&self, bytes: u64) -> Permit<'_> {
        let bytes = bytes.min(self.limit);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        while state.serving != ticket || (state.in_flight > 0 && state.in_use + bytes > self.limit)
        {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.serving += 1;
        state.in_use += bytes;
        state.in_flight += 1;
        state.peak = state.peak.max(state.in_use);
        state.most_in_flight = state.most_in_flight.max(state.in_flight);
        drop(state);
        // The next ticket may fit too.
        self.changed.notify_all();
        Permit {
            budget: self,
            bytes,
        }
    }

    /// The most bytes held at once, and the most images in flight at once.
    pub(crate) fn peaks(&self) -> (u64, usize) {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (state.peak, state.most_in_flight)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut state = self
            .budget
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.in_use -= self.bytes;
        state.in_flight -= 1;
        drop(state);
        self.budget.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    #[test]
    fn holders_never_exceed_the_limit_and_a_giant_runs_alone() {
        let budget = Budget::new(100);
        let held = AtomicU64::new(0);
        let most = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for bytes in [60, 50, 40, 500, 30, 70, 10] {
                let (budget, held, most) = (&budget, &held, &most);
                scope.spawn(move || {
                    let _permit = budget.acquire(bytes);
                    let now = held.fetch_add(bytes.min(100), Ordering::SeqCst) + bytes.min(100);
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    held.fetch_sub(bytes.min(100), Ordering::SeqCst);
                });
            }
        });
        assert!(most.load(Ordering::SeqCst) <= 100);
        let (peak, _) = budget.peaks();
        assert!(peak <= 100, "{peak}");
    }

    #[test]
    fn images_that_fit_together_run_together() {
        let budget = Budget::new(100);
        let first = budget.acquire(40);
        let second = budget.acquire(40);
        assert_eq!(budget.peaks(), (80, 2));
        drop((first, second));
    }
}
