use proptest::prelude::*;

use super::*;

/// Sends everything queued to `worker`, range by range.
fn send_all(ledger: &mut Ledger, worker: WorkerKey) -> Vec<(u64, JobKey, Range<usize>)> {
    let mut sent = Vec::new();
    while let Some((job, positions)) = ledger.front() {
        let first = ledger.send_front(worker, positions.end);
        sent.push((first, job, positions));
    }
    sent
}

#[test]
fn a_job_is_sent_delivered_and_settled_once() {
    let mut ledger = Ledger::default();
    ledger.submit(7, 3, 0);
    ledger.add_worker(1);
    assert_eq!(ledger.queued(), 3);
    assert_eq!(ledger.send_front(1, 2), 0);
    assert_eq!(ledger.front(), Some((7, 2..3)));
    assert_eq!(ledger.send_front(1, 3), 2);
    assert_eq!(
        (ledger.queued(), ledger.in_flight(1), ledger.sent(1)),
        (0, 3, 3)
    );
    for (id, position) in [(0, 0), (1, 1), (2, 2)] {
        assert_eq!(ledger.delivered(1, id), Ok(Some((7, position))));
        assert_eq!(
            ledger.settle(7, position),
            Settled::Now {
                last: position == 2
            }
        );
    }
    assert!(ledger.is_idle());
    assert_eq!(ledger.duplicates(), 0);
}

#[test]
fn a_result_out_of_order_is_refused() {
    let mut ledger = Ledger::default();
    ledger.submit(1, 2, 0);
    ledger.add_worker(9);
    ledger.send_front(9, 2);
    assert_eq!(ledger.delivered(9, 1), Err(OutOfOrder { id: 1 }));
    assert_eq!(ledger.delivered(8, 0), Err(OutOfOrder { id: 0 }));
}

#[test]
#[cfg_attr(debug_assertions, should_panic(expected = "settled twice"))]
fn a_second_settlement_is_refused_and_counted() {
    let mut ledger = Ledger::default();
    ledger.submit(1, 2, 0);
    assert_eq!(ledger.settle(1, 0), Settled::Now { last: false });
    assert_eq!(ledger.settle(1, 0), Settled::Already);
    assert_eq!(ledger.duplicates(), 1);
}

#[test]
fn the_running_task_is_blamed_and_the_rest_go_back_in_order() {
    let mut ledger = Ledger::default();
    ledger.submit(1, 5, 0);
    ledger.add_worker(2);
    ledger.send_front(2, 5);
    assert_eq!(ledger.delivered(2, 0), Ok(Some((1, 0))));
    ledger.settle(1, 0);
    // Task id 2 (position 2) was running.
    let death = ledger.worker_gone(2, Some(2), true);
    assert_eq!(death.failed, vec![(1, 2)]);
    assert_eq!(death.requeued, 3);
    assert_eq!(ledger.front(), Some((1, 1..2)));
    ledger.add_worker(3);
    let sent = send_all(&mut ledger, 3);
    let ranges: Vec<_> = sent.iter().map(|(_, _, range)| range.clone()).collect();
    assert_eq!(ranges, [1..2, 3..5]);
}

#[test]
fn with_retries_the_blamed_task_runs_again_then_fails() {
    let mut ledger = Ledger::default();
    ledger.submit(1, 1, 1);
    for (worker, failed) in [(1, false), (2, true)] {
        ledger.add_worker(worker);
        ledger.send_front(worker, 1);
        let death = ledger.worker_gone(worker, Some(0), true);
        assert_eq!(death.failed.is_empty(), !failed, "worker {worker}");
    }
    assert_eq!(ledger.settle(1, 0), Settled::Now { last: true });
    assert!(ledger.is_idle());
}

#[test]
fn a_worker_that_never_started_blames_nobody() {
    let mut ledger = Ledger::default();
    ledger.submit(1, 4, 0);
    ledger.add_worker(1);
    ledger.send_front(1, 4);
    let death = ledger.worker_gone(1, None, false);
    assert_eq!(
        death,
        Death {
            failed: vec![],
            requeued: 4
        }
    );
    assert_eq!(ledger.front(), Some((1, 0..4)));
}

