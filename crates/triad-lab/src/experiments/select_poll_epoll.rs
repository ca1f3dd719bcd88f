//! `select-poll-epoll` (seed §5.3.4): the cost of one readiness wait against the number of
//! descriptors watched.
//!
//! N descriptors are watched for reading: N − 1 idle datagram sockets (one descriptor each, so
//! that 10,000 fit under the usual limit of open files) and one socket that always holds an
//! unread datagram, opened last so that it has the highest number and comes last in every set.
//! Every call therefore finds exactly one ready descriptor — many idle connections, one active —
//! and `select(2)` and `poll(2)` look at every idle descriptor before they reach it, while
//! `epoll_wait(2)` reads the ready list of an epoll set built once. The time per call is the
//! median over batches of calls, after a warm-up that also sizes the batches. `select` stops at
//! `FD_SETSIZE` (1024) descriptors, as glibc's `fd_set` and CPython's `select.select` do.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use rustix::event::{FdSetElement, PollFd, PollFlags, Timespec, epoll, fd_set_insert};
use rustix::net::{AddressFamily, SendFlags, SocketFlags, SocketType};
use rustix::process::{Resource, Rlimit};

use crate::error::LabError;
use crate::experiment::{About, ByScale, Experiment, Judgement};
use crate::findings::Findings;
use crate::names::names;
use crate::plan::{Bench, Measured, Plan as Steps, Repeat};
use crate::python::Baseline;
use crate::results::{
    Chart, ChartKind, Implementation, Measurement, Outcome, Point, Scale, Series, Table, Verdict,
};
use crate::stats::{Summary, format_seconds, format_with_spread};
use crate::verdict::{Ratio, verdict};

/// The experiment.
#[derive(Debug)]
pub(crate) struct SelectPollEpoll;

/// The highest descriptor number plus one that an `fd_set` holds (glibc and CPython).
const FD_SETSIZE: usize = libc::FD_SETSIZE;

/// Descriptors kept free beside the watched ones (standard streams, the epoll set, the
/// ready socket's peer, the CPython child's pipes, whatever the test harness holds).
const SPARE_DESCRIPTORS: u64 = 64;

/// How long a wait may block; every call finds a ready descriptor at once, so it never does.
const WAIT_TIMEOUT: Timespec = Timespec {
    tv_sec: 1,
    tv_nsec: 0,
};

/// When the per-descriptor term makes at least this share of the cost at the largest size, the
/// cost is linear in the number of descriptors: O(n).
const LINEAR_SHARE: f64 = 0.5;
/// When it makes at most this share, the cost does not depend on the number: O(1).
const FLAT_SHARE: f64 = 0.2;

names! {
    /// The three readiness interfaces, by their measurement names (the same in
    /// `python/select_poll_epoll.py`).
    enum Method {
        Select => "select",
        Poll => "poll",
        Epoll => "epoll",
    }
}

/// What the CPython script reports of `select.select` on a descriptor past `FD_SETSIZE`
/// (1: it refused it).
const PYTHON_REFUSED_HIGH_FD: &str = "select refuses a descriptor >= FD_SETSIZE";

/// Sizes and repetitions for one scale.
#[derive(Debug, Clone)]
struct Plan {
    sizes: &'static [usize],
    /// Wall time of one batch of calls (one sample).
    batch_time: Duration,
    samples: usize,
}

const SIZES: ByScale<Plan> = ByScale::new(
    Plan {
        sizes: &[10, 100],
        batch_time: Duration::from_micros(500),
        samples: 5,
    },
    Plan {
        sizes: &[10, 100, 1_000, 10_000],
        batch_time: Duration::from_millis(3),
        samples: 9,
    },
    Plan {
        sizes: &[10, 30, 100, 300, 1_000, 3_000, 10_000],
        batch_time: Duration::from_millis(10),
        samples: 21,
    },
);

impl Experiment for SelectPollEpoll {
    fn about(&self) -> About {
        About {
            id: "select-poll-epoll",
            title: "select vs poll vs epoll: readiness-wait cost against the number of \
                    descriptors",
            seed_section: "5.3.4",
        }
    }

