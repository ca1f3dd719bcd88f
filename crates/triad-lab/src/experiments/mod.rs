//! The catalogue: every experiment, in the order the lab runs them (the seed's order).

mod findings;
mod fork_cow;
mod ipc;
mod pool_chunking;
mod race;

use crate::experiment::Experiment;

/// Every experiment, in run order.
pub fn catalogue() -> &'static [&'static dyn Experiment] {
    &[
        &race::Race,
        &ipc::Ipc,
        &pool_chunking::PoolChunking,
        &fork_cow::ForkCow,
    ]
}
