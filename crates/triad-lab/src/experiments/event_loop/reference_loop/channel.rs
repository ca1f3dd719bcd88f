//! An unbounded channel between the reference loop's tasks (asyncio's `Queue` without a bound):
//! `send` never waits, `recv` waits until a value or the last sender's drop wakes it.
//!
//! Like the loop's tasks it lives on one thread (`Rc`, no lock); the receiver's waker is a real
//! [`Waker`], so a send puts the receiving task back on the ready queue.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

struct Shared<T> {
    queue: VecDeque<T>,
    receiver: Option<Waker>,
    senders: usize,
    receiver_alive: bool,
}

/// The sending half; cloneable.
pub(crate) struct Sender<T> {
    shared: Rc<RefCell<Shared<T>>>,
}

/// The receiving half.
pub(crate) struct Receiver<T> {
    shared: Rc<RefCell<Shared<T>>>,
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

/// A new channel.
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Rc::new(RefCell::new(Shared {
        queue: VecDeque::new(),
        receiver: None,
        senders: 1,
        receiver_alive: true,
    }));
    (
        Sender {
            shared: Rc::clone(&shared),
        },
        Receiver { shared },
    )
}

impl<T> Sender<T> {
    /// Queues `value` and wakes the receiver; gives the value back if the receiver is gone.
    pub(crate) fn send(&self, value: T) -> Result<(), T> {
        let waiter = {
            let mut shared = self.shared.borrow_mut();
            if !shared.receiver_alive {
                return Err(value);
            }
            shared.queue.push_back(value);
            shared.receiver.take()
        };
        if let Some(waiter) = waiter {
            waiter.wake();
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.borrow_mut().senders += 1;
        Self {
            shared: Rc::clone(&self.shared),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waiter = {
            let mut shared = self.shared.borrow_mut();
            shared.senders -= 1;
            if shared.senders == 0 {
                shared.receiver.take()
            } else {
                None
            }
        };
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// The next value; `None` once every sender is gone and the queue is empty.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| {
            let mut shared = self.shared.borrow_mut();
            if let Some(value) = shared.queue.pop_front() {
                return Poll::Ready(Some(value));
            }
            if shared.senders == 0 {
                return Poll::Ready(None);
            }
            shared.receiver = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut shared = self.shared.borrow_mut();
        shared.receiver_alive = false;
        shared.queue.clear();
    }
}
