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
//! A worker that dies (its socket ends) is reaped with `waitpid`; each of its tasks is retried
//! if its job allows and attempts remain, and otherwise fails as [`TaskError::WorkerDied`] with
//! the signal or exit code; a new worker takes its place. A task past its deadline fails as
//! [`TaskError::Timeout`] and its worker is killed and replaced — the worker's other tasks were
//! not at fault, so they go back to the queue.

use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use rustix::event::{PollFd, PollFlags};
use serde_bytes::ByteBuf;

use super::slot::Slot;
use super::start::{Started, spawn_worker};
use super::wire::{
    FrameReader, FromWorker, ToWorker, WireSpan, WireTask, decode_payload, encode_frame,
};
use crate::error::TaskError;
use crate::fdpass::{Encoded, MAX_FDS_PER_MESSAGE, recv_with_flags, send_with_fds};

/// How much work, in time, a worker is given ahead.
const TARGET_QUEUE: Duration = Duration::from_millis(2);
/// The most tasks a worker holds at once.
const MAX_CREDIT: usize = 4096;
/// Consecutive workers that die before saying hello after which the pool gives up.
const MAX_START_FAILURES: u32 = 3;

/// Called once per task of a job with the task's position in the job, its encoded output (or
/// error) and, if asked for, its span.
pub(crate) type Deliver =
    Box<dyn FnMut(usize, Result<Vec<u8>, TaskError>, Option<SpanInWorker>) + Send>;

/// A task's span as measured in a worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanInWorker {
    pub(crate) pid: u32,
    pub(crate) span: WireSpan,
}

/// A batch of tasks of one registered task, submitted together.
pub(crate) struct Job {
    pub(crate) name: &'static str,
    pub(crate) inputs: Vec<Encoded>,
    pub(crate) deliver: Deliver,
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
}

/// What the caller learns once the first workers are up (or could not start).
pub(crate) type Startup = Result<Vec<u32>, String>;

type JobKey = u64;

struct JobRecord {
    name: &'static str,
    deliver: Deliver,
    remaining: usize,
    deadline: Option<Instant>,
    retries: u32,
    record: bool,
}

struct Pending {
    job: JobKey,
    position: usize,
    input: Encoded,
    attempts: u32,
}

