//! The pool's I/O thread: one thread owns every worker, so no worker state is shared or locked.
//!
//! Callers send [`Command`]s over a channel and ring an eventfd only when the thread sleeps.
//! The thread's loop: take commands; fail jobs past their deadline; start workers until the
//! pool has its size; hand queued tasks to workers that have credit; write what each socket
//! will take; `poll` the sockets, the eventfd and the nearest deadline; read results and settle
//! them; handle deaths and retirements. Where every task is lives in the [`Ledger`]; this
//! module moves the bytes.
//!
//! *Credit* keeps each worker about [`TARGET_QUEUE`] of work ahead: the thread measures the mean
//! task cost from the busy time workers report, and lets a worker hold `TARGET_QUEUE / cost`
//! tasks (at least one, at most [`MAX_CREDIT`]). Tiny tasks thus travel hundreds to a frame, and
//! one-second tasks one at a time, so no worker sits on a backlog while another idles.
//!
//! *Starts.* The pool keeps `workers` processes that are starting or serving (with
//! `on_demand`, no more than there are unsettled tasks, and at least one). A worker that dies
//! before its hello is a failed start: the next start waits a little longer each time (see
//! [`StartRecord`]), and only after [`MAX_START_FAILURES`] in a row, with no worker alive, does
//! the pool give up — every task from then on fails with [`TaskError::WorkerStart`] and the
//! reason. A death by a signal from outside is no sign of a misconfigured program, so the
//! reason mentions `triad::init()` only for a worker that exited cleanly without a word.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use rustix::event::{PollFd, PollFlags};
use serde_bytes::ByteBuf;

use super::job::{Delivery, Inputs, Job, SpanInWorker};
use super::ledger::{JobKey, KeyMap, Ledger, Settled};
use super::start::Starter;
use super::wire::{
    Batch, FromWorker, Initializer, Results, ToWorker, decode_payload, encode_frame,
};
use super::workers::{Phase, StartFailure, StartRecord, Worker};
use crate::error::TaskError;
use crate::fdpass::{MAX_FDS_PER_MESSAGE, recv_with_flags};

/// How much work, in time, a worker is given ahead.
const TARGET_QUEUE: Duration = Duration::from_millis(2);
/// The most tasks a worker holds at once.
const MAX_CREDIT: usize = 8192;
/// The most input bytes in one batch frame, unless its one input is larger.
const MAX_BATCH_BYTES: usize = 16 << 20;
/// The most workers started in one turn of the loop, so that results keep flowing while a
/// large pool starts.
const STARTS_PER_TURN: usize = 16;
/// How long `build` waits for the first workers' hellos.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

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
    /// Start workers only as tasks need them (at least one).
    pub(crate) on_demand: bool,
}

/// What the caller learns once the first workers are up (or could not start).
pub(crate) type Startup = Result<Vec<u32>, String>;

/// Counters the pool's handle can read while the dispatcher runs.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Settlements refused because the task was settled already (always 0 unless a bug).
    pub(crate) duplicates: AtomicU64,
    /// Worker processes started.
    pub(crate) started: AtomicU64,
}

struct JobRecord {
    name: &'static str,
    inputs: Inputs,
    delivery: Delivery,
    deadline: Option<Instant>,
    record: bool,
}

