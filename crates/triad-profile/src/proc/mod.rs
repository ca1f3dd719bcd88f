//! Reading a process tree's figures from `/proc`, without root.
//!
//! Every counter is read per *thread* (`/proc/PID/task/TID/{stat,schedstat,status,io}`), never
//! per process: a process's `/proc/PID/io` also adds the IO of children it has reaped, which
//! would count a child twice (once while it was seen alive, once inside its parent). Per-thread
//! counters include nothing of anyone else, so the tree's total is a plain sum; a thread that
//! vanished has its last values carried over. Files are read with reused buffers, and anything
//! that vanished between listing and reading is skipped.
//!
//! Besides the tree's totals, each thread keeps a [`ThreadRecord`] (its CPU, run-queue delay
//! and what the samples found it doing, with what a sleeping thread was blocked in: see
//! `wait`), and each sample weighs the threads that worked in its interval (the participation
//! ratio of their CPU growth), so that the analysis can tell the threads that do the work from
//! helpers that sleep.

mod parse;
mod wait;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

pub(crate) use parse::is_python_name;
use parse::{parse_io, parse_pids, parse_schedstat, parse_stat, parse_status, parse_syscall};
use wait::{Call, call_kind, descriptor_kind};

use crate::recording::{MAX_THREAD_RECORDS, Sample, ThreadRecord, WaitKind};

/// One thread's cumulative counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) cpu_ns: u64,
    pub(crate) run_delay_ns: u64,
    pub(crate) rchar: u64,
    pub(crate) wchar: u64,
    pub(crate) read_bytes: u64,
    pub(crate) write_bytes: u64,
    pub(crate) syscalls: u64,
    pub(crate) voluntary: u64,
    pub(crate) involuntary: u64,
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.cpu_ns += o.cpu_ns;
        self.run_delay_ns += o.run_delay_ns;
        self.rchar += o.rchar;
        self.wchar += o.wchar;
        self.read_bytes += o.read_bytes;
        self.write_bytes += o.write_bytes;
        self.syscalls += o.syscalls;
        self.voluntary += o.voluntary;
        self.involuntary += o.involuntary;
    }
}

#[derive(Debug)]
struct Thread {
    counters: Counters,
    /// The sample that last saw it.
    epoch: u64,
    /// Its life so far (the CPU and delay fields are filled when it is handed out).
    record: ThreadRecord,
}

/// Samples the tree rooted at one pid; keeps what it needs between samples.
#[derive(Debug)]
pub(crate) struct Sampler {
    root: i32,
    path: String,
    buf: Vec<u8>,
    stack: Vec<i32>,
    threads: HashMap<i32, Thread>,
    /// Counters of threads that are gone.
    ended: Counters,
    /// Records of threads that are gone, at most [`MAX_THREAD_RECORDS`] (the last one then
    /// folds in every later one).
    ended_records: Vec<ThreadRecord>,
    /// Each process's name (its main thread's `comm`), for the records.
    process_names: HashMap<i32, String>,
    epoch: u64,
    /// The previous sample's cumulative figures (outputs never go down).
    last: Counters,
    /// Whether `root` is the guard (see `guard`): not part of the figures, only the tree's top.
    root_is_guard: bool,
    /// The process whose executable tells the language: the command.
    command: i32,
    /// Whether to look for a Python interpreter in the tree.
    detect_python: bool,
    /// A process in the tree was a Python interpreter (by `comm`, or the root's `exe`).
    pub(crate) saw_python: bool,
}

impl Sampler {
    /// Samples the tree of `root`, `root` included.
    #[cfg(test)]
    pub(crate) fn new(root: i32, detect_python: bool) -> Self {
        Sampler::with_root(root, false, root, detect_python)
    }

    /// Samples the tree below the guard `guard`, whose child is `command`; the guard itself
    /// is left out of every figure.
    pub(crate) fn below_guard(guard: i32, command: i32, detect_python: bool) -> Self {
        Sampler::with_root(guard, true, command, detect_python)
    }

