//! What `triad cluster status` shows: the workers alive (their heartbeats), the queue's depth,
//! what is pending in the group, and the dead letters.

use serde::{Deserialize, Serialize};

use crate::{ClusterError, GROUP, Keys};

/// A worker's heartbeat, refreshed every second and gone three seconds after it stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// `host:pid`.
    pub name: String,
    /// Its host name.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Worker processes in its pool.
    pub workers: usize,
    /// Tasks it is running now.
    pub running: u64,
    /// Tasks it finished since it started.
    pub done: u64,
    /// Chunks it gave to the dead letters.
    pub dead_letters: u64,
}

/// A queue's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The queue.
    pub queue: String,
    /// Workers whose heartbeat is fresh, by name.
    pub workers: Vec<Heartbeat>,
    /// Chunks in the task stream (waiting or being run).
    pub depth: u64,
    /// Chunks delivered to a worker and not yet acknowledged.
    pub pending: u64,
    /// Chunks in the dead letters.
    pub dead_letters: u64,
}

/// Reads the state of `queue` at `url`.
pub fn status(url: &str, queue: &str) -> Result<Status, ClusterError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClusterError::Runtime)?;
    runtime.block_on(async {
        let keys = Keys::new(queue);
        let mut c = triad_redis::connect(url).await?;
        let mut names: Vec<String> = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(keys.heartbeat("*"))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut c)
                .await?;
            names.extend(found);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let mut workers = Vec::new();
        for key in names {
            let beat: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut c).await?;
            if let Some(beat) = beat.and_then(|b| serde_json::from_str::<Heartbeat>(&b).ok()) {
                workers.push(beat);
            }
        }
        workers.sort_by(|a, b| a.name.cmp(&b.name));
        let depth: u64 = redis::cmd("XLEN")
            .arg(&keys.tasks)
            .query_async(&mut c)
            .await?;
        let dead_letters: u64 = redis::cmd("XLEN")
            .arg(&keys.dead)
            .query_async(&mut c)
            .await?;
        let pending: redis::RedisResult<redis::Value> = redis::cmd("XPENDING")
            .arg(&keys.tasks)
            .arg(GROUP)
            .query_async(&mut c)
            .await;
        let pending = match pending {
            Ok(redis::Value::Array(items)) => match items.first() {
                Some(redis::Value::Int(n)) => *n as u64,
                _ => 0,
            },
            // No group yet: nothing was ever read.
            _ => 0,
        };
        Ok(Status {
            queue: queue.to_owned(),
            workers,
            depth,
            pending,
            dead_letters,
        })
    })
}
