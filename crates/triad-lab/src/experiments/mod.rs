//! The catalogue: every experiment, in the order the lab runs them (the seed's order).

mod c10k;
mod cost_support;
mod memory_per_unit;
mod spawn_cost;
mod switch_cost;

use crate::experiment::Experiment;

/// Every experiment, in run order.
pub fn catalogue() -> &'static [&'static dyn Experiment] {
    &[
        &switch_cost::SwitchCost,
        &spawn_cost::SpawnCost,
        &memory_per_unit::MemoryPerUnit,
        &c10k::C10k,
    ]
}
