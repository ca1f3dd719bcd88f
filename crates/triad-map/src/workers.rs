//! Persistent worker processes in any language, one line in and one line out.
//!
//! A worker is a program started once and fed batch after batch on its stdin; it answers each
//! record with one line on its stdout (the Hadoop Streaming contract). Two protocols:
//!
//! - [`Protocol::Lines`] (`--cmd`): the records' lines as they are. Writing and reading run at
//!   once, so a program may answer as it reads; its answers arrive line by line, and a death
//!   or a timeout is blamed on the record whose answer was next.
//! - [`Protocol::Framed`] (`--py`): a line with the batch's record count, then the records; the
//!   harness answers the whole batch at once. A death or a timeout inside a batch cannot say
//!   which record caused it, so the unanswered records are run again one at a time, where it
//!   can.
//!
//! From the Python harness, an answer line starting with the byte `0x1E` (ASCII record
//! separator, which no JSON text starts with) reports that the function raised: the rest of
//! the line is the reason (a `--cmd` program's lines are taken as they are). A record that fails — its worker died or timed out on it, its answer is not
//! valid JSON where JSON is expected, its function raised — runs again, up to `retries` times,
//! on a fresh run of its own; then it fails for good, with its worker's last stderr lines.
//!
//! Workers run in process groups of their own, die with this process (`PR_SET_PDEATHSIG`), and
//! a group is killed whole when its worker is replaced. Their stderr passes through, each line
//! prefixed `[worker N]`.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::Semaphore;

use crate::input::Format;
use crate::records::{Batch, Done, Failure, check_answer, check_harness_answer};

/// How a worker is fed and answers; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// One line in, one line out, answered as they come (`--cmd`).
    Lines,
    /// A count line, then the records; answered per batch (`--py`).
    Framed,
}

/// What a pool of workers runs, and how.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// The program and its arguments.
    pub argv: Vec<OsString>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// How it is fed.
    pub protocol: Protocol,
    /// What its answers must be (JSON, unless raw lines).
    pub format: Format,
    /// How long one record may take (a framed batch of n, n times this).
    pub timeout: Option<Duration>,
    /// Runs again of a failed record before it fails for good.
    pub retries: u32,
    /// Whether a new worker first writes one line, `ok` or why it cannot run (the harness).
    pub handshake: bool,
}

/// The capacity asked for the pipes to and from a worker.
const PIPE_SIZE: libc::c_int = 1 << 20;
/// Stderr lines kept per worker, for a failed record's report.
const STDERR_TAIL: usize = 20;

/// Where workers' stderr lines go (the CLI prints them; tests collect them).
pub type StderrSink = Arc<dyn Fn(&str) + Send + Sync>;

/// One running worker.
struct Worker {
    id: u64,
    child: Child,
    /// `None` once closed (at the end of the run).
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    tail: Arc<Mutex<VecDeque<String>>>,
    /// Records it has answered, for telling a start failure from a later death.
    answered: u64,
}

impl Worker {
    fn tail(&self) -> Vec<String> {
        self.tail
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Kills the worker's whole process group and reaps it; how it ended, in words.
    async fn end(mut self) -> String {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill has no memory-safety preconditions; the worker leads its own group.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        }
        match self.child.wait().await {
            Ok(status) => describe(status),
            Err(error) => format!("its exit status was lost: {error}"),
        }
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "no status".to_owned(),
    }
}

/// How one run of records on a worker ended.
enum Ending {
    /// Every record answered.
    Answered,
    /// The worker's stdout ended (it died, or exited) after the answers read so far.
    Died,
    /// No answer within the time allowed.
    TimedOut,
    /// It answered more lines than it was sent: its answers cannot be trusted.
    Extra,
}

