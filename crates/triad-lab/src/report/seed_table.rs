//! The seed's own comparison tables — §3 (process, thread, coroutine) and §2 (concurrency,
//! parallelism) — with what this run measured beside each of its cells.
//!
//! Each cell keeps the seed's words (and an English gloss) and gets, from the experiment behind
//! it, a short measured value for Rust and for CPython; the reports link the cell to that
//! experiment. A cell whose experiment did not run (or a language that did not) stays without
//! a figure. The lookups are by the measurement names the experiments record, so a renamed
//! measurement shows here as a missing figure, and a test of the whole lab checks that every
//! cell finds one.

use crate::findings::{Findings, Param};
use crate::results::{Implementation, LabReport};
use crate::stats::{Summary, format_bytes};
use crate::verdict::times;
use Implementation::{Python, Rust};

/// One of the seed's tables, measured.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedTable {
    /// An anchor for links, such as `seed-3`.
    pub id: &'static str,
    /// Its title for people.
    pub title: &'static str,
    /// The seed's column heads after the first: (seed's words, English).
    pub columns: Vec<(&'static str, &'static str)>,
    /// Its rows.
    pub rows: Vec<SeedRow>,
}

/// One row: the aspect compared and a cell per column.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedRow {
    /// The seed's words for the aspect (empty where the seed's table has no such row).
    pub aspect: &'static str,
    /// The aspect in English.
    pub aspect_en: &'static str,
    /// One per column.
    pub cells: Vec<SeedCell>,
}

/// One cell: what the seed says, and what was measured.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedCell {
    /// The seed's words (empty where the seed has none).
    pub seed: &'static str,
    /// The seed's words in English.
    pub seed_en: &'static str,
    /// What the figures are, such as `one hand-over, pinned`.
    pub what: String,
    /// The figures: Rust's and CPython's, where measured.
    pub measured: Vec<(Implementation, String)>,
    /// The id of the experiment behind the figures (empty when nothing measures it).
    pub experiment: &'static str,
}

/// Looks measurements up across the run's experiments.
struct Lab<'a> {
    report: &'a LabReport,
}

