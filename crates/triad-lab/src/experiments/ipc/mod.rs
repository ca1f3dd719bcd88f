//! `ipc` (seed §5.1.2): pipe, OS pipe, socket, queue and shared memory between two processes —
//! round-trip latency and one-way bandwidth at 64 B, 4 KiB, 64 KiB and 1 MiB — with what
//! serialisation costs beside them, and how much a pipe and a socket buffer before a writer
//! blocks.
//!
//! The other process is a [`ProcessPool`] worker running [`transport::ipc_peer`], whose input
//! carries the far end of the transport under test; it echoes each message (latency: every
//! round trip timed on its own, after a warm-up) or sinks a stream and acknowledges it
//! (bandwidth: bytes ÷ time of each repetition, after a warm-up one). Serialisation is postcard
//! encode + decode in this process ([`codec`]). CPython does the same with
//! `multiprocessing.Pipe`, `multiprocessing.Queue`, `os.pipe`, `socket.socketpair` and a
//! `SharedMemory` ring in a forked child, and times `pickle.dumps` + `pickle.loads`.

mod codec;
mod transport;

use triad::ProcessPool;

use crate::error::LabError;
use crate::experiment::{About, ByScale, Experiment, Judgement};
use crate::findings::{Findings, Param};
use crate::names::names;
use crate::plan::{Bench, Measured, Plan, Repeat};
use crate::python::Baseline;
use crate::results::{
    Chart, ChartKind, Finding, Implementation, Measurement, Outcome, Point, Scale, Series, Table,
    Verdict,
};
use crate::stats::{Summary, format_bytes, format_seconds, format_with_spread};
use crate::verdict::{Ratio, smaller, verdict};
use transport::{Kind, Placement, Spread};

/// The message sizes, in bytes: all of them, and the smallest and largest for toy runs.
const SIZES_ALL: [usize; 4] = [64, 4 << 10, 64 << 10, 1 << 20];
const TOY_SIZES: [usize; 2] = [64, 1 << 20];

/// A pipe's buffer as the seed gives it ("usually 64KB"), and the tolerance of the verdict.
const SEED_PIPE_BUFFER: f64 = 64.0 * 1024.0;

/// The share of a message's cost above which serialisation counts as a real part of it.
const SERIALISATION_MATTERS: f64 = 0.10;

/// Pipes, sockets, queues and shared memory between two processes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ipc;

names! {
    /// What is read of a transport: the rest of its measurement names (`pipe/round-trip`).
    enum Quantity {
        RoundTrip => "round-trip",
        Bandwidth => "bandwidth",
        Capacity => "capacity",
    }
}

names! {
    /// The serialisation and copy costs, by their measurement names (the same in
    /// `python/ipc.py`).
    enum Codec {
        Bytes => "serialise/bytes",
        Copy => "copy/bytes",
        SeedMessage => "serialise/seed-message",
        Record => "serialise/record",
    }
}

impl Kind {
    /// The name of its measurement of `quantity`, such as `pipe/round-trip`.
    fn measurement(self, quantity: Quantity) -> String {
        format!("{}/{}", self.name(), quantity.name())
    }
}

/// Sizes for one scale.
#[derive(Debug)]
struct Sizes {
    /// The message sizes.
    messages: &'static [usize],
    /// Bytes moved by the timed round trips of one size (within the bounds below).
    latency_bytes: usize,
    min_rounds: usize,
    max_rounds: usize,
    /// Bytes per bandwidth repetition (within the bounds below).
    stream_bytes: usize,
    min_messages: usize,
    max_messages: usize,
    /// Bandwidth streams and codec batches: one warm-up, then the samples.
    repeat: Repeat,
    python_repetitions: usize,
    codec_iterations: usize,
    /// Bytes serialised per codec sample at most (fewer calls for large messages).
    codec_bytes: usize,
}

