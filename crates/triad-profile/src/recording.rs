//! What a profiled run recorded: the contract between the sampler (`run`, which fills it) and
//! the analysis (`classify`, `report`, which read it).

use serde::{Deserialize, Serialize};

/// The language a profiled program is written in, as far as the profiler can tell (or as the
/// user said with `--lang`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    /// CPython: threads cannot run Python code in parallel (the GIL).
    Python,
    /// Compiled code: threads run in parallel.
    Native,
}

/// One look at the whole process tree, `interval` after the previous one.
///
/// Counters are cumulative over every thread and process seen so far (live ones read from
/// `/proc`, ended ones carried over), so differences between samples are rates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds since the command started.
    pub t_ms: f64,
    /// Processes in the tree now.
    pub processes: u32,
    /// Threads in the tree now.
    pub threads: u32,
    /// Threads in state R (running or runnable) now.
    pub running: u32,
    /// Threads in state S (interruptible sleep) now.
    pub sleeping: u32,
    /// Threads in state D (uninterruptible, usually disk) now.
    pub disk_wait: u32,
    /// Threads that ran at all since the previous sample (their CPU time grew).
    pub busy_threads: u32,
    /// Processes whose CPU time grew since the previous sample.
    pub busy_processes: u32,
    /// Nanoseconds on a CPU (`/proc/PID/task/TID/schedstat` field 1), cumulative.
    pub cpu_ns: u64,
    /// Nanoseconds runnable but waiting for a CPU (schedstat field 2), cumulative.
    pub run_delay_ns: u64,
    /// Bytes read / written through read/write calls (`rchar`, `wchar`), cumulative.
    pub rchar: u64,
    /// See `rchar`.
    pub wchar: u64,
    /// Bytes that reached storage (`read_bytes`, `write_bytes`), cumulative.
    pub read_bytes: u64,
    /// See `read_bytes`.
    pub write_bytes: u64,
    /// Read and write system calls (`syscr` + `syscw`), cumulative.
    pub syscalls: u64,
    /// Voluntary context switches (gave up the CPU to wait), cumulative.
    pub voluntary_switches: u64,
    /// Involuntary context switches (preempted), cumulative.
    pub involuntary_switches: u64,
    /// Resident memory of the tree now, bytes.
    pub rss_bytes: u64,
}

/// Final figures for the whole tree, from `wait4`'s resource usage of the waited-for command.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Wall-clock seconds from start until the command and every descendant it left ended.
    pub wall_s: f64,
    /// User CPU seconds (the command and all its descendants).
    pub user_s: f64,
    /// System CPU seconds.
    pub system_s: f64,
    /// Peak resident memory of the largest process, bytes (`ru_maxrss`).
    pub max_rss_bytes: u64,
    /// Voluntary context switches.
    pub voluntary_switches: u64,
    /// Involuntary context switches.
    pub involuntary_switches: u64,
    /// Blocks read from storage (`ru_inblock`, 512-byte units).
    pub in_blocks: u64,
    /// Blocks written to storage (`ru_oublock`).
    pub out_blocks: u64,
    /// The most threads seen at once.
    pub peak_threads: u32,
    /// The most processes seen at once.
    pub peak_processes: u32,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Exit {
    /// It exited with this code.
    Code {
        /// The exit code.
        code: i32,
    },
    /// A signal ended it.
    Signal {
        /// The signal number.
        signal: i32,
    },
}

/// Everything one profiled run recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// The sampling interval, milliseconds.
    pub interval_ms: u64,
    /// CPUs this process may use (affinity and cgroup quota).
    pub cores: usize,
    /// The program's language.
    pub lang: Lang,
    /// The samples, in order.
    pub samples: Vec<Sample>,
    /// Final figures.
    pub totals: Totals,
    /// How the command ended.
    pub exit: Exit,
    /// Seconds from start until the command itself exited; `totals.wall_s` runs on until the
    /// last of its descendants ended.
    #[serde(default)]
    pub command_wall_s: f64,
    /// Descendants still running when the command exited (adopted and followed to their end).
    #[serde(default)]
    pub descendants_left: u32,
}
