//! Hand-built recordings for tests: each interval's increments, accumulated into samples.

use crate::recording::{Exit, Lang, Recording, Sample, Totals};

/// What happened in one sample interval (increments, and the state at its end).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Step {
    pub(crate) cpu_ms: f64,
    pub(crate) delay_ms: f64,
    pub(crate) processes: u32,
    pub(crate) threads: u32,
    pub(crate) running: u32,
    pub(crate) sleeping: u32,
    pub(crate) disk_wait: u32,
    pub(crate) busy_threads: u32,
    pub(crate) busy_processes: u32,
    pub(crate) rchar: u64,
    pub(crate) wchar: u64,
    pub(crate) read_bytes: u64,
    pub(crate) write_bytes: u64,
    pub(crate) syscalls: u64,
    /// The interval's participation ratio; `None`: the busy threads, sharing equally.
    pub(crate) work_threads: Option<f64>,
}

/// A `steps.len() × interval_ms` run; switches and the user/system split go into the totals
/// (and the switches, spread evenly, into the samples).
pub(crate) fn recording(
    lang: Lang,
    cores: usize,
    interval_ms: u64,
    steps: &[Step],
    system_share: f64,
    voluntary: u64,
    involuntary: u64,
) -> Recording {
    let mut acc = Sample::default();
    let mut samples = Vec::new();
    let n = steps.len() as u64;
    for (i, st) in steps.iter().enumerate() {
        let i = i as u64 + 1;
        acc.t_ms = (i * interval_ms) as f64;
        acc.processes = st.processes.max(1);
        acc.threads = st.threads.max(1);
        acc.running = st.running;
        acc.sleeping = st.sleeping;
        acc.disk_wait = st.disk_wait;
        acc.busy_threads = st.busy_threads;
        acc.busy_processes = st.busy_processes;
        acc.cpu_ns += (st.cpu_ms * 1e6) as u64;
        acc.run_delay_ns += (st.delay_ms * 1e6) as u64;
        acc.rchar += st.rchar;
        acc.wchar += st.wchar;
        acc.read_bytes += st.read_bytes;
        acc.write_bytes += st.write_bytes;
        acc.syscalls += st.syscalls;
        acc.voluntary_switches = voluntary * i / n;
        acc.involuntary_switches = involuntary * i / n;
        acc.rss_bytes = 10 << 20;
        acc.work_threads = st.work_threads.unwrap_or(f64::from(st.busy_threads));
        samples.push(acc.clone());
    }
    let cpu_s = acc.cpu_ns as f64 / 1e9;
    Recording {
        command: vec!["python3".into(), "workload.py".into()],
        interval_ms,
        cores,
        lang,
        totals: Totals {
            wall_s: acc.t_ms / 1000.0,
            user_s: cpu_s * (1.0 - system_share),
            system_s: cpu_s * system_share,
            max_rss_bytes: 10 << 20,
            voluntary_switches: voluntary,
            involuntary_switches: involuntary,
            in_blocks: 0,
            out_blocks: 0,
            peak_threads: steps.iter().map(|s| s.threads).max().unwrap_or(1),
            peak_processes: steps.iter().map(|s| s.processes).max().unwrap_or(1),
        },
        samples,
        exit: Exit::Code { code: 0 },
        command_wall_s: acc.t_ms / 1000.0,
        descendants_left: 0,
        threads: Vec::new(),
    }
}

/// One thread busy for `cpu_ms` of each 20 ms interval, for `n` intervals.
pub(crate) fn one_thread(cpu_ms: f64, n: usize) -> Vec<Step> {
    let st = Step {
        cpu_ms,
        processes: 1,
        threads: 1,
        running: u32::from(cpu_ms >= 10.0),
        sleeping: u32::from(cpu_ms < 10.0),
        busy_threads: u32::from(cpu_ms > 0.0),
        busy_processes: u32::from(cpu_ms > 0.0),
        ..Step::default()
    };
    vec![st; n]
}

/// The research note's signatures on a 2-core machine, 20 ms samples.
pub(crate) mod signatures {
    use super::*;

    /// CPU loop: cpu/wall 1.00, 1 thread, 1 voluntary and 7 involuntary switches, 3 s.
    pub(crate) fn cpu_loop(lang: Lang) -> Recording {
        recording(lang, 2, 20, &one_thread(20.0, 150), 0.01, 1, 7)
    }

    /// Sleep loop: cpu/wall 0.03, 51 voluntary switches, 3 s; the thread runs in every third
    /// interval. Python's start-up reads 5 MB (imports) in the first, busy, interval.
    pub(crate) fn sleep_loop() -> Recording {
        let mut steps: Vec<Step> = (0..150)
            .map(|i| {
                let busy = i % 3 == 0;
                Step {
                    cpu_ms: if busy { 1.8 } else { 0.0 },
                    processes: 1,
                    threads: 1,
                    sleeping: 1,
                    busy_threads: u32::from(busy),
                    busy_processes: u32::from(busy),
                    ..Step::default()
                }
            })
            .collect();
        steps[0].cpu_ms = 20.0;
        steps[0].running = 1;
        steps[0].sleeping = 0;
        steps[0].rchar = 5 << 20;
        steps[0].read_bytes = 5 << 20;
        steps[0].syscalls = 400;
        recording(Lang::Python, 2, 20, &steps, 0.1, 51, 4)
    }

