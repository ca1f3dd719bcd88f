//! The worker process: serves task batches from its pool over one socket until told to stop.
//!
//! The loop is single-threaded. It blocks on the socket only when it has nothing to run; while
//! it has tasks it looks for more without blocking each time it writes results, so a burst of
//! small batches becomes one queue and the socket costs a read per millisecond, not per task. Results are written in batches too: after the last queued task, or once a
//! millisecond has passed since the last write, so a pool of tiny tasks pays one write per batch
//! while a slow task's result still leaves as soon as it is ready.
//!
//! A task's own failure (a panic, an input that does not decode, a name this binary does not
//! know) is that task's result; only a broken stream ends the worker, with exit code
//! [`EXIT_PROTOCOL`] so the pool can tell it from a crash.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;

use super::slot::{IDLE, Slot};
use super::wire::{
    Batch, FrameReader, FromWorker, Results, ToWorker, WireSpan, decode_payload, encode_frame,
};
use crate::TaskError;
use crate::fdpass::{MAX_FDS_PER_MESSAGE, recv_with_flags, send_with_fds};
use crate::task::{Registration, Registry};

/// Exit code of a worker whose stream from the pool was not valid protocol, or whose
/// initializer failed.
pub(crate) const EXIT_PROTOCOL: i32 = 86;

/// Results are sent once this many output bytes have gathered (frames stay well within the
/// wire's limit).
const FLUSH_BYTES: usize = 16 << 20;

/// The largest output a task may have: one output alone in a frame stays within the limit.
const MAX_OUTPUT: usize = super::wire::MAX_FRAME - (1 << 20);

/// How long finished results may wait to be batched with later ones.
const FLUSH_AFTER: Duration = Duration::from_millis(1);

/// A batch being worked through.
struct Queued {
    /// The task, looked up once per batch (`None`: this binary does not know the name).
    registration: Option<&'static Registration>,
    batch: Batch,
    /// The next input to run.
    next: usize,
}

/// Serves the pool on `socket` until it says stop or goes away, then exits the process.
pub(crate) fn serve(socket: OwnedFd, slot: Slot, registry: &'static Registry) -> ! {
    // A task's panic travels back to the caller as its error, with where it happened (as an
    // exception travels back from a `multiprocessing` worker); the worker prints nothing.
    std::panic::set_hook(Box::new(|info| {
        if let Some(location) = info.location() {
            crate::error::note_panic_location(format!("{}:{}", location.file(), location.line()));
        }
    }));
    let code = match Worker::new(socket, slot).run(registry) {
        Ok(()) => 0,
        Err(Broken) => EXIT_PROTOCOL,
    };
    exit_now(code)
}