/// A fixed number of workers, started as needed and replaced when they fail.
pub struct WorkerPool {
    spec: WorkerSpec,
    names: Vec<String>,
    size: usize,
    free: Semaphore,
    idle: Mutex<Vec<Worker>>,
    next_id: AtomicU64,
    stderr: StderrSink,
    /// Set when the workers cannot run at all (the program is missing, say): the run stops.
    fatal: OnceLock<String>,
    /// Workers started so far.
    pub started: AtomicUsize,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("spec", &self.spec)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Where a record's answer line is: which run's buffer, and where in it.
type AnswerAt = (usize, std::ops::Range<usize>);

/// A batch in progress: each record's answer (a line in one of the runs' buffers) or
/// failure, and the runs still to do.
struct BatchState {
    answers: Vec<Option<Result<AnswerAt, Failure>>>,
    buffers: Vec<Vec<u8>>,
    runs: VecDeque<Vec<Pending>>,
    retried: u64,
}

impl BatchState {
    /// The batch's outcome: its output lines in input order, its failures.
    fn finish(self, batch: Batch) -> Done {
        let mut done = Done {
            first: batch.first,
            records: batch.records(),
            failures: batch.malformed,
            retried: self.retried,
            ..Done::default()
        };
        let BatchState {
            answers,
            mut buffers,
            ..
        } = self;
        // The common case: one run answered every record; its buffer is the output.
        let whole = buffers.len() == 1
            && answers
                .iter()
                .all(|answer| matches!(answer, Some(Ok((0, _)))));
        if whole {
            done.succeeded = answers.len() as u64;
            done.output = buffers.pop().expect("one buffer");
            return done;
        }
        for answer in answers {
            match answer.expect("every record is answered before the batch is done") {
                Ok((buffer, line)) => {
                    done.output.extend_from_slice(&buffers[buffer][line]);
                    done.output.push(b'\n');
                    done.succeeded += 1;
                }
                Err(failure) => done.failures.push(failure),
            }
        }
        done.failures.sort_by_key(|failure| failure.order);
        done
    }
}

/// One record on its way through a worker: its place in the batch and its runs so far.
#[derive(Debug, Clone, Copy)]
struct Pending {
    index: usize,
    failures: u32,
}

impl WorkerPool {
    /// A pool of `size` workers running `spec`; `names` are the inputs' names for failures.
    pub fn new(spec: WorkerSpec, size: usize, names: Vec<String>, stderr: StderrSink) -> Self {
        WorkerPool {
            spec,
            names,
            size: size.max(1),
            free: Semaphore::new(size.max(1)),
            idle: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            stderr,
            fatal: OnceLock::new(),
            started: AtomicUsize::new(0),
        }
    }

    /// Why the workers cannot run at all, once that is known.
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.get().map(String::as_str)
    }

