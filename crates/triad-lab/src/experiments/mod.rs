//! The catalogue: every experiment, in the order the lab runs them (the seed's order).

use crate::experiment::Experiment;

mod event_loop;
mod select_poll_epoll;

/// Every experiment, in run order.
pub fn catalogue() -> &'static [&'static dyn Experiment] {
    &[
        &select_poll_epoll::SelectPollEpoll,
        &event_loop::EventLoopExhibit,
    ]
}
