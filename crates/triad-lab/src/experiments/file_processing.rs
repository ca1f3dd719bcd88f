//! `file-processing` (seed §9, the row *file processing → threads*): read and hash (CRC-32) a
//! directory of files of 4-256 KiB, serially, on pools of 2, 8 and 32 threads, as tokio tasks
//! (each read handed to tokio's blocking threads, as `tokio::fs` does: async file IO on Linux
//! is a thread pool underneath), and on one worker process per core — with the page cache cold (each file
//! dropped from it with `posix_fadvise(DONTNEED)` before every timed run) and warm.
//!
//! The files are written fresh, flushed to disk (`syncfs`) and removed after; every run's
//! CRCs and byte count are checked against what was written. CPython
//! (`python/file_processing.py`) reads the same files with a `ThreadPoolExecutor`,
//! `asyncio.to_thread` and a `multiprocessing.Pool`.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;

use triad::{Mode, Runner};

use super::decision::{Better, Candidate, Decision, combine, decide};
use crate::error::LabError;
use crate::experiment::{About, ByScale, Experiment, Judgement};
use crate::findings::Findings;
use crate::names::names;
use crate::plan::{Bench, Measured, Plan, Repeat, Series};
use crate::python::Baseline;
use crate::results::{
    Chart, ChartKind, Implementation, Measurement, Point, Scale, Series as Bars, Table,
};
use crate::stats::{format_seconds, format_with_spread, timed};

/// The `file-processing` experiment.
#[derive(Debug)]
pub(crate) struct FileProcessing;

names! {
    /// How the files are read, by the names the measurements carry (the same in the script).
    enum Engine {
        Serial => "serial",
        Threads => "threads",
        Async => "async",
        Processes => "processes",
    }
}

names! {
    /// The page cache before a timed run.
    enum Cache {
        Cold => "cold",
        Warm => "warm",
    }
}

/// Sizes by scale.
#[derive(Debug)]
struct Sizes {
    files: usize,
    threads: &'static [usize],
    samples: usize,
    python_samples: usize,
}

const SIZES: ByScale<Sizes> = ByScale::new(
    Sizes {
        files: 60,
        threads: &[2, 8],
        samples: 2,
        python_samples: 1,
    },
    Sizes {
        files: 1_000,
        threads: &[2, 8, 32],
        samples: 2,
        python_samples: 1,
    },
    Sizes {
        files: 2_000,
        threads: &[2, 8, 32],
        samples: 5,
        python_samples: 3,
    },
);

/// The smallest and largest file.
const SMALLEST: u64 = 4 * 1024;
const LARGEST: u64 = 256 * 1024;

/// Worker processes: one per core.
fn processes(cores: usize) -> usize {
    cores.max(1)
}

/// Every (engine, workers) read, in table order.
fn configurations(sizes: &Sizes, cores: usize) -> Vec<(Engine, usize)> {
    let mut all = vec![(Engine::Serial, 1)];
    all.extend(sizes.threads.iter().map(|&n| (Engine::Threads, n)));
    all.push((Engine::Async, 0));
    all.push((Engine::Processes, processes(cores)));
    all
}