    /// Starts one worker and its stderr relay.
    fn spawn(&self) -> io::Result<Worker> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut command = tokio::process::Command::new(&self.spec.argv[0]);
        command
            .args(&self.spec.argv[1..])
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: between fork and exec the child only calls prctl and getppid, plain system
        // calls that are async-signal-safe.
        unsafe {
            let parent = std::process::id() as i32;
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        self.started.fetch_add(1, Ordering::Relaxed);
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        // Pipes of 1 MiB (Linux's default ceiling for anyone): a batch crosses in a few
        // writes instead of sixteen 64 KiB round trips between us and the worker.
        for fd in [
            std::os::fd::AsRawFd::as_raw_fd(&stdin),
            std::os::fd::AsRawFd::as_raw_fd(&stdout),
        ] {
            // SAFETY: F_SETPIPE_SZ on a pipe we own changes only its capacity; a refusal (a
            // lower pipe-max-size) leaves the default, which works, slower.
            unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_SIZE) };
        }
        let stdout = BufReader::with_capacity(PIPE_SIZE as usize, stdout);
        let stderr = child.stderr.take().expect("stderr is piped");
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let relay_tail = tail.clone();
        let sink = self.stderr.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink(&format!("[worker {id}] {line}"));
                let mut tail = relay_tail.lock().unwrap_or_else(PoisonError::into_inner);
                if tail.len() == STDERR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
        Ok(Worker {
            id,
            child,
            stdin: Some(stdin),
            stdout,
            tail,
            answered: 0,
        })
    }

    /// Transforms a batch: every record ends as an output line or a failure, none is lost.
    pub async fn transform(&self, batch: Batch) -> Done {
        let mut state = BatchState {
            answers: (0..batch.len()).map(|_| None).collect(),
            buffers: Vec::new(),
            runs: VecDeque::new(),
            retried: 0,
        };
        if !batch.is_empty() {
            state.runs.push_back(
                (0..batch.len())
                    .map(|index| Pending { index, failures: 0 })
                    .collect(),
            );
        }
        while let Some(run) = state.runs.pop_front() {
            if let Some(reason) = self.fatal() {
                for pending in run {
                    state.answers[pending.index] =
                        Some(Err(self.failure(&batch, pending.index, reason, vec![])));
                }
                continue;
            }
            self.run_once(&batch, run, &mut state).await;
        }
        state.finish(batch)
    }

    fn failure(&self, batch: &Batch, index: usize, reason: &str, stderr: Vec<String>) -> Failure {
        let origin = batch.origins[index];
        let mut record = batch.record(index).to_vec();
        record.pop();
        Failure {
            record: String::from_utf8_lossy(&record).into_owned(),
            input: self.names[origin.input as usize].clone(),
            line: origin.line,
            reason: reason.to_owned(),
            stderr,
            order: (origin.input, origin.line),
        }
    }

    /// Takes a free worker, starting one if none is idle.
    async fn checkout(&self) -> Result<Worker, String> {
        let permit = self
            .free
            .acquire()
            .await
            .expect("the pool's semaphore stays open");
        permit.forget();
        if let Some(worker) = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
        {
            return Ok(worker);
        }
        let started = match self.spawn() {
            Ok(worker) => self.greet(worker).await,
            Err(error) => Err(format!("could not start a worker: {error}")),
        };
        if started.is_err() {
            self.free.add_permits(1);
        }
        started
    }

    /// Reads a new worker's first line when the protocol has one; a worker that cannot run
    /// makes the whole pool unusable ([`fatal`](Self::fatal)).
    async fn greet(&self, mut worker: Worker) -> Result<Worker, String> {
        if !self.spec.handshake {
            return Ok(worker);
        }
        let mut line = String::new();
        let read =
            tokio::time::timeout(Duration::from_secs(60), worker.stdout.read_line(&mut line)).await;
        match read {
            Ok(Ok(_)) if line.trim_end() == "ok" => Ok(worker),
            Ok(_) => {
                let tail = worker.tail();
                let status = worker.end().await;
                let reason = match line.trim_end() {
                    "" => tail
                        .last()
                        .cloned()
                        .unwrap_or_else(|| format!("it ended ({status})")),
                    said => said.to_owned(),
                };
                let _ = self.fatal.set(format!("the worker cannot run: {reason}"));
                Err(reason)
            }
            Err(_) => {
                let _ = worker.end().await;
                Err("the worker did not start within 60 s".to_owned())
            }
        }
    }

    /// Starts one worker now and checks that it can run (see [`fatal`](Self::fatal)).
    pub async fn preflight(&self) -> Result<(), String> {
        let worker = self.checkout().await?;
        self.checkin(worker);
        Ok(())
    }

    /// Ends every idle worker: its stdin closes, so a well-behaved program exits; one that has
    /// not after a second is killed with its process group.
    pub async fn close(&self) {
        let workers: Vec<Worker> =
            std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        for mut worker in workers {
            drop(worker.stdin.take());
            if tokio::time::timeout(Duration::from_secs(1), worker.child.wait())
                .await
                .is_err()
            {
                let _ = worker.end().await;
            }
        }
    }

    fn checkin(&self, worker: Worker) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(worker);
        self.free.add_permits(1);
    }

    /// Runs `run`'s records once on one worker; answers what it can, queues what runs again.
    async fn run_once(&self, batch: &Batch, run: Vec<Pending>, state: &mut BatchState) {
        let mut worker = match self.checkout().await {
            Ok(worker) => worker,
            Err(reason) => {
                for pending in run {
                    state.answers[pending.index] =
                        Some(Err(self.failure(batch, pending.index, &reason, vec![])));
                }
                return;
            }
        };
        let (lines, ending) = exchange(&mut worker, batch, &run, &self.spec).await;
        let answered = lines.ends.len();
        worker.answered += answered as u64;
        let buffer = state.buffers.len();
        // What each answer says.
        let mut charge = Vec::new();
        let check = match self.spec.protocol {
            Protocol::Framed => check_harness_answer,
            Protocol::Lines => check_answer,
        };
        for (position, pending) in run.iter().enumerate().take(answered) {
            let line = lines.line(position);
            match check(&lines.buffer[line.clone()], self.spec.format) {
                Ok(()) => state.answers[pending.index] = Some(Ok((buffer, line))),
                Err(reason) => charge.push((*pending, reason)),
            }
        }
        state.buffers.push(lines.buffer);
        let unanswered = &run[answered..];
        let tail = worker.tail();
        match ending {
            Ending::Answered => self.checkin(worker),
            Ending::Died | Ending::TimedOut | Ending::Extra => {
                let never_answered = worker.answered == 0;
                let id = worker.id;
                let status = worker.end().await;
                self.free.add_permits(1);
                let reason = match ending {
                    Ending::TimedOut => {
                        format!("worker {id} took longer than the time limit ({status} after)")
                    }
                    Ending::Extra => format!("worker {id} answered more lines than it was sent"),
                    _ => format!("worker {id} ended ({status})"),
                };
                if never_answered && matches!(ending, Ending::Died) && is_start_failure(&status) {
                    let _ = self.fatal.set(format!(
                        "the worker program cannot run ({status}): {}",
                        tail.last().map_or("no message", String::as_str)
                    ));
                }
                if matches!(ending, Ending::Extra) {
                    // Its answers are suspect: every record of the run is charged, once.
                    charge.clear();
                    for pending in &run {
                        state.answers[pending.index] = None;
                        charge.push((*pending, reason.clone()));
                    }
                } else if matches!(ending, Ending::Died)
                    && status == "exit code 0"
                    && !never_answered
                {
                    // It chose to end (as a worker that recycles itself after N records): the
                    // records it did not answer were never its fault, so they go again, free.
                    state.runs.push_back(unanswered.to_vec());
                } else if unanswered.len() == 1 || self.spec.protocol == Protocol::Lines {
                    // The record whose answer was next was the one running.
                    if let Some(first) = unanswered.first() {
                        charge.push((*first, reason.clone()));
                    }
                    if unanswered.len() > 1 {
                        state.runs.push_back(unanswered[1..].to_vec());
                    }
                } else {
                    // A framed batch cannot say which record it was: each runs alone, where
                    // it can.
                    for pending in unanswered {
                        state.runs.push_back(vec![*pending]);
                    }
                }
            }
        }
        for (pending, reason) in charge {
            let failures = pending.failures + 1;
            if failures <= self.spec.retries {
                state.retried += 1;
                state.runs.push_back(vec![Pending {
                    index: pending.index,
                    failures,
                }]);
            } else {
                state.answers[pending.index] = Some(Err(self.failure(
                    batch,
                    pending.index,
                    &reason,
                    tail.clone(),
                )));
            }
        }
    }
}