impl<'a> Lab<'a> {
    fn found(&self, experiment: &str) -> Option<Findings<'a>> {
        let report = self
            .report
            .experiments
            .iter()
            .find(|e| e.id == experiment)?;
        Some(Findings::of(self.report, report))
    }

    fn summary(
        &self,
        experiment: &str,
        implementation: Implementation,
        name: &str,
        params: &[Param<'_>],
    ) -> Option<&'a Summary> {
        self.found(experiment)?
            .summary(implementation, name, params)
    }

    /// How many times faster `engine` ran than `baseline` (medians).
    fn speedup(
        &self,
        experiment: &str,
        implementation: Implementation,
        (baseline, baseline_params): (&str, &[Param<'_>]),
        (engine, engine_params): (&str, &[Param<'_>]),
    ) -> Option<f64> {
        let before = self.summary(experiment, implementation, baseline, baseline_params)?;
        let after = self.summary(experiment, implementation, engine, engine_params)?;
        Some(before.median / after.median)
    }

    fn cores(&self) -> usize {
        self.report.machine.cores.max(1)
    }
}

/// A cell of `experiment`, its figures from `measure` per language.
fn cell(
    (seed, seed_en): (&'static str, &'static str),
    experiment: &'static str,
    what: impl Into<String>,
    mut measure: impl FnMut(Implementation) -> Option<String>,
) -> SeedCell {
    SeedCell {
        seed,
        seed_en,
        what: what.into(),
        measured: [Rust, Python]
            .into_iter()
            .filter_map(|i| Some((i, measure(i)?)))
            .collect(),
        experiment,
    }
}

/// A cell nothing in the lab measures.
fn unmeasured((seed, seed_en): (&'static str, &'static str), what: &'static str) -> SeedCell {
    SeedCell {
        seed,
        seed_en,
        what: what.to_owned(),
        measured: Vec::new(),
        experiment: "",
    }
}

/// A time in three significant figures: `2.68 µs`, `934 ms`.
fn seconds(summary: &Summary) -> String {
    let (value, unit) = match summary.median.abs() {
        s if s >= 1.0 => (summary.median, "s"),
        s if s >= 1e-3 => (summary.median * 1e3, "ms"),
        s if s >= 1e-6 => (summary.median * 1e6, "µs"),
        _ => (summary.median * 1e9, "ns"),
    };
    let decimals = match value.abs() {
        v if v >= 99.95 => 0,
        v if v >= 9.995 => 1,
        _ => 2,
    };
    format!("{value:.decimals$} {unit}")
}

/// Bytes in three significant figures: `84.0 KiB`, `492 KiB`.
fn bytes(summary: &Summary) -> String {
    let shown = format_bytes(summary.median);
    match shown.split_once(' ') {
        Some((number, unit)) if number.contains('.') && number.len() > 4 => {
            let value: f64 = number.parse().unwrap_or(summary.median);
            format!("{value:.0} {unit}")
        }
        _ => shown,
    }
}

fn count(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// The seed's two tables, with this run's figures.
pub fn tables(report: &LabReport) -> Vec<SeedTable> {
    let lab = Lab { report };
    vec![section_3(&lab), section_2(&lab)]
}

fn section_3(lab: &Lab<'_>) -> SeedTable {
    let placed = |placement: &'static str| [("placement", placement.into())];
    let switch = |rust: &'static str, python: &'static str, placement: &'static str| {
        move |i: Implementation| {
            let name = if i == Rust { rust } else { python };
            Some(seconds(lab.summary(
                "switch-cost",
                i,
                name,
                &placed(placement),
            )?))
        }
    };
    let per_unit = |rust: &'static str, python: &'static str| {
        move |i: Implementation| {
            let name = if i == Rust { rust } else { python };
            Some(bytes(lab.summary("memory-per-unit", i, name, &[])?))
        }
    };
    let spawn = |rust: &'static str, python: &'static str| {
        move |i: Implementation| {
            let name = if i == Rust { rust } else { python };
            Some(seconds(lab.summary("spawn-cost", i, name, &[])?))
        }
    };
    let race_cost = |name: &'static str| {
        move |i: Implementation| Some(seconds(lab.summary("race", i, name, &[])?))
    };
    let lost = |name: &'static str| {
        move |i: Implementation| {
            let found = lab.found("race")?;
            let measurement = found.get(i, name, &[])?;
            let expected = measurement.params.get("expected")?.as_f64()?;
            Some(format!(
                "{:.0}% lost",
                100.0 * measurement.median() / expected.max(1.0)
            ))
        }
    };
    let waits = |waiters: &'static [(Implementation, &'static str)]| {
        move |i: Implementation| {
            let (_, name) = waiters.iter().find(|(w, _)| *w == i)?;
            let time = lab.summary("c10k", i, &format!("{name}: total time"), &[])?;
            Some(seconds(time))
        }
    };
    let waiters = lab
        .found("c10k")
        .and_then(|found| {
            found
                .every(Rust, "tokio tasks: total time")
                .find_map(|m| m.params.get("count")?.as_f64())
        })
        .map_or("many".to_owned(), count);
    let gil = |engine: &'static str| {
        move |i: Implementation| {
            let name = match (i, engine) {
                (Rust, "threads") => "cpu threads without a GIL",
                (_, "threads") => "cpu threads under the GIL",
                _ => "cpu processes",
            };
            let speedup = lab.speedup("gil", i, ("cpu serial", &[]), (name, &[]))?;
            Some(times(speedup))
        }
    };
    let cores = lab.cores();
    let cpu = move |engine: &'static str, workers: usize| {
        move |i: Implementation| {
            let at = |w: usize| [("workload", "count_primes".into()), ("workers", w.into())];
            let speedup =
                lab.speedup("cpu-bound", i, ("serial", &at(1)), (engine, &at(workers)))?;
            Some(times(speedup))
        }
    };
    SeedTable {
        id: "seed-3",
        title: "The seed's §3 table: process, thread, coroutine",
        columns: vec![
            ("进程", "process"),
            ("线程", "thread"),
            ("协程", "coroutine"),
        ],
        rows: vec![
            SeedRow {
                aspect: "调度者",
                aspect_en: "scheduled by",
                cells: vec![
                    unmeasured(("操作系统", "the OS"), "not measured"),
                    unmeasured(("操作系统", "the OS"), "not measured"),
                    cell(
                        ("程序自己", "the program"),
                        "event-loop",
                        "kernel context switches while two coroutines yield to each other",
                        |i| {
                            let runtime = if i == Rust { "tokio" } else { "asyncio" };
                            let found = lab.found("event-loop")?;
                            let m = found.get(
                                i,
                                "voluntary context switches during the yield run",
                                &[("runtime", runtime.into())],
                            )?;
                            let yields = m.params.get("switches")?.as_f64()?;
                            Some(format!("{} in {}", count(m.median()), count(yields)))
                        },
                    ),
                ],
            },
            SeedRow {
                aspect: "切换开销",
                aspect_en: "switch cost",
                cells: vec![
                    cell(
                        ("大（ms级）", "large (ms)"),
                        "switch-cost",
                        "one hand-over over a pipe, pinned to one CPU",
                        switch(
                            "processes, pipe",
                            "processes, multiprocessing.Pipe",
                            "pinned",
                        ),
                    ),
                    cell(
                        ("中（μs级）", "medium (µs)"),
                        "switch-cost",
                        "one hand-over by a condition variable, pinned",
                        switch(
                            "threads, Mutex + Condvar",
                            "threads, threading.Condition",
                            "pinned",
                        ),
                    ),
                    cell(
                        ("小（ns级）", "small (ns)"),
                        "switch-cost",
                        "one hand-over through a channel on one thread",
                        switch(
                            "coroutines, tokio mpsc channel",
                            "coroutines, asyncio.Queue",
                            "one thread",
                        ),
                    ),
                ],
            },
            SeedRow {
                aspect: "内存",
                aspect_en: "memory",
                cells: vec![
                    cell(
                        ("独立", "separate"),
                        "fork-cow",
                        "a forked child's own memory before it writes",
                        |i| {
                            let name = "memory/child-private-after-fork";
                            Some(bytes(lab.summary("fork-cow", i, name, &[])?))
                        },
                    ),
                    cell(
                        ("共享", "shared"),
                        "memory-per-unit",
                        "resident memory per parked thread",
                        per_unit(
                            "Rust thread, 8 MiB stack: resident per unit",
                            "CPython thread, default stack: resident per unit",
                        ),
                    ),
                    cell(
                        ("共享", "shared"),
                        "memory-per-unit",
                        "resident memory per waiting task",
                        per_unit(
                            "tokio task: resident per unit",
                            "asyncio task: resident per unit",
                        ),
                    ),
                ],
            },
            SeedRow {
                aspect: "",
                aspect_en: "start + join",
                cells: vec![
                    cell(
                        ("", ""),
                        "spawn-cost",
                        "fork, run nothing, reap",
                        spawn(
                            "fork + _exit + waitpid",
                            "multiprocessing.Process start + join, fork",
                        ),
                    ),
                    cell(
                        ("", ""),
                        "spawn-cost",
                        "start and join a thread",
                        spawn("thread spawn + join", "threading.Thread start + join"),
                    ),
                    cell(
                        ("", ""),
                        "spawn-cost",
                        "spawn and await a task",
                        spawn(
                            "tokio task spawn + await, current-thread runtime",
                            "asyncio.create_task + await",
                        ),
                    ),
                ],
            },
            SeedRow {
                aspect: "通信",
                aspect_en: "communication",
                cells: vec![
                    cell(
                        ("IPC（复杂）", "IPC (complex)"),
                        "ipc",
                        "a 64-byte round trip over a pipe, one CPU",
                        |i| {
                            let params = [("placement", "one-cpu".into()), ("size", 64.into())];
                            Some(seconds(lab.summary(
                                "ipc",
                                i,
                                "pipe/round-trip",
                                &params,
                            )?))
                        },
                    ),
                    cell(
                        ("共享内存（简单）", "shared memory (simple)"),
                        "race",
                        "one update of a shared counter under a lock",
                        race_cost("threads-lock/per-increment"),
                    ),
                    cell(
                        ("函数调用（最简单）", "function call (simplest)"),
                        "race",
                        "one update of a shared counter, no lock",
                        race_cost("coroutines/per-increment"),
                    ),
                ],
            },
            SeedRow {
                aspect: "数据安全",
                aspect_en: "data safety",
                cells: vec![
                    cell(
                        ("完全隔离", "isolated"),
                        "race",
                        "updates lost when processes share memory without a lock",
                        lost("processes-unlocked/lost"),
                    ),
                    cell(
                        ("需要锁", "needs locks"),
                        "race",
                        "updates lost by threads without a lock",
                        lost("threads-unlocked/lost"),
                    ),
                    cell(
                        ("不需要锁", "no locks needed"),
                        "race",
                        "updates lost by coroutines without a lock (no await inside)",
                        lost("coroutines/lost"),
                    ),
                ],
            },
            SeedRow {
                aspect: "创建数量",
                aspect_en: "how many",
                cells: vec![
                    unmeasured(("几十个", "tens"), "not measured"),
                    cell(
                        ("几百个", "hundreds"),
                        "c10k",
                        format!("{waiters} threads each waiting 100 ms at once: total time"),
                        waits(&[(Rust, "Rust threads")]),
                    ),
                    cell(
                        ("几万个", "tens of thousands"),
                        "c10k",
                        format!("{waiters} coroutines each waiting 100 ms at once: total time"),
                        waits(&[(Rust, "tokio tasks"), (Python, "asyncio coroutines")]),
                    ),
                ],
            },
            SeedRow {
                aspect: "GIL影响",
                aspect_en: "GIL",
                cells: vec![
                    cell(
                        ("无", "none"),
                        "gil",
                        "CPU work on processes: speed-up over serial",
                        gil("processes"),
                    ),
                    cell(
                        ("有", "yes"),
                        "gil",
                        "CPU work on threads: speed-up over serial (Rust has no GIL)",
                        gil("threads"),
                    ),
                    unmeasured(("无（单线程）", "none (one thread)"), "see the next row"),
                ],
            },
            SeedRow {
                aspect: "CPU利用",
                aspect_en: "CPU use",
                cells: vec![
                    cell(
                        ("多核并行", "parallel on many cores"),
                        "cpu-bound",
                        "speed-up over serial, one worker per core",
                        cpu("processes", cores),
                    ),
                    cell(
                        ("受GIL限制", "limited by the GIL"),
                        "cpu-bound",
                        "speed-up over serial, one thread per core",
                        cpu("threads", cores),
                    ),
                    cell(
                        ("单核并发", "one core, concurrent"),
                        "cpu-bound",
                        "speed-up over serial, every task on one loop",
                        cpu("async", 1),
                    ),
                ],
            },
        ],
    }
}

