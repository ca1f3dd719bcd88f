//! `fork-cow` (seed §5.1.1): what `fork` costs against how much memory the parent holds, and
//! what copy-on-write costs when the child then writes.
//!
//! For each size the parent maps a private anonymous buffer (no huge pages) and writes every
//! page, so it is resident. Then: `fork` → the child `_exit`s at once → `waitpid`, timed whole
//! and to the moment `fork` returns in the parent; and a child that reads one byte of every page
//! of the inherited buffer, then writes one, each pass timed in the child (the copy-on-write
//! faults are in the writes) while the parent reads the child's private and shared memory from
//! `/proc/<pid>/smaps_rollup` after the fork, the reads and the writes. For comparison, the
//! parent writes the same pages after the child is gone (each page still takes a fault, as
//! `fork` made it read-only, but nothing is copied), then again (plain writes), and writes
//! freshly zeroed pages after `MADV_DONTNEED` (first-touch faults). The child ([`child`]) does
//! only memory accesses, `clock_gettime`, `read`, `write` and `_exit`: the lab has threads, so a
//! forked child must stay async-signal-safe. CPython does the same with `os.fork` and a
//! `bytearray`, and shows how reading Python objects writes their reference counts.

mod child;
mod smaps;

use super::findings::{self, Findings, outcome_by_threshold};
use crate::error::LabError;
use crate::experiment::{Context, Experiment};
use crate::results::{
    Chart, ChartKind, ExperimentReport, Implementation, Measurement, Outcome, Point, Scale, Series,
    Table, Verdict,
};
use crate::stats::{Summary, format_bytes, format_seconds, format_with_spread};
use child::Buffer;

const MIB: usize = 1 << 20;
/// Fork must be at least this many times cheaper than copying the buffer for "fork is fast".
const FORK_CHEAPER: f64 = 5.0;
/// Below this share of the buffer, the child's private memory counts as "nothing copied"; from
/// the complement up, as "all copied".
const NEGLIGIBLE: f64 = 0.1;
/// A child's write must cost at least this many times a plain write to show a copy.
const COPY_VISIBLE: f64 = 2.0;
/// The memory a size needs at most (parent and child copies) as a multiple of itself; sizes
/// beyond what is available are skipped.
const HEADROOM: usize = 3;

/// Fork time against the parent's size, and the cost of copy-on-write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForkCow;

/// The passes timed per page, in table and chart order: measurement name and label.
const PAGE_PASSES: [(&str, &str); 5] = [
    ("cow/fresh-per-page", "parent, fresh page (first touch)"),
    ("cow/child-read-per-page", "child reads a shared page"),
    (
        "cow/child-write-per-page",
        "child writes a shared page (copy)",
    ),
    (
        "cow/parent-after-fork-per-page",
        "parent writes after fork (fault, no copy)",
    ),
    ("cow/parent-plain-per-page", "parent writes again (plain)"),
];

/// The child's memory snapshots: measurement name and label.
const SNAPSHOTS: [(&str, &str); 3] = [
    ("memory/child-private-after-fork", "after fork"),
    (
        "memory/child-private-after-reads",
        "after reading every page",
    ),
    (
        "memory/child-private-after-writes",
        "after writing every page",
    ),
];

struct Sizes {
    mib: &'static [usize],
    fork_repetitions: usize,
    cow_repetitions: usize,
    python_objects: usize,
}

