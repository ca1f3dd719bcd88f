//! The pool's I/O thread: one thread owns every worker, so no worker state is shared or locked.
//!
//! Callers send [`Command`]s over a channel and ring an eventfd only when the thread sleeps.
//! The thread's loop: take commands; hand queued tasks to workers that have credit; write what
//! each socket will take; `poll` the sockets, the eventfd and the nearest deadline; read results
//! and deliver them; handle deaths, timeouts and retirements.
//!
//! *Credit* keeps each worker about [`TARGET_QUEUE`] of work ahead: the thread measures the mean
//! task cost from the busy time workers report, and lets a worker hold `TARGET_QUEUE / cost`
//! tasks (at least one, at most [`MAX_CREDIT`]). Tiny tasks thus travel hundreds to a frame, and
//! one-second tasks one at a time, so no worker sits on a backlog while another idles.
//!
//! Work is tracked in ranges, never task by task: a job's inputs lie end to end in one buffer,
//! the queue holds ranges of a job's positions, and each worker's in-flight list holds
//! *segments* — a range and the first of the consecutive ids it was sent under. Results come
//! back in id order, so a segment is delivered front to back.
//!
//! A worker that dies (its socket ends) is reaped with `waitpid`. Its slot page names the task
//! it was running: that task is retried if its job allows and attempts remain, and otherwise
//! fails as [`TaskError::WorkerDied`] with the signal or exit code; the tasks queued behind it
//! go back to the queue as they are, and a new worker takes its place. A task past its deadline
//! fails as [`TaskError::Timeout`] and its worker is killed and replaced — the worker's other
//! tasks were not at fault, so they too go back to the queue.

use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::ops::Range;
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use rustix::event::{PollFd, PollFlags};
use serde::Serialize;
use serde_bytes::ByteBuf;

use super::slot::Slot;
use super::start::{Started, Starter, WorkerProcess, start_worker};
use super::wire::{
    Batch, FrameReader, FromWorker, Initializer, Results, ToWorker, WireSpan, decode_payload,
    encode_frame,
};
use crate::error::TaskError;
use crate::fdpass::{Encoder, MAX_FDS_PER_MESSAGE, recv_with_flags, send_with_fds};

/// How much work, in time, a worker is given ahead.
const TARGET_QUEUE: Duration = Duration::from_millis(2);
/// The most tasks a worker holds at once.
const MAX_CREDIT: usize = 8192;
/// The most input bytes in one batch frame, unless its one input is larger.
const MAX_BATCH_BYTES: usize = 16 << 20;
/// The largest input: one input alone in a frame must stay within the wire's frame limit.
pub(crate) const MAX_INPUT: usize = super::wire::MAX_FRAME - (1 << 20);
/// Consecutive workers that die before saying hello after which the pool gives up.
const MAX_START_FAILURES: u32 = 3;

/// Called once per task of a job with the task's position in the job, its encoded output (or
/// error) and, if asked for, its span.
pub(crate) type Deliver =
    Box<dyn FnMut(usize, Result<&[u8], TaskError>, Option<SpanInWorker>) + Send>;

/// A job's answers: each position answered exactly once. Dropping it answers every position
/// not yet answered with [`TaskError::Cancelled`], so no caller waits for ever, whatever path
/// drops a job (a closed pool, a terminated one, a dispatcher that unwinds).
pub(crate) struct Delivery {
    deliver: Deliver,
    answered: Vec<bool>,
    remaining: usize,
}

impl Delivery {
    pub(crate) fn new(count: usize, deliver: Deliver) -> Self {
        Delivery {
            deliver,
            answered: vec![false; count],
            remaining: count,
        }
    }

    fn remaining(&self) -> usize {
        self.remaining
    }

    /// Answers `position`, unless it was answered already. `deliver` runs user code (an output's
    /// `Deserialize`); a panic there becomes this position's error, not the dispatcher's end.
    fn answer(
        &mut self,
        position: usize,
        outcome: Result<&[u8], TaskError>,
        span: Option<SpanInWorker>,
    ) {
        if self.answered[position] {
            return;
        }
        self.answered[position] = true;
        self.remaining -= 1;
        let deliver = &mut self.deliver;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| deliver(position, outcome, span))) {
            let error = TaskError::Codec(format!(
                "decoding the output panicked: {}",
                TaskError::from_panic(payload)
            ));
            let _ = catch_unwind(AssertUnwindSafe(|| deliver(position, Err(error), None)));
        }
    }

    /// Answers every position not answered yet with `error`.
    fn answer_rest(&mut self, error: &TaskError) {
        for position in 0..self.answered.len() {
            if !self.answered[position] {
                self.answer(position, Err(error.clone()), None);
            }
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.remaining > 0 {
            self.answer_rest(&TaskError::Cancelled);
        }
    }
}