    fn with_root(root: i32, root_is_guard: bool, command: i32, detect_python: bool) -> Self {
        Sampler {
            root,
            root_is_guard,
            command,
            path: String::with_capacity(64),
            buf: Vec::with_capacity(4096),
            stack: Vec::new(),
            threads: HashMap::new(),
            ended: Counters::default(),
            ended_records: Vec::new(),
            process_names: HashMap::new(),
            epoch: 0,
            last: Counters::default(),
            detect_python,
            saw_python: false,
        }
    }

    /// Reads `/proc/{pid}/{rest}` (or `/proc/{pid}/task/{tid}/{rest}`) into `self.buf`.
    fn read(&mut self, pid: i32, tid: Option<i32>, rest: &str) -> bool {
        self.set_path(pid, tid, rest);
        self.buf.clear();
        match File::open(&self.path) {
            Ok(mut f) => f.read_to_end(&mut self.buf).is_ok(),
            Err(_) => false,
        }
    }

    fn set_path(&mut self, pid: i32, tid: Option<i32>, rest: &str) {
        use std::fmt::Write;
        self.path.clear();
        let _ = match tid {
            Some(tid) => write!(self.path, "/proc/{pid}/task/{tid}/{rest}"),
            None => write!(self.path, "/proc/{pid}/{rest}"),
        };
    }

    /// What the sleeping thread `tid` of `pid` is blocked in.
    fn wait_kind(&mut self, pid: i32, tid: i32) -> WaitKind {
        if !self.read(pid, Some(tid), "syscall") {
            return WaitKind::Other;
        }
        let Some((nr, arg0)) = parse_syscall(&self.buf) else {
            return WaitKind::Other;
        };
        match call_kind(nr) {
            Call::Known(kind) => kind,
            Call::OnDescriptor => {
                self.set_path(pid, None, &format!("fd/{arg0}"));
                match fs::read_link(&self.path) {
                    Ok(target) => descriptor_kind(target.as_os_str().as_encoded_bytes()),
                    Err(_) => WaitKind::Other,
                }
            }
        }
    }

