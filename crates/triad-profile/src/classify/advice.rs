//! Advice from a verdict, following the seed's decision tree (section 7): processes for
//! CPU-bound Python whose threads cannot run in parallel, threads for native code and for
//! Python whose threads already do (the hot code releases the GIL), threads or coroutines for
//! waits by their number, a pipeline for mixed work; worker counts by `cores × (1 + W/C)`.

use super::facts::Facts;
use super::{
    Advice, COROUTINE_MIN_CONCURRENCY, DISK_THREADS_PER_CORE_CAP, GIL_MIN_BUSY_THREADS,
    IO_THREADS_PER_CORE_CAP, IoWait, KEEP_SERIAL_MAX_WALL_S, MAX_COROUTINES, Model,
    PARALLEL_MIN_CORES, Verdict,
};
use crate::recording::Lang;

impl Facts<'_> {
    /// Whether the parallelism is that of threads within one process (else of processes).
    fn threads_in_parallel(&self) -> bool {
        if self.threads.known {
            self.threads.max_process_cores >= PARALLEL_MIN_CORES
        } else {
            self.figures.max_busy_processes <= 1
        }
    }

    pub(super) fn advice(&self, verdict: Verdict) -> Advice {
        let f = &self.figures;
        let cores = f.cores;
        let python = self.lang == Lang::Python;
        let by_formula = |cap_per_core: usize| -> usize {
            let n = (cores as f64 * (1.0 + f.wait_over_compute)).ceil();
            (n as usize).clamp(1, cap_per_core.saturating_mul(cores).max(1))
        };
        let formula_line = format!(
            "Workers = cores × (1 + W/C) = {} × (1 + {:.2}) ≈ {:.0} (Goetz).",
            cores,
            f.wait_over_compute,
            cores as f64 * (1.0 + f.wait_over_compute)
        );
        if f.wall_s < KEEP_SERIAL_MAX_WALL_S {
            return Advice {
                model: Model::KeepSerial,
                workers: 1,
                concurrency: None,
                reasons: vec![format!(
                    "It ran {:.3} s: starting a pool costs tens of milliseconds, more than it could save — start simple (seed §9).",
                    f.wall_s
                )],
            };
        }
        match verdict {
            Verdict::TooShort { .. } => unreachable!("only `analyse` judges a run too short"),
            Verdict::CpuBound { parallel, gil_limited } => {
                if cores <= 1 {
                    return Advice {
                        model: Model::KeepSerial,
                        workers: 1,
                        concurrency: None,
                        reasons: vec![
                            "CPU-bound on a single usable core: there is nothing to run in parallel on; optimise the algorithm (seed §7: 串行执行或优化算法).".into(),
                        ],
                    };
                }
                let mut reasons = Vec::new();
                let threads_in_parallel = parallel && self.threads_in_parallel();
                let model = if python && threads_in_parallel {
                    reasons.push(format!(
                        "Its Python threads already run in parallel ({:.2} cores wanted by one process): the hot code releases the GIL (hashlib, zlib, numpy and IO do), so keep the threads — processes would only add copying and pickling (seed §5.2).",
                        self.threads.max_process_cores.max(f.cores_demanded)
                    ));
                    Model::Threads
                } else if python {
                    if gil_limited {
                        reasons.push(format!(
                            "Python threads take turns on the GIL: {:.1} busy threads share {:.2} cores; processes each have their own GIL (seed §5.2, §6.2).",
                            f.active_threads, f.cores_demanded
                        ));
                    } else if parallel {
                        reasons.push(
                            "Its processes already run in parallel, each with its own GIL: keep the process pool (seed §7: CPU密集型 → 多进程).".into(),
                        );
                    } else {
                        reasons.push(
                            "CPU-bound Python: threads cannot run Python code in parallel (the GIL), so use a process pool (seed §7: CPU密集型 → 多进程).".into(),
                        );
                    }
                    Model::Processes
                } else {
                    if !parallel && f.active_threads >= GIL_MIN_BUSY_THREADS {
                        reasons.push(format!(
                            "{:.1} threads at work but only {:.2} cores wanted: they serialise on something (a lock?); shorten the critical section.",
                            f.active_threads, f.cores_demanded
                        ));
                    }
                    reasons.push(
                        "Native code: threads run in parallel and share memory without copying, so a thread pool is enough.".into(),
                    );
                    Model::Threads
                };
                if parallel {
                    reasons.push(format!(
                        "It already keeps {:.2} of {} cores busy or queued: more workers than cores only queue up ({:.0}% of thread time runnable but waiting).",
                        f.cores_demanded, cores, f.share_runnable * 100.0
                    ));
                } else {
                    reasons.push(format!(
                        "It uses {:.2} of {} cores: spread the work over all of them.",
                        f.cores_demanded, cores
                    ));
                }
                reasons.push(format!(
                    "Pure CPU work: workers = cores = {cores} (W/C ≈ {:.2}).",
                    f.wait_over_compute
                ));
                Advice { model, workers: cores, concurrency: None, reasons }
            }
            Verdict::IoBound { wait: IoWait::Disk } => Advice {
                model: Model::Threads,
                workers: by_formula(DISK_THREADS_PER_CORE_CAP),
                concurrency: None,
                reasons: vec![
                    "Disk waits: blocking file IO releases the GIL and the kernel has no true async file API behind asyncio, so a thread pool (seed §9: 文件处理 → 多线程).".into(),
                    formula_line,
                    format!(
                        "Capped at {DISK_THREADS_PER_CORE_CAP} per core: one device serves a queue; more threads only wait in it."
                    ),
                ],
            },
            Verdict::IoBound { wait } => {
                let n = cores as f64 * (1.0 + f.wait_over_compute);
                let what = if wait == IoWait::Sleep { "timer waits" } else { "network/pipe waits" };
                if n.ceil() as usize >= COROUTINE_MIN_CONCURRENCY {
                    let concurrency = (n.ceil() as usize).min(MAX_COROUTINES);
                    Advice {
                        model: Model::Coroutines,
                        workers: 1,
                        concurrency: Some(concurrency),
                        reasons: vec![
                            format!(
                                "Mostly {what}: {concurrency} waits could be in flight — many concurrent waits → coroutines (seed §7: 100+ → asyncio)."
                            ),
                            formula_line,
                            "One event loop; a coroutine costs ~2 KB against a thread's 8 MB stack (seed §6.4).".into(),
                        ],
                    }
                } else {
                    Advice {
                        model: Model::Threads,
                        workers: by_formula(IO_THREADS_PER_CORE_CAP),
                        concurrency: None,
                        reasons: vec![
                            format!(
                                "Mostly {what}, a moderate number at once (< {COROUTINE_MIN_CONCURRENCY}) → threads (seed §7: 少(<100) → 多线程); coroutines if it grows."
                            ),
                            formula_line,
                            format!(
                                "Blocking waits release the GIL{}; capped at {IO_THREADS_PER_CORE_CAP} per core.",
                                if python { "" } else { " (not that native code has one)" }
                            ),
                        ],
                    }
                }
            }
            Verdict::Mixed => {
                let per_worker = (1.0 + f.wait_over_compute).ceil() as usize;
                let mut reasons = vec![format!(
                    "Compute and waits in comparable amounts (W/C = {:.2}): a pipeline — {} for the compute, {} for the waits (seed §6.7: 混合负载 → 进程池 + 协程).",
                    f.wait_over_compute,
                    if python { "a process pool" } else { "a thread pool" },
                    "coroutines (or a few threads)"
                )];
                reasons.push(formula_line);
                let workers = if python { cores } else { by_formula(IO_THREADS_PER_CORE_CAP) };
                reasons.push(format!(
                    "{workers} worker(s), each keeping about {per_worker} wait(s) in flight."
                ));
                Advice {
                    model: Model::HybridPipeline,
                    workers,
                    concurrency: Some(per_worker.max(1)),
                    reasons,
                }
            }
        }
    }
}
