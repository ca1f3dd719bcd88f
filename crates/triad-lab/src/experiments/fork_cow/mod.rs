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

use crate::error::LabError;
use crate::experiment::{About, ByScale, Experiment, Judgement};
use crate::findings::Findings;
use crate::names::names;
use crate::plan::{Bench, Measured, Plan};
use crate::python::Baseline;
use crate::results::{
    Chart, ChartKind, Finding, Implementation, Measurement, Outcome, Point, Scale, Series, Table,
    Verdict,
};
use crate::stats::{Summary, format_bytes, format_seconds, format_with_spread};
use crate::verdict::{Band, Ratio, verdict};
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

names! {
    /// What is measured at each buffer size, Rust's then CPython's only (`python/fork_cow.py`
    /// prints the same names).
    enum Name {
        ForkTotal => "fork/total",
        ForkReturn => "fork/return",
        FreshPage => "cow/fresh-per-page",
        ChildRead => "cow/child-read-per-page",
        ChildWrite => "cow/child-write-per-page",
        ParentAfterFork => "cow/parent-after-fork-per-page",
        ParentPlain => "cow/parent-plain-per-page",
        ChildWriteTotal => "cow/child-write-total",
        PrivateAfterFork => "memory/child-private-after-fork",
        PrivateAfterReads => "memory/child-private-after-reads",
        PrivateAfterWrites => "memory/child-private-after-writes",
        RefcountGrowth => "refcount/child-private-growth",
        RefcountObjects => "refcount/objects",
    }
}

/// The passes timed per page, in table and chart order, with their labels.
const PAGE_PASSES: [(Name, &str); 5] = [
    (Name::FreshPage, "parent, fresh page (first touch)"),
    (Name::ChildRead, "child reads a shared page"),
    (Name::ChildWrite, "child writes a shared page (copy)"),
    (
        Name::ParentAfterFork,
        "parent writes after fork (fault, no copy)",
    ),
    (Name::ParentPlain, "parent writes again (plain)"),
];

/// The child's memory snapshots, with their labels.
const SNAPSHOTS: [(Name, &str); 3] = [
    (Name::PrivateAfterFork, "after fork"),
    (Name::PrivateAfterReads, "after reading every page"),
    (Name::PrivateAfterWrites, "after writing every page"),
];

/// Sizes by scale.
#[derive(Debug)]
struct Sizes {
    mib: &'static [usize],
    fork_repetitions: usize,
    cow_repetitions: usize,
    python_objects: usize,
}