/// The files written for a run, removed on drop.
#[derive(Debug)]
struct Files {
    dir: PathBuf,
    paths: Vec<String>,
    /// The sum of every file's CRC-32, and of their lengths.
    expected: (u64, u64),
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// File `index`'s size: spread evenly on a log scale from 4 to 256 KiB (a fixed sequence).
fn size_of(index: usize) -> u64 {
    let mut x = (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    let unit = (x % 10_000) as f64 / 10_000.0;
    let size = SMALLEST as f64 * (LARGEST as f64 / SMALLEST as f64).powf(unit);
    (size as u64).clamp(SMALLEST, LARGEST)
}

/// Writes `count` files under `base`, flushes them to disk and returns them.
fn write_files(base: &std::path::Path, count: usize) -> std::io::Result<Files> {
    let dir = base.join(format!("triad-lab-{}-files", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir)?;
    let mut files = Files {
        dir,
        paths: Vec::with_capacity(count),
        expected: (0, 0),
    };
    let mut noise = vec![0u8; LARGEST as usize + count];
    let mut x = 0x2545_F491_4F6C_DD1D_u64;
    for byte in &mut noise {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = x as u8;
    }
    for index in 0..count {
        let size = size_of(index) as usize;
        let bytes = &noise[index..index + size];
        let path = files.dir.join(format!("{index:05}.bin"));
        std::fs::File::create(&path)?.write_all(bytes)?;
        files.expected.0 += u64::from(crc32fast::hash(bytes));
        files.expected.1 += size as u64;
        files.paths.push(path.to_string_lossy().into_owned());
    }
    // Only clean pages leave the page cache: write them all out first.
    rustix::fs::syncfs(std::fs::File::open(&files.dir)?.as_fd())?;
    Ok(files)
}

/// Drops every file from the page cache.
fn drop_cache(files: &Files) -> std::io::Result<()> {
    for path in &files.paths {
        let file = std::fs::File::open(path)?;
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)?;
    }
    Ok(())
}

/// Whether the files' directory is on a file system that keeps pages only in memory
/// (tmpfs, ramfs): there the cache cannot be dropped.
fn in_memory(files: &Files) -> bool {
    const TMPFS: i64 = 0x0102_1994;
    const RAMFS: i64 = 0x8584_58f6;
    #[allow(
        clippy::unnecessary_cast,
        reason = "f_type is an i64 on x86-64, narrower on other targets"
    )]
    rustix::fs::statfs(&files.dir)
        .map(|s| matches!(s.f_type as i64, TMPFS | RAMFS))
        .unwrap_or(false)
}

/// Reads the file at `path` whole and hashes it: its CRC-32 and length.
#[triad::task]
pub(crate) fn hash_file(path: String) -> Result<(u32, u64), String> {
    let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    Ok((crc32fast::hash(&bytes), bytes.len() as u64))
}

/// [`hash_file`] as a tokio task: the read handed to tokio's blocking threads with
/// `spawn_blocking`, which is what `tokio::fs::read` does inside.
#[triad::task]
pub(crate) async fn hash_file_async(path: String) -> Result<(u32, u64), String> {
    let read = tokio::task::spawn_blocking(move || {
        std::fs::read(&path).map_err(|e| format!("{path}: {e}"))
    });
    let bytes = read.await.map_err(|e| e.to_string())??;
    Ok((crc32fast::hash(&bytes), bytes.len() as u64))
}

/// Reads the first `count` files on `runner` and checks the sums (when it read them all); the
/// wall time.
fn read_all(runner: &Runner, engine: Engine, files: &Files, count: usize) -> Result<f64, LabError> {
    let paths = files.paths.iter().take(count).cloned();
    let (results, seconds) = timed(|| {
        if engine == Engine::Async {
            runner.map(hash_file_async, paths)
        } else {
            runner.map(hash_file, paths)
        }
    });
    let mut sums = (0u64, 0u64);
    for result in results {
        let (crc, length) = result
            .map_err(|e| LabError::engine(engine.name(), e))?
            .map_err(|e| LabError::engine(engine.name(), e))?;
        sums.0 += u64::from(crc);
        sums.1 += length;
    }
    if count >= files.paths.len() && sums != files.expected {
        return Err(LabError::engine(
            engine.name(),
            format!(
                "read CRC sum and bytes {sums:?}, wrote {:?}",
                files.expected
            ),
        ));
    }
    Ok(seconds)
}

impl Experiment for FileProcessing {
    fn about(&self) -> About {
        About {
            id: "file-processing",
            title: "Reading and hashing files of 4-256 KiB: threads, async, processes, cold and warm",
            seed_section: "9",
        }
    }