/// A task's span as measured in a worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanInWorker {
    pub(crate) pid: u32,
    pub(crate) span: WireSpan,
}

/// A job's encoded inputs, end to end in one buffer, with their descriptors.
#[derive(Debug, Default)]
pub(crate) struct Inputs {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    /// Cumulative descriptor counts, one per input, once any input has descriptors.
    fd_ends: Option<Vec<usize>>,
    fds: Vec<OwnedFd>,
}

impl Inputs {
    pub(crate) fn new() -> Self {
        Inputs::default()
    }

    /// Encodes `value` as the next input (on an error, nothing is added).
    pub(crate) fn push<T: Serialize + ?Sized>(
        &mut self,
        encoder: &mut Encoder,
        value: &T,
    ) -> Result<(), String> {
        let start = self.bytes.len();
        let fds = encoder
            .append(value, &mut self.bytes)
            .map_err(|error| error.to_string())?;
        let size = self.bytes.len() - start;
        if size > MAX_INPUT {
            self.bytes.truncate(start);
            return Err(format!(
                "the input is {size} bytes, over the {MAX_INPUT}-byte limit of one message"
            ));
        }
        if !fds.is_empty() && self.fd_ends.is_none() {
            // The inputs before this one had none.
            self.fd_ends = Some(vec![0; self.ends.len()]);
        }
        self.ends.push(self.bytes.len());
        if let Some(fd_ends) = &mut self.fd_ends {
            fd_ends.push(self.fds.len() + fds.len());
            self.fds.extend(fds);
        }
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn start(&self, position: usize) -> usize {
        if position == 0 {
            0
        } else {
            self.ends[position - 1]
        }
    }

    fn fd_start(&self, position: usize) -> usize {
        match &self.fd_ends {
            Some(fd_ends) if position > 0 => fd_ends[position - 1],
            _ => 0,
        }
    }

    fn fd_count(&self, position: usize) -> usize {
        match &self.fd_ends {
            Some(fd_ends) => fd_ends[position] - self.fd_start(position),
            None => 0,
        }
    }
}

/// A batch of tasks of one registered task, submitted together.
pub(crate) struct Job {
    pub(crate) name: &'static str,
    pub(crate) inputs: Inputs,
    pub(crate) delivery: Delivery,
    pub(crate) timeout: Option<Duration>,
    /// How many times a task may run again after its worker died under it.
    pub(crate) retries: u32,
    pub(crate) record: bool,
}

pub(crate) enum Command {
    Submit(Job),
    /// Finish the queued work, stop the workers and end the thread.
    Close,
    /// Kill the workers, cancel the queued work and end the thread.
    Terminate,
}

/// How the pool was configured.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) workers: usize,
    pub(crate) max_tasks_per_child: Option<u64>,
    pub(crate) starter: Starter,
    /// Run by every worker before its first task.
    pub(crate) initializer: Option<Initializer>,
}

/// What the caller learns once the first workers are up (or could not start).
pub(crate) type Startup = Result<Vec<u32>, String>;

type JobKey = u64;

struct JobRecord {
    name: &'static str,
    inputs: Inputs,
    delivery: Delivery,
    deadline: Option<Instant>,
    retries: u32,
    record: bool,
}

/// Positions of a job waiting to be sent.
struct Queued {
    job: JobKey,
    positions: Range<usize>,
    /// Runs so far that ended with the worker's death (all of the range has the same count).
    attempts: u32,
}

/// Positions of a job sent to a worker under consecutive ids from `first_id`.
struct Segment {
    first_id: u64,
    job: JobKey,
    positions: Range<usize>,
    /// How many of them have been delivered (always the first ones).
    done: usize,
    attempts: u32,
}

impl Segment {
    fn end_id(&self) -> u64 {
        self.first_id + self.positions.len() as u64
    }
}

