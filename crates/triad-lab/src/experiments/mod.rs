//! The catalogue: every experiment, in the order the lab runs them (the order, which
//! follows the seed).

mod affinity;
mod c10k;
mod cost_support;
mod cpu_bound;
mod decision;
mod delay_server;
mod event_loop;
mod file_processing;
mod fork_cow;
mod gil;
mod hybrid;
mod io_bound;
mod ipc;
mod many_fetches;
mod memory_per_unit;
mod pool_chunking;
mod race;
mod scaling;
mod select_poll_epoll;
mod server_models;
#[doc(hidden)]
pub use server_models::fuzz_http;
mod spawn_cost;
mod switch_cost;

use crate::experiment::Experiment;

/// The decisions behind the rows of the seed's quick decision table (§9), for the report's
/// decision-table section: each is the one its experiment judges with.
pub(crate) mod decisions {
    pub(crate) use super::decision::{Decision, cpu_work};
    pub(crate) use super::file_processing::file_processing;
    pub(crate) use super::many_fetches::crawler;
    pub(crate) use super::server_models::{api_service, realtime};
}

/// Every experiment, in run order.
pub fn catalogue() -> &'static [&'static dyn Experiment] {
    &[
        &cpu_bound::CpuBound,
        &io_bound::IoBound,
        &gil::GilEffect,
        &switch_cost::SwitchCost,
        &spawn_cost::SpawnCost,
        &memory_per_unit::MemoryPerUnit,
        &c10k::C10k,
        &race::Race,
        &ipc::Ipc,
        &pool_chunking::PoolChunking,
        &select_poll_epoll::SelectPollEpoll,
        &fork_cow::ForkCow,
        &event_loop::EventLoopExhibit,
        &hybrid::Hybrid,
        &server_models::ServerModels,
        &file_processing::FileProcessing,
        &many_fetches::ManyFetches,
    ]
}