/// Ends a worker: flushes what its tasks printed, then `_exit`s — a forked worker must not run
/// its parent's exit handlers or flush the parent's buffers a second time.
pub(crate) fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` ends the process at once; it has no preconditions.
    unsafe { libc::_exit(code) }
}

struct Worker {
    socket: OwnedFd,
    /// Where this worker stamps the task it runs, for the pool to read if the worker dies.
    slot: Slot,
    reader: FrameReader,
    // Descriptors received beside frames, in order; each task takes its own from the front.
    fds: VecDeque<OwnedFd>,
    queue: VecDeque<Queued>,
    results: Results,
    last_flush: Instant,
    /// When the tasks of the current results began to run (for `busy_ns`).
    window_start: Instant,
    /// Tasks to run before the clock is read again: reading it costs more than a tiny task on
    /// a VM, so the stride adapts to about eight reads per millisecond of work.
    clock_stride: u32,
    until_clock: u32,
    stopping: bool,
    closed: bool,
}

struct Broken;

impl Worker {
    fn new(socket: OwnedFd, slot: Slot) -> Self {
        Worker {
            socket,
            slot,
            reader: FrameReader::new(),
            fds: VecDeque::new(),
            queue: VecDeque::new(),
            results: empty_results(),
            last_flush: Instant::now(),
            window_start: Instant::now(),
            clock_stride: 1,
            until_clock: 1,
            stopping: false,
            closed: false,
        }
    }

    fn run(&mut self, registry: &'static Registry) -> Result<(), Broken> {
        self.start(registry)?;
        loop {
            if self.queue.is_empty() {
                self.flush()?;
                if self.stopping || self.closed {
                    return Ok(());
                }
                self.receive(registry, true)?;
                continue;
            }
            self.run_next();
            // Look at the socket only when results go out (at most every millisecond, or when
            // the queue runs dry): a read per task would cost more than a tiny task.
            self.until_clock -= 1;
            if self.queue.is_empty() || self.results.outputs.len() >= FLUSH_BYTES {
                self.flush()?;
                self.receive(registry, false)?;
            } else if self.until_clock == 0 {
                self.until_clock = self.clock_stride;
                if self.last_flush.elapsed() >= FLUSH_AFTER {
                    self.flush()?;
                    self.receive(registry, false)?;
                }
            }
        }
    }

    /// Waits for the pool's start message, runs the initializer it names, and says hello (or
    /// reports the initializer's failure and stops).
    fn start(&mut self, registry: &'static Registry) -> Result<(), Broken> {
        let mut buffer = [0_u8; 64 * 1024];
        let initializer = loop {
            if let Some(payload) = self.reader.next_frame().map_err(|_| Broken)? {
                match decode_payload::<ToWorker>(payload).map_err(|_| Broken)? {
                    ToWorker::Start(initializer) => break initializer,
                    _ => return Err(Broken),
                }
            }
            let (read, fds) = recv_with_flags(
                self.socket.as_fd(),
                &mut buffer,
                MAX_FDS_PER_MESSAGE,
                rustix::net::RecvFlags::empty(),
            )
            .map_err(|_| Broken)?;
            if read == 0 {
                return Err(Broken);
            }
            self.fds.extend(fds);
            self.reader.extend(&buffer[..read]);
        };
        if let Some(initializer) = initializer {
            let outcome = registry.invoke(&initializer.name, &initializer.input, Vec::new());
            if let Err(error) = outcome {
                self.send(&FromWorker::InitFailed(error))?;
                return Err(Broken);
            }
        }
        self.send(&FromWorker::Hello {
            pid: std::process::id(),
        })?;
        // Frames that came with the start message.
        self.parse(registry)
    }

    /// Runs the next task of the front batch and appends its result.
    fn run_next(&mut self) {
        let queued = self.queue.front_mut().expect("the queue is not empty");
        let position = queued.next;
        queued.next += 1;
        let batch = &queued.batch;
        let id = batch.first_id + position as u64;
        let start = if position == 0 {
            0
        } else {
            batch.ends[position - 1] as usize
        };
        let input = &batch.inputs[start..batch.ends[position] as usize];
        let wanted = batch.fds.get(position).copied().unwrap_or(0) as usize;
        let fds: Vec<OwnedFd> = if wanted == 0 {
            Vec::new()
        } else {
            self.fds.drain(..wanted.min(self.fds.len())).collect()
        };

        let results = &mut self.results;
        if results.ends.is_empty() {
            results.first_id = id;
            self.window_start = Instant::now();
        }
        debug_assert_eq!(results.first_id + results.ends.len() as u64, id);
        let offset = results.ends.len() as u32;
        let span_start = batch
            .record
            .then(|| (crate::trace::now_ns(), current_cpu()));
        let outcome = match queued.registration {
            None => Err(TaskError::UnknownTask(batch.name.clone())),
            Some(_) if fds.len() < wanted => Err(TaskError::Codec(format!(
                "the input came with {} of its {wanted} file descriptors",
                fds.len()
            ))),
            Some(registration) => {
                let before = results.outputs.len();
                self.slot.set(id);
                let outcome = registration.invoke_into(input, fds, &mut results.outputs);
                self.slot.set(IDLE);
                let size = results.outputs.len() - before;
                if size > MAX_OUTPUT {
                    results.outputs.truncate(before);
                    Err(TaskError::Codec(format!(
                        "the output is {size} bytes, over the {MAX_OUTPUT}-byte limit of one message"
                    )))
                } else {
                    outcome
                }
            }
        };
        if let Some((start_ns, cpu)) = span_start {
            results.spans.push((
                offset,
                WireSpan {
                    tid: std::process::id(),
                    cpu,
                    start_ns,
                    end_ns: crate::trace::now_ns(),
                },
            ));
        }
        if let Err(error) = outcome {
            results.errors.push((offset, error));
        }
        results.ends.push(results.outputs.len() as u32);
        if queued.next == queued.batch.ends.len() {
            self.queue.pop_front();
        }
    }

    /// Reads what the socket has (waiting for it if `block`) and queues the batches it carries.
    fn receive(&mut self, registry: &'static Registry, block: bool) -> Result<(), Broken> {
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
            match recv_with_flags(self.socket.as_fd(), &mut buffer, MAX_FDS_PER_MESSAGE, flags) {
                Ok((0, _)) => {
                    // The pool closed its end: finish what is queued, then leave.
                    self.reader.finish().map_err(|_| Broken)?;
                    self.closed = true;
                    return Ok(());
                }
                Ok((read, fds)) => {
                    self.fds.extend(fds);
                    self.reader.extend(&buffer[..read]);
                    self.parse(registry)?;
                    if block {
                        return Ok(());
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(_) => return Err(Broken),
            }
        }
    }

    fn parse(&mut self, registry: &'static Registry) -> Result<(), Broken> {
        while let Some(payload) = self.reader.next_frame().map_err(|_| Broken)? {
            match decode_payload::<ToWorker>(payload).map_err(|_| Broken)? {
                ToWorker::Run(batch) => {
                    if !batch_is_consistent(&batch) {
                        return Err(Broken);
                    }
                    if !batch.ends.is_empty() {
                        self.queue.push_back(Queued {
                            registration: registry.get(&batch.name),
                            batch,
                            next: 0,
                        });
                    }
                }
                ToWorker::Stop => self.stopping = true,
                ToWorker::Start(_) => return Err(Broken),
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Broken> {
        let now = Instant::now();
        self.last_flush = now;
        if self.results.ends.is_empty() {
            return Ok(());
        }
        let mut results = std::mem::replace(&mut self.results, empty_results());
        let busy = now.duration_since(self.window_start);
        results.busy_ns = busy.as_nanos() as u64;
        // Aim for about eight clock reads per millisecond at this window's task rate.
        let per_millisecond = results.ends.len() as f64 * 1e6 / results.busy_ns.max(1) as f64;
        self.clock_stride = ((per_millisecond / 8.0) as u32).clamp(1, 4096);
        self.until_clock = self.clock_stride;
        self.send(&FromWorker::Results(results))
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

/// Whether a batch's offsets describe its inputs: ascending, within the buffer, one fd count
/// per input if any.
fn batch_is_consistent(batch: &Batch) -> bool {
    let ascending = batch.ends.windows(2).all(|pair| pair[0] <= pair[1]);
    let within = batch
        .ends
        .last()
        .is_none_or(|&end| end as usize <= batch.inputs.len());
    let fds = batch.fds.is_empty() || batch.fds.len() == batch.ends.len();
    ascending && within && fds
}

fn empty_results() -> Results {
    Results {
        busy_ns: 0,
        first_id: 0,
        outputs: ByteBuf::new(),
        ends: Vec::new(),
        errors: Vec::new(),
        spans: Vec::new(),
    }
}

fn current_cpu() -> Option<u32> {
    // SAFETY: sched_getcpu takes no arguments and only reads the calling thread's state.
    u32::try_from(unsafe { libc::sched_getcpu() }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ends: Vec<u32>, inputs: usize, fds: Vec<u32>) -> Batch {
        Batch {
            name: "t".into(),
            record: false,
            first_id: 0,
            inputs: ByteBuf::from(vec![0; inputs]),
            ends,
            fds,
        }
    }

    #[test]
    fn inconsistent_batches_are_refused() {
        assert!(batch_is_consistent(&batch(vec![1, 3], 3, vec![])));
        assert!(batch_is_consistent(&batch(vec![], 0, vec![])));
        assert!(!batch_is_consistent(&batch(vec![2, 1], 3, vec![])));
        assert!(!batch_is_consistent(&batch(vec![1, 4], 3, vec![])));
        assert!(!batch_is_consistent(&batch(vec![1, 3], 3, vec![0])));
    }
}