    fn measure(&self, bench: Bench<'_>) -> Result<Measured, LabError> {
        let plan = SIZES.at(bench.scale());
        let mut steps = Steps::new();
        let limit = RaisedFileLimit::raise_to(
            *plan.sizes.iter().max().unwrap_or(&0) as u64 + SPARE_DESCRIPTORS,
        )?;
        if let Some(note) = &limit.note {
            steps.note(note.clone());
        }
        let reachable = limit.usable.saturating_sub(SPARE_DESCRIPTORS) as usize;
        if plan.sizes.iter().any(|&n| n > reachable) {
            steps.note(format!(
                "The open-file limit here ({}) leaves room for {reachable} watched descriptors: \
                 larger sizes were skipped.",
                limit.usable
            ));
        }
        let sizes: Vec<usize> = plan
            .sizes
            .iter()
            .copied()
            .filter(|&n| n <= reachable)
            .collect();
        for &n in &sizes {
            steps.step(move |measured| {
                let watched = Watched::open(n)
                    .map_err(|e| LabError::os(format!("opening {n} sockets"), e.into()))?;
                for &method in Method::ALL {
                    if method == Method::Select && watched.highest_fd() as usize >= FD_SETSIZE {
                        if n < FD_SETSIZE {
                            measured.note(format!(
                                "select was skipped at {n} descriptors: their numbers reach {}, \
                                 past FD_SETSIZE ({FD_SETSIZE}).",
                                watched.highest_fd()
                            ));
                        }
                        continue;
                    }
                    let (samples, batch) = measure(&watched, method, plan)?;
                    measured.measurement(
                        Measurement::new(method.name(), Implementation::Rust, "s", samples)
                            .param("descriptors", n)
                            .param("calls_per_sample", batch),
                    );
                }
                Ok(())
            });
        }
        let listed: Vec<String> = sizes.iter().map(usize::to_string).collect();
        steps.python(Baseline::new(
            "select_poll_epoll",
            include_str!("../../python/select_poll_epoll.py"),
            [
                listed.join(","),
                plan.batch_time.as_secs_f64().to_string(),
                plan.samples.to_string(),
            ],
        ));
        let measured = bench.run(steps);
        // CPython inherited the raised limit; it is put back now.
        drop(limit);
        measured
    }

    fn judge(&self, findings: &Findings<'_>) -> Judgement {
        let plan = SIZES.at(findings.scale());
        let sizes: Vec<usize> = plan
            .sizes
            .iter()
            .copied()
            .filter(|&n| find(findings, Method::Poll, Implementation::Rust, n).is_some())
            .collect();
        let python_refused_high_fd = findings
            .get(Implementation::Python, PYTHON_REFUSED_HIGH_FD, &[])
            .map(|m| m.median() > 0.0);
        let listed: Vec<String> = sizes.iter().map(usize::to_string).collect();
        Judgement {
            method: format!(
                "N = {sizes} descriptors are watched for reading, each an AF_UNIX datagram \
                 socket; all are idle but the last (highest-numbered) one, which holds an \
                 unread datagram, so every call returns exactly one ready descriptor at once. \
                 select rebuilds its 1024-bit set from a template before each call (as a C \
                 program must), poll reuses its array, epoll's set is built once and \
                 epoll_wait asks for up to 64 events. A sample is the mean time per call over \
                 a batch sized to about {batch} after a warm-up; {samples} samples per point, \
                 median shown with its interquartile spread. CPython runs select.select, \
                 select.poll and select.epoll on the same kind and number of sockets \
                 (descriptors passed as integers). The verdicts draw cost = fixed + \
                 per-descriptor × n through each method's medians at its smallest and largest \
                 sizes.",
                sizes = listed.join(", "),
                batch = format_seconds(plan.batch_time.as_secs_f64()),
                samples = plan.samples,
            ),
            table: table(&sizes, findings),
            charts: vec![chart(findings)],
            verdicts: verdicts(&sizes, findings, python_refused_high_fd),
            notes: vec![fd_setsize_note()],
        }
    }
}

fn fd_setsize_note() -> String {
    format!(
        "select is not measured past {FD_SETSIZE} descriptors: glibc's fd_set and CPython's \
         select.select hold descriptor numbers below FD_SETSIZE = {FD_SETSIZE} only (the Linux \
         system call itself takes larger bitmaps, but no portable program can pass them)."
    )
}

