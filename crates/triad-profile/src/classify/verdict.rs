//! The verdict on a span of figures: the GIL signature first (several threads, about one core,
//! many voluntary switches: it hides CPU-bound work behind waits), then CPU demand — high is
//! CPU-bound, low is IO-bound, in between mixed — and, for IO, what the threads at work waited
//! on: the disk (D state, bytes reaching storage), a socket or pipe, or a timer.

use crate::recording::{Lang, WaitKind};

use super::facts::Facts;
use super::{
    CPU_BOUND_MIN_DEMAND, DISK_MIN_BYTES_PER_S, DISK_MIN_D_SHARE, GIL_MAX_CORES,
    GIL_MIN_BUSY_THREADS, GIL_MIN_CORES, GIL_MIN_VOLUNTARY_PER_S, IO_BOUND_MAX_DEMAND, IoWait,
    NET_MIN_CHARS_PER_S, NET_MIN_SYSCALLS_PER_S, PARALLEL_MIN_CORES, Verdict, human_bytes,
};

impl Facts<'_> {
    /// The "several threads taking turns on one core" signature (the GIL, for Python).
    ///
    /// About one core, busy or wanted (on a CPU or queued for one: threads starved by another
    /// program still want the cores they would use, and GIL waiters woken on a loaded machine
    /// queue too); several threads at work, each waiting while the others run — `n` threads
    /// sharing one core wait `n − 1` times as long as they compute, so W/C at least half that —
    /// asleep rather than queued, with many voluntary switches.
    pub(super) fn serialised(&self) -> bool {
        let f = &self.figures;
        let band = GIL_MIN_CORES..=GIL_MAX_CORES;
        f.cores >= 2
            && f.active_threads >= GIL_MIN_BUSY_THREADS
            && (band.contains(&f.cores_demanded) || band.contains(&f.avg_cores_busy))
            && f.wait_over_compute >= 0.5 * (f.active_threads - 1.0)
            && f.voluntary_switches_per_s >= GIL_MIN_VOLUNTARY_PER_S
            && f.wait_s > f.run_delay_s
            && f.compute_s >= f.cpu_s * 0.5
    }

    /// Whether it keeps (or, on a loaded machine, wants) several cores busy.
    pub(super) fn parallel(&self) -> bool {
        self.figures.cores_demanded >= PARALLEL_MIN_CORES
    }

    /// The IO counters' answer: bytes or calls flowing while waiting mean a socket or pipe.
    fn traffic_while_waiting(&self) -> bool {
        self.waiting_chars_per_s >= NET_MIN_CHARS_PER_S
            || self.waiting_syscalls_per_s >= NET_MIN_SYSCALLS_PER_S
    }

    pub(super) fn io_wait(&self) -> IoWait {
        if self.d_share >= DISK_MIN_D_SHARE || self.waiting_storage_per_s >= DISK_MIN_BYTES_PER_S {
            return IoWait::Disk;
        }
        // What the threads at work were blocked in, where the records tell: a socket, pipe or
        // terminal; a timer; or poll/select/epoll, which the IO counters resolve. Waits on a
        // lock or a child are waits on the program's own threads and processes: not IO.
        let t = self.threads;
        let on_descriptor = t.waits_in(WaitKind::Socket)
            + t.waits_in(WaitKind::Pipe)
            + t.waits_in(WaitKind::Terminal);
        let timer = t.waits_in(WaitKind::Timer);
        let poll = t.waits_in(WaitKind::Poll);
        if on_descriptor + timer + poll > 0.0 {
            if on_descriptor >= timer && on_descriptor >= poll {
                return IoWait::NetworkOrPipe;
            }
            if timer >= poll {
                return IoWait::Sleep;
            }
        }
        if self.traffic_while_waiting() {
            IoWait::NetworkOrPipe
        } else {
            IoWait::Sleep
        }
    }

    /// The verdict, its confidence, and three to five sentences of evidence.
    pub(super) fn verdict(&self) -> (Verdict, f64, Vec<String>) {
        let f = &self.figures;
        let mut ev = Vec::new();
        let demand_line = format!(
            "CPU demand {:.0}%: {:.2} s computing + {:.2} s runnable over {:.2} s wall × {:.1} thread(s) at work.",
            f.cpu_demand * 100.0,
            f.compute_s,
            f.run_delay_s,
            f.wall_s,
            f.active_threads
        );
        let (verdict, mut confidence) = if self.serialised() {
            ev.push(format!(
                "{:.1} threads at work at once on average (at most {} busy), yet only {:.2} cores wanted (busy {:.2}, peak {:.2}) of {}.",
                f.active_threads,
                f.max_busy_threads,
                f.cores_demanded,
                f.avg_cores_busy,
                f.peak_cores_busy,
                f.cores
            ));
            ev.push(format!(
                "{:.0} voluntary switches/s: the threads hand the CPU to each other{}.",
                f.voluntary_switches_per_s,
                if self.lang == Lang::Python {
                    " (the GIL)"
                } else {
                    " (a lock?)"
                }
            ));
            ev.push(format!(
                "CPU {:.2} s in {:.2} s wall: about one core, the most a GIL-bound program can use.",
                f.cpu_s, f.wall_s
            ));
            let nearest = if (f.cores_demanded - 1.0).abs() < (f.avg_cores_busy - 1.0).abs() {
                f.cores_demanded
            } else {
                f.avg_cores_busy
            };
            let closeness = 1.0 - (nearest - 1.0).abs() / (GIL_MAX_CORES - 1.0);
            (
                Verdict::CpuBound {
                    parallel: false,
                    gil_limited: self.lang == Lang::Python,
                },
                0.6 + 0.35 * closeness.clamp(0.0, 1.0),
            )
        } else if f.cpu_demand >= CPU_BOUND_MIN_DEMAND {
            ev.push(demand_line.clone());
            ev.push(format!(
                "{:.2} cores wanted on average ({:.2} busy, peak {:.2}) of {}; {} process(es) and {} thread(s) busy at most.",
                f.cores_demanded,
                f.avg_cores_busy,
                f.peak_cores_busy,
                f.cores,
                f.max_busy_processes,
                f.max_busy_threads
            ));
            ev.push(format!(
                "User {:.2} s, system {:.2} s; {:.0} voluntary switches/s — it rarely stops to wait.",
                f.user_s, f.system_s, f.voluntary_switches_per_s
            ));
            if f.share_runnable > 0.1 {
                ev.push(format!(
                    "{:.0}% of thread time runnable but waiting for a CPU: more threads than free cores.",
                    f.share_runnable * 100.0
                ));
            }
            let margin = (f.cpu_demand - CPU_BOUND_MIN_DEMAND) / (1.0 - CPU_BOUND_MIN_DEMAND);
            (
                Verdict::CpuBound {
                    parallel: self.parallel(),
                    gil_limited: false,
                },
                0.6 + 0.35 * margin,
            )
        } else if f.cpu_demand <= IO_BOUND_MAX_DEMAND {
            let wait = self.io_wait();
            ev.push(demand_line.clone());
            ev.push(format!(
                "Wait/compute W/C = {:.1}; {:.0}% of thread time sleeping, {:.0}% in disk wait.",
                f.wait_over_compute,
                f.share_sleeping * 100.0,
                f.share_disk_wait * 100.0
            ));
            let (line, sure) = self.io_line(wait);
            ev.push(line);
            ev.push(format!(
                "{:.0} voluntary switches/s: it gives up the CPU to wait.",
                f.voluntary_switches_per_s
            ));
            let margin = (IO_BOUND_MAX_DEMAND - f.cpu_demand) / IO_BOUND_MAX_DEMAND;
            (
                Verdict::IoBound { wait },
                (0.6 + 0.35 * margin) * sure / 0.9,
            )
        } else {
            ev.push(demand_line.clone());
            ev.push(format!(
                "Wait/compute W/C = {:.2}: it waits about as long as it computes.",
                f.wait_over_compute
            ));
            ev.push(format!(
                "{:.0}% of thread time running, {:.0}% sleeping, {:.0}% in disk wait.",
                f.share_running * 100.0,
                f.share_sleeping * 100.0,
                f.share_disk_wait * 100.0
            ));
            let centre = 1.0
                - (f.cpu_demand - 0.5).abs() / ((CPU_BOUND_MIN_DEMAND - IO_BOUND_MAX_DEMAND) / 2.0);
            (Verdict::Mixed, 0.5 + 0.3 * centre.clamp(0.0, 1.0))
        };
        if ev.len() < 3 {
            ev.push(demand_line);
        }
        // Few samples, or a very short run, make every figure noisier.
        if self.intervals < 5 && f.wall_s < 1.0 {
            confidence *= 0.85;
        }
        ev.truncate(5);
        (verdict, confidence.clamp(0.0, 1.0), ev)
    }

    /// The evidence line for an IO wait, and how sure that attribution is.
    fn io_line(&self, wait: IoWait) -> (String, f64) {
        let f = &self.figures;
        let t = self.threads;
        match wait {
            IoWait::Disk => (
                format!(
                    "Disk: {:.0}% of thread samples in D state; {}/s reached storage while waiting{}.",
                    self.d_share * 100.0,
                    human_bytes(self.waiting_storage_per_s),
                    if f.system_s > f.user_s {
                        format!(
                            "; system time {:.2} s ≫ user {:.2} s is the IO path",
                            f.system_s, f.user_s
                        )
                    } else {
                        String::new()
                    }
                ),
                0.9,
            ),
            IoWait::NetworkOrPipe
                if t.waits_in(WaitKind::Socket) + t.waits_in(WaitKind::Pipe) > 0.0 =>
            {
                (
                    format!(
                        "Network or pipe: the threads at work were found blocked on a socket or pipe {:.0}% of the time they slept; {}/s moved through read/write.",
                        self.blocked_share(&[WaitKind::Socket, WaitKind::Pipe, WaitKind::Terminal])
                            * 100.0,
                        human_bytes(self.waiting_chars_per_s),
                    ),
                    0.85,
                )
            }
            IoWait::NetworkOrPipe => (
                format!(
                    "Network or pipe: while waiting, {}/s moved through read/write and {:.0} calls/s, but almost nothing reached storage.",
                    human_bytes(self.waiting_chars_per_s),
                    self.waiting_syscalls_per_s
                ),
                0.75,
            ),
            IoWait::Sleep => (
                format!(
                    "Timer: while waiting, only {}/s and {:.0} read/write calls/s, no disk wait — it sleeps{}.",
                    human_bytes(self.waiting_chars_per_s),
                    self.waiting_syscalls_per_s,
                    if t.waits_in(WaitKind::Timer) > 0.0 {
                        format!(
                            " (found in a sleep call {:.0}% of the time)",
                            self.blocked_share(&[WaitKind::Timer]) * 100.0
                        )
                    } else {
                        String::new()
                    }
                ),
                0.8,
            ),
        }
    }

    /// Share of the work threads' sleeping samples spent blocked in one of `kinds`.
    fn blocked_share(&self, kinds: &[WaitKind]) -> f64 {
        let t = self.threads;
        let all: f64 = super::threads::WAIT_KINDS
            .iter()
            .map(|&k| t.waits_in(k))
            .sum();
        super::div(kinds.iter().map(|&k| t.waits_in(k)).sum(), all)
    }
}