const SIZES: ByScale<Sizes> = ByScale::new(
    Sizes {
        messages: &TOY_SIZES,
        latency_bytes: 1 << 20,
        min_rounds: 5,
        max_rounds: 50,
        stream_bytes: 1 << 20,
        min_messages: 2,
        max_messages: 200,
        repeat: Repeat::after_one(2),
        python_repetitions: 2,
        codec_iterations: 200,
        codec_bytes: 2 << 20,
    },
    Sizes {
        messages: &SIZES_ALL,
        latency_bytes: 4 << 20,
        min_rounds: 20,
        max_rounds: 200,
        stream_bytes: 2 << 20,
        min_messages: 8,
        max_messages: 1_000,
        repeat: Repeat::after_one(5),
        python_repetitions: 3,
        codec_iterations: 2_000,
        codec_bytes: 32 << 20,
    },
    Sizes {
        messages: &SIZES_ALL,
        latency_bytes: 64 << 20,
        min_rounds: 50,
        max_rounds: 5_000,
        stream_bytes: 32 << 20,
        min_messages: 16,
        max_messages: 20_000,
        repeat: Repeat::after_one(10),
        python_repetitions: 5,
        codec_iterations: 20_000,
        codec_bytes: 256 << 20,
    },
);

/// What is run at one message size.
#[derive(Debug, Clone, Copy)]
struct AtSize {
    size: usize,
    warm_up: usize,
    rounds: usize,
    messages: usize,
}

impl Sizes {
    fn at(&self, size: usize) -> AtSize {
        let rounds = (self.latency_bytes / size).clamp(self.min_rounds, self.max_rounds);
        AtSize {
            size,
            warm_up: (rounds / 10).max(2),
            rounds,
            messages: (self.stream_bytes / size).clamp(self.min_messages, self.max_messages),
        }
    }
}

impl Experiment for Ipc {
    fn about(&self) -> About {
        About {
            id: "ipc",
            title: "Pipe, socket, queue, shared memory: latency, bandwidth, serialisation",
            seed_section: "5.1.2",
        }
    }