    /// Takes one sample of the tree; `t_ms` is stamped on it.
    pub(crate) fn sample(&mut self, t_ms: f64) -> Sample {
        self.epoch += 1;
        let epoch = self.epoch;
        let mut s = Sample {
            t_ms,
            ..Sample::default()
        };
        if self.detect_python && !self.saw_python {
            self.path.clear();
            self.path.push_str("/proc/");
            self.path.push_str(&self.command.to_string());
            self.path.push_str("/exe");
            if let Ok(exe) = fs::read_link(&self.path) {
                self.saw_python |= is_python_name(exe.as_os_str().as_encoded_bytes());
            }
        }
        // Σx and Σx² of each thread's CPU growth, for the participation ratio.
        let (mut work, mut work_squared) = (0.0_f64, 0.0_f64);
        self.stack.clear();
        self.stack.push(self.root);
        while let Some(pid) = self.stack.pop() {
            if self.root_is_guard && pid == self.root {
                // The guard: one thread, whose children are the tree's top processes.
                if self.read(pid, Some(pid), "children") {
                    parse_pids(&self.buf, &mut self.stack);
                }
                continue;
            }
            let Ok(dir) = fs::read_dir(Path::new("/proc").join(pid.to_string()).join("task"))
            else {
                continue; // gone
            };
            let (mut live_threads, mut busy, mut rss) = (0u32, false, None);
            for entry in dir.flatten() {
                let Some(tid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<i32>().ok())
                else {
                    continue;
                };
                if !self.read(pid, Some(tid), "stat") {
                    continue; // the thread ended
                }
                let Some((comm, state)) = parse_stat(&self.buf) else {
                    continue;
                };
                let name = String::from_utf8_lossy(comm).into_owned();
                if tid == pid {
                    if self.detect_python && is_python_name(comm) {
                        self.saw_python = true;
                    }
                    self.process_names.insert(pid, name.clone());
                }
                let old = self.threads.remove(&tid);
                let old_counters = old.as_ref().map(|t| t.counters);
                let mut c = old_counters.unwrap_or_default();
                if self.read(pid, Some(tid), "schedstat")
                    && let Some((cpu, delay)) = parse_schedstat(&self.buf)
                {
                    c.cpu_ns = cpu;
                    c.run_delay_ns = delay;
                }
                if self.read(pid, Some(tid), "status") {
                    let st = parse_status(&self.buf);
                    c.voluntary = st.voluntary.unwrap_or(c.voluntary);
                    c.involuntary = st.involuntary.unwrap_or(c.involuntary);
                    if rss.is_none() || tid == pid {
                        rss = st.rss_kib.or(rss);
                    }
                }
                if self.read(pid, Some(tid), "io")
                    && let Some(io) = parse_io(&self.buf)
                {
                    c.rchar = io.rchar;
                    c.wchar = io.wchar;
                    c.read_bytes = io.read_bytes;
                    c.write_bytes = io.write_bytes;
                    c.syscalls = io.syscr + io.syscw;
                }
                if self.read(pid, Some(tid), "children") {
                    parse_pids(&self.buf, &mut self.stack);
                }

                // The tid was reused by a new thread when its CPU time went down: the old
                // one's counters and record are final.
                let reused = old_counters.is_some_and(|o| c.cpu_ns < o.cpu_ns);
                let (before, mut record) = match old {
                    Some(t) if !reused => (t.counters, t.record),
                    other => {
                        if let Some(t) = other {
                            self.retire(t);
                        }
                        let record = ThreadRecord {
                            pid,
                            tid,
                            name,
                            first_ms: t_ms,
                            ..ThreadRecord::default()
                        };
                        (Counters::default(), record)
                    }
                };
                record.last_ms = t_ms;
                match state {
                    b'Z' | b'X' | b'x' => {}
                    st => {
                        live_threads += 1;
                        match st {
                            b'R' => {
                                s.running += 1;
                                record.running += 1;
                            }
                            b'S' => {
                                s.sleeping += 1;
                                let kind = self.wait_kind(pid, tid);
                                record.sleeping.add(kind);
                            }
                            b'D' => {
                                s.disk_wait += 1;
                                record.disk_wait += 1;
                            }
                            _ => {}
                        }
                    }
                }
                if c.cpu_ns > before.cpu_ns {
                    s.busy_threads += 1;
                    busy = true;
                }
                let grown = c.cpu_ns.saturating_sub(before.cpu_ns) as f64;
                work += grown;
                work_squared += grown * grown;
                self.threads.insert(
                    tid,
                    Thread {
                        counters: c,
                        epoch,
                        record,
                    },
                );
            }
            if live_threads > 0 {
                s.processes += 1;
                s.threads += live_threads;
                s.rss_bytes += rss.unwrap_or(0) * 1024;
            }
            if busy {
                s.busy_processes += 1;
            }
        }
        if work_squared > 0.0 {
            s.work_threads = work * work / work_squared;
        }

        // Threads not seen this time have ended: carry their last values over.
        let gone: Vec<i32> = self
            .threads
            .iter()
            .filter(|(_, t)| t.epoch != epoch)
            .map(|(&tid, _)| tid)
            .collect();
        for tid in gone {
            if let Some(t) = self.threads.remove(&tid) {
                self.retire(t);
            }
        }
        let mut total = self.ended;
        for t in self.threads.values() {
            total.add(&t.counters);
        }
        // Guard against anything odd (a reused tid, an unreadable file): never go down.
        let l = &self.last;
        total = Counters {
            cpu_ns: total.cpu_ns.max(l.cpu_ns),
            run_delay_ns: total.run_delay_ns.max(l.run_delay_ns),
            rchar: total.rchar.max(l.rchar),
            wchar: total.wchar.max(l.wchar),
            read_bytes: total.read_bytes.max(l.read_bytes),
            write_bytes: total.write_bytes.max(l.write_bytes),
            syscalls: total.syscalls.max(l.syscalls),
            voluntary: total.voluntary.max(l.voluntary),
            involuntary: total.involuntary.max(l.involuntary),
        };
        self.last = total;
        s.cpu_ns = total.cpu_ns;
        s.run_delay_ns = total.run_delay_ns;
        s.rchar = total.rchar;
        s.wchar = total.wchar;
        s.read_bytes = total.read_bytes;
        s.write_bytes = total.write_bytes;
        s.syscalls = total.syscalls;
        s.voluntary_switches = total.voluntary;
        s.involuntary_switches = total.involuntary;
        s
    }