    fn measure(&self, bench: Bench<'_>) -> Result<Measured, LabError> {
        let sizes = SIZES.at(bench.scale());
        let cores = bench.machine().cores;
        let (base, _) = crate::python::scratch_dir()
            .map_err(|e| LabError::os("a directory for the files", std::io::Error::other(e)))?;
        let files =
            write_files(&base, sizes.files).map_err(|e| LabError::os("writing the files", e))?;
        let caches: &[Cache] = if in_memory(&files) {
            &[Cache::Warm]
        } else {
            Cache::ALL
        };
        let mut runners = Vec::new();
        for (engine, workers) in configurations(sizes, cores) {
            let mode = match engine {
                Engine::Serial => Mode::Serial,
                Engine::Threads => Mode::Threads(workers),
                Engine::Async => Mode::Async { concurrency: 64 },
                Engine::Processes => Mode::Processes(workers),
            };
            let runner =
                Runner::new(mode).map_err(|e| LabError::engine(format!("starting {mode}"), e))?;
            runners.push((engine, workers, runner));
        }
        let mut plan = Plan::new();
        if caches.len() == 1 {
            plan.note(
                "The files' directory is on tmpfs, whose pages cannot leave memory: only the \
                 warm cache is measured.",
            );
        }
        let files = &files;
        let mut series = Vec::new();
        for &cache in caches {
            for (engine, workers, runner) in &runners {
                let measurement =
                    Measurement::new(engine.name(), Implementation::Rust, "s", Vec::new())
                        .param("cache", cache.name())
                        .param("workers", *workers);
                let sample = move || {
                    if cache == Cache::Cold {
                        drop_cache(files)
                            .map_err(|e| LabError::os("dropping the page cache", e))?;
                    }
                    read_all(runner, *engine, files, files.paths.len())
                };
                // The warm-up starts the pool's threads or processes on a few files.
                let warm_up = move || read_all(runner, *engine, files, 64).map(drop);
                series.push(
                    Series::of(measurement, Repeat::new(1, sizes.samples), sample)
                        .warmed_by(warm_up),
                );
            }
        }
        plan.rounds(series);
        plan.python(Baseline::new(
            "file_processing",
            include_str!("../../python/file_processing.py"),
            [
                files.dir.to_string_lossy().into_owned(),
                list(sizes.threads),
                processes(cores).to_string(),
                sizes.python_samples.to_string(),
                format!("{},{}", files.expected.0, files.expected.1),
                caches
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(","),
            ],
        ));
        bench.run(plan)
    }

    fn judge(&self, findings: &Findings<'_>) -> Judgement {
        judge(findings)
    }
}

fn list(counts: &[usize]) -> String {
    counts
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The label of a configuration: `threads (8)`.
fn label(engine: Engine, workers: usize) -> String {
    match engine {
        Engine::Threads | Engine::Processes => format!("{} ({workers})", engine.name()),
        _ => engine.name().to_owned(),
    }
}

fn time_of<'a>(
    found: &Findings<'a>,
    implementation: Implementation,
    (engine, workers): (Engine, usize),
    cache: Cache,
) -> Option<&'a Measurement> {
    found.get(
        implementation,
        engine.name(),
        &[("cache", cache.name().into()), ("workers", workers.into())],
    )
}

fn judge(found: &Findings<'_>) -> Judgement {
    let sizes = SIZES.at(found.scale());
    let configurations = configurations(sizes, found.machine().cores);
    let mut table = Table::new(["cache", "mode", "Rust", "CPython"]);
    let mut charts = Vec::new();
    for &cache in Cache::ALL {
        let mut bars = Vec::new();
        for implementation in found.implementations() {
            bars.push(Bars {
                label: implementation.label().to_owned(),
                points: configurations
                    .iter()
                    .enumerate()
                    .filter_map(|(x, &c)| {
                        let m = time_of(found, implementation, c, cache)?;
                        Some(Point::from_summary(x as f64, &m.summary))
                    })
                    .collect(),
            });
        }
        if bars.iter().all(|b| b.points.is_empty()) {
            continue;
        }
        for &c in &configurations {
            let cell = |i| {
                time_of(found, i, c, cache).map_or("—".to_owned(), |m| {
                    format_with_spread(&m.summary, format_seconds)
                })
            };
            table.row([
                cache.name().to_owned(),
                label(c.0, c.1),
                cell(Implementation::Rust),
                cell(Implementation::Python),
            ]);
        }
        charts.push(Chart {
            title: format!(
                "Time to read and hash {} files, {} page cache",
                sizes.files,
                cache.name()
            ),
            kind: ChartKind::Bar,
            x_label: "mode".to_owned(),
            y_label: "seconds".to_owned(),
            x_scale: Scale::Linear,
            y_scale: Scale::Log,
            categories: configurations.iter().map(|&(e, w)| label(e, w)).collect(),
            series: bars,
        });
    }
    Judgement {
        method: format!(
            "{files} files of 4-256 KiB (sizes spread evenly on a log scale, {mib:.0} MiB in \
             all on average), written fresh and flushed to disk (syncfs), each read whole and \
             hashed (CRC-32: crc32fast in Rust, zlib.crc32 in CPython) and the sums checked. \
             Modes: serial; pools of {threads} threads and {procs} worker processes \
             (triad::Runner; CPython: ThreadPoolExecutor, multiprocessing.Pool); async: tokio \
             tasks handing each read to tokio's blocking thread pool with spawn_blocking, as \
             tokio::fs::read does inside (CPython: asyncio.to_thread on the default executor) — on Linux, async file IO is \
             threads underneath. Cold: every file dropped from the page cache with \
             posix_fadvise(DONTNEED) before each timed run (the VM's host may still cache the \
             disk); warm: read again from the cache. One untimed run of 64 files starts each \
             pool, then {samples} timed runs per mode, the modes taking turns (CPython: {py} per mode).",
            files = sizes.files,
            mib = sizes.files as f64 * 60.6 / 1024.0,
            threads = list(sizes.threads),
            procs = processes(found.machine().cores),
            samples = sizes.samples,
            py = sizes.python_samples,
        ),
        table,
        charts,
        verdicts: vec![file_processing(found).verdict],
        notes: vec![
            "Rust's async row is threads underneath: 64 tasks at a time, each read handed to \
             tokio's blocking pool (up to 512 threads), so it is a pool of up to 64 reading \
             threads fed by an event loop; CPython's asyncio.to_thread is its default executor \
             of min(32, cores + 4) threads."
                .to_owned(),
        ],
    }
}

