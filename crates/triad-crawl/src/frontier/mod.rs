//! The frontier: the seen set, one queue per host, and which fetch may start next.
//!
//! The seen set holds the 128-bit key of every URL ever queued, so that no page is queued
//! twice (16 bytes a URL plus the table's slack). Each host has its own FIFO queue, its fetches
//! in flight, the earliest instant its next fetch may start (its delay, or a `Retry-After`
//! pause), and its robots.txt state. A queue is compact, since it is where a big crawl's
//! memory goes: the URLs' paths (the host's origin cut off) are packed in one byte buffer,
//! each with a 16-byte entry, and a page's URL is kept once for all the links found on it,
//! counted, until the last of them is handed out (`examples/frontier_scale.rs` measures it).
//! Redirect targets, which carry their chain, wait apart in a small queue that goes first. [`Frontier::next`] walks the hosts with queued work round
//! robin and hands out the first job whose host is under `--per-host`, past its delay and
//! has its robots.txt: the frontier is continuous — a slot freed by any fetch is filled at
//! once — and polite.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fetch::Pause;
use crate::robots::Rules;

mod packed;
use packed::{NO_PARENT, PackedQueue, Parents};

/// One URL waiting to be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The normalised absolute URL.
    pub url: Box<str>,
    /// Links followed from a start URL (0 for a start URL; a redirect keeps its origin's).
    pub depth: u16,
    /// The page the link was found on.
    pub parent: Option<Arc<str>>,
    /// Set when this job is a redirect's target.
    pub chain: Option<Box<Chain>>,
}

/// The redirects that led to a job: the URL first asked for, and the keys of every hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The URL the chain started from: the page's `url` in the output.
    pub origin: Box<str>,
    /// Keys of the URLs fetched so far in the chain, the origin first.
    pub hops: Vec<u128>,
}

/// A host's robots.txt, as far as it is known.
#[derive(Debug)]
pub enum Robots {
    /// Not asked for yet.
    Unknown,
    /// Being fetched.
    Fetching,
    /// Known: these rules apply.
    Known(Arc<Rules>),
}

/// One host (host:port) and its queue.
#[derive(Debug)]
pub struct Host {
    /// `host:port`.
    pub authority: Box<str>,
    /// `scheme://host:port`, where robots.txt is.
    pub origin: Box<str>,
    urgent: VecDeque<Job>,
    queue: PackedQueue,
    /// Fetches of this host in flight.
    pub in_flight: usize,
    next_start: Instant,
    /// Time between two fetch starts: `--delay`, or robots.txt's `Crawl-delay` if longer.
    pub delay: Duration,
    /// Set by a `Retry-After`.
    pub pause: Pause,
    /// Its robots.txt.
    pub robots: Robots,
    listed: bool,
    /// Pages fetched, and the time they took, for the summary's slowest hosts.
    pub fetches: u64,
    /// Sum of the fetches' times.
    pub fetch_time: Duration,
}

/// What [`Frontier::next`] found.
#[derive(Debug)]
pub enum Next {
    /// Fetch this job of this host.
    Fetch(usize, Job),
    /// Fetch this host's robots.txt first.
    Robots(usize),
    /// This job's host forbids it in robots.txt: record it, never fetch it.
    Disallowed(usize, Job),
    /// Nothing can start before this instant (a delay or a pause), unless a fetch ends.
    Wait(Instant),
    /// Nothing can start until a fetch ends (or nothing is queued at all).
    Idle,
}