struct Worker {
    pid: u32,
    process: WorkerProcess,
    /// The task the worker said it is running (shared page; read after a death).
    slot: Slot,
    socket: OwnedFd,
    reader: FrameReader,
    /// Encoded frames not yet written, from `written` on.
    out: Vec<u8>,
    written: usize,
    /// Descriptors of the frames in `out`, by where each frame starts: a frame's descriptors go
    /// with its first byte, and no write runs past the start of a frame whose descriptors wait.
    out_fds: VecDeque<(usize, Vec<OwnedFd>)>,
    in_flight: VecDeque<Segment>,
    in_flight_tasks: usize,
    /// The id the next task sent to this worker gets; ids count up from 0 per worker.
    next_id: u64,
    said_hello: bool,
    /// It has had its `max_tasks_per_child`: it gets a stop once its last result is in.
    retiring: bool,
    /// Its successor has been started already (when it began to retire).
    replaced: bool,
    stop_sent: bool,
    /// We killed it (a task ran past its deadline): its other tasks are not at fault.
    killed_by_us: bool,
}

pub(crate) struct Dispatcher {
    settings: Settings,
    commands: Receiver<Command>,
    wake: OwnedFd,
    sleeping: Arc<AtomicBool>,
    workers: Vec<Worker>,
    queue: VecDeque<Queued>,
    jobs: HashMap<JobKey, JobRecord>,
    next_job: JobKey,
    /// Mean nanoseconds per task, from the workers' reports; starts at a guess.
    task_cost_ns: f64,
    /// Tasks waiting in `queue`.
    queued_tasks: usize,
    /// The worker `assign` starts its next round with.
    first_worker: usize,
    start_failures: u32,
    broken: Option<String>,
    closing: bool,
    /// Where worker sockets are read into; kept, as zeroing a fresh one per read costs more
    /// than the read.
    read_buffer: Vec<u8>,
}

impl Dispatcher {
    pub(crate) fn new(
        settings: Settings,
        commands: Receiver<Command>,
        wake: OwnedFd,
        sleeping: Arc<AtomicBool>,
    ) -> Self {
        Dispatcher {
            settings,
            commands,
            wake,
            sleeping,
            workers: Vec::new(),
            queue: VecDeque::new(),
            jobs: HashMap::new(),
            next_job: 0,
            task_cost_ns: 100_000.0,
            queued_tasks: 0,
            first_worker: 0,
            start_failures: 0,
            broken: None,
            closing: false,
            read_buffer: vec![0; 256 * 1024],
        }
    }

    /// Starts the workers, reports through `started`, then serves until closed or terminated.
    pub(crate) fn run(mut self, started: crossbeam_channel::Sender<Startup>) {
        let startup = self.start_all();
        let ok = startup.is_ok();
        let _ = started.send(startup);
        if !ok {
            self.terminate();
            return;
        }
        loop {
            if !self.take_commands() {
                self.terminate();
                return;
            }
            self.expire_deadlines();
            self.assign();
            self.write_all();
            if self.closing && self.queue.is_empty() && self.jobs.is_empty() {
                self.stop_all();
                return;
            }
            self.wait_for_events(None);
        }
    }

    fn start_all(&mut self) -> Startup {
        for _ in 0..self.settings.workers {
            self.start_one()
                .map_err(|error| format!("could not start a worker: {error}"))?;
        }
        // Wait for every hello, or for a worker to die trying.
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.workers.iter().any(|worker| !worker.said_hello) {
            if Instant::now() > deadline {
                return Err("workers did not start within 30 s".into());
            }
            // Each worker waits for its start message before it says hello.
            self.write_all();
            self.wait_for_events(Some(deadline));
            if let Some(reason) = &self.broken {
                return Err(reason.clone());
            }
        }
        Ok(self.workers.iter().map(|worker| worker.pid).collect())
    }

    fn start_one(&mut self) -> std::io::Result<()> {
        let Started {
            socket,
            process,
            slot,
        } = start_worker(&self.settings.starter)?;
        let mut out = Vec::new();
        encode_frame(
            &ToWorker::Start(self.settings.initializer.clone()),
            &mut out,
        )
        .map_err(std::io::Error::other)?;
        self.workers.push(Worker {
            pid: process.id(),
            process,
            slot,
            socket,
            reader: FrameReader::new(),
            out,
            written: 0,
            out_fds: VecDeque::new(),
            in_flight: VecDeque::new(),
            in_flight_tasks: 0,
            next_id: 0,
            said_hello: false,
            retiring: false,
            replaced: false,
            stop_sent: false,
            killed_by_us: false,
        });
        Ok(())
    }