    /// Four CPU-bound Python threads on the GIL: cpu/wall 0.99, 377 voluntary, 108
    /// involuntary switches, 3 s; four threads busy in every interval, one running.
    pub(crate) fn gil_threads() -> Recording {
        let st = Step {
            cpu_ms: 19.8,
            delay_ms: 0.5,
            processes: 1,
            threads: 5,
            running: 1,
            sleeping: 4,
            busy_threads: 4,
            busy_processes: 1,
            ..Step::default()
        };
        recording(Lang::Python, 2, 20, &vec![st; 150], 0.02, 377, 108)
    }

    /// multiprocessing CPU: three processes busy on two cores (≈ 2 cores of CPU, the third's
    /// share in the run queue), 3 s.
    pub(crate) fn multiprocessing() -> Recording {
        let st = Step {
            cpu_ms: 39.5,
            delay_ms: 19.0,
            processes: 4,
            threads: 4,
            running: 3,
            sleeping: 1,
            busy_threads: 3,
            busy_processes: 3,
            ..Step::default()
        };
        recording(Lang::Python, 2, 20, &vec![st; 150], 0.01, 30, 400)
    }

    /// write+fsync loop: user 0.07 s, system 1.77 s in 3 s, 38k voluntary switches; the thread
    /// in D in every other sample, 4 KiB written (and reaching storage) per fsync.
    pub(crate) fn fsync_loop() -> Recording {
        let steps: Vec<Step> = (0..150)
            .map(|i| Step {
                cpu_ms: 12.3,
                processes: 1,
                threads: 1,
                running: u32::from(i % 2 == 0),
                disk_wait: u32::from(i % 2 == 1),
                busy_threads: 1,
                busy_processes: 1,
                wchar: 85 * 4096,
                write_bytes: 85 * 4096,
                syscalls: 85,
                ..Step::default()
            })
            .collect();
        recording(Lang::Python, 2, 20, &steps, 1.77 / 1.84, 38_000, 22)
    }

    /// `tar -cf /dev/null` walking a fresh tree, as CI saw it: user 0.14 s, system 0.59 s in
    /// 0.74 s, the thread on a CPU throughout; one short interval (its start) read metadata
    /// from storage at about 23 MB/s.
    pub(crate) fn tree_walk_in_kernel() -> Recording {
        let steps: Vec<Step> = (0..37)
            .map(|i| Step {
                cpu_ms: if i == 0 { 4.0 } else { 20.0 },
                processes: 1,
                threads: 1,
                running: 1,
                busy_threads: 1,
                busy_processes: 1,
                read_bytes: if i == 0 { 460 << 10 } else { 0 },
                rchar: 400,
                syscalls: 1,
                ..Step::default()
            })
            .collect();
        recording(Lang::Native, 2, 20, &steps, 0.59 / 0.73, 440, 110)
    }

    /// Alternating 50 ms of compute and 50 ms of sleep, 3 s.
    pub(crate) fn mixed(lang: Lang) -> Recording {
        let pattern = [20.0, 20.0, 10.0, 0.0, 0.0];
        let steps: Vec<Step> = (0..150)
            .map(|i| {
                let cpu_ms = pattern[i % 5];
                Step {
                    cpu_ms,
                    processes: 1,
                    threads: 1,
                    running: u32::from(cpu_ms >= 20.0),
                    sleeping: u32::from(cpu_ms < 20.0),
                    busy_threads: u32::from(cpu_ms > 0.0),
                    busy_processes: u32::from(cpu_ms > 0.0),
                    ..Step::default()
                }
            })
            .collect();
        recording(lang, 2, 20, &steps, 0.02, 30, 20)
    }

    /// A client waiting on sockets: cpu/wall 0.005, 1 MB/s through read/write, 500 calls/s.
    pub(crate) fn network_client() -> Recording {
        let steps: Vec<Step> = (0..150)
            .map(|_| Step {
                cpu_ms: 0.1,
                processes: 1,
                threads: 1,
                sleeping: 1,
                busy_threads: 1,
                busy_processes: 1,
                rchar: 20_000,
                wchar: 1_000,
                syscalls: 10,
                ..Step::default()
            })
            .collect();
        recording(Lang::Python, 2, 20, &steps, 0.3, 1500, 10)
    }
}

/// A thread record: alive over the whole of `rec`, with `cpu_s` of CPU, found in state R in
/// `running` samples and asleep in `kind` in the others.
pub(crate) fn thread(
    rec: &Recording,
    pid: i32,
    tid: i32,
    cpu_s: f64,
    running: u32,
    kind: crate::recording::WaitKind,
) -> crate::recording::ThreadRecord {
    let samples = rec.samples.len() as u32;
    let mut sleeping = crate::recording::WaitCounts::default();
    for _ in running..samples {
        sleeping.add(kind);
    }
    crate::recording::ThreadRecord {
        pid,
        tid,
        process: "python3".into(),
        name: "python3".into(),
        first_ms: rec.samples.first().map_or(0.0, |s| s.t_ms),
        last_ms: rec.samples.last().map_or(0.0, |s| s.t_ms),
        cpu_ns: (cpu_s * 1e9) as u64,
        run_delay_ns: 0,
        running,
        disk_wait: 0,
        sleeping,
    }
}