/// The soft `RLIMIT_NOFILE`, raised towards the hard limit for this process while it lives.
struct RaisedFileLimit {
    original: Rlimit,
    raised: bool,
    /// The soft limit in force.
    usable: u64,
    note: Option<String>,
}

impl RaisedFileLimit {
    fn raise_to(wanted: u64) -> Result<Self, LabError> {
        let original = rustix::process::getrlimit(Resource::Nofile);
        let soft = original.current.unwrap_or(u64::MAX);
        let hard = original.maximum.unwrap_or(u64::MAX);
        if soft >= wanted {
            return Ok(Self {
                original,
                raised: false,
                usable: soft,
                note: None,
            });
        }
        let target = wanted.min(hard);
        rustix::process::setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum: original.maximum,
            },
        )
        .map_err(|e| LabError::os("raising the open-file limit", e.into()))?;
        Ok(Self {
            original,
            raised: true,
            usable: target,
            note: Some(format!(
                "The soft open-file limit was raised from {soft} to {target} for this process \
                 while the experiment ran, and put back after."
            )),
        })
    }
}

impl Drop for RaisedFileLimit {
    fn drop(&mut self) {
        if self.raised {
            let _ = rustix::process::setrlimit(Resource::Nofile, self.original);
        }
    }
}

/// The watched sockets: idle ones, then the one that is always readable.
struct Watched {
    idle: Vec<OwnedFd>,
    ready: OwnedFd,
    /// The ready socket's peer, kept open so that the datagram's sender stays connected.
    _peer: OwnedFd,
}