impl Experiment for ForkCow {
    fn id(&self) -> &'static str {
        "fork-cow"
    }

    fn title(&self) -> &'static str {
        "fork against the parent's size, and the cost of copy-on-write"
    }

    fn seed_section(&self) -> &'static str {
        "5.1.1"
    }

    fn run(&self, ctx: &mut Context<'_>) -> Result<ExperimentReport, LabError> {
        let sizes = ctx.pick(
            Sizes {
                mib: &[1, 16],
                fork_repetitions: 3,
                cow_repetitions: 2,
                python_objects: 100_000,
            },
            Sizes {
                mib: &[1, 64, 256],
                fork_repetitions: 5,
                cow_repetitions: 3,
                python_objects: 500_000,
            },
            Sizes {
                mib: &[1, 64, 256, 1024],
                fork_repetitions: 15,
                cow_repetitions: 7,
                python_objects: 4_000_000,
            },
        );
        let page = rustix::param::page_size();
        let available = smaps::available_memory().unwrap_or(usize::MAX);
        let (fitting, skipped): (Vec<usize>, Vec<usize>) = sizes
            .mib
            .iter()
            .partition(|&&mib| mib * MIB * HEADROOM <= available);
        let mut report = ExperimentReport {
            method: format!(
                "For each buffer size ({fitting:?} MiB, every {page}-byte page written so it is \
                 resident, huge pages off): fork → child _exit → waitpid, timed whole and until \
                 fork returns, {} repetitions; then {} repetitions of a child that reads one \
                 byte per page of the inherited buffer, then writes one, each pass timed in the \
                 child, while the parent reads the child's private memory from \
                 /proc/<pid>/smaps_rollup after the fork, the reads and the writes. The parent \
                 then writes the same pages twice (after the fork: a fault without a copy; then \
                 plainly), and writes freshly zeroed pages after MADV_DONTNEED. CPython does the \
                 same with os.fork and a bytearray, and forks with a list of {} floats that the \
                 child only iterates over.",
                sizes.fork_repetitions, sizes.cow_repetitions, sizes.python_objects
            ),
            ..Default::default()
        };
        if !skipped.is_empty() {
            report.notes.push(format!(
                "Skipped {skipped:?} MiB: with {} available, a parent and a child copy would \
                 not fit comfortably.",
                format_bytes(available as f64)
            ));
        }
        let steps = fitting.len() as u64 + 1;
        for (index, &mib) in fitting.iter().enumerate() {
            let bytes = mib * MIB;
            let buffer = Buffer::resident(bytes, page)
                .map_err(|e| LabError::os(format!("a {mib} MiB buffer"), e))?;
            let parent_rss = smaps::own_resident().unwrap_or(0);
            let forks = child::fork_and_exit(sizes.fork_repetitions)
                .map_err(|e| LabError::os("fork", e))?;
            let cow = child::copy_on_write(&buffer, sizes.cow_repetitions)
                .map_err(|e| LabError::os("fork with a copy-on-write child", e))?;
            let fresh = buffer
                .fresh_writes(sizes.cow_repetitions)
                .map_err(|e| LabError::os("madvise(MADV_DONTNEED)", e))?;
            drop(buffer);
            let pages = (bytes / page) as f64;
            let per_page = |samples: &[f64]| samples.iter().map(|s| s / pages).collect();
            let with_size = |m: Measurement| {
                m.param("size", bytes)
                    .param("parent_rss", parent_rss)
                    .param("page", page)
            };
            let rust = |name: &str, unit: &str, samples: Vec<f64>| {
                with_size(Measurement::new(name, Implementation::Rust, unit, samples))
            };
            report.measurements.extend([
                rust("fork/total", "s", forks.total),
                rust("fork/return", "s", forks.returned),
                rust(PAGE_PASSES[0].0, "s", per_page(&fresh)),
                rust(PAGE_PASSES[1].0, "s", per_page(&cow.child_reads)),
                rust(PAGE_PASSES[2].0, "s", per_page(&cow.child_writes)),
                rust(PAGE_PASSES[3].0, "s", per_page(&cow.parent_after_fork)),
                rust(PAGE_PASSES[4].0, "s", per_page(&cow.parent_plain)),
                rust("cow/child-write-total", "s", cow.child_writes),
            ]);
            match cow.private {
                Some([after_fork, after_reads, after_writes]) => {
                    report.measurements.extend([
                        rust(SNAPSHOTS[0].0, "bytes", after_fork),
                        rust(SNAPSHOTS[1].0, "bytes", after_reads),
                        rust(SNAPSHOTS[2].0, "bytes", after_writes),
                    ]);
                }
                None if index == 0 => report.notes.push(
                    "/proc/<pid>/smaps_rollup of the child could not be read here: no memory \
                     figures."
                        .to_owned(),
                ),
                None => {}
            }
            ctx.progress(index as u64 + 1, steps);
        }

        let python = ctx.python(
            "fork_cow",
            include_str!("../../../python/fork_cow.py"),
            &[
                serde_json::to_string(&fitting).map_err(|e| LabError::engine("sizes", e))?,
                sizes.fork_repetitions.to_string(),
                sizes.cow_repetitions.to_string(),
                sizes.python_objects.to_string(),
            ],
        )?;
        ctx.progress(steps, steps);
        findings::add_python(&mut report, python.as_ref());
        let results = Results {
            findings: Findings::new(&report.measurements),
            sizes: fitting.iter().map(|mib| mib * MIB).collect(),
        };
        report.table = results.table();
        report.charts = results.charts();
        report.verdicts = results.verdicts();
        Ok(report)
    }
}

