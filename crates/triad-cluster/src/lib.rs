//! The process pool's work past one machine, on Redis Streams consumer groups.
//!
//! triad's unit of work already crosses process boundaries: a registered `#[triad::task]`,
//! named, with serialised input and output. This crate carries it across machines on an engine
//! that exists — Redis Streams with a consumer group — and invents no scheduler:
//!
//! - [`Cluster`] (the client) sends chunks of tasks to the queue's stream, `triad:{QUEUE}:tasks`,
//!   and reads results from a reply stream of its own ([`client`]);
//! - [`worker::serve`] (`triad worker`) reads chunks through the group `workers` as it has room
//!   for them (credit: one slow host does not hoard work), runs them on a local process pool,
//!   writes each answer and acknowledges the chunk in one transaction, keeps its leases fresh,
//!   claims chunks idle past the lease from workers that died or stopped, and sends a chunk
//!   delivered too often to the dead letters, `triad:{QUEUE}:dead`, with the reason;
//! - [`status::status`] (`triad cluster status`) reads the workers' heartbeats and the queue.
//!
//! The bytes are [`protocol`]'s: the pool's own framed, versioned encoding, with the task's
//! registry name and its signature, so a worker without the task, or with another build of it,
//! answers each task with a clear error instead of misreading it.
//!
//! # Example
//!
//! ```no_run
//! use triad::workloads::sum_squares;
//! use triad_cluster::Cluster;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = Cluster::builder("redis://10.0.0.5:6379").chunk_size(100).retries(4).build()?;
//! let total = cluster.submit(sum_squares, 1_000_000).wait()?;          // or .await
//! let all = cluster.map(sum_squares, 0..20_000u64);                     // in input order
//! for (index, result) in cluster.imap_unordered(sum_squares, 0..100u64) { /* as they come */ }
//! // triad::run's shape and the pipeline's task stage, spread over the workers:
//! let cluster = std::sync::Arc::new(cluster);
//! let runner = triad::Runner::remote(cluster.clone());                  // Mode::Remote(n)
//! let stage = triad::pipeline::Stage::remote("squares", cluster, sum_squares);
//! # let _ = (total, all, runner, stage);
//! # Ok(())
//! # }
//! ```

pub mod client;
pub mod protocol;
pub mod status;
pub mod worker;

pub use client::{Cluster, ClusterBuilder, Handle};

/// The consumer group every worker of a queue reads through.
pub const GROUP: &str = "workers";

/// The keys of one queue. The queue's name is their hash tag (`triad:{name}:…`): under Redis
/// Cluster every key of a queue lives on one shard, so a worker's transaction (an answer on a
/// reply stream, an ack on the task stream, maybe a dead letter) never spans two, and queues
/// spread over the shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// The queue's name.
    pub queue: String,
    /// The stream of chunks to run.
    pub tasks: String,
    /// Chunks given up on, with their reasons.
    pub dead: String,
}

impl Keys {
    /// The keys of `queue`.
    pub fn new(queue: &str) -> Keys {
        Keys {
            queue: queue.to_owned(),
            tasks: format!("triad:{{{queue}}}:tasks"),
            dead: format!("triad:{{{queue}}}:dead"),
        }
    }

    /// A client's reply stream.
    pub fn reply(&self, client: &str) -> String {
        format!("triad:{{{}}}:reply:{client}", self.queue)
    }

    /// A worker's heartbeat key.
    pub fn heartbeat(&self, worker: &str) -> String {
        format!("triad:{{{}}}:worker:{worker}", self.queue)
    }
}

/// Why the cluster could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis could not be reached or refused.
    #[error(transparent)]
    Redis(#[from] triad_redis::Error),
    /// A command Redis refused.
    #[error("redis: {0}")]
    Command(#[from] redis::RedisError),
    /// The client's event loop could not start.
    #[error("cannot start the event loop: {0}")]
    Runtime(std::io::Error),
    /// The local process pool could not start.
    #[error(transparent)]
    Pool(#[from] triad::PoolError),
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_queue_is_the_hash_tag_of_its_keys() {
        let keys = super::Keys::new("images");
        assert_eq!(keys.tasks, "triad:{images}:tasks");
        assert_eq!(keys.dead, "triad:{images}:dead");
        assert_eq!(keys.reply("c1"), "triad:{images}:reply:c1");
        assert_eq!(keys.heartbeat("h:1"), "triad:{images}:worker:h:1");
    }
}