    /// A thread has ended (or its tid was reused): its counters join the ended total, its
    /// record the ended records.
    fn retire(&mut self, thread: Thread) {
        self.ended.add(&thread.counters);
        let record = finished(&thread);
        if self.ended_records.len() < MAX_THREAD_RECORDS {
            self.ended_records.push(record);
        } else if let Some(last) = self.ended_records.last_mut() {
            fold(last, &record);
        }
    }

    /// Every thread the samples saw, ended and alive, in the order they were first seen, each
    /// with its process's name.
    pub(crate) fn thread_records(&self) -> Vec<ThreadRecord> {
        let mut records = self.ended_records.clone();
        let mut alive: Vec<&Thread> = self.threads.values().collect();
        alive.sort_by(|a, b| a.record.first_ms.total_cmp(&b.record.first_ms));
        for t in alive {
            let record = finished(t);
            if records.len() < MAX_THREAD_RECORDS {
                records.push(record);
            } else if let Some(last) = records.last_mut() {
                fold(last, &record);
            }
        }
        records.sort_by(|a, b| a.first_ms.total_cmp(&b.first_ms));
        for r in &mut records {
            if let Some(name) = self.process_names.get(&r.pid) {
                r.process.clone_from(name);
            }
        }
        records
    }
}

/// The thread's record with its final CPU and delay.
fn finished(thread: &Thread) -> ThreadRecord {
    let mut record = thread.record.clone();
    record.cpu_ns = thread.counters.cpu_ns;
    record.run_delay_ns = thread.counters.run_delay_ns;
    record
}

/// Folds `more` into `into`: the record that stands for every thread past the limit.
fn fold(into: &mut ThreadRecord, more: &ThreadRecord) {
    into.cpu_ns += more.cpu_ns;
    into.run_delay_ns += more.run_delay_ns;
    into.first_ms = into.first_ms.min(more.first_ms);
    into.last_ms = into.last_ms.max(more.last_ms);
    into.running += more.running;
    into.disk_wait += more.disk_wait;
    into.sleeping.merge(&more.sleeping);
    into.name = "(more threads)".into();
}

impl Sampler {
    /// Every process of the tree now (the guard left out), for passing a signal on.
    pub(crate) fn processes(&mut self) -> Vec<i32> {
        let mut found = Vec::new();
        self.stack.clear();
        self.stack.push(self.root);
        while let Some(pid) = self.stack.pop() {
            if !(self.root_is_guard && pid == self.root) {
                found.push(pid);
            }
            let Ok(dir) = fs::read_dir(Path::new("/proc").join(pid.to_string()).join("task"))
            else {
                continue;
            };
            for tid in dir
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
            {
                if self.read(pid, Some(tid), "children") {
                    parse_pids(&self.buf, &mut self.stack);
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_itself() {
        // The test process itself: at least this thread, running, with CPU time.
        let me = std::process::id() as i32;
        let mut s = Sampler::new(me, true);
        let a = s.sample(0.0);
        assert!(a.processes >= 1, "{a:?}"); // other tests may have children running
        assert!(a.threads >= 1);
        assert!(a.running >= 1, "{a:?}");
        assert!(a.cpu_ns > 0 && a.rss_bytes > 0, "{a:?}");
        let b = s.sample(1.0);
        assert!(b.cpu_ns >= a.cpu_ns && b.voluntary_switches >= a.voluntary_switches);
        assert!(!s.saw_python);
    }
}