    fn measure(&self, bench: Bench<'_>) -> Result<Measured, LabError> {
        let sizes = SIZES.at(bench.scale());
        let plans: Vec<AtSize> = sizes.messages.iter().map(|&size| sizes.at(size)).collect();
        let placements =
            Placement::available().map_err(|e| LabError::engine("CPU placement", e))?;
        let streaming = *placements.last().expect("at least one placement");
        let pool = ProcessPool::new(1).map_err(|e| LabError::engine("the peer process", e))?;
        let mut steps = Plan::new();
        if placements.len() == 1 {
            steps.note("Only one CPU is available: both processes share it in every measurement.");
        }
        for &kind in Kind::ALL {
            for &plan in &plans {
                let fail = move |e: String| {
                    LabError::engine(format!("{} at {} bytes", kind.name(), plan.size), e)
                };
                if !transport::fits(kind, plan.size).map_err(fail)? {
                    steps.note(format!(
                        "{} cannot carry a {} message in one datagram here (the socket's send \
                         buffer limit, net.core.wmem_max): not measured.",
                        kind.rust_label(),
                        format_bytes(plan.size as f64)
                    ));
                    continue;
                }
                let pool = &pool;
                for &placement in &placements {
                    steps.step(move |measured| {
                        let latency = transport::round_trips(
                            pool,
                            placement,
                            kind,
                            plan.size,
                            plan.warm_up,
                            plan.rounds,
                        )
                        .map_err(fail)?;
                        measured.measurement(
                            Measurement::new(
                                kind.measurement(Quantity::RoundTrip),
                                Implementation::Rust,
                                "s",
                                latency,
                            )
                            .param("size", plan.size)
                            .param("placement", placement.spread().name()),
                        );
                        Ok(())
                    });
                }
                let repeat = sizes.repeat;
                steps.step(move |measured| {
                    let bandwidth = transport::bandwidth(
                        pool,
                        streaming,
                        kind,
                        plan.size,
                        plan.messages,
                        repeat,
                    )
                    .map_err(fail)?;
                    measured.measurement(
                        Measurement::new(
                            kind.measurement(Quantity::Bandwidth),
                            Implementation::Rust,
                            "bytes/s",
                            bandwidth,
                        )
                        .param("size", plan.size)
                        .param("messages", plan.messages)
                        .param("placement", streaming.spread().name()),
                    );
                    Ok(())
                });
            }
        }
        steps.step(|measured| {
            let (pipe, socket) = transport::buffer_capacities()
                .map_err(|e| LabError::engine("buffer capacity", e))?;
            for (kind, capacity) in [(Kind::OsPipe, pipe), (Kind::Socket, socket)] {
                measured.measurement(Measurement::new(
                    kind.measurement(Quantity::Capacity),
                    Implementation::Rust,
                    "bytes",
                    vec![capacity],
                ));
            }
            Ok(())
        });
        steps.step(|measured| {
            for plan in &plans {
                let iterations =
                    codec_iterations(sizes.codec_iterations, sizes.codec_bytes, plan.size);
                for (codec, samples) in [
                    (
                        Codec::Bytes,
                        codec::postcard_bytes(plan.size, iterations, sizes.repeat),
                    ),
                    (
                        Codec::Copy,
                        codec::copy_bytes(plan.size, iterations, sizes.repeat),
                    ),
                ] {
                    measured.measurement(
                        Measurement::new(codec.name(), Implementation::Rust, "s", samples)
                            .param("size", plan.size),
                    );
                }
            }
            let (seed_message, record) =
                codec::postcard_structured(sizes.codec_iterations, sizes.repeat);
            for (codec, samples) in [(Codec::SeedMessage, seed_message), (Codec::Record, record)] {
                measured.measurement(Measurement::new(
                    codec.name(),
                    Implementation::Rust,
                    "s",
                    samples,
                ));
            }
            Ok(())
        });
        let plan_json = serde_json::to_string(
            &plans
                .iter()
                .map(|p| [p.size, p.warm_up, p.rounds, p.messages])
                .collect::<Vec<_>>(),
        )
        .map_err(|e| LabError::engine("the CPython plan", e))?;
        let placement_json = serde_json::to_string(
            &placements
                .iter()
                .map(|p| (p.spread().name(), p.ours, p.theirs))
                .collect::<Vec<_>>(),
        )
        .map_err(|e| LabError::engine("the CPython placements", e))?;
        steps.python(Baseline::new(
            "ipc",
            include_str!("../../../python/ipc.py"),
            [
                plan_json,
                placement_json,
                sizes.python_repetitions.to_string(),
                sizes.codec_iterations.to_string(),
                sizes.codec_bytes.to_string(),
            ],
        ));
        let measured = bench.run(steps);
        pool.join();
        measured
    }

    fn judge(&self, findings: &Findings<'_>) -> Judgement {
        let sizes = SIZES.at(findings.scale());
        let placements: Vec<Spread> = Spread::ALL
            .iter()
            .copied()
            .filter(|spread| {
                findings
                    .get(
                        Implementation::Rust,
                        &Kind::Pipe.measurement(Quantity::RoundTrip),
                        &[("placement", spread.name().into())],
                    )
                    .is_some()
            })
            .collect();
        let results = Results {
            findings: *findings,
            streaming: placements.last().copied().unwrap_or(Spread::OneCpu),
            placements,
            sizes: sizes.messages,
        };
        Judgement {
            method: format!(
                "Two processes: this one and a ProcessPool worker that receives the far end of \
                 each transport in its task input. Latency: every round trip of a message of \
                 each size is timed on its own ({} to {} per size after a warm-up), median and \
                 quartiles of those. Bandwidth: a one-way stream of {} to {} messages per \
                 repetition, then a 1-byte acknowledgement; {} repetitions after a warm-up, \
                 bytes ÷ time. Shared memory is a ring of 4 slots per direction: each message \
                 is copied in by the sender and out by the receiver, with atomics for the head \
                 and tail. Serialisation: postcard encode + decode in one process ({} calls per \
                 sample). CPython does the same with a forked child ({} repetitions) and \
                 pickle.",
                sizes.min_rounds,
                sizes.max_rounds,
                sizes.min_messages,
                sizes.max_messages,
                sizes.repeat.samples,
                sizes.codec_iterations,
                sizes.python_repetitions,
            ),
            table: results.table(),
            charts: results.charts(),
            verdicts: results.verdicts(),
            notes: vec![
                "Shared memory here moves each message through two copies (into the slot and \
                 out of it), as a pipe does through the kernel; code that works in place in the \
                 shared buffer saves both."
                    .to_owned(),
            ],
        }
    }
}