#[test]
fn with_no_running_task_named_the_first_undelivered_takes_the_blame() {
    let mut ledger = Ledger::default();
    ledger.submit(1, 3, 0);
    ledger.add_worker(1);
    ledger.send_front(1, 3);
    ledger.delivered(1, 0).unwrap();
    ledger.settle(1, 0);
    assert_eq!(ledger.worker_gone(1, None, true).failed, vec![(1, 1)]);
}

#[test]
fn an_expired_job_leaves_the_queue_and_its_late_results_are_dropped() {
    let mut ledger = Ledger::default();
    ledger.submit(1, 4, 0);
    ledger.submit(2, 1, 0);
    ledger.add_worker(5);
    ledger.send_front(5, 2);
    let (unsettled, holders) = ledger.expire(1);
    assert_eq!((unsettled, holders), (vec![0, 1, 2, 3], vec![5]));
    assert_eq!(ledger.front(), Some((2, 0..1)));
    for position in 0..4 {
        assert!(matches!(ledger.settle(1, position), Settled::Now { .. }));
    }
    assert_eq!(
        ledger.delivered(5, 0),
        Ok(None),
        "a late result of a job that is gone"
    );
    assert_eq!(ledger.worker_gone(5, Some(1), true), Death::default());
    assert_eq!(ledger.unsettled(), 1);
}

/// One step of a random schedule of the pool's events.
#[derive(Debug, Clone)]
enum Step {
    Submit {
        count: usize,
        retries: u32,
    },
    Start,
    Send {
        worker: usize,
        tasks: usize,
    },
    Deliver {
        worker: usize,
        results: usize,
    },
    Die {
        worker: usize,
        running: Option<usize>,
        blame: bool,
    },
    Expire {
        job: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1_usize..12, 0_u32..3).prop_map(|(count, retries)| Step::Submit { count, retries }),
        Just(Step::Start),
        (0_usize..4, 1_usize..10).prop_map(|(worker, tasks)| Step::Send { worker, tasks }),
        (0_usize..4, 1_usize..10).prop_map(|(worker, results)| Step::Deliver { worker, results }),
        (0_usize..4, prop::option::of(0_usize..8), any::<bool>()).prop_map(
            |(worker, running, blame)| Step::Die {
                worker,
                running,
                blame
            }
        ),
        (0_usize..8).prop_map(|job| Step::Expire { job }),
    ]
}

/// The model: how each position of each job was settled, and how often each failed.
#[derive(Default)]
struct Model {
    /// Per job: its retries and, per position, how many times it was settled.
    jobs: Vec<(u32, Vec<u32>)>,
    workers: Vec<WorkerKey>,
    next_worker: WorkerKey,
}

impl Model {
    fn settle(&mut self, ledger: &mut Ledger, job: JobKey, position: usize) {
        assert!(
            matches!(ledger.settle(job, position), Settled::Now { .. }),
            "job {job} position {position}"
        );
        self.jobs[job as usize].1[position] += 1;
    }