    /// Takes every waiting command; false when the pool is gone or terminated.
    fn take_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Submit(job)) => self.submit(job),
                Ok(Command::Close) => self.closing = true,
                Ok(Command::Terminate) => return false,
                Err(TryRecvError::Empty) => return true,
                // Every handle is gone: nobody can receive results any more.
                Err(TryRecvError::Disconnected) => return self.closing,
            }
        }
    }

    fn submit(&mut self, mut job: Job) {
        let count = job.inputs.len();
        if let Some(reason) = &self.broken {
            job.delivery
                .answer_rest(&TaskError::WorkerStart(reason.clone()));
            return;
        }
        if count == 0 {
            return;
        }
        let key = self.next_job;
        self.next_job += 1;
        self.queue.push_back(Queued {
            job: key,
            positions: 0..count,
            attempts: 0,
        });
        self.queued_tasks += count;
        self.jobs.insert(
            key,
            JobRecord {
                name: job.name,
                inputs: job.inputs,
                delivery: job.delivery,
                deadline: job.timeout.map(|timeout| Instant::now() + timeout),
                retries: job.retries,
                record: job.record,
            },
        );
    }

    fn credit(&self) -> usize {
        ((TARGET_QUEUE.as_nanos() as f64 / self.task_cost_ns.max(1.0)) as usize)
            .clamp(1, MAX_CREDIT)
    }

    /// Hands queued tasks to workers with room: one batch frame per worker per round.
    fn assign(&mut self) {
        let credit = self.credit();
        let count = self.workers.len();
        if count == 0 {
            return;
        }
        // No worker takes more than its share of what waits, and each round starts at the next
        // worker, so a fresh pool spreads its first tasks instead of filling one worker's credit.
        let share = self.queued_tasks.div_ceil(count).max(1);
        self.first_worker = (self.first_worker + 1) % count;
        for turn in 0..count {
            let index = (self.first_worker + turn) % count;
            if self.queue.is_empty() {
                return;
            }
            // A worker that has not said hello yet gets tasks too: they queue behind its start
            // message, which saves it a round trip; if it never starts, they go back.
            let worker = &mut self.workers[index];
            if worker.retiring || worker.killed_by_us {
                continue;
            }
            let mut allowance = credit.saturating_sub(worker.in_flight_tasks).min(share);
            if let Some(limit) = self.settings.max_tasks_per_child {
                allowance = allowance.min(limit.saturating_sub(worker.next_id) as usize);
            }
            if allowance > 0 {
                self.send_batch(index, allowance);
            }
            let worker = &mut self.workers[index];
            if let Some(limit) = self.settings.max_tasks_per_child
                && worker.next_id >= limit
            {
                worker.retiring = true;
                // Its successor starts now, while it finishes, not after it has gone.
                if !worker.replaced && self.start_one().is_ok() {
                    self.workers[index].replaced = true;
                }
            }
        }
    }

    /// Sends up to `allowance` queued tasks of the front job's task name to worker `index`.
    fn send_batch(&mut self, index: usize, allowance: usize) {
        let front_job = self.queue.front().expect("queue is not empty").job;
        let (name, record) = {
            let job = &self.jobs[&front_job];
            (job.name, job.record)
        };
        let worker = &mut self.workers[index];
        let mut batch = Batch {
            name: name.to_owned(),
            record,
            first_id: worker.next_id,
            inputs: ByteBuf::new(),
            ends: Vec::new(),
            fds: Vec::new(),
        };
        let mut fds_sent = 0;
        let mut frame_fds: Vec<OwnedFd> = Vec::new();
        while batch.ends.len() < allowance && batch.inputs.len() < MAX_BATCH_BYTES {
            let Some(queued) = self.queue.front_mut() else {
                break;
            };
            let job = &self.jobs[&queued.job];
            if job.name != name || job.record != record {
                break;
            }
            // Take as much of this range as the allowance, the byte budget and the descriptor
            // limit let through (at least one task, so that a huge input still goes).
            let start = queued.positions.start;
            let mut end = start;
            while end < queued.positions.end && batch.ends.len() + (end - start) < allowance {
                let fds = job.inputs.fd_count(end);
                let bytes = job.inputs.ends[end] - job.inputs.start(start);
                // Only the batch's very first input may pass the byte budget; no input may pass
                // the descriptor limit of one message.
                let first_of_batch = batch.ends.is_empty() && end == start;
                if fds_sent + fds > MAX_FDS_PER_MESSAGE
                    || (!first_of_batch && batch.inputs.len() + bytes > MAX_BATCH_BYTES)
                {
                    break;
                }
                fds_sent += fds;
                end += 1;
            }
            if end == start {
                break;
            }
            let base = batch.inputs.len();
            let first = job.inputs.start(start);
            batch
                .inputs
                .extend_from_slice(&job.inputs.bytes[first..job.inputs.ends[end - 1]]);
            batch.ends.extend(
                job.inputs.ends[start..end]
                    .iter()
                    .map(|&input_end| (base + input_end - first) as u32),
            );
            if job.inputs.fd_ends.is_some() || !batch.fds.is_empty() {
                batch.fds.resize(batch.ends.len() - (end - start), 0);
                for position in start..end {
                    batch.fds.push(job.inputs.fd_count(position) as u32);
                    let from = job.inputs.fd_start(position);
                    for fd in &job.inputs.fds[from..from + job.inputs.fd_count(position)] {
                        // A copy goes; the job keeps the original for a retry.
                        if let Ok(copy) = fd.try_clone() {
                            frame_fds.push(copy);
                        }
                    }
                }
            }
            worker.in_flight.push_back(Segment {
                first_id: worker.next_id,
                job: queued.job,
                positions: start..end,
                done: 0,
                attempts: queued.attempts,
            });
            worker.next_id += (end - start) as u64;
            worker.in_flight_tasks += end - start;
            self.queued_tasks -= end - start;
            queued.positions.start = end;
            if queued.positions.is_empty() {
                self.queue.pop_front();
            }
        }
        if !batch.ends.is_empty() {
            if !batch.fds.is_empty() {
                batch.fds.resize(batch.ends.len(), 0);
            }
            let frame_start = worker.out.len();
            // Inputs are each within MAX_INPUT, so a batch frame stays within the wire's limit.
            encode_frame(&ToWorker::Run(batch), &mut worker.out)
                .expect("a batch within the byte budget encodes");
            if !frame_fds.is_empty() {
                worker.out_fds.push_back((frame_start, frame_fds));
            }
        }
    }

    fn write_all(&mut self) {
        for worker in &mut self.workers {
            write_some(worker);
        }
    }

    fn wait_for_events(&mut self, until: Option<Instant>) {
        let deadline = match (self.next_deadline(), until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout = deadline.map(|deadline| {
            let left = deadline.saturating_duration_since(Instant::now());
            rustix::time::Timespec::try_from(left).unwrap_or(rustix::time::Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            })
        });
        let events: Vec<bool> = {
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(self.workers.len() + 1);
            fds.push(PollFd::new(&self.wake, PollFlags::IN));
            for worker in &self.workers {
                let mut flags = PollFlags::IN;
                if worker.written < worker.out.len() {
                    flags |= PollFlags::OUT;
                }
                fds.push(PollFd::new(&worker.socket, flags));
            }
            self.sleeping.store(true, Ordering::SeqCst);
            // A command sent after this check finds `sleeping` set and rings the eventfd.
            if self.commands.is_empty() {
                let _ = rustix::event::poll(&mut fds, timeout.as_ref());
            }
            self.sleeping.store(false, Ordering::SeqCst);
            fds.iter().map(|fd| !fd.revents().is_empty()).collect()
        };
        if events[0] {
            let mut counter = [0_u8; 8];
            let _ = rustix::io::read(&self.wake, &mut counter);
        }
        // Indices shift as dead workers are removed; walk the workers by pid.
        let ready: Vec<u32> = self
            .workers
            .iter()
            .zip(&events[1..])
            .filter(|(_, ready)| **ready)
            .map(|(worker, _)| worker.pid)
            .collect();
        for pid in ready {
            if let Some(index) = self.workers.iter().position(|worker| worker.pid == pid)
                && !self.read_worker(index)
            {
                self.worker_gone(index);
            }
        }
    }

    /// Reads what a worker sent; false if its stream ended or broke.
    fn read_worker(&mut self, index: usize) -> bool {
        loop {
            let worker = &mut self.workers[index];
            match recv_with_flags(
                worker.socket.as_fd(),
                &mut self.read_buffer,
                0,
                rustix::net::RecvFlags::DONTWAIT,
            ) {
                Ok((0, _)) => return false,
                Ok((read, _)) => {
                    worker.reader.extend(&self.read_buffer[..read]);
                    if !self.parse_frames(index) {
                        return false;
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
    }

    fn parse_frames(&mut self, index: usize) -> bool {
        loop {
            let worker = &mut self.workers[index];
            let message = match worker.reader.next_frame() {
                Ok(Some(payload)) => decode_payload::<FromWorker>(payload),
                Ok(None) => return true,
                Err(error) => Err(error),
            };
            let Ok(message) = message else {
                // A worker that speaks garbage is broken: kill it and treat it as dead.
                worker.process.kill();
                return false;
            };
            match message {
                FromWorker::Hello { .. } => {
                    worker.said_hello = true;
                    self.start_failures = 0;
                }
                FromWorker::InitFailed(error) => {
                    self.break_pool(format!("the initializer failed: {error}"));
                    return false;
                }
                FromWorker::Results(results) => {
                    if !self.deliver_results(index, results) {
                        self.workers[index].process.kill();
                        return false;
                    }
                    self.retire_if_done(index);
                }
            }
        }
    }

    /// Delivers a worker's results to their jobs; false if they do not match what it was sent.
    fn deliver_results(&mut self, index: usize, results: Results) -> bool {
        let mut current: Option<(JobKey, JobRecord)> = None;
        let matched = self.deliver_into(index, results, &mut current);
        if let Some((key, job)) = current {
            self.put_back(key, job);
        }
        matched
    }

    /// The body of [`deliver_results`](Self::deliver_results); `current` is the job being
    /// delivered to, out of the table, which the caller puts back whatever happens.
    fn deliver_into(
        &mut self,
        index: usize,
        results: Results,
        current: &mut Option<(JobKey, JobRecord)>,
    ) -> bool {
        let Results {
            busy_ns,
            first_id,
            outputs,
            ends,
            errors,
            spans,
        } = results;
        if !ends.is_empty() {
            let per_task = busy_ns as f64 / ends.len() as f64;
            self.task_cost_ns = 0.8 * self.task_cost_ns + 0.2 * per_task;
        }
        let mut errors = errors.into_iter().peekable();
        let mut spans = spans.into_iter().peekable();
        let pid = self.workers[index].pid;
        let mut start = 0_usize;
        for (offset, &end) in ends.iter().enumerate() {
            let end = end as usize;
            if end < start || end > outputs.len() {
                return false;
            }
            let offset32 = offset as u32;
            let outcome = match errors.next_if(|(at, _)| *at == offset32) {
                Some((_, error)) => Err(error),
                None => Ok(&outputs[start..end]),
            };
            start = end;
            let span = spans
                .next_if(|(at, _)| *at == offset32)
                .map(|(_, span)| SpanInWorker { pid, span });
            let id = first_id + offset as u64;
            let worker = &mut self.workers[index];
            let Some(segment) = worker.in_flight.front_mut() else {
                return false;
            };
            if id != segment.first_id + segment.done as u64 {
                return false;
            }
            let position = segment.positions.start + segment.done;
            let key = segment.job;
            segment.done += 1;
            if segment.first_id + segment.done as u64 == segment.end_id() {
                worker.in_flight.pop_front();
            }
            worker.in_flight_tasks -= 1;
            // Consecutive results mostly belong to one job: look it up once per run.
            if current
                .as_ref()
                .is_none_or(|(current_key, _)| *current_key != key)
            {
                if let Some((previous, job)) = current.take() {
                    self.put_back(previous, job);
                }
                *current = self.jobs.remove(&key).map(|job| (key, job));
            }
            if let Some((_, job)) = current {
                job.delivery.answer(position, outcome, span);
            }
        }
        true
    }

    /// Returns a job taken out for delivery to the table, unless it is complete.
    fn put_back(&mut self, key: JobKey, job: JobRecord) {
        if job.delivery.remaining() > 0 {
            self.jobs.insert(key, job);
        }
    }

    fn finish(
        &mut self,
        key: JobKey,
        position: usize,
        outcome: Result<&[u8], TaskError>,
        span: Option<SpanInWorker>,
    ) {
        // A job that timed out is gone; its late results are dropped.
        let Some(job) = self.jobs.get_mut(&key) else {
            return;
        };
        job.delivery.answer(position, outcome, span);
        if job.delivery.remaining() == 0 {
            self.jobs.remove(&key);
        }
    }

    fn retire_if_done(&mut self, index: usize) {
        let worker = &mut self.workers[index];
        if worker.retiring && worker.in_flight.is_empty() && !worker.stop_sent {
            encode_frame(&ToWorker::Stop, &mut worker.out).expect("stop encodes");
            worker.stop_sent = true;
        }
    }

    /// A worker's stream ended: reap it, settle its tasks, and start another if needed.
    fn worker_gone(&mut self, index: usize) {
        let mut worker = self.workers.swap_remove(index);
        if worker.stop_sent && worker.in_flight.is_empty() {
            // It was told to stop and had nothing left: how it ended does not matter.
            worker.process.release();
            self.start_successor(worker.replaced);
            return;
        }
        let (signal, code) = worker.process.wait();
        // Only the task that was running can have brought the worker down; the ones queued
        // behind it never started, and go to another worker as they are. (Tasks that had
        // finished without their results being written yet run again; their results are
        // delivered once.)
        // If the slot names no task (it died between tasks, or while writing results), the
        // first unfinished task takes the blame, so that a task that kills every worker runs
        // out of attempts instead of being re-sent for ever.
        let undelivered_id = |segment: &Segment| segment.first_id + segment.done as u64;
        let blame = if worker.killed_by_us {
            None
        } else {
            worker
                .slot
                .task()
                .filter(|id| {
                    worker.in_flight.iter().any(|segment| {
                        self.jobs.contains_key(&segment.job)
                            && (undelivered_id(segment)..segment.end_id()).contains(id)
                    })
                })
                .or_else(|| {
                    worker
                        .in_flight
                        .iter()
                        .find(|segment| {
                            self.jobs.contains_key(&segment.job)
                                && undelivered_id(segment) < segment.end_id()
                        })
                        .map(undelivered_id)
                })
        };
        let mut requeue = Vec::new();
        for segment in worker.in_flight.drain(..) {
            if !self.jobs.contains_key(&segment.job) {
                continue;
            }
            let undelivered = segment.positions.start + segment.done..segment.positions.end;
            let blamed = blame
                .filter(|id| (segment.first_id..segment.end_id()).contains(id))
                .map(|id| segment.positions.start + (id - segment.first_id) as usize);
            let Some(blamed) = blamed else {
                requeue.push(Queued {
                    job: segment.job,
                    positions: undelivered,
                    attempts: segment.attempts,
                });
                continue;
            };
            if undelivered.start < blamed {
                requeue.push(Queued {
                    job: segment.job,
                    positions: undelivered.start..blamed,
                    attempts: segment.attempts,
                });
            }
            let retries = self.jobs[&segment.job].retries;
            if segment.attempts < retries {
                requeue.push(Queued {
                    job: segment.job,
                    positions: blamed..blamed + 1,
                    attempts: segment.attempts + 1,
                });
            } else {
                self.finish(
                    segment.job,
                    blamed,
                    Err(TaskError::WorkerDied { signal, code }),
                    None,
                );
            }
            if blamed + 1 < undelivered.end {
                requeue.push(Queued {
                    job: segment.job,
                    positions: blamed + 1..undelivered.end,
                    attempts: segment.attempts,
                });
            }
        }
        for queued in requeue.into_iter().rev() {
            self.queued_tasks += queued.positions.len();
            self.queue.push_front(queued);
        }
        if let Some(reason) = self.broken.clone() {
            // No worker can start: what it held fails with the reason, and none replaces it.
            self.break_pool(reason);
            return;
        }
        if !worker.said_hello && !worker.killed_by_us {
            self.start_failures += 1;
            if self.start_failures >= MAX_START_FAILURES || !self.any_ready() {
                self.break_pool(format!(
                    "a worker exited before it started ({}); does main() call triad::init() first?",
                    describe(signal, code)
                ));
                return;
            }
        }
        self.start_successor(worker.replaced);
    }

    /// Starts a worker in place of one that has gone, unless one was started already or no
    /// work is left.
    fn start_successor(&mut self, replaced: bool) {
        let work_left = !self.closing || !self.queue.is_empty() || !self.jobs.is_empty();
        if work_left
            && !replaced
            && let Err(error) = self.start_one()
            && self.workers.is_empty()
        {
            self.break_pool(format!("could not start a replacement worker: {error}"));
        }
    }

    fn any_ready(&self) -> bool {
        self.workers.iter().any(|worker| worker.said_hello)
    }

    /// No worker can start: fail everything queued and everything to come.
    fn break_pool(&mut self, reason: String) {
        self.broken = Some(reason.clone());
        self.queued_tasks = 0;
        while let Some(queued) = self.queue.pop_front() {
            for position in queued.positions {
                self.finish(
                    queued.job,
                    position,
                    Err(TaskError::WorkerStart(reason.clone())),
                    None,
                );
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.jobs.values().filter_map(|job| job.deadline).min()
    }

    /// Fails the unfinished tasks of jobs past their deadline; kills the workers that hold them.
    fn expire_deadlines(&mut self) {
        let now = Instant::now();
        let expired: Vec<JobKey> = self
            .jobs
            .iter()
            .filter(|(_, job)| job.deadline.is_some_and(|deadline| deadline <= now))
            .map(|(key, _)| *key)
            .collect();
        for key in expired {
            let Some(mut job) = self.jobs.remove(&key) else {
                continue;
            };
            let mut dequeued = 0;
            self.queue.retain(|queued| {
                if queued.job == key {
                    dequeued += queued.positions.len();
                }
                queued.job != key
            });
            self.queued_tasks -= dequeued;
            for worker in &mut self.workers {
                if worker.in_flight.iter().any(|segment| segment.job == key) {
                    worker.killed_by_us = true;
                    worker.process.kill();
                }
            }
            job.delivery.answer_rest(&TaskError::Timeout);
        }
    }

    /// Sends every worker a stop, and waits for them to exit.
    fn stop_all(&mut self) {
        for worker in &mut self.workers {
            if !worker.stop_sent {
                let _ = encode_frame(&ToWorker::Stop, &mut worker.out);
                worker.stop_sent = true;
            }
            let _ = rustix::io::ioctl_fionbio(&worker.socket, false);
            write_some(worker);
        }
        for mut worker in self.workers.drain(..) {
            let _ = worker.process.wait();
        }
    }

    /// Kills every worker, reaps it, and cancels every task not yet finished.
    fn terminate(&mut self) {
        for worker in &mut self.workers {
            worker.process.kill();
        }
        for mut worker in std::mem::take(&mut self.workers) {
            let _ = worker.process.wait();
        }
        self.queue.clear();
        self.queued_tasks = 0;
        // Dropping a job answers its unanswered positions with `Cancelled`.
        self.jobs.clear();
        // Jobs submitted after the thread stopped listening go the same way.
        while self.commands.try_recv().is_ok() {}
    }
}

/// Writes as much of a worker's pending output as the socket takes now.
fn write_some(worker: &mut Worker) {
    while worker.written < worker.out.len() {
        let due = matches!(worker.out_fds.front(), Some((start, _)) if *start <= worker.written);
        let fds = if due {
            worker
                .out_fds
                .pop_front()
                .map(|(_, fds)| fds)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let limit = worker
            .out_fds
            .front()
            .map_or(worker.out.len(), |(start, _)| *start);
        match send_with_fds(
            worker.socket.as_fd(),
            &[IoSlice::new(&worker.out[worker.written..limit])],
            &fds,
        ) {
            Ok(written) => worker.written += written,
            Err(_) => {
                // Full (try again when poll says so) or broken (the read side will see the end);
                // the descriptors were not sent, so they wait for the next try.
                if due {
                    worker.out_fds.push_front((worker.written, fds));
                }
                break;
            }
        }
    }
    if worker.written == worker.out.len() {
        worker.out.clear();
        worker.written = 0;
    }
}

fn describe(signal: Option<i32>, code: Option<i32>) -> String {
    match (signal, code) {
        (Some(signal), _) => format!("killed by signal {signal}"),
        (None, Some(code)) => format!("exit code {code}"),
        (None, None) => "no status".to_owned(),
    }
}