fn section_2(lab: &Lab<'_>) -> SeedTable {
    let cores = lab.cores();
    let both_running = |setting: &'static str| {
        move |i: Implementation| {
            if i != Rust {
                return None;
            }
            let found = lab.found("cpu-bound")?;
            let share = found.summary(i, &format!("{setting}: both running"), &[])?;
            let length = found.summary(i, &format!("{setting}: timeline length"), &[])?;
            Some(format!(
                "{:.0}%",
                100.0 * share.median / length.median.max(f64::MIN_POSITIVE)
            ))
        }
    };
    let io = move |engine: &'static str| {
        move |i: Implementation| {
            let found = lab.found("io-bound")?;
            let n = found
                .every(i, "serial")
                .filter_map(|m| m.params.get("n")?.as_u64())
                .max()?;
            let at = [("workload", "tcp round trip".into()), ("n", n.into())];
            let speedup = lab.speedup("io-bound", i, ("serial", &at), (engine, &at))?;
            Some(times(speedup))
        }
    };
    let cpu = move |engine: &'static str| {
        move |i: Implementation| {
            let at = |w: usize| [("workload", "count_primes".into()), ("workers", w.into())];
            let speedup = lab.speedup("cpu-bound", i, ("serial", &at(1)), (engine, &at(cores)))?;
            Some(times(speedup))
        }
    };
    SeedTable {
        id: "seed-2",
        title: "The seed's §2 table: concurrency and parallelism",
        columns: vec![("并发", "concurrency"), ("并行", "parallelism")],
        rows: vec![
            SeedRow {
                aspect: "执行方式",
                aspect_en: "how tasks run",
                cells: vec![
                    cell(
                        ("交替执行", "taking turns"),
                        "cpu-bound",
                        "2 threads pinned to one CPU: share of the time both ran",
                        both_running("2 threads pinned to one CPU"),
                    ),
                    cell(
                        ("同时执行", "at the same time"),
                        "cpu-bound",
                        "2 threads free on every core: share of the time both ran",
                        both_running("2 threads free on every core"),
                    ),
                ],
            },
            SeedRow {
                aspect: "CPU需求",
                aspect_en: "CPUs needed",
                cells: vec![
                    cell(
                        ("单核可以", "one core will do"),
                        "io-bound",
                        "round trips as coroutines on one thread: speed-up over serial",
                        io("async"),
                    ),
                    cell(
                        ("需要多核", "needs several cores"),
                        "cpu-bound",
                        "CPU work on one process per core: speed-up over serial",
                        cpu("processes"),
                    ),
                ],
            },
            SeedRow {
                aspect: "资源利用",
                aspect_en: "use of the CPU",
                cells: vec![
                    cell(
                        ("时间片轮转", "time slices"),
                        "cpu-bound",
                        "how long a pinned thread ran before the kernel switched",
                        |i| {
                            if i != Rust {
                                return None;
                            }
                            let name = "2 threads pinned to one CPU: run before a switch";
                            Some(seconds(lab.summary("cpu-bound", i, name, &[])?))
                        },
                    ),
                    cell(
                        ("真正的多核利用", "every core working"),
                        "cpu-bound",
                        "CPU work on one thread per core: speed-up over serial",
                        cpu("threads"),
                    ),
                ],
            },
            SeedRow {
                aspect: "实现方式",
                aspect_en: "made with",
                cells: vec![
                    cell(
                        ("线程、协程", "threads, coroutines"),
                        "io-bound",
                        "round trips on a pool of one thread per wait: speed-up over serial",
                        io("thread pool"),
                    ),
                    cell(
                        ("多进程", "processes"),
                        "cpu-bound",
                        "CPU work on one process per core: speed-up over serial",
                        cpu("processes"),
                    ),
                ],
            },
        ],
    }
}