/// Reads the measurements back for the table, charts and verdicts.
struct Results<'a> {
    findings: Findings<'a>,
    /// The buffer sizes measured, in bytes.
    sizes: Vec<usize>,
}

impl Results<'_> {
    fn implementations(&self) -> Vec<Implementation> {
        self.findings.implementations()
    }

    fn summary(&self, name: &str, implementation: Implementation, size: usize) -> Option<&Summary> {
        self.findings
            .summary(name, implementation, &[("size", size.into())])
    }

    fn largest(&self) -> Option<usize> {
        self.sizes.last().copied()
    }

    fn table(&self) -> Table {
        let mut columns = vec!["buffer".to_owned(), "parent resident".to_owned()];
        for implementation in self.implementations() {
            columns.push(format!(
                "{}: fork + _exit + wait",
                findings::name(implementation)
            ));
        }
        for implementation in self.implementations() {
            columns.push(format!(
                "{}: child write per page (COW)",
                findings::name(implementation)
            ));
        }
        columns.push("Rust: plain write per page".to_owned());
        columns.push("Rust: child's private memory after fork → reads → writes".to_owned());
        let mut table = Table::new(columns);
        let cell = |summary: Option<&Summary>| {
            summary.map_or("—".to_owned(), |s| format_with_spread(s, format_seconds))
        };
        for &size in &self.sizes {
            let mut row = vec![format_bytes(size as f64)];
            row.push(
                self.findings
                    .find("fork/total", Implementation::Rust, &[("size", size.into())])
                    .and_then(|m| m.params.get("parent_rss"))
                    .and_then(serde_json::Value::as_f64)
                    .map_or("—".to_owned(), format_bytes),
            );
            for implementation in self.implementations() {
                row.push(cell(self.summary("fork/total", implementation, size)));
            }
            for implementation in self.implementations() {
                row.push(cell(self.summary(PAGE_PASSES[2].0, implementation, size)));
            }
            row.push(cell(self.summary(
                PAGE_PASSES[4].0,
                Implementation::Rust,
                size,
            )));
            let memory: Vec<String> = SNAPSHOTS
                .iter()
                .filter_map(|(name, _)| self.summary(name, Implementation::Rust, size))
                .map(|s| format_bytes(s.median))
                .collect();
            row.push(if memory.is_empty() {
                "—".to_owned()
            } else {
                memory.join(" → ")
            });
            table.row(row);
        }
        table
    }

    fn charts(&self) -> Vec<Chart> {
        let mib = MIB as f64;
        let fork = Chart {
            title: "fork + _exit + waitpid against the buffer the parent holds".to_owned(),
            kind: ChartKind::Line,
            x_label: "buffer (MiB)".to_owned(),
            y_label: "time (ms)".to_owned(),
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            series: self
                .implementations()
                .into_iter()
                .flat_map(|implementation| {
                    [
                        ("fork/total", "fork + _exit + wait"),
                        ("fork/return", "fork returns"),
                    ]
                    .into_iter()
                    .map(move |(name, what)| (implementation, name, what))
                })
                .filter_map(|(implementation, name, what)| {
                    let points: Vec<Point> = self
                        .sizes
                        .iter()
                        .filter_map(|&size| {
                            self.summary(name, implementation, size)
                                .map(|s| scaled(size as f64 / mib, s, 1e3))
                        })
                        .collect();
                    (!points.is_empty()).then(|| Series {
                        label: format!("{} {what}", findings::name(implementation)),
                        points,
                    })
                })
                .collect(),
            ..Default::default()
        };
        let mut charts = vec![fork];
        let Some(largest) = self.largest() else {
            return charts;
        };
        charts.push(self.bars_at(
            largest,
            &PAGE_PASSES,
            1e9,
            Chart {
                title: format!(
                    "Time per page touched, {} buffer",
                    format_bytes(largest as f64)
                ),
                x_label: "access".to_owned(),
                y_label: "time per page (ns, log)".to_owned(),
                y_scale: Scale::Log,
                ..Default::default()
            },
        ));
        charts.push(self.bars_at(
            largest,
            &SNAPSHOTS,
            1.0 / mib,
            Chart {
                title: format!(
                    "The child's private memory, {} buffer",
                    format_bytes(largest as f64)
                ),
                x_label: "moment".to_owned(),
                y_label: "private memory (MiB)".to_owned(),
                ..Default::default()
            },
        ));
        charts
    }

    /// `chart` as a bar chart of the measurements `bars` (name, label) at buffer `size`, one
    /// series per implementation, values multiplied by `factor`.
    fn bars_at(&self, size: usize, bars: &[(&str, &str)], factor: f64, chart: Chart) -> Chart {
        Chart {
            kind: ChartKind::Bar,
            categories: bars.iter().map(|(_, label)| (*label).to_owned()).collect(),
            series: self
                .implementations()
                .into_iter()
                .map(|implementation| Series {
                    label: findings::name(implementation).to_owned(),
                    points: bars
                        .iter()
                        .enumerate()
                        .filter_map(|(index, (name, _))| {
                            self.summary(name, implementation, size)
                                .map(|s| scaled(index as f64, s, factor))
                        })
                        .collect(),
                })
                .collect(),
            ..chart
        }
    }

    fn verdicts(&self) -> Vec<Verdict> {
        vec![
            self.fork_is_fast(),
            self.copied_on_write(),
            self.memory_saved(),
            self.read_only_never_copied(),
        ]
    }

    fn fork_is_fast(&self) -> Verdict {
        let mut parts = Vec::new();
        let mut ratios = Vec::new();
        if let Some(largest) = self.largest() {
            for implementation in self.implementations() {
                let copying = self.summary("cow/child-write-total", implementation, largest);
                let (Some(fork), Some(copy)) =
                    (self.summary("fork/total", implementation, largest), copying)
                else {
                    continue;
                };
                let ratio = copy.median / fork.median;
                ratios.push(ratio);
                let smallest = self
                    .sizes
                    .first()
                    .and_then(|&s| self.summary("fork/total", implementation, s));
                parts.push(format!(
                    "{}: fork + _exit + wait of a {} parent took {} ({} with {}), copying its \
                     pages in the child {} ({ratio:.0}× the fork)",
                    findings::name(implementation),
                    format_bytes(largest as f64),
                    format_seconds(fork.median),
                    smallest.map_or("—".to_owned(), |s| format_seconds(s.median)),
                    self.sizes
                        .first()
                        .map_or("—".to_owned(), |&s| format_bytes(s as f64)),
                    format_seconds(copy.median)
                ));
            }
        }
        let outcome = if ratios.is_empty() {
            Outcome::Depends
        } else if ratios.iter().all(|r| *r >= FORK_CHEAPER) {
            Outcome::Confirmed
        } else if ratios.iter().all(|r| *r < 1.0) {
            Outcome::Refuted
        } else {
            Outcome::Depends
        };
        Verdict {
            claim: format!(
                "Copy-on-write makes fork fast: it does not copy the parent's memory (counted \
                 as fast when fork costs under 1/{FORK_CHEAPER} of copying the pages). Fork \
                 still copies the page tables, so its time grows with the parent's size."
            ),
            quote: "✅ 加快fork速度".to_owned(),
            outcome,
            evidence: parts.join("; "),
        }
    }

    fn copied_on_write(&self) -> Verdict {
        let mut parts = Vec::new();
        let mut ratios = Vec::new();
        if let Some(largest) = self.largest() {
            for implementation in self.implementations() {
                let (Some(child), Some(plain)) = (
                    self.summary(PAGE_PASSES[2].0, implementation, largest),
                    self.summary(PAGE_PASSES[4].0, implementation, largest),
                ) else {
                    continue;
                };
                let ratio = child.median / plain.median;
                ratios.push(ratio);
                let after_fork = self
                    .summary(PAGE_PASSES[3].0, implementation, largest)
                    .map_or("—".to_owned(), |s| format_seconds(s.median));
                parts.push(format!(
                    "{}: a child's first write to a shared page {} ({ratio:.0}× a plain write, \
                     {}); the parent's write after the child left {} (a fault, no copy)",
                    findings::name(implementation),
                    format_seconds(child.median),
                    format_seconds(plain.median),
                    after_fork
                ));
            }
        }
        let outcome = outcome_by_threshold(&ratios, COPY_VISIBLE);
        Verdict {
            claim: "Pages are copied only when written: the first write to a shared page pays \
                    for the copy."
                .to_owned(),
            quote: "只有在写入时才真正复制".to_owned(),
            outcome,
            evidence: parts.join("; "),
        }
    }

    /// The child's private memory at snapshot `name`, as a share of the buffer, per
    /// implementation measured.
    fn private_shares(&self, name: &str) -> Vec<(Implementation, f64, f64)> {
        let Some(largest) = self.largest() else {
            return Vec::new();
        };
        self.implementations()
            .into_iter()
            .filter_map(|implementation| {
                self.summary(name, implementation, largest)
                    .map(|s| (implementation, s.median, s.median / largest as f64))
            })
            .collect()
    }

    fn memory_saved(&self) -> Verdict {
        let after_fork = self.private_shares(SNAPSHOTS[0].0);
        let after_writes = self.private_shares(SNAPSHOTS[2].0);
        let saved = !after_fork.is_empty() && after_fork.iter().all(|(_, _, s)| *s < NEGLIGIBLE);
        let copied = after_writes.iter().all(|(_, _, s)| *s >= 1.0 - NEGLIGIBLE);
        let evidence = after_fork
            .iter()
            .map(|(implementation, bytes, _)| {
                let written = after_writes
                    .iter()
                    .find(|(i, _, _)| i == implementation)
                    .map_or("—".to_owned(), |(_, b, _)| format_bytes(*b));
                format!(
                    "{}: the child of a {} parent had {} of private memory after fork, {} after \
                     writing every page",
                    findings::name(*implementation),
                    self.largest()
                        .map_or("—".to_owned(), |s| format_bytes(s as f64)),
                    format_bytes(*bytes),
                    written
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let outcome = match (after_fork.is_empty(), saved, copied) {
            (true, _, _) => Outcome::Depends,
            (false, true, true) => Outcome::Confirmed,
            (false, true, false) | (false, false, true) => Outcome::Depends,
            (false, false, false) => Outcome::Refuted,
        };
        Verdict {
            claim: "Copy-on-write saves memory: a forked child shares the parent's pages until \
                    it writes them."
                .to_owned(),
            quote: "✅ 节省内存".to_owned(),
            outcome,
            evidence: if evidence.is_empty() {
                "the child's memory could not be read here".to_owned()
            } else {
                evidence
            },
        }
    }

    fn read_only_never_copied(&self) -> Verdict {
        let reads = self.private_shares(SNAPSHOTS[1].0);
        let rust_ok = reads
            .iter()
            .find(|(i, _, _)| *i == Implementation::Rust)
            .map(|(_, _, share)| *share < NEGLIGIBLE);
        let python = |name| self.findings.summary(name, Implementation::Python, &[]);
        let objects = python("refcount/child-private-growth")
            .zip(python("refcount/objects"))
            .map(|(growth, size)| (growth.median, size.median));
        let mut parts: Vec<String> = reads
            .iter()
            .map(|(implementation, bytes, _)| {
                format!(
                    "{}: after reading every page of the {} buffer the child had {} private",
                    findings::name(*implementation),
                    self.largest()
                        .map_or("—".to_owned(), |s| format_bytes(s as f64)),
                    format_bytes(*bytes)
                )
            })
            .collect();
        if let Some((growth, size)) = objects {
            parts.push(format!(
                "but a CPython child that only iterated over a list of floats ({} of objects) \
                 made {} of it private: reading a Python object writes its reference count",
                format_bytes(size),
                format_bytes(growth)
            ));
        }
        let python_ok = objects.map(|(growth, size)| growth < NEGLIGIBLE * size);
        let outcome = match (rust_ok, python_ok) {
            (None, _) => Outcome::Depends,
            (Some(false), _) => Outcome::Refuted,
            (Some(true), Some(false)) => Outcome::Depends,
            (Some(true), _) => Outcome::Confirmed,
        };
        Verdict {
            claim: "Most read-only data never needs to be copied.".to_owned(),
            quote: "✅ 大部分只读数据永远不需要复制".to_owned(),
            outcome,
            evidence: if parts.is_empty() {
                "the child's memory could not be read here".to_owned()
            } else {
                parts.join("; ")
            },
        }
    }
}

/// A point at `x` with the median and quartiles of `summary` multiplied by `factor`.
fn scaled(x: f64, summary: &Summary, factor: f64) -> Point {
    Point {
        x,
        y: summary.median * factor,
        low: Some(summary.p25 * factor),
        high: Some(summary.p75 * factor),
    }
}
