//! Reading a process tree's figures from `/proc`, without root.
//!
//! Every counter is read per *thread* (`/proc/PID/task/TID/{stat,schedstat,status,io}`), never
//! per process: a process's `/proc/PID/io` also adds the IO of children it has reaped, which
//! would count a child twice (once while it was seen alive, once inside its parent). Per-thread
//! counters include nothing of anyone else, so the tree's total is a plain sum; a thread that
//! vanished has its last values carried over. Files are read with reused buffers, and anything
//! that vanished between listing and reading is skipped.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

use crate::recording::Sample;

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
            epoch: 0,
            last: Counters::default(),
            detect_python,
            saw_python: false,
        }
    }

    /// Reads `/proc/{pid}/{rest}` (or `/proc/{pid}/task/{tid}/{rest}`) into `self.buf`.
    fn read(&mut self, pid: i32, tid: Option<i32>, rest: &str) -> bool {
        use std::fmt::Write;
        self.path.clear();
        let _ = match tid {
            Some(tid) => write!(self.path, "/proc/{pid}/task/{tid}/{rest}"),
            None => write!(self.path, "/proc/{pid}/{rest}"),
        };
        self.buf.clear();
        match File::open(&self.path) {
            Ok(mut f) => f.read_to_end(&mut self.buf).is_ok(),
            Err(_) => false,
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
                if tid == pid && self.detect_python && is_python_name(comm) {
                    self.saw_python = true;
                }
                let old = self.threads.get(&tid).map(|t| t.counters);
                let mut c = old.unwrap_or_default();
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

                match state {
                    b'Z' | b'X' | b'x' => {}
                    st => {
                        live_threads += 1;
                        match st {
                            b'R' => s.running += 1,
                            b'S' => s.sleeping += 1,
                            b'D' => s.disk_wait += 1,
                            _ => {}
                        }
                    }
                }
                let ran = match old {
                    // The tid was reused by a new thread: the old one's counters are final.
                    Some(o) if c.cpu_ns < o.cpu_ns => {
                        self.ended.add(&o);
                        c.cpu_ns > 0
                    }
                    Some(o) => c.cpu_ns > o.cpu_ns,
                    None => c.cpu_ns > 0,
                };
                if ran {
                    s.busy_threads += 1;
                    busy = true;
                }
                self.threads.insert(tid, Thread { counters: c, epoch });
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

        // Threads not seen this time have ended: carry their last values over.
        let ended = &mut self.ended;
        self.threads.retain(|_, t| {
            if t.epoch == epoch {
                true
            } else {
                ended.add(&t.counters);
                false
            }
        });
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

/// Whether an executable's name (or path: the last component counts) names a Python interpreter.
pub(crate) fn is_python_name(name: &[u8]) -> bool {
    let base = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
    base.starts_with(b"python")
}

/// `pid (comm) S …` → (comm, state). The comm may hold spaces and parentheses, so the state is
/// found after the *last* `)`.
pub(crate) fn parse_stat(buf: &[u8]) -> Option<(&[u8], u8)> {
    let open = buf.iter().position(|&b| b == b'(')?;
    let close = buf.iter().rposition(|&b| b == b')')?;
    let comm = buf.get(open + 1..close)?;
    let state = *buf.get(close + 2)?;
    Some((comm, state))
}

/// `cpu_ns run_delay_ns timeslices`.
pub(crate) fn parse_schedstat(buf: &[u8]) -> Option<(u64, u64)> {
    let mut it = buf
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let cpu = parse_u64(it.next()?)?;
    let delay = parse_u64(it.next()?)?;
    Some((cpu, delay))
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) rss_kib: Option<u64>,
    pub(crate) voluntary: Option<u64>,
    pub(crate) involuntary: Option<u64>,
}

pub(crate) fn parse_status(buf: &[u8]) -> Status {
    let mut st = Status::default();
    for line in buf.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (key, value) = (&line[..colon], &line[colon + 1..]);
        let slot = match key {
            b"VmRSS" => &mut st.rss_kib,
            b"voluntary_ctxt_switches" => &mut st.voluntary,
            b"nonvoluntary_ctxt_switches" => &mut st.involuntary,
            _ => continue,
        };
        *slot = first_number(value);
    }
    st
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Io {
    pub(crate) rchar: u64,
    pub(crate) wchar: u64,
    pub(crate) syscr: u64,
    pub(crate) syscw: u64,
    pub(crate) read_bytes: u64,
    pub(crate) write_bytes: u64,
}

pub(crate) fn parse_io(buf: &[u8]) -> Option<Io> {
    let mut io = Io::default();
    let mut any = false;
    for line in buf.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let slot = match &line[..colon] {
            b"rchar" => &mut io.rchar,
            b"wchar" => &mut io.wchar,
            b"syscr" => &mut io.syscr,
            b"syscw" => &mut io.syscw,
            b"read_bytes" => &mut io.read_bytes,
            b"write_bytes" => &mut io.write_bytes,
            _ => continue,
        };
        if let Some(v) = first_number(&line[colon + 1..]) {
            *slot = v;
            any = true;
        }
    }
    any.then_some(io)
}

/// Space-separated pids (a `children` file), pushed onto `out`.
pub(crate) fn parse_pids(buf: &[u8], out: &mut Vec<i32>) {
    for w in buf.split(|b| b.is_ascii_whitespace()) {
        if let Some(pid) = parse_u64(w).and_then(|p| i32::try_from(p).ok()) {
            out.push(pid);
        }
    }
}

fn first_number(s: &[u8]) -> Option<u64> {
    s.split(|b| b.is_ascii_whitespace())
        .find(|w| !w.is_empty())
        .and_then(parse_u64)
}

fn parse_u64(w: &[u8]) -> Option<u64> {
    if w.is_empty() || w.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in w {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_awkward_comm() {
        let (comm, state) = parse_stat(b"123 (a) b (c)) R 1 2 3").unwrap();
        assert_eq!(comm, b"a) b (c)");
        assert_eq!(state, b'R');
        assert_eq!(parse_stat(b"garbage"), None);
    }

    #[test]
    fn schedstat_status_io_children() {
        assert_eq!(parse_schedstat(b"123456 789 10\n"), Some((123456, 789)));
        assert_eq!(parse_schedstat(b""), None);
        let st = parse_status(
            b"Name:\tx\nVmRSS:\t    2048 kB\nvoluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t3\n",
        );
        assert_eq!(
            st,
            Status {
                rss_kib: Some(2048),
                voluntary: Some(7),
                involuntary: Some(3)
            }
        );
        let io = parse_io(b"rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 2\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n").unwrap();
        assert_eq!(
            io,
            Io {
                rchar: 10,
                wchar: 20,
                syscr: 1,
                syscw: 2,
                read_bytes: 4096,
                write_bytes: 8192
            }
        );
        assert_eq!(parse_io(b""), None);
        let mut v = vec![];
        parse_pids(b"12 34 \n", &mut v);
        assert_eq!(v, [12, 34]);
    }

    #[test]
    fn python_names() {
        assert!(is_python_name(b"python3"));
        assert!(is_python_name(b"/usr/bin/python3.11"));
        assert!(!is_python_name(b"/usr/bin/python-dir/sh"));
        assert!(!is_python_name(b"sh"));
    }

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
