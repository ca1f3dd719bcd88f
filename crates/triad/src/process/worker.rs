//! The worker process: serves task batches from its pool over one socket until told to stop.
//!
//! The loop is single-threaded. It blocks on the socket only when it has nothing to run; while
//! it has tasks it drains whatever else has arrived without blocking, so a burst of small batches
//! becomes one queue. Results are written in batches too: after the last queued task, or once a
//! millisecond has passed since the last write, so a pool of tiny tasks pays one write per batch
//! while a slow task's result still leaves as soon as it is ready.
//!
//! A task's own failure (a panic, an input that does not decode, a name this binary does not
//! know) is that task's result; only a broken stream ends the worker, with exit code
//! [`EXIT_PROTOCOL`] so the pool can tell it from a crash.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;

use super::slot::{IDLE, Slot};
use super::wire::{
    FrameReader, FromWorker, ToWorker, WireResult, WireSpan, WireTask, decode_payload, encode_frame,
};
use crate::fdpass::{MAX_FDS_PER_MESSAGE, recv_with_flags, send_with_fds};
use crate::task::Registry;

/// Exit code of a worker whose stream from the pool was not valid protocol.
pub(crate) const EXIT_PROTOCOL: i32 = 86;

/// How long finished results may wait to be batched with later ones.
const FLUSH_AFTER: Duration = Duration::from_millis(1);

struct Queued {
    name: Arc<str>,
    record: bool,
    task: WireTask,
}

/// Serves the pool on `socket` until it says stop or goes away, then exits the process.
pub(crate) fn serve(socket: OwnedFd, slot: Slot, registry: &Registry) -> ! {
    let code = match Worker::new(socket, slot).run(registry) {
        Ok(()) => 0,
        Err(_) => EXIT_PROTOCOL,
    };
    std::process::exit(code)
}

struct Worker {
    socket: OwnedFd,
    /// Where this worker stamps the task it runs, for the pool to read if the worker dies.
    slot: Slot,
    reader: FrameReader,
    // Descriptors received beside frames, in order; each task takes its own from the front.
    fds: VecDeque<OwnedFd>,
    queue: VecDeque<Queued>,
    results: Vec<WireResult>,
    busy_ns: u64,
    last_flush: Instant,
    stopping: bool,
    closed: bool,
}

#[derive(Debug)]
struct Broken;

impl Worker {
    fn new(socket: OwnedFd, slot: Slot) -> Self {
        Worker {
            socket,
            slot,
            reader: FrameReader::new(),
            fds: VecDeque::new(),
            queue: VecDeque::new(),
            results: Vec::new(),
            busy_ns: 0,
            last_flush: Instant::now(),
            stopping: false,
            closed: false,
        }
    }

    fn run(&mut self, registry: &Registry) -> Result<(), Broken> {
        self.send(&FromWorker::Hello {
            pid: std::process::id(),
        })?;
        loop {
            if self.queue.is_empty() {
                self.flush()?;
                if self.stopping || self.closed {
                    return Ok(());
                }
                self.receive(true)?;
            } else {
                self.receive(false)?;
            }
            if let Some(queued) = self.queue.pop_front() {
                self.run_one(registry, queued);
                if self.queue.is_empty() || self.last_flush.elapsed() >= FLUSH_AFTER {
                    self.flush()?;
                }
            }
        }
    }

    fn run_one(&mut self, registry: &Registry, queued: Queued) {
        let count = queued.task.fds as usize;
        let fds: Vec<OwnedFd> = self.fds.drain(..count.min(self.fds.len())).collect();
        let started = Instant::now();
        let place = queued
            .record
            .then(|| (crate::trace::now_ns(), current_cpu()));
        let outcome = if fds.len() < count {
            Err(crate::TaskError::Codec(format!(
                "the input came with {} of its {count} file descriptors",
                fds.len()
            )))
        } else {
            self.slot.set(queued.task.id);
            let outcome = registry.invoke(&queued.name, &queued.task.input, fds);
            self.slot.set(IDLE);
            outcome
        };
        self.busy_ns += started.elapsed().as_nanos() as u64;
        let span = place.map(|(start_ns, cpu)| WireSpan {
            tid: std::process::id(),
            cpu,
            start_ns,
            end_ns: crate::trace::now_ns(),
        });
        self.results.push(WireResult {
            id: queued.task.id,
            outcome: outcome.map(ByteBuf::from),
            span,
        });
    }

    /// Reads what the socket has (waiting for it if `block`) and queues the tasks it carries.
    fn receive(&mut self, block: bool) -> Result<(), Broken> {
        if self.closed {
            return Ok(());
        }
        let mut buffer = [0_u8; 64 * 1024];
        loop {
            let flags = if block {
                rustix::net::RecvFlags::empty()
            } else {
                rustix::net::RecvFlags::DONTWAIT
            };
            let received = recv_flags(&self.socket, &mut buffer, flags);
            match received {
                Ok((0, _)) => {
                    // The pool closed its end: finish what is queued, then leave.
                    self.reader.finish().map_err(|_| Broken)?;
                    self.closed = true;
                    return Ok(());
                }
                Ok((read, fds)) => {
                    self.fds.extend(fds);
                    self.reader.extend(&buffer[..read]);
                    self.parse()?;
                    if block {
                        return Ok(());
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(_) => return Err(Broken),
            }
        }
    }

    fn parse(&mut self) -> Result<(), Broken> {
        while let Some(payload) = self.reader.next_frame().map_err(|_| Broken)? {
            match decode_payload::<ToWorker>(payload).map_err(|_| Broken)? {
                ToWorker::Run {
                    name,
                    record,
                    tasks,
                } => {
                    let name: Arc<str> = name.into();
                    self.queue.extend(tasks.into_iter().map(|task| Queued {
                        name: name.clone(),
                        record,
                        task,
                    }));
                }
                ToWorker::Stop => self.stopping = true,
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Broken> {
        self.last_flush = Instant::now();
        if self.results.is_empty() {
            return Ok(());
        }
        let message = FromWorker::Results {
            busy_ns: std::mem::take(&mut self.busy_ns),
            results: std::mem::take(&mut self.results),
        };
        self.send(&message)
    }

    fn send(&mut self, message: &FromWorker) -> Result<(), Broken> {
        let mut bytes = Vec::new();
        encode_frame(message, &mut bytes).map_err(|_| Broken)?;
        let mut sent = 0;
        while sent < bytes.len() {
            sent += send_with_fds(self.socket.as_fd(), &[IoSlice::new(&bytes[sent..])], &[])
                .map_err(|_| Broken)?;
        }
        Ok(())
    }
}

fn recv_flags(
    socket: &OwnedFd,
    buffer: &mut [u8],
    flags: rustix::net::RecvFlags,
) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    recv_with_flags(socket.as_fd(), buffer, MAX_FDS_PER_MESSAGE, flags)
}

fn current_cpu() -> Option<u32> {
    // SAFETY: sched_getcpu takes no arguments and only reads the calling thread's state.
    u32::try_from(unsafe { libc::sched_getcpu() }).ok()
}