/// Calls per codec sample for messages of `size` bytes: `iterations`, fewer for large messages
/// (at most `bytes` in all), and at least 4. The CPython script uses the same rule.
fn codec_iterations(iterations: usize, bytes: usize, size: usize) -> usize {
    iterations.min(bytes / size).max(4)
}

/// Reads the report's measurements back for the table, charts and verdicts.
struct Results<'a> {
    findings: Findings<'a>,
    /// Where the round trips ran.
    placements: Vec<Spread>,
    /// Where the bandwidth runs ran.
    streaming: Spread,
    /// The message sizes measured.
    sizes: &'a [usize],
}

impl Results<'_> {
    fn find(
        &self,
        name: &str,
        implementation: Implementation,
        params: &[Param<'_>],
    ) -> Option<&Summary> {
        self.findings.summary(implementation, name, params)
    }

    fn latency(
        &self,
        kind: Kind,
        implementation: Implementation,
        size: usize,
        placement: Spread,
    ) -> Option<&Summary> {
        self.find(
            &kind.measurement(Quantity::RoundTrip),
            implementation,
            &[
                ("size", size.into()),
                ("placement", placement.name().into()),
            ],
        )
    }

    fn bandwidth(
        &self,
        kind: Kind,
        implementation: Implementation,
        size: usize,
    ) -> Option<&Summary> {
        self.find(
            &kind.measurement(Quantity::Bandwidth),
            implementation,
            &[("size", size.into())],
        )
    }

    fn implementations(&self) -> Vec<Implementation> {
        self.findings.implementations()
    }

    /// A table row per implementation and transport: `figure` gives each size's summary.
    fn rows<'s>(
        &'s self,
        table: &mut Table,
        measure: &str,
        figure: impl Fn(Kind, Implementation, usize) -> Option<&'s Summary>,
        format: fn(f64) -> String,
    ) {
        for implementation in self.implementations() {
            for &kind in Kind::ALL {
                let cells = self.sizes.iter().map(|&size| {
                    let Some(summary) = figure(kind, implementation, size) else {
                        return "—".to_owned();
                    };
                    let versus = match (implementation, figure(kind, Implementation::Rust, size)) {
                        (Implementation::Python, Some(rust)) => {
                            format!(" ({:.1}× Rust)", summary.median / rust.median)
                        }
                        _ => String::new(),
                    };
                    format!("{}{versus}", format_with_spread(summary, format))
                });
                let label = match implementation {
                    Implementation::Rust => kind.rust_label(),
                    Implementation::Python => kind.python_label(),
                };
                table.row(
                    [measure.to_owned(), label.to_owned()]
                        .into_iter()
                        .chain(cells),
                );
            }
        }
    }

    fn table(&self) -> Table {
        let mut table = Table::new(
            ["measure", "implementation"]
                .into_iter()
                .map(str::to_owned)
                .chain(self.sizes.iter().map(|&s| format_bytes(s as f64))),
        );
        for &placement in &self.placements {
            self.rows(
                &mut table,
                &format!("round trip, {}", placement.label()),
                |kind, implementation, size| self.latency(kind, implementation, size, placement),
                format_seconds,
            );
        }
        self.rows(
            &mut table,
            &format!("bandwidth, {}", self.streaming.label()),
            |kind, implementation, size| self.bandwidth(kind, implementation, size),
            format_rate,
        );
        for (measure, name, implementation, how) in [
            (
                "encode + decode",
                Codec::Bytes.name(),
                Implementation::Rust,
                "Rust postcard",
            ),
            (
                "copy",
                Codec::Copy.name(),
                Implementation::Rust,
                "Rust Vec clone",
            ),
            (
                "encode + decode",
                Codec::Bytes.name(),
                Implementation::Python,
                "CPython pickle",
            ),
        ] {
            if !self.implementations().contains(&implementation) {
                continue;
            }
            let cells = self.sizes.iter().map(|&size| {
                self.find(name, implementation, &[("size", size.into())])
                    .map_or("—".to_owned(), |s| format_with_spread(s, format_seconds))
            });
            table.row(
                [measure.to_owned(), how.to_owned()]
                    .into_iter()
                    .chain(cells),
            );
        }
        table
    }

    fn charts(&self) -> Vec<Chart> {
        let mib = (1 << 20) as f64;
        let mut bandwidth = Chart {
            title: format!(
                "One-way bandwidth against message size ({})",
                self.streaming.label()
            ),
            kind: ChartKind::Line,
            x_label: "message size (bytes)".to_owned(),
            y_label: "bandwidth (MiB/s)".to_owned(),
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            ..Default::default()
        };
        for implementation in self.implementations() {
            for &kind in Kind::ALL {
                bandwidth.series.push(Series {
                    label: format!("{} {}", implementation.label(), kind.name()),
                    points: self
                        .sizes
                        .iter()
                        .filter_map(|&size| {
                            self.bandwidth(kind, implementation, size).map(|s| Point {
                                x: size as f64,
                                y: s.median / mib,
                                low: Some(s.p25 / mib),
                                high: Some(s.p75 / mib),
                            })
                        })
                        .collect(),
                });
            }
        }
        let mut charts = vec![bandwidth];
        for &placement in &self.placements {
            let mut latency = Chart {
                title: format!("Round-trip latency, {}", placement.label()),
                kind: ChartKind::Bar,
                x_label: "transport".to_owned(),
                y_label: "round trip (µs, log)".to_owned(),
                y_scale: Scale::Log,
                categories: Kind::ALL.iter().map(|k| k.name().to_owned()).collect(),
                ..Default::default()
            };
            for implementation in self.implementations() {
                for &size in self.sizes {
                    latency.series.push(Series {
                        label: format!("{} {}", implementation.label(), format_bytes(size as f64)),
                        points: Kind::ALL
                            .iter()
                            .enumerate()
                            .filter_map(|(index, &kind)| {
                                self.latency(kind, implementation, size, placement)
                                    .map(|s| micros_point(index as f64, s))
                            })
                            .collect(),
                    });
                }
            }
            charts.push(latency);
        }
        let mut serialisation = Chart {
            title: "Serialisation (encode + decode) against a plain copy".to_owned(),
            kind: ChartKind::Line,
            x_label: "message size (bytes)".to_owned(),
            y_label: "time per message (µs)".to_owned(),
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            ..Default::default()
        };
        for (label, name, implementation) in [
            ("Rust postcard", Codec::Bytes.name(), Implementation::Rust),
            ("Rust copy", Codec::Copy.name(), Implementation::Rust),
            (
                "CPython pickle",
                Codec::Bytes.name(),
                Implementation::Python,
            ),
        ] {
            let points: Vec<Point> = self
                .sizes
                .iter()
                .filter_map(|&size| {
                    self.find(name, implementation, &[("size", size.into())])
                        .map(|s| micros_point(size as f64, s))
                })
                .collect();
            if !points.is_empty() {
                serialisation.series.push(Series {
                    label: label.to_owned(),
                    points,
                });
            }
        }
        charts.push(serialisation);
        charts
    }

    fn verdicts(&self) -> Vec<Verdict> {
        vec![
            self.shared_memory_fastest(),
            self.queue_slower_than_pipe(),
            self.pipe_buffer(),
            self.serialisation_cost(),
        ]
    }

    /// Each (measure, size, placement) case of `implementation` in which shared memory entered:
    /// whether it beat every other transport beyond the noise, and where it did not.
    fn shared_memory_cases<'s>(
        &'s self,
        implementation: Implementation,
    ) -> (Vec<Finding>, Vec<String>) {
        let mut findings = Vec::new();
        let mut notes = Vec::new();
        let mut judge = |what: String,
                         shm: Option<&Summary>,
                         other: &dyn Fn(Kind) -> Option<&'s Summary>,
                         lower_is_better: bool| {
            let Some(shm) = shm else {
                return;
            };
            let others: Vec<(Kind, &Summary)> = Kind::ALL
                .iter()
                .copied()
                .filter(|k| *k != Kind::SharedMemory)
                .filter_map(|kind| other(kind).map(|value| (kind, value)))
                .collect();
            let (finding, note) = shared_memory_wins(shm, &others, lower_is_better);
            findings.push(finding);
            if let Some(note) = note {
                notes.push(format!("{what}: {note}"));
            }
        };
        for &size in self.sizes {
            for &placement in &self.placements {
                judge(
                    format!(
                        "round trip of {} {}",
                        format_bytes(size as f64),
                        placement.label()
                    ),
                    self.latency(Kind::SharedMemory, implementation, size, placement),
                    &|kind| self.latency(kind, implementation, size, placement),
                    true,
                );
            }
            judge(
                format!("bandwidth at {}", format_bytes(size as f64)),
                self.bandwidth(Kind::SharedMemory, implementation, size),
                &|kind| self.bandwidth(kind, implementation, size),
                false,
            );
        }
        (findings, notes)
    }

    fn shared_memory_fastest(&self) -> Verdict {
        let mut findings = Vec::new();
        let mut parts = Vec::new();
        for implementation in self.implementations() {
            let (cases, notes) = self.shared_memory_cases(implementation);
            let count = |f: Finding| cases.iter().filter(|c| **c == f).count();
            parts.push(format!(
                "{}: shared memory wins {}, is beaten in {} and is within noise of the best in \
                 {} of {} (measure, size, placement) cases{}",
                implementation.label(),
                count(Finding::Holds),
                count(Finding::Fails),
                count(Finding::WithinNoise),
                cases.len(),
                if notes.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", notes.join("; "))
                }
            ));
            findings.extend(cases);
        }
        verdict(
            "Shared memory is the fastest way for processes to talk (no copying).",
            "✅ 最快的IPC方式（无需拷贝）",
            Outcome::from_findings(findings),
            parts.join(". "),
        )
    }

    fn queue_slower_than_pipe(&self) -> Verdict {
        let implementations = self.implementations();
        let judge = *implementations.last().expect("Rust is always measured");
        let mut findings = Vec::new();
        let mut parts = Vec::new();
        for implementation in implementations {
            let mut cells = Vec::new();
            for &placement in &self.placements {
                for &size in self.sizes {
                    if let (Some(queue), Some(pipe)) = (
                        self.latency(Kind::Queue, implementation, size, placement),
                        self.latency(Kind::Pipe, implementation, size, placement),
                    ) {
                        let ratio = Ratio::of(queue, pipe);
                        if implementation == judge {
                            findings.push(smaller(pipe, queue));
                        }
                        cells.push(format!(
                            "{} at {} {}",
                            ratio.shown(),
                            format_bytes(size as f64),
                            placement.label()
                        ));
                    }
                }
            }
            let ratio_of = match implementation {
                Implementation::Rust => "triad::Queue ÷ triad::pipe round trip",
                Implementation::Python => "multiprocessing.Queue ÷ multiprocessing.Pipe round trip",
            };
            parts.push(format!("{ratio_of}: {}", cells.join(", ")));
        }
        let outcome = Outcome::from_findings(findings);
        verdict(
            "A Queue is a pipe plus a feeder thread, a lock and a semaphore, so it is \
                    slower than a pipe.",
            "1. put() → 序列化 → Writer线程 → Pipe → Reader线程 → 反序列化 → get()",
            outcome,
            format!(
                "{} (judged on {})",
                parts.join("; "),
                match judge {
                    Implementation::Python => "CPython, whose Queue the seed describes",
                    Implementation::Rust => "triad, CPython being absent",
                }
            ),
        )
    }

    fn pipe_buffer(&self) -> Verdict {
        let pipe = self.find(
            &Kind::OsPipe.measurement(Quantity::Capacity),
            Implementation::Rust,
            &[],
        );
        let socket = self.find(
            &Kind::Socket.measurement(Quantity::Capacity),
            Implementation::Rust,
            &[],
        );
        let (outcome, evidence) = match pipe {
            // A buffer's size is counted in bytes, the same each time: no spread to weigh.
            Some(p) => (
                if (p.median - SEED_PIPE_BUFFER).abs() <= SEED_PIPE_BUFFER / 16.0 {
                    Outcome::Confirmed
                } else {
                    Outcome::Refuted
                },
                format!(
                    "a fresh pipe(2) took {} before a write would block; a Unix stream \
                     socketpair (what multiprocessing.Pipe() is) took {}",
                    format_bytes(p.median),
                    socket.map_or("—".to_owned(), |s| format_bytes(s.median))
                ),
            ),
            None => (
                Outcome::Depends,
                "the pipe's buffer was not measured".to_owned(),
            ),
        };
        verdict(
            "A pipe has a limited buffer, usually 64 KB.",
            "有限的缓冲区大小（通常64KB）",
            outcome,
            evidence,
        )
    }

    fn serialisation_cost(&self) -> Verdict {
        let mut shares = Vec::new();
        let mut parts = Vec::new();
        for implementation in self.implementations() {
            let (Some(record), Some(seed)) = (
                self.find(Codec::Record.name(), implementation, &[]),
                self.find(Codec::SeedMessage.name(), implementation, &[]),
            ) else {
                continue;
            };
            let mut of_message = Vec::new();
            for &placement in &self.placements {
                if let Some(round_trip) = self.latency(Kind::Pipe, implementation, 64, placement) {
                    let one_way = round_trip.median / 2.0;
                    let share = of_one_way(record, round_trip);
                    shares.push(share);
                    of_message.push(format!(
                        "{} of a one-way 64 B pipe message {} ({})",
                        percent_range(share),
                        placement.label(),
                        format_seconds(one_way)
                    ));
                }
            }
            let codec = match implementation {
                Implementation::Rust => "postcard",
                Implementation::Python => "pickle",
            };
            parts.push(format!(
                "{}: {codec} encode + decode of a 16-float record {} ({}), of the seed's \
                 {{'data': 'Hello'}} {}",
                implementation.label(),
                format_seconds(record.median),
                of_message.join(", "),
                format_seconds(seed.median)
            ));
        }
        let outcome =
            Outcome::from_findings(shares.iter().map(|s| s.at_least(SERIALISATION_MATTERS)));
        verdict(
            format!(
                "Sending through a pipe serialises the object first (pickle), a real part of the \
                 cost (counted as real from {:.0}% of a one-way message).",
                100.0 * SERIALISATION_MATTERS
            ),
            "1. 序列化对象（pickle）",
            outcome,
            if parts.is_empty() {
                "not measured".to_owned()
            } else {
                parts.join("; ")
            },
        )
    }
}

