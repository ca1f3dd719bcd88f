//! The dispatcher's view of one worker process: its phase, its socket and what waits to be
//! written to it, and the record of how recent starts went.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use super::slot::Slot;
use super::start::{Started, WorkerProcess};
use super::wire::{FrameReader, ToWorker, encode_frame};
use crate::error::describe_exit;
use crate::fdpass::send_with_fds;

/// Where a worker is in its life. Only `Starting` and `Serving` workers count towards the
/// pool's size (and of those, only ones not yet spent): a worker in a later phase is on its way
/// out, and its successor starts at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Started; its hello has not come. Tasks may already queue behind its start message.
    Starting,
    /// Said hello; takes tasks.
    Serving,
    /// Has had its `max_tasks_per_child`: takes no more, and gets a stop once its last result
    /// is in.
    Retiring,
    /// Told to stop.
    Stopping,
    /// Killed by the pool (a task ran past its deadline): its other tasks are not at fault.
    Killed,
}

pub(crate) struct Worker {
    pub(crate) pid: u32,
    pub(crate) process: WorkerProcess,
    /// The task the worker said it is running (shared page; read after a death).
    pub(crate) slot: Slot,
    pub(crate) socket: OwnedFd,
    pub(crate) reader: FrameReader,
    /// Encoded frames not yet written, from `written` on.
    pub(crate) out: Vec<u8>,
    pub(crate) written: usize,
    /// Descriptors of the frames in `out`, by where each frame starts: a frame's descriptors go
    /// with its first byte, and no write runs past the start of a frame whose descriptors wait.
    pub(crate) out_fds: VecDeque<(usize, Vec<OwnedFd>)>,
    pub(crate) phase: Phase,
}

impl Worker {
    /// A worker just started, its start message queued.
    pub(crate) fn new(started: Started, start: &ToWorker) -> std::io::Result<Worker> {
        let mut out = Vec::new();
        encode_frame(start, &mut out).map_err(std::io::Error::other)?;
        let Started {
            socket,
            process,
            slot,
        } = started;
        Ok(Worker {
            pid: process.id(),
            process,
            slot,
            socket,
            reader: FrameReader::new(),
            out,
            written: 0,
            out_fds: VecDeque::new(),
            phase: Phase::Starting,
        })
    }

    /// Whether it counts towards the pool's size.
    pub(crate) fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Starting | Phase::Serving)
    }

    /// Whether it may be given tasks.
    pub(crate) fn takes_tasks(&self) -> bool {
        self.is_live()
    }

    /// Whether it has output waiting for the socket.
    pub(crate) fn wants_to_write(&self) -> bool {
        self.written < self.out.len()
    }

    /// Queues a stop; it takes nothing more.
    pub(crate) fn stop(&mut self) {
        if self.phase != Phase::Stopping {
            encode_frame(&ToWorker::Stop, &mut self.out).expect("a stop encodes");
            self.phase = Phase::Stopping;
        }
    }

    /// Kills it now; it is not to blame for the tasks it held.
    pub(crate) fn kill(&mut self) {
        self.phase = Phase::Killed;
        self.process.kill();
    }

    /// Writes as much of the pending output as the socket takes now.
    pub(crate) fn write_some(&mut self) {
        while self.written < self.out.len() {
            let due = matches!(self.out_fds.front(), Some((start, _)) if *start <= self.written);
            let fds = if due {
                self.out_fds
                    .pop_front()
                    .map(|(_, fds)| fds)
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let limit = self
                .out_fds
                .front()
                .map_or(self.out.len(), |(start, _)| *start);
            match send_with_fds(
                self.socket.as_fd(),
                &[IoSlice::new(&self.out[self.written..limit])],
                &fds,
            ) {
                Ok(written) => self.written += written,
                Err(_) => {
                    // Full (try again when poll says so) or broken (the read side will see the
                    // end); the descriptors were not sent, so they wait for the next try.
                    if due {
                        self.out_fds.push_front((self.written, fds));
                    }
                    break;
                }
            }
        }
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        }
    }
}

/// Consecutive failed starts, with no worker alive, after which the pool gives up.
pub(crate) const MAX_START_FAILURES: u32 = 8;