struct Worker {
    pid: u32,
    child: std::process::Child,
    /// The task the worker said it is running (shared page; read after a death).
    slot: Slot,
    socket: OwnedFd,
    reader: FrameReader,
    /// Encoded frames not yet written, from `written` on.
    out: Vec<u8>,
    written: usize,
    /// Descriptors of the frames in `out`, sent with the next write (never after their bytes).
    out_fds: VecDeque<OwnedFd>,
    in_flight: HashMap<u64, Pending>,
    said_hello: bool,
    /// Tasks sent over this worker's life, for `max_tasks_per_child`.
    sent: u64,
    /// It has had its share of tasks: it gets a stop once its last result is in.
    retiring: bool,
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
    queue: VecDeque<Pending>,
    jobs: HashMap<JobKey, JobRecord>,
    next_job: JobKey,
    next_task: u64,
    /// Mean nanoseconds per task, from the workers' reports; starts at a guess.
    task_cost_ns: f64,
    start_failures: u32,
    broken: Option<String>,
    closing: bool,
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
            next_task: 0,
            task_cost_ns: 100_000.0,
            start_failures: 0,
            broken: None,
            closing: false,
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
            self.wait_for_events();
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
            self.wait_for_events();
            if let Some(reason) = &self.broken {
                return Err(reason.clone());
            }
        }
        Ok(self.workers.iter().map(|worker| worker.pid).collect())
    }

    fn start_one(&mut self) -> std::io::Result<()> {
        let Started {
            socket,
            child,
            slot,
        } = spawn_worker()?;
        self.workers.push(Worker {
            pid: child.id(),
            child,
            slot,
            socket,
            reader: FrameReader::new(),
            out: Vec::new(),
            written: 0,
            out_fds: VecDeque::new(),
            in_flight: HashMap::new(),
            said_hello: false,
            sent: 0,
            retiring: false,
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

    fn submit(&mut self, job: Job) {
        let key = self.next_job;
        self.next_job += 1;
        let mut record = JobRecord {
            name: job.name,
            deliver: job.deliver,
            remaining: job.inputs.len(),
            deadline: job.timeout.map(|timeout| Instant::now() + timeout),
            retries: job.retries,
            record: job.record,
        };
        if let Some(reason) = &self.broken {
            for position in 0..record.remaining {
                (record.deliver)(position, Err(TaskError::WorkerStart(reason.clone())), None);
            }
            return;
        }
        self.queue.extend(
            job.inputs
                .into_iter()
                .enumerate()
                .map(|(position, input)| Pending {
                    job: key,
                    position,
                    input,
                    attempts: 0,
                }),
        );
        if record.remaining > 0 {
            self.jobs.insert(key, record);
        }
    }

    fn credit(&self) -> usize {
        ((TARGET_QUEUE.as_nanos() as f64 / self.task_cost_ns.max(1.0)) as usize)
            .clamp(1, MAX_CREDIT)
    }

    /// Hands queued tasks to workers with room, a frame per run of tasks of one name.
    fn assign(&mut self) {
        let credit = self.credit();
        for index in 0..self.workers.len() {
            while !self.queue.is_empty() {
                let worker = &self.workers[index];
                if !worker.said_hello || worker.retiring || worker.killed_by_us {
                    break;
                }
                let room = credit.saturating_sub(worker.in_flight.len());
                let allowance = match self.settings.max_tasks_per_child {
                    Some(limit) => room.min((limit - worker.sent.min(limit)) as usize),
                    None => room,
                };
                if allowance == 0 {
                    break;
                }
                self.send_batch(index, allowance);
            }
            let worker = &mut self.workers[index];
            if let Some(limit) = self.settings.max_tasks_per_child
                && worker.sent >= limit
            {
                worker.retiring = true;
            }
        }
    }

    fn send_batch(&mut self, index: usize, allowance: usize) {
        let job_key = self.queue.front().expect("queue is not empty").job;
        let job = &self.jobs[&job_key];
        let (name, record) = (job.name, job.record);
        let mut tasks = Vec::new();
        let mut fds_total = 0;
        let worker = &mut self.workers[index];
        while tasks.len() < allowance {
            let Some(next) = self.queue.front() else {
                break;
            };
            let fd_count = next.input.fds.len();
            if self.jobs[&next.job].name != name
                || (fd_count > 0 && fds_total + fd_count > MAX_FDS_PER_MESSAGE)
            {
                break;
            }
            let mut pending = self.queue.pop_front().expect("front exists");
            fds_total += fd_count;
            let id = self.next_task;
            self.next_task += 1;
            tasks.push(WireTask {
                id,
                fds: fd_count as u32,
                input: ByteBuf::from(std::mem::take(&mut pending.input.bytes)),
            });
            // Keep a copy of the descriptors for a retry; the originals go to the worker.
            for fd in &pending.input.fds {
                if let Ok(copy) = fd.try_clone() {
                    worker.out_fds.push_back(copy);
                }
            }
            worker.in_flight.insert(id, pending);
        }
        worker.sent += tasks.len() as u64;
        let message = ToWorker::Run {
            name: name.to_owned(),
            record,
            tasks,
        };
        // Inputs were encoded by postcard already: a frame of them always encodes. Keep the
        // input bytes for retries by decoding them back out of the message.
        encode_frame(&message, &mut worker.out).expect("a batch of encoded inputs encodes");
        if let ToWorker::Run { tasks, .. } = message {
            for task in tasks {
                if let Some(pending) = worker.in_flight.get_mut(&task.id) {
                    pending.input.bytes = task.input.into_vec();
                }
            }
        }
    }

    fn write_all(&mut self) {
        for worker in &mut self.workers {
            write_some(worker);
        }
    }

    fn wait_for_events(&mut self) {
        let timeout = self.next_deadline().map(|deadline| {
            let left = deadline.saturating_duration_since(Instant::now());
            rustix::time::Timespec::try_from(left).unwrap_or(rustix::time::Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            })
        });
        let readable = {
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
            fds.iter()
                .map(|fd| !fd.revents().is_empty())
                .collect::<Vec<_>>()
        };
        if readable[0] {
            let mut counter = [0_u8; 8];
            let _ = rustix::io::read(&self.wake, &mut counter);
        }
        let mut index = 0;
        let mut flags = readable[1..].iter();
        while index < self.workers.len() {
            let has_events = flags.next().copied().unwrap_or(false);
            if has_events && !self.read_worker(index) {
                self.worker_gone(index);
                continue;
            }
            index += 1;
        }
    }

    /// Reads what a worker sent; false if its stream ended or broke.
    fn read_worker(&mut self, index: usize) -> bool {
        let mut buffer = vec![0_u8; 64 * 1024];
        loop {
            let worker = &mut self.workers[index];
            match recv_with_flags(
                worker.socket.as_fd(),
                &mut buffer,
                0,
                rustix::net::RecvFlags::DONTWAIT,
            ) {
                Ok((0, _)) => return false,
                Ok((read, _)) => {
                    worker.reader.extend(&buffer[..read]);
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
                let _ = worker.child.kill();
                return false;
            };
            match message {
                FromWorker::Hello { .. } => {
                    worker.said_hello = true;
                    self.start_failures = 0;
                }
                FromWorker::Results { busy_ns, results } => {
                    if !results.is_empty() {
                        let per_task = busy_ns as f64 / results.len() as f64;
                        self.task_cost_ns = 0.8 * self.task_cost_ns + 0.2 * per_task;
                    }
                    let pid = worker.pid;
                    for result in results {
                        let Some(pending) = self.workers[index].in_flight.remove(&result.id) else {
                            continue;
                        };
                        let span = result.span.map(|span| SpanInWorker { pid, span });
                        self.finish(
                            pending.job,
                            pending.position,
                            result.outcome.map(ByteBuf::into_vec),
                            span,
                        );
                    }
                    self.retire_if_done(index);
                }
            }
        }
    }

    fn finish(
        &mut self,
        key: JobKey,
        position: usize,
        outcome: Result<Vec<u8>, TaskError>,
        span: Option<SpanInWorker>,
    ) {
        let Some(job) = self.jobs.get_mut(&key) else {
            return;
        };
        (job.deliver)(position, outcome, span);
        job.remaining -= 1;
        if job.remaining == 0 {
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
        let status = worker.child.wait().ok();
        let signal = status.and_then(|status| status.signal());
        let code = status.and_then(|status| status.code());
        // Only the task that was running can have brought the worker down; the ones queued
        // behind it never started, and go to another worker as they are.
        let running = worker.slot.running();
        let mut requeue: Vec<(u64, Pending)> = Vec::new();
        for (id, mut pending) in worker.in_flight.drain() {
            if Some(id) != running || worker.killed_by_us {
                requeue.push((id, pending));
                continue;
            }
            let retries = self.jobs.get(&pending.job).map_or(0, |job| job.retries);
            if pending.attempts < retries {
                pending.attempts += 1;
                requeue.push((id, pending));
            } else {
                self.finish(
                    pending.job,
                    pending.position,
                    Err(TaskError::WorkerDied { signal, code }),
                    None,
                );
            }
        }
        // Back to the front of the queue, in the order they were first sent.
        requeue.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
        for (_, pending) in requeue {
            self.queue.push_front(pending);
        }
        if !worker.said_hello {
            self.start_failures += 1;
            if self.start_failures >= MAX_START_FAILURES || !self.any_ready() {
                self.break_pool(format!(
                    "a worker exited before it started ({}); does main() call triad::init() first?",
                    describe(signal, code)
                ));
                return;
            }
        }
        let work_left = !self.closing || !self.queue.is_empty() || !self.jobs.is_empty();
        if work_left
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
        while let Some(pending) = self.queue.pop_front() {
            self.finish(
                pending.job,
                pending.position,
                Err(TaskError::WorkerStart(reason.clone())),
                None,
            );
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.jobs.values().filter_map(|job| job.deadline).min()
    }

    /// Fails tasks whose job is past its deadline; kills the workers that hold them.
    fn expire_deadlines(&mut self) {
        let now = Instant::now();
        let expired: Vec<JobKey> = self
            .jobs
            .iter()
            .filter(|(_, job)| job.deadline.is_some_and(|deadline| deadline <= now))
            .map(|(key, _)| *key)
            .collect();
        for key in expired {
            let queued: VecDeque<Pending> = {
                let (expired_tasks, kept): (VecDeque<Pending>, VecDeque<Pending>) =
                    std::mem::take(&mut self.queue)
                        .into_iter()
                        .partition(|pending| pending.job == key);
                self.queue = kept;
                expired_tasks
            };
            for pending in queued {
                self.finish(key, pending.position, Err(TaskError::Timeout), None);
            }
            for index in 0..self.workers.len() {
                let ids: Vec<u64> = self.workers[index]
                    .in_flight
                    .iter()
                    .filter(|(_, pending)| pending.job == key)
                    .map(|(id, _)| *id)
                    .collect();
                if ids.is_empty() {
                    continue;
                }
                for id in ids {
                    let pending = self.workers[index]
                        .in_flight
                        .remove(&id)
                        .expect("listed above");
                    self.finish(key, pending.position, Err(TaskError::Timeout), None);
                }
                let worker = &mut self.workers[index];
                worker.killed_by_us = true;
                let _ = worker.child.kill();
            }
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
            let _ = worker.child.wait();
        }
    }

    /// Kills every worker, reaps it, and cancels every task not yet finished.
    fn terminate(&mut self) {
        for worker in &mut self.workers {
            let _ = worker.child.kill();
        }
        for mut worker in std::mem::take(&mut self.workers) {
            let _ = worker.child.wait();
            for (_, pending) in worker.in_flight.drain() {
                self.finish(
                    pending.job,
                    pending.position,
                    Err(TaskError::Cancelled),
                    None,
                );
            }
        }
        while let Some(pending) = self.queue.pop_front() {
            self.finish(
                pending.job,
                pending.position,
                Err(TaskError::Cancelled),
                None,
            );
        }
        // Jobs submitted after the thread stopped listening.
        while let Ok(command) = self.commands.try_recv() {
            if let Command::Submit(mut job) = command {
                for position in 0..job.inputs.len() {
                    (job.deliver)(position, Err(TaskError::Cancelled), None);
                }
            }
        }
    }
}

/// Writes as much of a worker's pending output as the socket takes now.
fn write_some(worker: &mut Worker) {
    while worker.written < worker.out.len() {
        let fds: Vec<OwnedFd> = worker
            .out_fds
            .drain(..worker.out_fds.len().min(MAX_FDS_PER_MESSAGE))
            .collect();
        match send_with_fds(
            worker.socket.as_fd(),
            &[IoSlice::new(&worker.out[worker.written..])],
            &fds,
        ) {
            Ok(written) => worker.written += written,
            Err(_) => {
                // Full (try again when poll says so) or broken (the read side will see the end);
                // the descriptors were not sent, so keep them for the next try.
                for fd in fds.into_iter().rev() {
                    worker.out_fds.push_front(fd);
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