const FILE_ROW: (&str, &str) = (
    "File processing (low CPU, high IO wait, low concurrency) is best done on threads.",
    "| 文件处理 | 低 | 高 | 低 | 多线程 | I/O密集,简单 |",
);

/// The *file processing* row: the time to read every file, cold and warm, by mode.
pub(crate) fn file_processing(found: &Findings<'_>) -> Decision {
    let configurations = configurations(SIZES.at(found.scale()), found.machine().cores);
    let decisions = Cache::ALL
        .iter()
        .map(|&cache| {
            let candidates: Vec<Candidate<'_>> = found
                .implementations()
                .into_iter()
                .flat_map(|implementation| {
                    configurations.iter().filter_map(move |&c| {
                        Some(Candidate {
                            implementation,
                            label: label(c.0, c.1),
                            summary: &time_of(found, implementation, c, cache)?.summary,
                            recommended: c.0 == Engine::Threads,
                        })
                    })
                })
                .collect();
            decide(
                &candidates,
                Better::Lower,
                format_seconds,
                FILE_ROW,
                &format!("{} cache", cache.name()),
            )
        })
        .filter(|d| !d.best.is_empty())
        .collect();
    combine(decisions, FILE_ROW)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_spread_from_4_to_256_kib() {
        let sizes: Vec<u64> = (0..2000).map(size_of).collect();
        assert!(sizes.iter().all(|s| (SMALLEST..=LARGEST).contains(s)));
        assert!(sizes.iter().any(|s| *s < 8 * 1024) && sizes.iter().any(|s| *s > 200 * 1024));
        let mean = sizes.iter().sum::<u64>() as f64 / 2000.0 / 1024.0;
        assert!((50.0..70.0).contains(&mean), "{mean} KiB");
    }

    #[test]
    fn files_read_back_to_what_was_written_and_a_changed_file_is_caught() {
        let files = write_files(&std::env::temp_dir(), 5).unwrap();
        let runner = Runner::new(Mode::Threads(2)).unwrap();
        drop_cache(&files).unwrap();
        assert!(read_all(&runner, Engine::Threads, &files, 5).is_ok());
        let async_runner = Runner::new(Mode::Async { concurrency: 4 }).unwrap();
        assert!(read_all(&async_runner, Engine::Async, &files, 5).is_ok());
        std::fs::write(&files.paths[2], b"changed").unwrap();
        let error = read_all(&runner, Engine::Serial, &files, 5).unwrap_err();
        assert!(error.to_string().contains("wrote"), "{error}");
        let dir = files.dir.clone();
        drop(files);
        assert!(!dir.exists(), "the files are removed");
    }
}