const SIZES: ByScale<Sizes> = ByScale::new(
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

/// `mib` MiB in bytes, and what a parent and a child copy of that need, or `None` past
/// `usize`.
fn bytes_and_room(mib: usize) -> Option<(usize, usize)> {
    let bytes = mib.checked_mul(MIB)?;
    Some((bytes, bytes.checked_mul(HEADROOM)?))
}

impl Experiment for ForkCow {
    fn about(&self) -> About {
        About {
            id: "fork-cow",
            title: "fork against the parent's size, and the cost of copy-on-write",
            seed_section: "5.1.1",
        }
    }

    fn measure(&self, bench: Bench<'_>) -> Result<Measured, LabError> {
        let sizes = SIZES.at(bench.scale());
        let page = rustix::param::page_size();
        let available = smaps::available_memory().unwrap_or(usize::MAX);
        let (fitting, skipped): (Vec<usize>, Vec<usize>) = sizes
            .mib
            .iter()
            .partition(|&&mib| bytes_and_room(mib).is_some_and(|(_, room)| room <= available));
        let mut plan = Plan::new();
        if !skipped.is_empty() {
            plan.note(format!(
                "Skipped {skipped:?} MiB: with {} available, a parent and a child copy would \
                 not fit comfortably.",
                format_bytes(available as f64)
            ));
        }
        for (index, &mib) in fitting.iter().enumerate() {
            let (bytes, _) = bytes_and_room(mib).expect("the fitting sizes fit a usize");
            plan.step(move |measured| {
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
                let mut rust = |name: Name, unit: &str, samples: Vec<f64>| {
                    measured.measurement(
                        Measurement::new(name.name(), Implementation::Rust, unit, samples)
                            .param("size", bytes)
                            .param("parent_rss", parent_rss)
                            .param("page", page),
                    );
                };
                rust(Name::ForkTotal, "s", forks.total);
                rust(Name::ForkReturn, "s", forks.returned);
                rust(Name::FreshPage, "s", per_page(&fresh));
                rust(Name::ChildRead, "s", per_page(&cow.child_reads));
                rust(Name::ChildWrite, "s", per_page(&cow.child_writes));
                rust(Name::ParentAfterFork, "s", per_page(&cow.parent_after_fork));
                rust(Name::ParentPlain, "s", per_page(&cow.parent_plain));
                rust(Name::ChildWriteTotal, "s", cow.child_writes);
                match cow.private {
                    Some(snapshots) => {
                        for ((name, _), samples) in SNAPSHOTS.iter().zip(snapshots) {
                            rust(*name, "bytes", samples);
                        }
                    }
                    None if index == 0 => measured.note(
                        "/proc/<pid>/smaps_rollup of the child could not be read here: no \
                         memory figures.",
                    ),
                    None => {}
                }
                Ok(())
            });
        }
        plan.python(Baseline::new(
            "fork_cow",
            include_str!("../../../python/fork_cow.py"),
            [
                serde_json::to_string(&fitting).map_err(|e| LabError::engine("sizes", e))?,
                sizes.fork_repetitions.to_string(),
                sizes.cow_repetitions.to_string(),
                sizes.python_objects.to_string(),
            ],
        ));
        bench.run(plan)
    }

    fn judge(&self, findings: &Findings<'_>) -> Judgement {
        let sizes = SIZES.at(findings.scale());
        let measured: Vec<&Measurement> = findings
            .every(Implementation::Rust, Name::ForkTotal.name())
            .collect();
        let param =
            |m: &Measurement, key: &str| m.params.get(key).and_then(serde_json::Value::as_u64);
        let page = measured.first().and_then(|m| param(m, "page")).unwrap_or(0);
        let results = Results {
            findings: *findings,
            sizes: measured
                .iter()
                .filter_map(|m| param(m, "size"))
                .filter_map(|bytes| usize::try_from(bytes).ok())
                .collect(),
        };
        let mib: Vec<usize> = results.sizes.iter().map(|bytes| bytes / MIB).collect();
        Judgement {
            method: format!(
                "For each buffer size ({mib:?} MiB, every {page}-byte page written so it is \
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
            table: results.table(),
            charts: results.charts(),
            verdicts: results.verdicts(),
            notes: Vec::new(),
        }
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

    fn summary(&self, name: Name, implementation: Implementation, size: usize) -> Option<&Summary> {
        self.findings
            .summary(implementation, name.name(), &[("size", size.into())])
    }

    fn largest(&self) -> Option<usize> {
        self.sizes.last().copied()
    }

    fn table(&self) -> Table {
        let mut columns = vec!["buffer".to_owned(), "parent resident".to_owned()];
        for implementation in self.implementations() {
            columns.push(format!("{}: fork + _exit + wait", implementation.label()));
        }
        for implementation in self.implementations() {
            columns.push(format!(
                "{}: child write per page (COW)",
                implementation.label()
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
                    .get(
                        Implementation::Rust,
                        Name::ForkTotal.name(),
                        &[("size", size.into())],
                    )
                    .and_then(|m| m.params.get("parent_rss"))
                    .and_then(serde_json::Value::as_f64)
                    .map_or("—".to_owned(), format_bytes),
            );
            for implementation in self.implementations() {
                row.push(cell(self.summary(Name::ForkTotal, implementation, size)));
            }
            for implementation in self.implementations() {
                row.push(cell(self.summary(Name::ChildWrite, implementation, size)));
            }
            row.push(cell(self.summary(
                Name::ParentPlain,
                Implementation::Rust,
                size,
            )));
            let memory: Vec<String> = SNAPSHOTS
                .iter()
                .filter_map(|(name, _)| self.summary(*name, Implementation::Rust, size))
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
                        (Name::ForkTotal, "fork + _exit + wait"),
                        (Name::ForkReturn, "fork returns"),
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
                        label: format!("{} {what}", implementation.label()),
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
    fn bars_at(&self, size: usize, bars: &[(Name, &str)], factor: f64, chart: Chart) -> Chart {
        Chart {
            kind: ChartKind::Bar,
            categories: bars.iter().map(|(_, label)| (*label).to_owned()).collect(),
            series: self
                .implementations()
                .into_iter()
                .map(|implementation| Series {
                    label: implementation.label().to_owned(),
                    points: bars
                        .iter()
                        .enumerate()
                        .filter_map(|(index, (name, _))| {
                            self.summary(*name, implementation, size)
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
                let copying = self.summary(Name::ChildWriteTotal, implementation, largest);
                let (Some(fork), Some(copy)) = (
                    self.summary(Name::ForkTotal, implementation, largest),
                    copying,
                ) else {
                    continue;
                };
                let dearer = Ratio::of(copy, fork);
                ratios.push(dearer);
                let smallest = self
                    .sizes
                    .first()
                    .and_then(|&s| self.summary(Name::ForkTotal, implementation, s));
                parts.push(format!(
                    "{}: fork + _exit + wait of a {} parent took {} ({} with {}), copying its \
                     pages in the child {} ({} the fork)",
                    implementation.label(),
                    format_bytes(largest as f64),
                    format_seconds(fork.median),
                    smallest.map_or("—".to_owned(), |s| format_seconds(s.median)),
                    self.sizes
                        .first()
                        .map_or("—".to_owned(), |&s| format_bytes(s as f64)),
                    format_seconds(copy.median),
                    dearer.shown()
                ));
            }
        }
        let outcome = fork_fast_outcome(&ratios);
        verdict(
            format!(
                "Copy-on-write makes fork fast: it does not copy the parent's memory (counted \
                 as fast when fork costs under 1/{FORK_CHEAPER} of copying the pages). Fork \
                 still copies the page tables, so its time grows with the parent's size."
            ),
            "✅ 加快fork速度",
            outcome,
            parts.join("; "),
        )
    }

    fn copied_on_write(&self) -> Verdict {
        let mut parts = Vec::new();
        let mut ratios = Vec::new();
        if let Some(largest) = self.largest() {
            for implementation in self.implementations() {
                let (Some(child), Some(plain)) = (
                    self.summary(Name::ChildWrite, implementation, largest),
                    self.summary(Name::ParentPlain, implementation, largest),
                ) else {
                    continue;
                };
                let dearer = Ratio::of(child, plain);
                ratios.push(dearer);
                let after_fork = self
                    .summary(Name::ParentAfterFork, implementation, largest)
                    .map_or("—".to_owned(), |s| format_seconds(s.median));
                parts.push(format!(
                    "{}: a child's first write to a shared page {} ({} a plain write, \
                     {}); the parent's write after the child left {} (a fault, no copy)",
                    implementation.label(),
                    format_seconds(child.median),
                    dearer.shown(),
                    format_seconds(plain.median),
                    after_fork
                ));
            }
        }
        let outcome = Outcome::from_findings(ratios.iter().map(|r| r.at_least(COPY_VISIBLE)));
        verdict(
            "Pages are copied only when written: the first write to a shared page pays \
                    for the copy.",
            "只有在写入时才真正复制",
            outcome,
            parts.join("; "),
        )
    }

    /// The child's private memory at snapshot `name`, as a share of the buffer, per
    /// implementation measured.
    fn private_shares(&self, name: Name) -> Vec<(Implementation, f64, f64)> {
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
        // Private memory is read once per child from smaps, in whole pages: no spread to weigh.
        let after_fork = self.private_shares(Name::PrivateAfterFork);
        let after_writes = self.private_shares(Name::PrivateAfterWrites);
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
                    implementation.label(),
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
        verdict(
            "Copy-on-write saves memory: a forked child shares the parent's pages until \
                    it writes them.",
            "✅ 节省内存",
            outcome,
            if evidence.is_empty() {
                "the child's memory could not be read here".to_owned()
            } else {
                evidence
            },
        )
    }

    fn read_only_never_copied(&self) -> Verdict {
        // Page counts again (and CPython's object sizes): exact, as in `memory_saved`.
        let reads = self.private_shares(Name::PrivateAfterReads);
        let rust_ok = reads
            .iter()
            .find(|(i, _, _)| *i == Implementation::Rust)
            .map(|(_, _, share)| *share < NEGLIGIBLE);
        let python = |name: Name| {
            self.findings
                .summary(Implementation::Python, name.name(), &[])
        };
        let objects = python(Name::RefcountGrowth)
            .zip(python(Name::RefcountObjects))
            .map(|(growth, size)| (growth.median, size.median));
        let mut parts: Vec<String> = reads
            .iter()
            .map(|(implementation, bytes, _)| {
                format!(
                    "{}: after reading every page of the {} buffer the child had {} private",
                    implementation.label(),
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
        verdict(
            "Most read-only data never needs to be copied.",
            "✅ 大部分只读数据永远不需要复制",
            outcome,
            if parts.is_empty() {
                "the child's memory could not be read here".to_owned()
            } else {
                parts.join("; ")
            },
        )
    }
}

/// The verdict on "fork is fast" from each implementation's copy ÷ fork ratio: confirmed when
/// every range reaches [`FORK_CHEAPER`], refuted when every one is below 1 (fork dearer than
/// the copy), within noise when every one straddles either line, depends otherwise (a range
/// wholly between the lines, a mixture, or nothing measured).
fn fork_fast_outcome(ratios: &[Ratio]) -> Outcome {
    let bands: Vec<Band> = ratios.iter().map(|r| r.band(1.0, FORK_CHEAPER)).collect();
    if bands.contains(&Band::Between) {
        return Outcome::Depends;
    }
    Outcome::from_findings(bands.iter().map(|band| match band {
        Band::Above => Finding::Holds,
        Band::Below => Finding::Fails,
        _ => Finding::WithinNoise,
    }))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_is_fast_by_the_ranges_of_copy_over_fork() {
        let range = |low: f64, high: f64| Ratio {
            median: (low + high) / 2.0,
            low,
            high,
        };
        assert_eq!(fork_fast_outcome(&[range(6.0, 9.0)]), Outcome::Confirmed);
        assert_eq!(fork_fast_outcome(&[range(0.5, 0.9)]), Outcome::Refuted);
        assert_eq!(fork_fast_outcome(&[range(2.0, 3.0)]), Outcome::Depends);
        // Reaching across a line: this machine cannot tell.
        assert_eq!(fork_fast_outcome(&[range(4.0, 7.0)]), Outcome::WithinNoise);
        assert_eq!(fork_fast_outcome(&[range(0.8, 1.2)]), Outcome::WithinNoise);
        assert_eq!(
            fork_fast_outcome(&[range(6.0, 9.0), range(4.0, 7.0)]),
            Outcome::Depends
        );
        assert_eq!(fork_fast_outcome(&[]), Outcome::Depends);
    }
}