/// Exit codes of a program that could not be run at all: not found, not executable.
fn is_start_failure(status: &str) -> bool {
    status == "exit code 127" || status == "exit code 126"
}

/// A run's answers: its lines end to end, each ending in `\n`.
#[derive(Debug, Default)]
struct Answers {
    buffer: Vec<u8>,
    /// Where each line ends in `buffer` (after its newline).
    ends: Vec<usize>,
}

impl Answers {
    fn line(&self, index: usize) -> std::ops::Range<usize> {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        start..self.ends[index] - 1
    }
}

/// Sends `run`'s records to `worker` and reads its answers, at the same time (a program may
/// answer before it has read everything, and a full pipe must never stall both sides).
async fn exchange(
    worker: &mut Worker,
    batch: &Batch,
    run: &[Pending],
    spec: &WorkerSpec,
) -> (Answers, Ending) {
    let header = match spec.protocol {
        Protocol::Framed => format!("{}\n", run.len()).into_bytes(),
        Protocol::Lines => Vec::new(),
    };
    let records: std::borrow::Cow<'_, [u8]> = if run.len() == batch.len() {
        std::borrow::Cow::Borrowed(&batch.data)
    } else {
        let mut picked = Vec::new();
        for pending in run {
            picked.extend_from_slice(batch.record(pending.index));
        }
        std::borrow::Cow::Owned(picked)
    };
    let Worker { stdin, stdout, .. } = worker;
    let write = async {
        // A worker that died is seen by the reader; the write's own error adds nothing.
        if let Some(stdin) = stdin {
            let _ = stdin.write_all(&header).await;
            let _ = stdin.write_all(&records).await;
            let _ = stdin.flush().await;
        }
    };
    let read = read_lines(stdout, run.len(), spec);
    let ((), outcome) = tokio::join!(write, read);
    outcome
}

/// Reads `count` lines into one buffer, each within the time limit of a record (a framed
/// batch's first within `count` times it, as its answers come together).
async fn read_lines(
    stdout: &mut BufReader<ChildStdout>,
    count: usize,
    spec: &WorkerSpec,
) -> (Answers, Ending) {
    let mut answers = Answers {
        buffer: Vec::with_capacity(count * 64),
        ends: Vec::with_capacity(count),
    };
    let first_limit = match spec.protocol {
        Protocol::Framed => spec.timeout.map(|limit| limit * count as u32),
        Protocol::Lines => spec.timeout,
    };
    let mut deadline = first_limit.map(|limit| tokio::time::Instant::now() + limit);
    while answers.ends.len() < count {
        let filled = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, stdout.fill_buf()).await {
                Ok(filled) => filled,
                Err(_) => return (answers, Ending::TimedOut),
            },
            None => stdout.fill_buf().await,
        };
        let available = match filled {
            Ok(available) if !available.is_empty() => available,
            _ => return (answers, Ending::Died),
        };
        // Take whole lines up to the count; a partial line waits for the rest.
        let mut taken = 0;
        let before = answers.ends.len();
        for newline in memchr::memchr_iter(b'\n', available) {
            answers.ends.push(answers.buffer.len() + newline + 1);
            taken = newline + 1;
            if answers.ends.len() == count {
                break;
            }
        }
        let consumed = if answers.ends.len() == count {
            taken
        } else {
            available.len()
        };
        answers.buffer.extend_from_slice(&available[..consumed]);
        stdout.consume(consumed);
        if answers.ends.len() > before {
            deadline = spec
                .timeout
                .map(|limit| tokio::time::Instant::now() + limit);
        }
    }
    // Nothing more may have come: an extra line would shift every later answer.
    let extra = !stdout.buffer().is_empty()
        || matches!(
            tokio::time::timeout(Duration::ZERO, stdout.fill_buf()).await,
            Ok(Ok(buffer)) if !buffer.is_empty()
        );
    (
        answers,
        if extra {
            Ending::Extra
        } else {
            Ending::Answered
        },
    )
}