impl Watched {
    fn open(count: usize) -> rustix::io::Result<Self> {
        let idle = (1..count)
            .map(|_| {
                rustix::net::socket_with(
                    AddressFamily::UNIX,
                    SocketType::DGRAM,
                    SocketFlags::CLOEXEC,
                    None,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (ready, peer) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        rustix::net::send(&peer, b"ready", SendFlags::empty())?;
        Ok(Self {
            idle,
            ready,
            _peer: peer,
        })
    }

    /// Every watched descriptor, the ready one last.
    fn all(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.idle
            .iter()
            .map(AsFd::as_fd)
            .chain(std::iter::once(self.ready.as_fd()))
    }

    fn highest_fd(&self) -> RawFd {
        self.all().map(|fd| fd.as_raw_fd()).max().unwrap_or(0)
    }
}

/// One readiness interface, set up over the watched sockets and ready to wait.
enum Waiter<'a> {
    Select {
        template: Vec<FdSetElement>,
        set: Vec<FdSetElement>,
        nfds: i32,
        _watched: &'a Watched,
    },
    Poll(Vec<PollFd<'a>>),
    Epoll {
        epoll: OwnedFd,
        events: Box<[MaybeUninit<epoll::Event>; 64]>,
    },
}

impl<'a> Waiter<'a> {
    /// A waiter by `method`; `select` over descriptors numbered past `FD_SETSIZE` is `INVAL`.
    fn new(watched: &'a Watched, method: Method) -> rustix::io::Result<Self> {
        Ok(match method {
            Method::Select if watched.highest_fd() as usize >= FD_SETSIZE => {
                return Err(rustix::io::Errno::INVAL);
            }
            Method::Select => {
                let elements = FD_SETSIZE / (8 * std::mem::size_of::<FdSetElement>());
                let mut template = vec![FdSetElement::default(); elements];
                for fd in watched.all() {
                    fd_set_insert(&mut template, fd.as_raw_fd());
                }
                Waiter::Select {
                    set: template.clone(),
                    template,
                    nfds: watched.highest_fd() + 1,
                    _watched: watched,
                }
            }
            Method::Poll => Waiter::Poll(
                watched
                    .idle
                    .iter()
                    .chain(std::iter::once(&watched.ready))
                    .map(|fd| PollFd::new(fd, PollFlags::IN))
                    .collect(),
            ),
            Method::Epoll => {
                let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
                for fd in watched.all() {
                    epoll::add(
                        &epoll,
                        fd,
                        epoll::EventData::new_u64(fd.as_raw_fd() as u64),
                        epoll::EventFlags::IN,
                    )?;
                }
                Waiter::Epoll {
                    epoll,
                    events: Box::new([MaybeUninit::uninit(); 64]),
                }
            }
        })
    }

    /// One wait; returns how many descriptors were ready.
    fn wait(&mut self) -> rustix::io::Result<usize> {
        match self {
            Waiter::Select {
                template,
                set,
                nfds,
                _watched,
            } => {
                set.copy_from_slice(template);
                // SAFETY: every descriptor in the set belongs to `_watched`, which this waiter
                // borrows, so all of them stay open for the call; the set holds FD_SETSIZE bits
                // and `nfds` is at most FD_SETSIZE (`Waiter::new` checks it).
                let ready = unsafe {
                    rustix::event::select(*nfds, Some(set), None, None, Some(&WAIT_TIMEOUT))?
                };
                Ok(ready as usize)
            }
            Waiter::Poll(fds) => rustix::event::poll(fds, Some(&WAIT_TIMEOUT)),
            Waiter::Epoll { epoll, events } => {
                let (ready, _) = epoll::wait(&*epoll, &mut **events, Some(&WAIT_TIMEOUT))?;
                Ok(ready.len())
            }
        }
    }
}

/// Times waits by `method` over `watched`: per-call samples (seconds) and the batch size.
fn measure(watched: &Watched, method: Method, plan: &Plan) -> Result<(Vec<f64>, usize), LabError> {
    let context = || {
        format!(
            "{} over {} descriptors",
            method.name(),
            watched.idle.len() + 1
        )
    };
    let mut waiter = Waiter::new(watched, method).map_err(|e| LabError::os(context(), e.into()))?;
    let mut wait_once = || -> Result<(), LabError> {
        match waiter.wait() {
            Ok(1) => Ok(()),
            Ok(ready) => Err(LabError::engine(
                context(),
                format!("{ready} descriptors were ready, expected exactly 1"),
            )),
            Err(e) => Err(LabError::os(context(), e.into())),
        }
    };
    let warm_up = Instant::now();
    let mut calls = 0u64;
    while warm_up.elapsed() < plan.batch_time || calls < 3 {
        wait_once()?;
        calls += 1;
    }
    let per_call = warm_up.elapsed().as_secs_f64() / calls as f64;
    let batch = ((plan.batch_time.as_secs_f64() / per_call) as usize).clamp(1, 1_000_000);
    // The calibration above was the warm-up.
    let batches = Repeat::new(0, plan.samples).time(|| (0..batch).try_for_each(|_| wait_once()))?;
    let samples = batches.into_iter().map(|s| s / batch as f64).collect();
    Ok((samples, batch))
}

/// The measurement of `method` by `implementation` at `n` descriptors, if it was taken.
fn find<'a>(
    found: &Findings<'a>,
    method: Method,
    implementation: Implementation,
    n: usize,
) -> Option<&'a Measurement> {
    found.get(implementation, method.name(), &[("descriptors", n.into())])
}

const IMPLEMENTATIONS: [Implementation; 2] = [Implementation::Rust, Implementation::Python];

fn table(sizes: &[usize], found: &Findings<'_>) -> Table {
    let mut columns = vec!["descriptors".to_owned()];
    for &method in Method::ALL {
        for implementation in IMPLEMENTATIONS {
            columns.push(format!("{} ({})", method.name(), implementation.label()));
        }
    }
    let mut table = Table::new(columns);
    for &n in sizes {
        let mut row = vec![n.to_string()];
        for &method in Method::ALL {
            for implementation in IMPLEMENTATIONS {
                row.push(match find(found, method, implementation, n) {
                    Some(m) => format_with_spread(&m.summary, format_seconds),
                    None if method == Method::Select && n >= FD_SETSIZE => {
                        "— (FD_SETSIZE)".to_owned()
                    }
                    None => "—".to_owned(),
                });
            }
        }
        table.row(row);
    }
    let mut growth_row = vec!["fitted cost per descriptor".to_owned()];
    for &method in Method::ALL {
        for implementation in IMPLEMENTATIONS {
            growth_row.push(
                growth(sizes, found, method, implementation)
                    .map_or("—".to_owned(), |g| format_seconds(g.per_descriptor)),
            );
        }
    }
    table.row(growth_row);
    table
}

fn chart(found: &Findings<'_>) -> Chart {
    let mut series = Vec::new();
    for implementation in IMPLEMENTATIONS {
        for &method in Method::ALL {
            let mut points: Vec<Point> = found
                .every(implementation, method.name())
                .filter_map(|m| {
                    let n = m.params.get("descriptors")?.as_f64()?;
                    Some(Point::from_summary(n, &m.summary.scaled(1e6)))
                })
                .collect();
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            if !points.is_empty() {
                series.push(Series {
                    label: format!("{} ({})", method.name(), implementation.label()),
                    points,
                });
            }
        }
    }
    Chart {
        title: "Time per readiness wait, one descriptor ready".to_owned(),
        kind: ChartKind::Line,
        x_label: "watched descriptors".to_owned(),
        y_label: "µs per call".to_owned(),
        x_scale: Scale::Log,
        y_scale: Scale::Log,
        categories: Vec::new(),
        series,
    }
}

/// How one method's cost grows with the number of descriptors: the line
/// cost = fixed + per_descriptor × n through its medians at the smallest and largest sizes, and
/// the share of the cost at the largest size that the per-descriptor term explains (1: all of
/// it, O(n); 0: none, O(1)), with the range of that share the quartiles at the two sizes
/// allow (the noise rule of [`crate::verdict`]).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Growth {
    fixed: f64,
    per_descriptor: f64,
    smallest: (usize, f64),
    largest: (usize, f64),
    share_at_largest: f64,
    share_range: (f64, f64),
}

