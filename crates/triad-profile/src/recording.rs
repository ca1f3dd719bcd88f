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
    /// Threads at work in the interval ending now, each weighted by its share of the work: the
    /// participation ratio `(Σx)² / Σx²` of every thread's growth `x` in CPU time. Two threads
    /// computing flat out give 2; two such threads beside three helpers that woke for a moment
    /// give about 2, not 5; 0 when nothing ran. (CPU alone, not run-queue delay: on a loaded
    /// machine a helper woken for a moment may queue for long, but still does little.)
    #[serde(default)]
    pub work_threads: f64,
}

/// What a sleeping thread (state S) was blocked in, read from its current system call
/// (`/proc/PID/task/TID/syscall`) and, for a call on a descriptor, what the descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitKind {
    /// A timer: `nanosleep`, `clock_nanosleep`.
    Timer,
    /// A read, write, accept or connect on a socket.
    Socket,
    /// A read or write on a pipe or FIFO.
    Pipe,
    /// A read or write on a terminal.
    Terminal,
    /// `poll`, `select` or `epoll_wait`: readiness of descriptors it is not told which, or a
    /// timeout.
    Poll,
    /// A futex: a lock, a condition, a join — waiting on another thread of the program
    /// (a Python thread waiting for the GIL waits here too).
    Lock,
    /// `wait4`/`waitid`: waiting for a child process to end.
    Child,
    /// Anything else, or not readable.
    Other,
}

/// How many samples found a thread sleeping, by what it was blocked in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitCounts {
    /// See [`WaitKind::Timer`].
    pub timer: u32,
    /// See [`WaitKind::Socket`].
    pub socket: u32,
    /// See [`WaitKind::Pipe`].
    pub pipe: u32,
    /// See [`WaitKind::Terminal`].
    pub terminal: u32,
    /// See [`WaitKind::Poll`].
    pub poll: u32,
    /// See [`WaitKind::Lock`].
    pub lock: u32,
    /// See [`WaitKind::Child`].
    pub child: u32,
    /// See [`WaitKind::Other`].
    pub other: u32,
}

impl WaitCounts {
    /// Counts one more sample blocked in `kind`.
    pub fn add(&mut self, kind: WaitKind) {
        *self.slot(kind) += 1;
    }

    /// Samples blocked in `kind`.
    pub fn get(&self, kind: WaitKind) -> u32 {
        match kind {
            WaitKind::Timer => self.timer,
            WaitKind::Socket => self.socket,
            WaitKind::Pipe => self.pipe,
            WaitKind::Terminal => self.terminal,
            WaitKind::Poll => self.poll,
            WaitKind::Lock => self.lock,
            WaitKind::Child => self.child,
            WaitKind::Other => self.other,
        }
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &WaitCounts) {
        self.timer += other.timer;
        self.socket += other.socket;
        self.pipe += other.pipe;
        self.terminal += other.terminal;
        self.poll += other.poll;
        self.lock += other.lock;
        self.child += other.child;
        self.other += other.other;
    }

    /// Samples sleeping, whatever in.
    pub fn total(&self) -> u32 {
        self.timer
            + self.socket
            + self.pipe
            + self.terminal
            + self.poll
            + self.lock
            + self.child
            + self.other
    }

    fn slot(&mut self, kind: WaitKind) -> &mut u32 {
        match kind {
            WaitKind::Timer => &mut self.timer,
            WaitKind::Socket => &mut self.socket,
            WaitKind::Pipe => &mut self.pipe,
            WaitKind::Terminal => &mut self.terminal,
            WaitKind::Poll => &mut self.poll,
            WaitKind::Lock => &mut self.lock,
            WaitKind::Child => &mut self.child,
            WaitKind::Other => &mut self.other,
        }
    }
}

/// One thread of the tree over its whole observed life: what it used and what the samples
/// found it doing. The analysis weighs threads by their share of the work with these, and
/// names the ones it set aside.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadRecord {
    /// Its process.
    pub pid: i32,
    /// The thread.
    pub tid: i32,
    /// The process's name (its main thread's `comm`).
    pub process: String,
    /// The thread's own name (`comm`).
    pub name: String,
    /// The first sample that saw it, ms since the command started.
    pub first_ms: f64,
    /// The last sample that saw it.
    pub last_ms: f64,
    /// Nanoseconds on a CPU, over its life.
    pub cpu_ns: u64,
    /// Nanoseconds runnable but waiting for a CPU.
    pub run_delay_ns: u64,
    /// Samples that found it in state R.
    pub running: u32,
    /// Samples that found it in state D (uninterruptible: disk, usually).
    pub disk_wait: u32,
    /// Samples that found it in state S, by what it was blocked in.
    pub sleeping: WaitCounts,
}

impl ThreadRecord {
    /// Samples that saw it alive.
    pub fn samples(&self) -> u32 {
        self.running + self.disk_wait + self.sleeping.total()
    }
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
    /// Every thread the samples saw, in the order they were first seen (at most
    /// [`MAX_THREAD_RECORDS`]; past that, ended threads are folded into one last record).
    #[serde(default)]
    pub threads: Vec<ThreadRecord>,
}

/// The most [`ThreadRecord`]s a recording keeps, so that a program starting threads without
/// end cannot grow the profiler's memory without end.
pub const MAX_THREAD_RECORDS: usize = 4096;