/// One of the seed's tables as text: its section, column heads, and rows of (aspect, cells).
type SeedText = (
    &'static str,
    &'static [&'static str],
    &'static [SeedTextRow],
);
type SeedTextRow = (&'static str, &'static [&'static str]);

/// The seed's two comparison tables as it prints them (for naming a quoted cell by its row and
/// column).
const SEED_TEXT: [SeedText; 2] = [
    (
        "§2",
        &["并发", "并行"],
        &[
            ("执行方式", &["交替执行", "同时执行"]),
            ("CPU需求", &["单核可以", "需要多核"]),
            ("资源利用", &["时间片轮转", "真正的多核利用"]),
            ("适用场景", &["I/O密集型", "CPU密集型"]),
            ("实现方式", &["线程、协程", "多进程"]),
            ("性能提升", &["I/O等待时间", "计算速度"]),
        ],
    ),
    (
        "§3",
        &["进程", "线程", "协程"],
        &[
            ("调度者", &["操作系统", "操作系统", "程序自己"]),
            ("切换开销", &["大（ms级）", "中（μs级）", "小（ns级）"]),
            ("内存", &["独立", "共享", "共享"]),
            (
                "通信",
                &["IPC（复杂）", "共享内存（简单）", "函数调用（最简单）"],
            ),
            ("数据安全", &["完全隔离", "需要锁", "不需要锁"]),
            ("创建数量", &["几十个", "几百个", "几万个"]),
            ("GIL影响", &["无", "有", "无（单线程）"]),
            ("CPU利用", &["多核并行", "受GIL限制", "单核并发"]),
            ("适用场景", &["CPU密集型", "I/O密集型", "高并发I/O"]),
        ],
    ),
];

/// A quote of the seed as text: a row of one of its tables, written as markdown
/// (`**CPU需求** | 单核可以 | 需要多核`), becomes the row and its cells named by their columns
/// (`§2 表 CPU需求：并发 单核可以；并行 需要多核`); elsewhere emphasis marks and table pipes go.
pub(crate) fn clean_quote(quote: &str) -> String {
    let cells: Vec<&str> = quote.split('|').map(str::trim).collect();
    if let [head, rest @ ..] = cells.as_slice() {
        let aspect = head.trim_matches('*').trim();
        let found = SEED_TEXT.iter().find_map(|(section, columns, rows)| {
            rows.iter()
                .find(|(row, row_cells)| *row == aspect && row_cells[..] == *rest)
                .map(|_| (section, columns))
        });
        if let Some((section, columns)) = found {
            let named: Vec<String> = columns
                .iter()
                .zip(rest)
                .map(|(column, cell)| format!("{column} {cell}"))
                .collect();
            return format!("{section} 表 {aspect}：{}", named.join("；"));
        }
    }
    let plain = quote.replace("**", "");
    let parts: Vec<&str> = plain
        .split('|')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_keep_three_figures() {
        let at = |s: f64| seconds(&Summary::of(&[s]));
        assert_eq!(at(2.678e-6), "2.68 µs");
        assert_eq!(at(933.963e-3), "934 ms");
        assert_eq!(at(11.517e-6), "11.5 µs");
        assert_eq!(at(236e-9), "236 ns");
        assert_eq!(at(1.5), "1.50 s");
    }

    #[test]
    fn bytes_keep_three_figures() {
        let at = |b: f64| bytes(&Summary::of(&[b]));
        assert_eq!(at(86_000.0), "84.0 KiB");
        assert_eq!(at(503_808.0), "492 KiB");
        assert_eq!(at(535.0), "535 B");
    }

    #[test]
    fn quoted_table_rows_are_named_by_row_and_column() {
        assert_eq!(
            clean_quote("**CPU需求** | 单核可以 | 需要多核"),
            "§2 表 CPU需求：并发 单核可以；并行 需要多核"
        );
        assert_eq!(
            clean_quote("**适用场景** | CPU密集型 | I/O密集型 | 高并发I/O"),
            "§3 表 适用场景：进程 CPU密集型；线程 I/O密集型；协程 高并发I/O"
        );
        assert_eq!(
            clean_quote("速度差异: 协程比线程快10-100倍!"),
            "速度差异: 协程比线程快10-100倍!"
        );
        assert_eq!(clean_quote("**注意** | 其他"), "注意 · 其他");
        for (_, columns, rows) in SEED_TEXT {
            assert!(rows.iter().all(|(_, cells)| cells.len() == columns.len()));
        }
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(count(0.0), "0");
        assert_eq!(count(999.0), "999");
        assert_eq!(count(400_000.0), "400,000");
        assert_eq!(count(1_234_567.0), "1,234,567");
    }

    #[test]
    fn an_empty_run_fills_no_cell_and_keeps_the_seed_s_words() {
        let report = super::super::empty_run();
        let tables = tables(&report);
        assert_eq!(tables.len(), 2);
        for table in &tables {
            for row in &table.rows {
                assert_eq!(row.cells.len(), table.columns.len(), "{}", row.aspect_en);
                assert!(row.cells.iter().all(|c| c.measured.is_empty()));
            }
        }
        assert_eq!(tables[0].rows[1].cells[1].seed, "中（μs级）");
    }
}
