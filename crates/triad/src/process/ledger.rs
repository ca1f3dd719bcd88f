//! The pool's ledger: where each task of each job is — waiting in the queue, sent to a worker,
//! or settled — with no I/O and no bytes, so that "0 lost, 0 duplicated" can be checked on its
//! own (by the unit and property tests below).
//!
//! Work is tracked in ranges, never task by task: the queue holds ranges of a job's positions,
//! and each worker's in-flight list holds *segments* — a range and the first of the consecutive
//! ids it was sent under (ids count up from 0 per worker). Results come back in id order, so a
//! segment is delivered front to back.
//!
//! The invariant: every position of a live job is in exactly one place — queued, undelivered in
//! one worker's segment, or settled — and is settled at most once. [`Ledger::settle`] is the only
//! way to settle; a second settlement of one position is refused, counted
//! ([`Ledger::duplicates`]) and, in debug builds, a panic.
//!
//! When a worker dies, only the task it was running can have brought it down (its slot page
//! names it; with no name, the first undelivered task takes the blame, so that a task that kills
//! every worker runs out of attempts instead of being re-sent for ever). That task runs again if
//! attempts remain and otherwise fails; the tasks behind it never started and go back to the
//! front of the queue as they were. A worker that had not started, or that the pool killed
//! itself, blames nobody.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

/// A job's key in the ledger.
pub(crate) type JobKey = u64;
/// A worker's key in the ledger (its pid).
pub(crate) type WorkerKey = u32;

/// A map keyed by job or worker: the keys are small integers of our own making, so one
/// multiplication spreads them well enough, where SipHash would cost a noticeable share of a
/// tiny task's whole dispatch (several lookups per task).
pub(crate) type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

/// Fibonacci hashing of an integer key (`KeyMap`'s hasher).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte) ^ self.0.rotate_left(8));
        }
    }

    fn write_u32(&mut self, key: u32) {
        self.write_u64(u64::from(key));
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// What [`Ledger::settle`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The task is settled; `last` when it was its job's last.
    Now { last: bool },
    /// Refused: it was settled already, or its job is gone (counted as a duplicate).
    Already,
}

struct JobState {
    settled: Vec<bool>,
    unsettled: usize,
    /// How many times a task may run again after its worker died under it.
    retries: u32,
}

/// Positions of a job waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Queued {
    job: JobKey,
    positions: Range<usize>,
    /// Runs so far that ended with the worker's death (all of the range has the same count).
    attempts: u32,
}

/// Positions of a job sent to a worker under consecutive ids from `first_id`.
#[derive(Debug)]
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

    fn next_id(&self) -> u64 {
        self.first_id + self.done as u64
    }
}

#[derive(Debug, Default)]
struct WorkerTasks {
    segments: VecDeque<Segment>,
    /// Undelivered tasks in `segments`.
    tasks: usize,
    /// The id the next task sent to this worker gets.
    next_id: u64,
}

/// A result that came back with an id the worker was not sent (or not next).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutOfOrder {
    pub(crate) id: u64,
}

/// What a worker's death did to the tasks it held.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Death {
    /// Positions that ran out of attempts: they fail (settle them).
    pub(crate) failed: Vec<(JobKey, usize)>,
    /// How many tasks went back to the queue.
    pub(crate) requeued: usize,
}

/// See the module doc.
#[derive(Default)]
pub(crate) struct Ledger {
    jobs: KeyMap<JobKey, JobState>,
    queue: VecDeque<Queued>,
    queued: usize,
    workers: KeyMap<WorkerKey, WorkerTasks>,
    duplicates: u64,
}

impl Ledger {
    /// A new job of `count` tasks, queued at the back.
    pub(crate) fn submit(&mut self, job: JobKey, count: usize, retries: u32) {
        debug_assert!(!self.jobs.contains_key(&job), "job keys are not reused");
        if count == 0 {
            return;
        }
        self.jobs.insert(
            job,
            JobState {
                settled: vec![false; count],
                unsettled: count,
                retries,
            },
        );
        self.queue.push_back(Queued {
            job,
            positions: 0..count,
            attempts: 0,
        });
        self.queued += count;
    }