fn growth(
    sizes: &[usize],
    found: &Findings<'_>,
    method: Method,
    implementation: Implementation,
) -> Option<Growth> {
    let costs: Vec<(usize, &Summary)> = sizes
        .iter()
        .filter_map(|&n| Some((n, &find(found, method, implementation, n)?.summary)))
        .collect();
    let medians: Vec<(usize, f64)> = costs.iter().map(|(n, s)| (*n, s.median)).collect();
    let mut growth = growth_of(&medians)?;
    let (&(small, at_small), &(large, at_large)) = (costs.first()?, costs.last()?);
    growth.share_range = share_range(small, large, Ratio::of(at_small, at_large));
    Some(growth)
}

/// The range of the per-descriptor share at `large` descriptors that `ratio` (the cost at
/// `small` ÷ the cost at `large`, with its quartile range) allows: the share is
/// `large / (large - small) × (1 - ratio)`, clamped to 0-1.
fn share_range(small: usize, large: usize, ratio: Ratio) -> (f64, f64) {
    let k = large as f64 / (large - small) as f64;
    let share = |r: f64| (k * (1.0 - r)).clamp(0.0, 1.0);
    (share(ratio.high), share(ratio.low))
}

/// The growth of `costs` (sizes ascending, at least two distinct).
fn growth_of(costs: &[(usize, f64)]) -> Option<Growth> {
    let (&smallest, &largest) = (costs.first()?, costs.last()?);
    if largest.0 == smallest.0 {
        return None;
    }
    let per_descriptor = (largest.1 - smallest.1) / (largest.0 - smallest.0) as f64;
    let share = (per_descriptor.max(0.0) * largest.0 as f64 / largest.1).clamp(0.0, 1.0);
    Some(Growth {
        fixed: smallest.1 - per_descriptor * smallest.0 as f64,
        per_descriptor,
        smallest,
        largest,
        share_at_largest: share,
        share_range: (share, share),
    })
}

/// What the range of the per-descriptor share of the cost (`low` to `high`) says about an O(n)
/// or O(1) claim: O(n) when the whole range is at least [`LINEAR_SHARE`], O(1) when it is at
/// most [`FLAT_SHARE`], in between (depends) when it lies wholly between them, and within noise
/// when it straddles either line.
fn judge((low, high): (f64, f64), claims_linear: bool) -> Outcome {
    let linear = low >= LINEAR_SHARE;
    let flat = high <= FLAT_SHARE;
    let between = low > FLAT_SHARE && high < LINEAR_SHARE;
    match (claims_linear, linear, flat) {
        (true, true, _) | (false, _, true) => Outcome::Confirmed,
        (true, _, true) | (false, true, _) => Outcome::Refuted,
        _ if between => Outcome::Depends,
        _ => Outcome::WithinNoise,
    }
}