pub(crate) struct Dispatcher {
    settings: Settings,
    commands: Receiver<Command>,
    wake: OwnedFd,
    sleeping: Arc<AtomicBool>,
    counters: Arc<Counters>,
    workers: Vec<Worker>,
    ledger: Ledger,
    jobs: KeyMap<JobKey, JobRecord>,
    next_job: JobKey,
    /// Mean nanoseconds per task, from the workers' reports; starts at a guess.
    task_cost_ns: f64,
    /// The worker `assign` starts its next round with.
    first_worker: usize,
    starts: StartRecord,
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
        counters: Arc<Counters>,
    ) -> Self {
        Dispatcher {
            settings,
            commands,
            wake,
            sleeping,
            counters,
            workers: Vec::new(),
            ledger: Ledger::default(),
            jobs: KeyMap::default(),
            next_job: 0,
            task_cost_ns: 100_000.0,
            first_worker: 0,
            starts: StartRecord::new(),
            broken: None,
            closing: false,
            read_buffer: vec![0; 256 * 1024],
        }
    }

    /// Starts the workers, reports through `started`, then serves until closed or terminated.
    pub(crate) fn run(mut self, started: crossbeam_channel::Sender<Startup>) {
        let startup = self.start_up();
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
            self.top_up();
            self.assign();
            self.write_all();
            if self.closing && self.ledger.is_idle() {
                self.stop_all();
                return;
            }
            self.wait_for_events(None);
        }
    }

    /// Starts the first workers and waits for their hellos, restarting any that die.
    fn start_up(&mut self) -> Startup {
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            self.top_up();
            if let Some(reason) = &self.broken {
                return Err(reason.clone());
            }
            let serving = self.count(|worker| worker.phase == Phase::Serving);
            if serving >= self.wanted() {
                return Ok(self.workers.iter().map(|worker| worker.pid).collect());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "workers did not start within {} s",
                    STARTUP_LIMIT.as_secs()
                ));
            }
            // Each worker waits for its start message before it says hello.
            self.write_all();
            self.wait_for_events(Some(deadline));
        }
    }

    fn count(&self, which: impl Fn(&Worker) -> bool) -> usize {
        self.workers.iter().filter(|worker| which(worker)).count()
    }

    /// Workers that count towards the pool's size: starting or serving, and not yet sent their
    /// `max_tasks_per_child` — a spent worker's successor starts at once, even while the spent
    /// one is still starting, so that recycled workers start in parallel with the work.
    fn live(&self) -> usize {
        self.count(|worker| {
            worker.is_live()
                && self
                    .settings
                    .max_tasks_per_child
                    .is_none_or(|limit| self.ledger.sent(worker.pid) < limit)
        })
    }

    /// How many starting or serving workers the pool should have now.
    fn wanted(&self) -> usize {
        if self.closing && self.ledger.is_idle() {
            0
        } else if self.settings.on_demand {
            self.ledger.unsettled().clamp(1, self.settings.workers)
        } else {
            self.settings.workers
        }
    }

    /// Starts workers until the pool has the size it wants, as fast as the start record allows;
    /// gives up when starts keep failing and no worker is left alive.
    fn top_up(&mut self) {
        if self.broken.is_some() {
            return;
        }
        let alive = self.count(|worker| worker.phase != Phase::Killed);
        if self.starts.exhausted() && alive == 0 {
            self.break_pool(self.starts.reason());
            return;
        }
        let mut live = self.live();
        let mut started = 0;
        while live < self.wanted() && started < STARTS_PER_TURN {
            if !self.starts.may_start(Instant::now()) {
                return;
            }
            match self.start_one() {
                Ok(()) => {
                    live += 1;
                    started += 1;
                }
                Err(error) => {
                    let own_server_gone = matches!(&self.settings.starter,
                        Starter::OwnServer(server) if server.is_gone());
                    if own_server_gone {
                        self.break_pool(error.to_string());
                        return;
                    }
                    self.starts
                        .failed(StartFailure::Spawn(error.to_string()), Instant::now());
                }
            }
        }
    }

    fn start_one(&mut self) -> std::io::Result<()> {
        let started = self.settings.starter.start()?;
        let worker = Worker::new(started, &ToWorker::Start(self.settings.initializer.clone()))?;
        self.ledger.add_worker(worker.pid);
        self.workers.push(worker);
        self.counters.started.fetch_add(1, Ordering::Relaxed);
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
        if let Some(reason) = &self.broken {
            job.delivery
                .answer_rest(&TaskError::WorkerStart(reason.clone()));
            return;
        }
        let count = job.inputs.len();
        if count == 0 {
            return;
        }
        let key = self.next_job;
        self.next_job += 1;
        self.ledger.submit(key, count, job.retries);
        self.jobs.insert(
            key,
            JobRecord {
                name: job.name,
                inputs: job.inputs,
                delivery: job.delivery,
                deadline: job.timeout.map(|timeout| Instant::now() + timeout),
                record: job.record,
            },
        );
    }

    /// Settles one task: the ledger first (which refuses a second settlement), then the answer.
    fn settle(
        &mut self,
        key: JobKey,
        position: usize,
        outcome: Result<&[u8], TaskError>,
        span: Option<SpanInWorker>,
    ) {
        match self.ledger.settle(key, position) {
            Settled::Already => {
                self.counters
                    .duplicates
                    .store(self.ledger.duplicates(), Ordering::Relaxed);
            }
            Settled::Now { last: false } => {
                if let Some(job) = self.jobs.get_mut(&key) {
                    job.delivery.answer(position, outcome, span);
                }
            }
            Settled::Now { last: true } => {
                if let Some(mut job) = self.jobs.remove(&key) {
                    job.delivery.answer(position, outcome, span);
                }
            }
        }
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
        let share = self.ledger.queued().div_ceil(count).max(1);
        self.first_worker = (self.first_worker + 1) % count;
        for turn in 0..count {
            let index = (self.first_worker + turn) % count;
            if self.ledger.queued() == 0 {
                return;
            }
            // A worker that has not said hello yet gets tasks too: they queue behind its start
            // message, which saves it a round trip; if it never starts, they go back.
            let worker = &self.workers[index];
            if !worker.takes_tasks() {
                continue;
            }
            let pid = worker.pid;
            let mut allowance = credit.saturating_sub(self.ledger.in_flight(pid)).min(share);
            if let Some(limit) = self.settings.max_tasks_per_child {
                allowance = allowance.min(limit.saturating_sub(self.ledger.sent(pid)) as usize);
            }
            if allowance > 0 {
                self.send_batch(index, allowance);
            }
            self.retire_if_spent(index);
        }
        // A worker that retired just now is replaced at once, while it finishes its last tasks.
        self.top_up();
    }

    /// A serving worker that has been sent its `max_tasks_per_child` retires (its successor
    /// starts at once: a retiring worker does not count towards the pool's size).
    fn retire_if_spent(&mut self, index: usize) {
        let worker = &mut self.workers[index];
        if worker.phase == Phase::Serving
            && let Some(limit) = self.settings.max_tasks_per_child
            && self.ledger.sent(worker.pid) >= limit
        {
            worker.phase = Phase::Retiring;
            self.stop_if_done(index);
        }
    }

    /// A retiring worker whose last result is in gets its stop.
    fn stop_if_done(&mut self, index: usize) {
        let worker = &mut self.workers[index];
        if worker.phase == Phase::Retiring && self.ledger.in_flight(worker.pid) == 0 {
            worker.stop();
        }
    }

    /// Sends up to `allowance` queued tasks of the front job's task name to worker `index`.
    fn send_batch(&mut self, index: usize, allowance: usize) {
        let Some((front_job, _)) = self.ledger.front() else {
            return;
        };
        let (name, record) = {
            let job = &self.jobs[&front_job];
            (job.name, job.record)
        };
        let pid = self.workers[index].pid;
        let mut batch = Batch {
            name: name.to_owned(),
            record,
            first_id: self.ledger.sent(pid),
            inputs: ByteBuf::new(),
            ends: Vec::new(),
            fds: Vec::new(),
        };
        let mut fds_sent = 0;
        let mut frame_fds: Vec<OwnedFd> = Vec::new();
        while batch.ends.len() < allowance && batch.inputs.len() < MAX_BATCH_BYTES {
            let Some((key, positions)) = self.ledger.front() else {
                break;
            };
            let job = &self.jobs[&key];
            if job.name != name || job.record != record {
                break;
            }
            // Take as much of this range as the allowance, the byte budget and the descriptor
            // limit let through (at least one task, so that a huge input still goes).
            let start = positions.start;
            let mut end = start;
            while end < positions.end && batch.ends.len() + (end - start) < allowance {
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
            self.ledger.send_front(pid, end);
        }
        if !batch.ends.is_empty() {
            if !batch.fds.is_empty() {
                batch.fds.resize(batch.ends.len(), 0);
            }
            let worker = &mut self.workers[index];
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
            worker.write_some();
        }
    }

    /// The nearest moment something is due: a job's deadline, `until`, or a start that waits
    /// out its backoff.
    fn next_deadline(&self, until: Option<Instant>) -> Option<Instant> {
        let start_due = self
            .starts
            .not_before
            .filter(|_| self.live() < self.wanted() && self.broken.is_none());
        self.jobs
            .values()
            .filter_map(|job| job.deadline)
            .chain(until)
            .chain(start_due)
            .min()
    }

    fn wait_for_events(&mut self, until: Option<Instant>) {
        let timeout = self.next_deadline(until).map(|deadline| {
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
                if worker.wants_to_write() {
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
                    if worker.phase == Phase::Starting {
                        worker.phase = Phase::Serving;
                    }
                    self.starts.succeeded();
                    self.retire_if_spent(index);
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
                    self.stop_if_done(index);
                }
            }
        }
    }

    /// Settles a worker's results; false if they do not match what it was sent.
    fn deliver_results(&mut self, index: usize, results: Results) -> bool {
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
            match self.ledger.delivered(pid, first_id + offset as u64) {
                Err(_) => return false,
                // Its job timed out: the late result is dropped.
                Ok(None) => {}
                Ok(Some((key, position))) => self.settle(key, position, outcome, span),
            }
        }
        true
    }

    /// A worker's stream ended: reap it and settle its tasks (the pool's size is kept up by
    /// `top_up`).
    fn worker_gone(&mut self, index: usize) {
        let mut worker = self.workers.swap_remove(index);
        if worker.phase == Phase::Stopping && self.ledger.in_flight(worker.pid) == 0 {
            // It was told to stop and had nothing left: how it ended does not matter.
            worker.process.release();
            self.ledger.worker_gone(worker.pid, None, false);
            return;
        }
        let (signal, code) = worker.process.wait();
        // A worker that never said hello ran no task, and one we killed is not at fault.
        let blame = !matches!(worker.phase, Phase::Starting | Phase::Killed);
        let death = self
            .ledger
            .worker_gone(worker.pid, worker.slot.task(), blame);
        for (key, position) in death.failed {
            self.settle(
                key,
                position,
                Err(TaskError::WorkerDied { signal, code }),
                None,
            );
        }
        if worker.phase == Phase::Starting {
            self.starts
                .failed(StartFailure::Died { signal, code }, Instant::now());
        }
        if let Some(reason) = self.broken.clone() {
            // No worker can start: what it held fails with the reason.
            self.break_pool(reason);
        }
    }

    /// No worker can start: fail everything queued and everything to come.
    fn break_pool(&mut self, reason: String) {
        self.broken = Some(reason.clone());
        for (key, position) in self.ledger.drain_queue() {
            self.settle(
                key,
                position,
                Err(TaskError::WorkerStart(reason.clone())),
                None,
            );
        }
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
            let (unsettled, holders) = self.ledger.expire(key);
            for worker in &mut self.workers {
                if holders.contains(&worker.pid) {
                    worker.kill();
                }
            }
            for position in unsettled {
                self.settle(key, position, Err(TaskError::Timeout), None);
            }
        }
    }

    /// Sends every worker a stop, and waits for them to exit.
    fn stop_all(&mut self) {
        for worker in &mut self.workers {
            worker.stop();
            let _ = rustix::io::ioctl_fionbio(&worker.socket, false);
            worker.write_some();
        }
        for mut worker in self.workers.drain(..) {
            let _ = worker.process.wait();
        }
    }

    /// Kills every worker, reaps it, and cancels every task not yet finished.
    fn terminate(&mut self) {
        for worker in &mut self.workers {
            worker.kill();
        }
        for mut worker in std::mem::take(&mut self.workers) {
            let _ = worker.process.wait();
        }
        // Dropping a job answers its unanswered positions with `Cancelled`.
        self.jobs.clear();
        // Jobs submitted after the thread stopped listening go the same way.
        while self.commands.try_recv().is_ok() {}
    }
}