    fn run(&mut self, ledger: &mut Ledger, step: Step) {
        match step {
            Step::Submit { count, retries } => {
                ledger.submit(self.jobs.len() as JobKey, count, retries);
                self.jobs.push((retries, vec![0; count]));
            }
            Step::Start => {
                self.next_worker += 1;
                ledger.add_worker(self.next_worker);
                self.workers.push(self.next_worker);
            }
            Step::Send { worker, tasks } => {
                let Some(&worker) = self.workers.get(worker) else {
                    return;
                };
                let mut left = tasks;
                while let Some((_, positions)) = ledger.front()
                    && left > 0
                {
                    let end = positions.end.min(positions.start.saturating_add(left));
                    left -= end - positions.start;
                    ledger.send_front(worker, end);
                }
            }
            Step::Deliver { worker, results } => {
                let Some(&worker) = self.workers.get(worker) else {
                    return;
                };
                for _ in 0..results.min(ledger.in_flight(worker)) {
                    let id = ledger.sent(worker) - ledger.in_flight(worker) as u64;
                    if let Some((job, position)) = ledger.delivered(worker, id).unwrap() {
                        self.settle(ledger, job, position);
                    }
                }
            }
            Step::Die {
                worker,
                running,
                blame,
            } => {
                if worker >= self.workers.len() {
                    return;
                }
                let worker = self.workers.swap_remove(worker);
                let first_undelivered = ledger.sent(worker) - ledger.in_flight(worker) as u64;
                let running = running.map(|offset| first_undelivered + offset as u64);
                let attempts: HashMap<(JobKey, usize), u32> = ledger.workers[&worker]
                    .segments
                    .iter()
                    .flat_map(|segment| {
                        segment
                            .positions
                            .clone()
                            .map(|position| ((segment.job, position), segment.attempts))
                    })
                    .collect();
                for (job, position) in ledger.worker_gone(worker, running, blame).failed {
                    assert!(blame, "a death without blame failed a task");
                    let retries = self.jobs[job as usize].0;
                    assert_eq!(
                        attempts[&(job, position)],
                        retries,
                        "failed before its retries ran out"
                    );
                    self.settle(ledger, job, position);
                }
            }
            Step::Expire { job } => {
                if job >= self.jobs.len() {
                    return;
                }
                let (unsettled, _) = ledger.expire(job as JobKey);
                for position in unsettled {
                    self.settle(ledger, job as JobKey, position);
                }
            }
        }
    }

    /// Delivers what every worker holds, then runs what is left on one fresh worker.
    fn finish(&mut self, ledger: &mut Ledger) {
        for worker in 0..self.workers.len() {
            self.run(
                ledger,
                Step::Deliver {
                    worker,
                    results: usize::MAX,
                },
            );
        }
        self.workers.clear();
        self.run(ledger, Step::Start);
        self.run(
            ledger,
            Step::Send {
                worker: 0,
                tasks: usize::MAX,
            },
        );
        self.run(
            ledger,
            Step::Deliver {
                worker: 0,
                results: usize::MAX,
            },
        );
    }
}

/// Every unsettled position of a live job is in exactly one place, queued or undelivered at one
/// worker, and the counts agree with the ranges.
fn assert_consistent(ledger: &Ledger) {
    let mut places: HashMap<(JobKey, usize), u32> = HashMap::new();
    let mut queued = 0;
    for range in &ledger.queue {
        queued += range.positions.len();
        for position in range.positions.clone() {
            *places.entry((range.job, position)).or_default() += 1;
        }
    }
    assert_eq!(queued, ledger.queued, "the queue's count");
    for tasks in ledger.workers.values() {
        let mut undelivered = 0;
        for segment in &tasks.segments {
            undelivered += segment.positions.len() - segment.done;
            for position in segment.positions.start + segment.done..segment.positions.end {
                if ledger.jobs.contains_key(&segment.job) {
                    *places.entry((segment.job, position)).or_default() += 1;
                }
            }
        }
        assert_eq!(undelivered, tasks.tasks, "a worker's count");
    }
    for (job, state) in &ledger.jobs {
        for (position, settled) in state.settled.iter().enumerate() {
            let count = places.get(&(*job, position)).copied().unwrap_or(0);
            let expected = if *settled { 0 } else { 1 };
            assert_eq!(
                count, expected,
                "job {job} position {position} (settled: {settled})"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_task_is_settled_exactly_once(steps in prop::collection::vec(step(), 0..80)) {
        let mut ledger = Ledger::default();
        let mut model = Model::default();
        for step in steps {
            model.run(&mut ledger, step);
            assert_consistent(&ledger);
        }
        model.finish(&mut ledger);
        prop_assert!(ledger.is_idle(), "{} tasks never settled", ledger.unsettled());
        prop_assert_eq!(ledger.duplicates(), 0);
        for (job, (_, settled)) in model.jobs.iter().enumerate() {
            for (position, times) in settled.iter().enumerate() {
                prop_assert_eq!(*times, 1, "job {} position {}", job, position);
            }
        }
    }
}