/// All implementations' outcomes agreed: that outcome; otherwise it depends on which.
fn combine(outcomes: &[Outcome]) -> Outcome {
    match outcomes.split_first() {
        Some((first, rest)) if rest.iter().all(|o| o == first) => *first,
        _ => Outcome::Depends,
    }
}

fn growth_verdict(
    sizes: &[usize],
    found: &Findings<'_>,
    method: Method,
    claim: &str,
    quote: &str,
) -> Verdict {
    let claims_linear = method != Method::Epoll;
    let mut outcomes = Vec::new();
    let mut evidence = Vec::new();
    for implementation in IMPLEMENTATIONS {
        if let Some(g) = growth(sizes, found, method, implementation) {
            outcomes.push(judge(g.share_range, claims_linear));
            evidence.push(format!(
                "{}: {} per call at {} descriptors, {} at {} (×{:.1} for ×{:.0} descriptors); \
                 fitted {} fixed + {} per descriptor, the per-descriptor part being {:.0}% of \
                 the cost at {} ({:.0}-{:.0}% by the quartiles)",
                implementation.label(),
                format_seconds(g.smallest.1),
                g.smallest.0,
                format_seconds(g.largest.1),
                g.largest.0,
                g.largest.1 / g.smallest.1,
                g.largest.0 as f64 / g.smallest.0 as f64,
                format_seconds(g.fixed),
                format_seconds(g.per_descriptor),
                g.share_at_largest * 100.0,
                g.largest.0,
                g.share_range.0 * 100.0,
                g.share_range.1 * 100.0,
            ));
        }
    }
    let outcome = combine(&outcomes);
    let evidence = if evidence.is_empty() {
        format!("{} was measured at fewer than two sizes.", method.name())
    } else {
        format!(
            "{}. A per-descriptor share of at least {:.0}% counts as O(n), at most {:.0}% as O(1).",
            evidence.join("; "),
            LINEAR_SHARE * 100.0,
            FLAT_SHARE * 100.0
        )
    };
    verdict(
        claim.to_owned(),
        quote,
        if outcomes.is_empty() {
            Outcome::Depends
        } else {
            outcome
        },
        evidence,
    )
}