/// How one start failed.
#[derive(Debug, Clone)]
pub(crate) enum StartFailure {
    /// The process could not be started at all.
    Spawn(String),
    /// It ended before its hello.
    Died {
        signal: Option<i32>,
        code: Option<i32>,
    },
}

/// How the pool's recent starts went: failures in a row since the last hello, and when the
/// next start may be tried.
#[derive(Debug)]
pub(crate) struct StartRecord {
    pub(crate) failures: u32,
    pub(crate) last: Option<StartFailure>,
    /// No start before this (a backoff after failures); `None` while starts go well.
    pub(crate) not_before: Option<Instant>,
}

impl StartRecord {
    pub(crate) fn new() -> Self {
        StartRecord {
            failures: 0,
            last: None,
            not_before: None,
        }
    }

    /// A worker said hello: the failures in a row are over.
    pub(crate) fn succeeded(&mut self) {
        self.failures = 0;
        self.not_before = None;
    }

    /// A start failed: the next one waits 0, 5, 10, 20 … ms, at most half a second.
    pub(crate) fn failed(&mut self, failure: StartFailure, now: Instant) {
        self.failures += 1;
        self.last = Some(failure);
        let backoff = match self.failures {
            0 | 1 => Duration::ZERO,
            failures => (Duration::from_millis(5) * (1 << (failures - 2).min(7)))
                .min(Duration::from_millis(500)),
        };
        self.not_before = Some(now + backoff);
    }

    /// Whether a start may be tried at `now`.
    pub(crate) fn may_start(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|at| at <= now)
    }

    /// Whether the pool should give up (when no worker is alive either).
    pub(crate) fn exhausted(&self) -> bool {
        self.failures >= MAX_START_FAILURES
    }

    /// Why the pool gave up, for every task's error from then on.
    pub(crate) fn reason(&self) -> String {
        let count = self.failures;
        match &self.last {
            Some(StartFailure::Spawn(error)) => {
                format!("{count} worker starts in a row failed (the last: {error})")
            }
            Some(StartFailure::Died {
                signal: None,
                code: Some(0),
            }) => format!(
                "{count} workers in a row exited before they started, with exit code 0; does \
                 main() call triad::init() first?"
            ),
            Some(StartFailure::Died {
                signal: None,
                code: Some(super::worker::EXIT_PROTOCOL),
            }) => format!(
                "{count} workers in a row exited before they started, with exit code {} (the \
                 worker could not read its start message or build its task registry)",
                super::worker::EXIT_PROTOCOL
            ),
            Some(StartFailure::Died { signal, code }) => format!(
                "{count} workers in a row died before they started (the last: {})",
                describe_exit(*signal, *code)
            ),
            None => format!("{count} worker starts in a row failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_half_a_second_and_a_hello_resets_it() {
        let now = Instant::now();
        let mut record = StartRecord::new();
        let mut waits = Vec::new();
        for _ in 0..10 {
            record.failed(
                StartFailure::Died {
                    signal: Some(9),
                    code: None,
                },
                now,
            );
            waits.push(record.not_before.unwrap() - now);
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 5, 10, 20, 40, 80, 160, 320, 500, 500]);
        assert!(record.exhausted());
        assert!(
            record
                .reason()
                .starts_with("10 workers in a row died before they started")
        );
        assert!(record.reason().contains("killed by signal 9"));
        record.succeeded();
        assert!(!record.exhausted() && record.may_start(now));
    }

    #[test]
    fn only_a_clean_exit_before_hello_suggests_a_missing_init() {
        let mut record = StartRecord::new();
        let now = Instant::now();
        record.failed(
            StartFailure::Died {
                signal: None,
                code: Some(0),
            },
            now,
        );
        assert!(record.reason().contains("triad::init()"));
        record.failed(
            StartFailure::Died {
                signal: Some(9),
                code: None,
            },
            now,
        );
        assert!(!record.reason().contains("triad::init()"));
        record.failed(
            StartFailure::Spawn("fork: Resource temporarily unavailable".into()),
            now,
        );
        assert!(record.reason().contains("Resource temporarily unavailable"));
    }
}