/// An identity hasher for the seen set: its keys are already hashes (xxh3-128).
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u128(&mut self, key: u128) {
        self.0 = key as u64;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The set of URL keys ever queued.
pub type Seen = HashSet<u128, BuildHasherDefault<KeyHasher>>;

/// The seen set and the per-host queues.
#[derive(Debug)]
pub struct Frontier {
    parents: Parents,
    seen: Seen,
    hosts: Vec<Host>,
    by_authority: HashMap<Box<str>, usize>,
    active: VecDeque<usize>,
    queued: usize,
    delay: Duration,
}

impl Frontier {
    /// An empty frontier whose hosts wait `delay` between fetch starts.
    pub fn new(delay: Duration) -> Frontier {
        Frontier {
            parents: Parents::default(),
            seen: Seen::default(),
            hosts: Vec::new(),
            by_authority: HashMap::new(),
            active: VecDeque::new(),
            queued: 0,
            delay,
        }
    }

    /// Marks `key` seen; false if it already was.
    pub fn see(&mut self, key: u128) -> bool {
        self.seen.insert(key)
    }

    /// Whether `key` was ever seen.
    pub fn seen(&self, key: u128) -> bool {
        self.seen.contains(&key)
    }

    /// Number of URLs ever seen.
    pub fn seen_len(&self) -> usize {
        self.seen.len()
    }

    /// Every seen key (for the resume state).
    pub fn seen_keys(&self) -> impl Iterator<Item = u128> + '_ {
        self.seen.iter().copied()
    }

    /// Jobs queued, not yet handed out.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Queues a job (already marked seen) on its host; `front` puts it first (a redirect's
    /// target continues its chain before new work).
    pub fn push(&mut self, authority: &str, origin: &str, job: Job, front: bool) {
        let id = self.host_id(authority, origin);
        let host = &mut self.hosts[id];
        let packed = !front
            && job.chain.is_none()
            && job.url.strip_prefix(&*host.origin).is_some_and(|path| {
                let parent = job
                    .parent
                    .as_ref()
                    .map_or(NO_PARENT, |p| self.parents.hold(p));
                let pushed = host.queue.push(path, job.depth, parent);
                if !pushed {
                    self.parents.release(parent);
                }
                pushed
            });
        if !packed {
            if front {
                host.urgent.push_front(job);
            } else {
                host.urgent.push_back(job);
            }
        }
        self.queued += 1;
        if !host.listed {
            host.listed = true;
            self.active.push_back(id);
        }
    }

    fn host_id(&mut self, authority: &str, origin: &str) -> usize {
        if let Some(&id) = self.by_authority.get(authority) {
            return id;
        }
        let id = self.hosts.len();
        self.hosts.push(Host {
            authority: authority.into(),
            origin: origin.into(),
            urgent: VecDeque::new(),
            queue: PackedQueue::default(),
            in_flight: 0,
            next_start: Instant::now(),
            delay: self.delay,
            pause: Arc::new(Mutex::new(None)),
            robots: Robots::Unknown,
            listed: false,
            fetches: 0,
            fetch_time: Duration::ZERO,
        });
        self.by_authority.insert(authority.into(), id);
        id
    }

    /// A host by id.
    pub fn host(&mut self, id: usize) -> &mut Host {
        &mut self.hosts[id]
    }

    /// Every host.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The next fetch allowed to start at `now`, with at most `per_host` in flight a host;
    /// with `new_pages` false (`--max-pages` reached), only redirect chains go on.
    pub fn next(&mut self, now: Instant, per_host: usize, new_pages: bool) -> Next {
        let mut wake: Option<Instant> = None;
        for _ in 0..self.active.len() {
            let Some(id) = self.active.pop_front() else {
                break;
            };
            let host = &mut self.hosts[id];
            if host.urgent.is_empty() && host.queue.len() == 0 {
                host.listed = false;
                continue;
            }
            self.active.push_back(id);
            let rules = match &host.robots {
                Robots::Unknown => {
                    host.robots = Robots::Fetching;
                    return Next::Robots(id);
                }
                Robots::Fetching => continue,
                Robots::Known(rules) => rules.clone(),
            };
            let (front, chained) = match host.urgent.front() {
                Some(job) => (&*job.url, job.chain.is_some()),
                None => (host.queue.front().expect("checked non-empty"), false),
            };
            if !new_pages && !chained {
                continue;
            }
            if !rules.allowed(front) {
                let job = self.pop(id);
                return Next::Disallowed(id, job);
            }
            let host = &mut self.hosts[id];
            if host.in_flight >= per_host {
                continue;
            }
            let paused = *host.pause.lock().unwrap_or_else(|e| e.into_inner());
            let start = paused.map_or(host.next_start, |p| p.max(host.next_start));
            if start > now {
                wake = Some(wake.map_or(start, |w| w.min(start)));
                continue;
            }
            host.in_flight += 1;
            host.next_start = now + host.delay;
            let job = self.pop(id);
            return Next::Fetch(id, job);
        }
        wake.map_or(Next::Idle, Next::Wait)
    }

    /// Takes a host's next job (its urgent queue first).
    fn pop(&mut self, id: usize) -> Job {
        self.queued -= 1;
        let host = &mut self.hosts[id];
        if let Some(job) = host.urgent.pop_front() {
            return job;
        }
        let (path, entry) = host.queue.pop().expect("a queued job");
        let job = Job {
            url: format!("{}{path}", host.origin).into(),
            depth: entry.depth,
            parent: self.parents.get(entry.parent),
            chain: None,
        };
        self.parents.release(entry.parent);
        job
    }

    /// Every job still queued (for the resume state), host by host.
    pub fn queued_jobs(&self) -> impl Iterator<Item = Job> + '_ {
        self.hosts.iter().flat_map(move |h| {
            let packed = h.queue.entries.iter().map(move |e| Job {
                url: format!("{}{}", h.origin, h.queue.path(e)).into(),
                depth: e.depth,
                parent: self.parents.get(e.parent),
                chain: None,
            });
            h.urgent.iter().cloned().chain(packed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robots::Rules;

    fn job(url: &str) -> Job {
        Job {
            url: url.into(),
            depth: 0,
            parent: None,
            chain: None,
        }
    }

    fn know_robots(f: &mut Frontier, id: usize) {
        f.host(id).robots = Robots::Known(Arc::new(Rules::AllowAll));
    }

    #[test]
    fn robots_first_then_per_host_limit_then_round_robin() {
        let mut f = Frontier::new(Duration::ZERO);
        for i in 0..3 {
            f.push("a:80", "http://a", job(&format!("http://a/{i}")), false);
            f.push("b:80", "http://b", job(&format!("http://b/{i}")), false);
        }
        let now = Instant::now();
        let Next::Robots(a) = f.next(now, 2, true) else {
            panic!()
        };
        let Next::Robots(b) = f.next(now, 2, true) else {
            panic!()
        };
        assert!(matches!(f.next(now, 2, true), Next::Idle));
        know_robots(&mut f, a);
        know_robots(&mut f, b);
        let mut got = Vec::new();
        while let Next::Fetch(_, j) = f.next(now, 2, true) {
            got.push(j.url.to_string());
        }
        assert_eq!(
            got,
            ["http://a/0", "http://b/0", "http://a/1", "http://b/1"]
        );
        assert_eq!(f.queued(), 2);
        f.host(a).in_flight -= 1;
        let Next::Fetch(id, j) = f.next(now, 2, true) else {
            panic!()
        };
        assert_eq!((id, &*j.url), (a, "http://a/2"));
    }

    #[test]
    fn delay_and_pause_hold_a_host_back() {
        let mut f = Frontier::new(Duration::from_millis(100));
        f.push("a:80", "http://a", job("http://a/1"), false);
        f.push("a:80", "http://a", job("http://a/2"), false);
        let now = Instant::now();
        let Next::Robots(a) = f.next(now, 8, true) else {
            panic!()
        };
        know_robots(&mut f, a);
        assert!(matches!(f.next(now, 8, true), Next::Fetch(..)));
        let Next::Wait(at) = f.next(now, 8, true) else {
            panic!()
        };
        assert_eq!(at, now + Duration::from_millis(100));
        *f.host(a).pause.lock().unwrap() = Some(now + Duration::from_secs(1));
        let Next::Wait(at) = f.next(now + Duration::from_millis(200), 8, true) else {
            panic!()
        };
        assert_eq!(at, now + Duration::from_secs(1));
        assert!(matches!(
            f.next(now + Duration::from_secs(1), 8, true),
            Next::Fetch(..)
        ));
    }

    #[test]
    fn a_redirect_target_goes_first() {
        let mut f = Frontier::new(Duration::ZERO);
        f.push("a:80", "http://a", job("http://a/1"), false);
        f.push("a:80", "http://a", job("http://a/r"), true);
        let Next::Robots(a) = f.next(Instant::now(), 1, true) else {
            panic!()
        };
        know_robots(&mut f, a);
        let Next::Fetch(_, j) = f.next(Instant::now(), 1, true) else {
            panic!()
        };
        assert_eq!(&*j.url, "http://a/r");
    }

    #[test]
    fn disallowed_jobs_come_back_unfetched_and_max_pages_lets_only_chains_on() {
        let mut f = Frontier::new(Duration::ZERO);
        f.push("a:80", "http://a", job("http://a/private/x"), false);
        f.push("a:80", "http://a", job("http://a/ok"), false);
        let Next::Robots(a) = f.next(Instant::now(), 1, true) else {
            panic!()
        };
        f.host(a).robots = Robots::Known(Arc::new(Rules::from_answer(
            200,
            b"User-agent: *\nDisallow: /private/",
            "t",
        )));
        let Next::Disallowed(_, j) = f.next(Instant::now(), 1, true) else {
            panic!()
        };
        assert_eq!(&*j.url, "http://a/private/x");
        assert_eq!(f.host(a).in_flight, 0);
        assert!(matches!(f.next(Instant::now(), 1, false), Next::Idle));
        let mut target = job("http://a/target");
        target.chain = Some(Box::new(Chain {
            origin: "http://a/r".into(),
            hops: vec![1],
        }));
        f.push("a:80", "http://a", target, true);
        let Next::Fetch(_, j) = f.next(Instant::now(), 1, false) else {
            panic!()
        };
        assert_eq!(&*j.url, "http://a/target");
    }

    proptest::proptest! {
        /// A packed queue (its buffer compacted as it goes), parents shared and released, and
        /// the urgent queue, against a plain model: every job comes out whole, in FIFO order
        /// (urgent first), and what is left is listed for the resume state.
        #[test]
        fn a_host_gives_back_what_was_pushed_in_order(
            ops in proptest::collection::vec((0u8..3, "[a-z/?=]{0,12}", proptest::bool::ANY), 1..300)
        ) {
            let mut f = Frontier::new(Duration::ZERO);
            let (mut urgent, mut packed) = (VecDeque::<Job>::new(), VecDeque::<Job>::new());
            let mut parent: Arc<str> = Arc::from("http://p/0");
            let mut robots_known = false;
            for (n, (op, path, front)) in ops.into_iter().enumerate() {
                if op < 2 {
                    if n % 7 == 0 {
                        parent = Arc::from(format!("http://p/{n}"));
                    }
                    let mut job = job(&format!("http://h/{path}"));
                    job.parent = (n % 5 != 0).then(|| parent.clone());
                    job.depth = n as u16;
                    if front {
                        job.chain = Some(Box::new(Chain { origin: "http://o/".into(), hops: vec![n as u128] }));
                        urgent.push_front(job.clone());
                    } else {
                        packed.push_back(job.clone());
                    }
                    f.push("h:80", "http://h", job, front);
                    continue;
                }
                let Some(want) = urgent.pop_front().or_else(|| packed.pop_front()) else { continue };
                if !robots_known {
                    let Next::Robots(id) = f.next(Instant::now(), usize::MAX, true) else {
                        panic!("robots.txt comes first")
                    };
                    know_robots(&mut f, id);
                    robots_known = true;
                }
                let Next::Fetch(_, got) = f.next(Instant::now(), usize::MAX, true) else {
                    panic!("a job was queued")
                };
                proptest::prop_assert_eq!(got, want);
            }
            let rest: Vec<Job> = urgent.into_iter().chain(packed).collect();
            proptest::prop_assert_eq!(f.queued(), rest.len());
            proptest::prop_assert_eq!(f.queued_jobs().collect::<Vec<_>>(), rest);
        }
    }

    #[test]
    fn the_seen_set_refuses_a_key_twice() {
        let mut f = Frontier::new(Duration::ZERO);
        assert!(f.see(crate::urls::key("http://a/")));
        assert!(!f.see(crate::urls::key("http://a/")));
        assert!(f.see(crate::urls::key("http://a/x")));
        assert_eq!(f.seen_len(), 2);
    }
}