fn verdicts(
    sizes: &[usize],
    found: &Findings<'_>,
    python_refused_high_fd: Option<bool>,
) -> Vec<Verdict> {
    let largest_unlimited = sizes
        .iter()
        .copied()
        .filter(|&n| {
            find(found, Method::Poll, Implementation::Rust, n).is_some()
                && find(found, Method::Epoll, Implementation::Rust, n).is_some()
        })
        .max()
        .unwrap_or(0);
    let limit_outcome = match python_refused_high_fd {
        Some(false) => Outcome::Refuted,
        _ if FD_SETSIZE == 1024 => Outcome::Confirmed,
        _ => Outcome::Refuted,
    };
    let limit_evidence = format!(
        "FD_SETSIZE is {FD_SETSIZE} in this C library; {}",
        match python_refused_high_fd {
            Some(true) => "CPython's select.select refused a descriptor numbered past it \
                           (ValueError)."
                .to_owned(),
            Some(false) => "yet CPython's select.select accepted a descriptor past it.".to_owned(),
            None => "CPython's select.select was not tried (no CPython run, or no descriptor \
                     numbered past the limit)."
                .to_owned(),
        }
    );
    vec![
        growth_verdict(
            sizes,
            found,
            Method::Select,
            "select is O(n): the kernel walks every descriptor in the set on each call.",
            "O(n)复杂度，遍历所有fd",
        ),
        growth_verdict(
            sizes,
            found,
            Method::Poll,
            "poll is still O(n).",
            "仍然是O(n)复杂度",
        ),
        growth_verdict(
            sizes,
            found,
            Method::Epoll,
            "epoll is O(1): it returns only the ready descriptors, so its cost does not grow with \
             the number watched.",
            "O(1)复杂度（只返回就绪的fd）",
        ),
        verdict(
            "select is limited in the number of descriptors (usually 1024).",
            "fd数量限制（通常1024）",
            limit_outcome,
            limit_evidence,
        ),
        verdict(
            "poll (and epoll) have no limit on the number of descriptors.",
            "无fd数量限制",
            if largest_unlimited > FD_SETSIZE {
                Outcome::Confirmed
            } else {
                Outcome::Depends
            },
            if largest_unlimited > FD_SETSIZE {
                format!(
                    "poll and epoll watched {largest_unlimited} descriptors here, past \
                     FD_SETSIZE; their only bound is the open-file limit (RLIMIT_NOFILE)."
                )
            } else {
                format!(
                    "This run went up to {largest_unlimited} descriptors only, not past \
                     FD_SETSIZE = {FD_SETSIZE}; the quick and full runs go to 10,000."
                )
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_fits_a_fixed_and_a_per_descriptor_cost() {
        let linear = growth_of(&[(10, 2.0e-6), (100, 30.0e-6), (1000, 101.0e-6)]).unwrap();
        assert!((linear.per_descriptor - 1.0e-7).abs() < 1e-12);
        assert!((linear.fixed - 1.0e-6).abs() < 1e-12);
        assert_eq!(linear.smallest, (10, 2.0e-6));
        assert_eq!(linear.largest, (1000, 101.0e-6));
        assert!(linear.share_at_largest > 0.98);
        let flat = growth_of(&[(10, 1.0e-6), (10_000, 1.0e-6)]).unwrap();
        assert_eq!(flat.share_at_largest, 0.0);
        let falling = growth_of(&[(10, 2.0e-6), (10_000, 1.0e-6)]).unwrap();
        assert_eq!(falling.share_at_largest, 0.0);
        assert!(growth_of(&[(10, 1.0)]).is_none());
    }

    #[test]
    fn judging_linear_and_flat_claims() {
        assert_eq!(judge((0.95, 0.95), true), Outcome::Confirmed);
        assert_eq!(judge((0.05, 0.05), true), Outcome::Refuted);
        assert_eq!(judge((0.35, 0.35), true), Outcome::Depends);
        assert_eq!(judge((0.05, 0.05), false), Outcome::Confirmed);
        assert_eq!(judge((0.95, 0.95), false), Outcome::Refuted);
        assert_eq!(judge((0.35, 0.35), false), Outcome::Depends);
        // A range reaching across a line: this machine cannot tell which side.
        assert_eq!(judge((0.4, 0.7), true), Outcome::WithinNoise);
        assert_eq!(judge((0.1, 0.3), false), Outcome::WithinNoise);
        assert_eq!(judge((0.6, 0.9), true), Outcome::Confirmed);
    }

    #[test]
    fn the_share_range_follows_the_quartiles_at_both_sizes() {
        // 1 µs at 10 descriptors, 10 µs (9-11 µs) at 1000: mostly per-descriptor.
        let small = Summary::of(&[1.0e-6, 1.0e-6, 1.0e-6]);
        let large = Summary::of(&[8.0e-6, 10.0e-6, 12.0e-6]);
        let (low, high) = share_range(10, 1000, Ratio::of(&small, &large));
        let k = 1000.0 / 990.0;
        assert!((low - k * (1.0 - 1.0 / 9.0)).abs() < 1e-9, "{low}");
        assert!((high - k * (1.0 - 1.0 / 11.0)).abs() < 1e-9, "{high}");
        // Flat within the noise: the share is clamped at 0 from below.
        let same = Summary::of(&[0.8e-6, 1.0e-6, 1.2e-6]);
        let (low, high) = share_range(10, 1000, Ratio::of(&same, &same));
        assert_eq!(low, 0.0);
        assert!(high > 0.0 && high < FLAT_SHARE, "{high}");
        assert_eq!(judge((low, high), false), Outcome::Confirmed);
    }

    #[test]
    fn outcomes_combine_only_when_they_agree() {
        assert_eq!(
            combine(&[Outcome::Confirmed, Outcome::Confirmed]),
            Outcome::Confirmed
        );
        assert_eq!(
            combine(&[Outcome::Confirmed, Outcome::Refuted]),
            Outcome::Depends
        );
        assert_eq!(combine(&[Outcome::Refuted]), Outcome::Refuted);
    }

    #[test]
    fn every_method_waits_for_the_one_ready_socket() {
        let watched = Watched::open(20).unwrap();
        for &method in Method::ALL {
            let mut waiter = Waiter::new(&watched, method).unwrap();
            for _ in 0..3 {
                assert_eq!(waiter.wait().unwrap(), 1, "{}", method.name());
            }
        }
    }
}