/// Whether shared memory (`shm`) beats every one of `others` beyond the noise (lower is better
/// for a latency, higher for a bandwidth): holds when it beats them all, fails when one beats
/// it, within noise otherwise; with a note naming those that beat it or tie with it.
fn shared_memory_wins(
    shm: &Summary,
    others: &[(Kind, &Summary)],
    lower_is_better: bool,
) -> (Finding, Option<String>) {
    let mut finding = Finding::Holds;
    let (mut beaten_by, mut tied_with) = (Vec::new(), Vec::new());
    for &(kind, other) in others {
        let wins = if lower_is_better {
            smaller(shm, other)
        } else {
            smaller(other, shm)
        };
        match wins {
            Finding::Holds => {}
            Finding::Fails => beaten_by.push(kind.name()),
            Finding::WithinNoise => tied_with.push(kind.name()),
        }
        finding = finding.and(wins);
    }
    let mut note = Vec::new();
    if !beaten_by.is_empty() {
        note.push(format!("beaten by {}", beaten_by.join(", ")));
    }
    if !tied_with.is_empty() {
        note.push(format!("within noise of {}", tied_with.join(", ")));
    }
    (finding, (!note.is_empty()).then(|| note.join(", ")))
}

/// A serialisation's cost as a share of a one-way message, half of `round_trip`, with the
/// range the two measurements' quartiles allow.
fn of_one_way(serialisation: &Summary, round_trip: &Summary) -> Ratio {
    let ratio = Ratio::of(serialisation, round_trip);
    Ratio {
        median: 2.0 * ratio.median,
        low: 2.0 * ratio.low,
        high: 2.0 * ratio.high,
    }
}

