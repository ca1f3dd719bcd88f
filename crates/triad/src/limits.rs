//! What the system allows: how many threads or worker processes a pool may ask for before the
//! kernel refuses them halfway (a failed `clone`, a thread that aborts setting up its signal
//! stack). Pools check their size here first, so that an impossible request is one clear error
//! naming the limit, not a crash after thousands of starts.
//!
//! The limits read: `/proc/sys/kernel/threads-max` and `pid_max` (every thread takes a task and
//! an id), `RLIMIT_NPROC` (unless this process is exempt as root), `vm.max_map_count` (a thread
//! costs its stack, its guard page and its signal stack, with their guard pages: four mappings),
//! `RLIMIT_NOFILE` (a worker costs the pool one socket), and `MemAvailable` (a worker process
//! costs at least a few MiB of its own).

use crate::error::{EngineError, PoolError};

/// Mappings a thread adds (stack, guard, signal stack, guard).
const MAPPINGS_PER_THREAD: u64 = 4;
/// A low estimate of the private memory of one worker process.
const BYTES_PER_WORKER: u64 = 2 << 20;

/// The tightest limit that applies, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limit {
    pub(crate) most: u64,
    pub(crate) why: String,
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn meminfo(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|line| line.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn soft_limit(resource: rustix::process::Resource) -> Option<u64> {
    rustix::process::getrlimit(resource).current
}

fn tightest(limits: impl IntoIterator<Item = Option<Limit>>) -> Option<Limit> {
    limits.into_iter().flatten().min_by_key(|limit| limit.most)
}

/// Whether `RLIMIT_NPROC` binds this process (root is exempt).
fn nproc_limit() -> Option<Limit> {
    if rustix::process::geteuid().is_root() {
        return None;
    }
    soft_limit(rustix::process::Resource::Nproc).map(|most| Limit {
        most,
        why: format!("ulimit -u (RLIMIT_NPROC) is {most} processes and threads for this user"),
    })
}

fn task_limits() -> [Option<Limit>; 3] {
    [
        read_number("/proc/sys/kernel/threads-max").map(|most| Limit {
            most,
            why: format!("kernel.threads-max is {most}"),
        }),
        read_number("/proc/sys/kernel/pid_max").map(|most| Limit {
            most,
            why: format!("kernel.pid_max is {most}"),
        }),
        nproc_limit(),
    ]
}

/// The most threads one pool may start here.
pub(crate) fn max_threads() -> Option<Limit> {
    let maps = read_number("/proc/sys/vm/max_map_count").map(|max| {
        let used = std::fs::read_to_string("/proc/self/maps")
            .map(|maps| maps.lines().count() as u64)
            .unwrap_or(0);
        Limit {
            most: max.saturating_sub(used) / MAPPINGS_PER_THREAD,
            why: format!(
                "vm.max_map_count is {max}, {used} mappings are in use, and a thread takes \
                 {MAPPINGS_PER_THREAD}"
            ),
        }
    });
    let [a, b, c] = task_limits();
    tightest([a, b, c, maps])
}

/// The most worker processes one pool may start here.
pub(crate) fn max_processes() -> Option<Limit> {
    let files = soft_limit(rustix::process::Resource::Nofile).map(|most| {
        let open = std::fs::read_dir("/proc/self/fd")
            .map(|entries| entries.count() as u64)
            .unwrap_or(0);
        Limit {
            most: most.saturating_sub(open + 16),
            why: format!(
                "ulimit -n (RLIMIT_NOFILE) is {most}, {open} descriptors are open, and the pool \
                 holds one per worker"
            ),
        }
    });
    let memory = meminfo("MemAvailable:").map(|bytes| Limit {
        most: bytes / BYTES_PER_WORKER,
        why: format!(
            "{} MiB of memory is available, and a worker takes at least {} MiB",
            bytes >> 20,
            BYTES_PER_WORKER >> 20
        ),
    });
    let [a, b, c] = task_limits();
    tightest([a, b, c, files, memory])
}

/// Refuses a thread pool of more threads than [`max_threads`] allows.
pub(crate) fn check_threads(threads: usize) -> Result<(), EngineError> {
    match max_threads() {
        Some(limit) if threads as u64 > limit.most => Err(EngineError::TooManyThreads {
            asked: threads,
            most: limit.most,
            why: limit.why,
        }),
        _ => Ok(()),
    }
}

/// Refuses a process pool of more workers than [`max_processes`] allows.
pub(crate) fn check_processes(workers: usize) -> Result<(), PoolError> {
    match max_processes() {
        Some(limit) if workers as u64 > limit.most => Err(PoolError::TooManyWorkers {
            asked: workers,
            most: limit.most,
            why: limit.why,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_allows_a_few_threads_and_workers_but_not_a_billion() {
        let threads = max_threads().expect("Linux has a thread limit");
        let workers = max_processes().expect("Linux has a process limit");
        assert!(
            threads.most >= 16 && workers.most >= 16,
            "{threads:?} {workers:?}"
        );
        assert!(check_threads(16).is_ok() && check_processes(16).is_ok());
        let error = check_threads(1_000_000_000).unwrap_err().to_string();
        assert!(
            error.contains("1000000000 threads") && error.contains("at most"),
            "{error}"
        );
        let error = check_processes(1_000_000_000).unwrap_err().to_string();
        assert!(error.contains("at most"), "{error}");
    }

    #[test]
    fn the_tightest_limit_wins() {
        let limit = |most: u64| {
            Some(Limit {
                most,
                why: format!("{most}"),
            })
        };
        assert_eq!(tightest([limit(9), None, limit(3), limit(5)]), limit(3));
        assert_eq!(tightest([None, None]), None);
    }
}