    /// Whether every task of every job is settled.
    pub(crate) fn is_idle(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Tasks waiting to be sent.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Tasks not yet settled, waiting or at a worker.
    pub(crate) fn unsettled(&self) -> usize {
        self.jobs.values().map(|job| job.unsettled).sum()
    }

    /// Settlements refused because the task was settled already: 0, unless the pool has a bug.
    pub(crate) fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Starts an account for a new worker.
    pub(crate) fn add_worker(&mut self, worker: WorkerKey) {
        self.workers.insert(worker, WorkerTasks::default());
    }

    /// Undelivered tasks at `worker`.
    pub(crate) fn in_flight(&self, worker: WorkerKey) -> usize {
        self.workers.get(&worker).map_or(0, |tasks| tasks.tasks)
    }

    /// How many tasks `worker` has been sent in all.
    pub(crate) fn sent(&self, worker: WorkerKey) -> u64 {
        self.workers.get(&worker).map_or(0, |tasks| tasks.next_id)
    }

    /// Whether `worker` holds an undelivered task of `job`.
    pub(crate) fn holds(&self, worker: WorkerKey, job: JobKey) -> bool {
        self.workers.get(&worker).is_some_and(|tasks| {
            tasks
                .segments
                .iter()
                .any(|segment| segment.job == job && segment.next_id() < segment.end_id())
        })
    }

    /// The range at the front of the queue.
    pub(crate) fn front(&self) -> Option<(JobKey, Range<usize>)> {
        self.queue
            .front()
            .map(|queued| (queued.job, queued.positions.clone()))
    }

    /// Sends the front range's positions up to `end` to `worker`; returns the id of the first.
    ///
    /// # Panics
    ///
    /// When the queue is empty or `end` is not inside the front range (a dispatcher bug).
    pub(crate) fn send_front(&mut self, worker: WorkerKey, end: usize) -> u64 {
        let queued = self.queue.front_mut().expect("the queue has a front range");
        assert!(queued.positions.start < end && end <= queued.positions.end);
        let positions = queued.positions.start..end;
        let tasks = self.workers.entry(worker).or_default();
        let first_id = tasks.next_id;
        tasks.next_id += positions.len() as u64;
        tasks.tasks += positions.len();
        self.queued -= positions.len();
        tasks.segments.push_back(Segment {
            first_id,
            job: queued.job,
            positions: positions.clone(),
            done: 0,
            attempts: queued.attempts,
        });
        queued.positions.start = end;
        if queued.positions.is_empty() {
            self.queue.pop_front();
        }
        first_id
    }

    /// `worker` sent the result of task `id`: which position it answers, if its job is still
    /// live (a job that timed out is gone, and its late results are dropped).
    pub(crate) fn delivered(
        &mut self,
        worker: WorkerKey,
        id: u64,
    ) -> Result<Option<(JobKey, usize)>, OutOfOrder> {
        let tasks = self.workers.get_mut(&worker).ok_or(OutOfOrder { id })?;
        let segment = tasks.segments.front_mut().ok_or(OutOfOrder { id })?;
        if id != segment.next_id() {
            return Err(OutOfOrder { id });
        }
        let position = segment.positions.start + segment.done;
        let job = segment.job;
        segment.done += 1;
        if segment.next_id() == segment.end_id() {
            tasks.segments.pop_front();
        }
        tasks.tasks -= 1;
        Ok(self.jobs.contains_key(&job).then_some((job, position)))
    }

    /// Settles `position` of `job`, once: a second settlement (or one after its job ended) is
    /// refused and counted as a duplicate.
    pub(crate) fn settle(&mut self, job: JobKey, position: usize) -> Settled {
        let Some(state) = self.jobs.get_mut(&job) else {
            self.duplicates += 1;
            debug_assert!(
                false,
                "task {position} of job {job} settled after its job ended"
            );
            return Settled::Already;
        };
        if std::mem::replace(&mut state.settled[position], true) {
            self.duplicates += 1;
            debug_assert!(false, "task {position} of job {job} settled twice");
            return Settled::Already;
        }
        state.unsettled -= 1;
        let last = state.unsettled == 0;
        if last {
            self.jobs.remove(&job);
        }
        Settled::Now { last }
    }

    /// `worker` is gone. `running` is the task its slot page named; with `blame` false (it never
    /// started, or the pool killed it) no task is at fault. See the module doc.
    pub(crate) fn worker_gone(
        &mut self,
        worker: WorkerKey,
        running: Option<u64>,
        blame: bool,
    ) -> Death {
        let Some(mut tasks) = self.workers.remove(&worker) else {
            return Death::default();
        };
        let live = |segment: &Segment, jobs: &KeyMap<JobKey, JobState>| {
            jobs.contains_key(&segment.job) && segment.next_id() < segment.end_id()
        };
        let blamed = if blame {
            running
                .filter(|id| {
                    tasks.segments.iter().any(|segment| {
                        live(segment, &self.jobs)
                            && (segment.next_id()..segment.end_id()).contains(id)
                    })
                })
                .or_else(|| {
                    tasks
                        .segments
                        .iter()
                        .find(|segment| live(segment, &self.jobs))
                        .map(Segment::next_id)
                })
        } else {
            None
        };
        let mut death = Death::default();
        let mut requeue = Vec::new();
        for segment in tasks.segments.drain(..) {
            if !live(&segment, &self.jobs) {
                continue;
            }
            let undelivered = segment.positions.start + segment.done..segment.positions.end;
            let blamed = blamed
                .filter(|id| (segment.first_id..segment.end_id()).contains(id))
                .map(|id| segment.positions.start + (id - segment.first_id) as usize);
            let back = |positions: Range<usize>, attempts: u32| Queued {
                job: segment.job,
                positions,
                attempts,
            };
            let Some(blamed) = blamed else {
                requeue.push(back(undelivered, segment.attempts));
                continue;
            };
            if undelivered.start < blamed {
                requeue.push(back(undelivered.start..blamed, segment.attempts));
            }
            if segment.attempts < self.jobs[&segment.job].retries {
                requeue.push(back(blamed..blamed + 1, segment.attempts + 1));
            } else {
                death.failed.push((segment.job, blamed));
            }
            if blamed + 1 < undelivered.end {
                requeue.push(back(blamed + 1..undelivered.end, segment.attempts));
            }
        }
        for queued in requeue.into_iter().rev() {
            death.requeued += queued.positions.len();
            self.queued += queued.positions.len();
            self.queue.push_front(queued);
        }
        death
    }

    /// Takes `job` out of the queue (it ran past its deadline): its unsettled positions, for the
    /// caller to settle as timed out, and the workers that hold some of them.
    pub(crate) fn expire(&mut self, job: JobKey) -> (Vec<usize>, Vec<WorkerKey>) {
        let mut dequeued = 0;
        self.queue.retain(|queued| {
            if queued.job == job {
                dequeued += queued.positions.len();
            }
            queued.job != job
        });
        self.queued -= dequeued;
        let holders = self
            .workers
            .keys()
            .copied()
            .filter(|worker| self.holds(*worker, job))
            .collect();
        let unsettled = self.jobs.get(&job).map_or_else(Vec::new, |state| {
            (0..state.settled.len())
                .filter(|position| !state.settled[*position])
                .collect()
        });
        (unsettled, holders)
    }

    /// Empties the queue (no worker can start): its positions, for the caller to settle.
    pub(crate) fn drain_queue(&mut self) -> Vec<(JobKey, usize)> {
        self.queued = 0;
        self.queue
            .drain(..)
            .flat_map(|queued| queued.positions.map(move |position| (queued.job, position)))
            .collect()
    }
}

#[cfg(test)]
mod tests;