/// A share as a percentage, with its range when it has one: `12% (9-15%)`.
fn percent_range(share: Ratio) -> String {
    if (share.high - share.low).abs() <= 1e-9 * share.median.abs() {
        format!("{:.0}%", 100.0 * share.median)
    } else {
        format!(
            "{:.0}% ({:.0}-{:.0}%)",
            100.0 * share.median,
            100.0 * share.low,
            100.0 * share.high
        )
    }
}

/// A point in microseconds with the quartiles of `summary` (in seconds).
fn micros_point(x: f64, summary: &Summary) -> Point {
    Point {
        x,
        y: summary.median * 1e6,
        low: Some(summary.p25 * 1e6),
        high: Some(summary.p75 * 1e6),
    }
}

/// Bytes per second as MiB/s or GiB/s.
fn format_rate(bytes_per_second: f64) -> String {
    format!("{}/s", format_bytes(bytes_per_second))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_memory_wins_only_beyond_the_noise() {
        let fast = Summary::of(&[1.0, 1.1, 1.2]);
        let close = Summary::of(&[1.1, 1.2, 1.3]);
        let slow = Summary::of(&[2.0, 2.1, 2.2]);
        let latency = |others: &[(Kind, &Summary)]| shared_memory_wins(&fast, others, true);
        assert_eq!(latency(&[(Kind::Pipe, &slow)]), (Finding::Holds, None));
        let (finding, note) = latency(&[(Kind::Pipe, &slow), (Kind::Socket, &close)]);
        assert_eq!(finding, Finding::WithinNoise);
        assert_eq!(note.as_deref(), Some("within noise of socket"));
        // A bandwidth: higher is better, so the slow transport's larger figure wins.
        let (finding, note) = shared_memory_wins(&fast, &[(Kind::Pipe, &slow)], false);
        assert_eq!(finding, Finding::Fails);
        assert_eq!(note.as_deref(), Some("beaten by pipe"));
    }

    #[test]
    fn serialisation_shares_are_of_half_a_round_trip_with_their_range() {
        let record = Summary::of(&[1.0, 1.0, 1.0]);
        let round_trip = Summary::of(&[18.0, 20.0, 22.0]);
        let share = of_one_way(&record, &round_trip);
        assert!((share.median - 0.1).abs() < 1e-12, "{share:?}");
        assert_eq!(share.at_least(SERIALISATION_MATTERS), Finding::WithinNoise);
        assert_eq!(share.at_least(0.05), Finding::Holds);
        assert_eq!(percent_range(share), "10% (10-11%)");
    }
}
