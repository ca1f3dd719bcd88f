//! The coroutine workloads the `event-loop` experiment times, written once over [`Loop`] and
//! run on the reference loop and on tokio's current-thread runtime (one thread, like asyncio);
//! the CPython script `python/event_loop.py` writes the same ones for asyncio.
//!
//! Every workload runs on a fresh loop and times only what happens inside it, checks its own
//! result (sums, echoed bytes, values passed), and reports a failure as an error.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use triad::Span;

use super::reference_loop::{self as reference, AsyncFd, EventLoop};
use crate::error::LabError;

/// A loop that runs the workloads, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runtime {
    /// The lab's reference loop.
    Reference,
    /// tokio's current-thread runtime.
    Tokio,
}

impl Runtime {
    /// The `runtime` parameter of its measurements.
    pub(crate) const fn key(self) -> &'static str {
        match self {
            Runtime::Reference => "reference",
            Runtime::Tokio => "tokio",
        }
    }
}

fn failed(what: &str, reason: impl std::fmt::Display) -> LabError {
    LabError::engine(what, reason)
}

/// What the workloads need of a loop. Tasks given to `spawn` must be `Send` because tokio's
/// are; the reference loop's need not be, and the workloads whose tasks hold its
/// single-threaded channels and descriptors (ping-pong, echo) are written per loop, around
/// shared bodies.
pub(super) trait Loop {
    /// Which loop this is.
    const RUNTIME: Runtime;

    /// Runs `future` to completion on a fresh loop.
    fn run<F: Future>(future: F) -> Result<F::Output, LabError>;

    /// Starts `future` as a task now; the returned future awaits its output.
    fn spawn<F>(future: F) -> impl Future<Output = Result<F::Output, LabError>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// The loop's timer.
    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send;

    /// The loop's `yield_now`.
    fn yield_now() -> impl Future<Output = ()> + Send;

    /// Two tasks pass a value back and forth `rounds` times over two unbounded channels of
    /// the loop ([`pinger`], [`ponger`]): the last value and the pinger's time.
    fn ping_pong(rounds: u64) -> Result<(u64, Duration), LabError>;

    /// This future sends `rounds` messages of `size` bytes through `client` and reads each
    /// back from a task echoing at `server` ([`echo_client`], [`echo_server`]): its time.
    fn echo(
        client: UnixStream,
        server: UnixStream,
        rounds: u64,
        size: usize,
    ) -> Result<Duration, LabError>;
}

/// The lab's reference loop.
pub(super) struct ReferenceLoop;

/// tokio's current-thread runtime.
pub(super) struct TokioLoop;

impl Loop for ReferenceLoop {
    const RUNTIME: Runtime = Runtime::Reference;

    fn run<F: Future>(future: F) -> Result<F::Output, LabError> {
        let event_loop =
            EventLoop::new().map_err(|e| LabError::os("creating the reference loop", e))?;
        Ok(event_loop.block_on(future))
    }

    fn spawn<F>(future: F) -> impl Future<Output = Result<F::Output, LabError>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = reference::spawn(future);
        async move { handle.await.map_err(|e| failed("a task", e.0)) }
    }

    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send {
        reference::sleep(duration)
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        reference::yield_now()
    }

    fn ping_pong(rounds: u64) -> Result<(u64, Duration), LabError> {
        Self::run(async move {
            let (to_pong, pong_inbox) = reference::channel::<u64>();
            let (to_ping, ping_inbox) = reference::channel::<u64>();
            let ponger = reference::spawn(ponger(pong_inbox, to_ping));
            let pinger = reference::spawn(pinger(to_pong, ping_inbox, rounds));
            let outcome = pinger.await.map_err(|e| failed("the pinger", e.0))?;
            ponger.await.map_err(|e| failed("the ponger", e.0))?;
            outcome
        })?
    }

    fn echo(
        client: UnixStream,
        server: UnixStream,
        rounds: u64,
        size: usize,
    ) -> Result<Duration, LabError> {
        Self::run(async move {
            let client = AsyncFd::new(client.into()).map_err(echo_failed)?;
            let server = AsyncFd::new(server.into()).map_err(echo_failed)?;
            let echoer = reference::spawn(echo_server(server, size));
            let elapsed = echo_client(client, rounds, size).await?;
            echoer
                .await
                .map_err(|e| failed("the echoing task", e.0))?
                .map_err(echo_failed)?;
            Ok(elapsed)
        })?
    }
}

impl Loop for TokioLoop {
    const RUNTIME: Runtime = Runtime::Tokio;

    fn run<F: Future>(future: F) -> Result<F::Output, LabError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LabError::os("creating a tokio runtime", e))?;
        Ok(runtime.block_on(future))
    }

    fn spawn<F>(future: F) -> impl Future<Output = Result<F::Output, LabError>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = tokio::spawn(future);
        async move { handle.await.map_err(|e| failed("a task", e)) }
    }

    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }

    fn ping_pong(rounds: u64) -> Result<(u64, Duration), LabError> {
        Self::run(async move {
            let (to_pong, pong_inbox) = mpsc::unbounded_channel::<u64>();
            let (to_ping, ping_inbox) = mpsc::unbounded_channel::<u64>();
            let ponger = Self::spawn(ponger(pong_inbox, to_ping));
            let pinger = Self::spawn(pinger(to_pong, ping_inbox, rounds));
            let outcome = pinger.await?;
            ponger.await?;
            outcome
        })?
    }

    fn echo(
        client: UnixStream,
        server: UnixStream,
        rounds: u64,
        size: usize,
    ) -> Result<Duration, LabError> {
        Self::run(async move {
            let to_tokio = |stream: UnixStream| {
                stream.set_nonblocking(true)?;
                tokio::net::UnixStream::from_std(stream)
            };
            let client = to_tokio(client).map_err(echo_failed)?;
            let server = to_tokio(server).map_err(echo_failed)?;
            let echoer = Self::spawn(echo_server(server, size));
            let elapsed = echo_client(client, rounds, size).await?;
            echoer.await?.map_err(echo_failed)?;
            Ok(elapsed)
        })?
    }
}

/// The receiving end of a channel, for the shared ping-pong bodies.
trait Inbox {
    async fn next(&mut self) -> Option<u64>;
}

/// The sending end of a channel; `false` when the receiver is gone.
trait Outbox {
    fn put(&self, value: u64) -> bool;
}

impl Inbox for reference::Receiver<u64> {
    async fn next(&mut self) -> Option<u64> {
        self.recv().await
    }
}

impl Outbox for reference::Sender<u64> {
    fn put(&self, value: u64) -> bool {
        self.send(value).is_ok()
    }
}

impl Inbox for mpsc::UnboundedReceiver<u64> {
    async fn next(&mut self) -> Option<u64> {
        self.recv().await
    }
}

impl Outbox for mpsc::UnboundedSender<u64> {
    fn put(&self, value: u64) -> bool {
        self.send(value).is_ok()
    }
}

/// Answers every value with the value plus one, until the pinger hangs up.
async fn ponger(mut inbox: impl Inbox, outbox: impl Outbox) {
    while let Some(value) = inbox.next().await {
        if !outbox.put(value + 1) {
            break;
        }
    }
}

/// Sends a value and awaits the answer `rounds` times: the last answer and the time taken.
async fn pinger(
    outbox: impl Outbox,
    mut inbox: impl Inbox,
    rounds: u64,
) -> Result<(u64, Duration), LabError> {
    let start = Instant::now();
    let mut value = 0;
    for _ in 0..rounds {
        if !outbox.put(value) {
            return Err(failed("ping-pong", "the ponger is gone"));
        }
        value = inbox
            .next()
            .await
            .ok_or_else(|| failed("ping-pong", "the ponger stopped answering"))?;
    }
    Ok((value, start.elapsed()))
}

/// One end of a byte stream, for the shared echo bodies.
trait StreamEnd {
    async fn send_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    async fn receive_exact(&mut self, buffer: &mut [u8]) -> io::Result<()>;
}

impl StreamEnd for AsyncFd {
    async fn send_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes).await
    }

    async fn receive_exact(&mut self, buffer: &mut [u8]) -> io::Result<()> {
        self.read_exact(buffer).await
    }
}

impl StreamEnd for tokio::net::UnixStream {
    async fn send_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes).await
    }

    async fn receive_exact(&mut self, buffer: &mut [u8]) -> io::Result<()> {
        self.read_exact(buffer).await.map(drop)
    }
}

fn echo_failed(error: io::Error) -> LabError {
    LabError::os("echo over a socket pair", error)
}

/// Sends back every `size`-byte message until the other end closes.
async fn echo_server(mut end: impl StreamEnd, size: usize) -> io::Result<()> {
    let mut buffer = vec![0; size];
    loop {
        match end.receive_exact(&mut buffer).await {
            Ok(()) => end.send_all(&buffer).await?,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Sends `rounds` messages and checks each echo; the time taken. Closes its end when done.
async fn echo_client(
    mut end: impl StreamEnd,
    rounds: u64,
    size: usize,
) -> Result<Duration, LabError> {
    let (mut message, mut reply) = (vec![0u8; size], vec![0u8; size]);
    let start = Instant::now();
    for round in 0..rounds {
        message.fill(round as u8);
        end.send_all(&message).await.map_err(echo_failed)?;
        end.receive_exact(&mut reply).await.map_err(echo_failed)?;
        if reply != message {
            return Err(failed("echo", format!("round {round} came back altered")));
        }
    }
    Ok(start.elapsed())
}

/// Spins for `duration` without awaiting: a coroutine that computes.
pub(super) fn compute_for(duration: Duration) {
    let start = Instant::now();
    while start.elapsed() < duration {
        std::hint::spin_loop();
    }
}

/// Signed seconds between when a sleep of `duration` armed at `armed` was due and now.
fn lateness(armed: Instant, duration: Duration) -> f64 {
    armed.elapsed().as_secs_f64() - duration.as_secs_f64()
}

/// Spawns `count` tasks that return their index, awaits each in order; total time.
pub(super) fn spawn_and_join<L: Loop>(count: u64) -> Result<Duration, LabError> {
    // In u128, where neither the sum of the indices nor this product can overflow.
    let expected = u128::from(count) * u128::from(count.saturating_sub(1)) / 2;
    let (sum, elapsed) = L::run(async move {
        let start = Instant::now();
        let handles: Vec<_> = (0..count).map(|i| L::spawn(async move { i })).collect();
        let mut sum = 0_u128;
        for handle in handles {
            sum += u128::from(handle.await?);
        }
        Ok::<_, LabError>((sum, start.elapsed()))
    })??;
    if sum != expected {
        return Err(failed(
            "spawn and join",
            format!("sum {sum}, expected {expected}"),
        ));
    }
    Ok(elapsed)
}

/// Two tasks that each yield `switches / 2` times (the seed's `await asyncio.sleep(0)`
/// benchmark, §6.6): total time, and the thread's voluntary context switches meanwhile.
pub(super) fn yield_switches<L: Loop>(switches: u64) -> Result<(Duration, Option<u64>), LabError> {
    let each = switches / 2;
    let before = voluntary_context_switches();
    let elapsed = L::run(async move {
        let start = Instant::now();
        let yielder = || {
            L::spawn(async move {
                for _ in 0..each {
                    L::yield_now().await;
                }
            })
        };
        let (first, second) = (yielder(), yielder());
        first.await?;
        second.await?;
        Ok::<_, LabError>(start.elapsed())
    })??;
    let switched = before.zip(voluntary_context_switches()).map(|(b, a)| a - b);
    Ok((elapsed, switched))
}

/// The cost of one switch between two tasks that wake each other: a value is sent back and
/// forth `rounds` times over two unbounded channels between two spawned tasks, and each way is
/// one switch. Used by the `switch-cost` experiment too, for the reference loop's and tokio's
/// coroutine ping-pong.
pub(crate) fn ping_pong_switch_cost(runtime: Runtime, rounds: u64) -> Result<Duration, LabError> {
    let rounds = rounds.max(1);
    let (last, elapsed) = match runtime {
        Runtime::Reference => ReferenceLoop::ping_pong(rounds)?,
        Runtime::Tokio => TokioLoop::ping_pong(rounds)?,
    };
    if last != rounds {
        return Err(failed(
            "ping-pong",
            format!("ended at {last}, expected {rounds}"),
        ));
    }
    Ok(elapsed.div_f64(2.0 * rounds as f64))
}

/// `count` tasks that each sleep `duration`, all spawned at once: the total time and, per task,
/// how late it woke after its deadline (seconds; negative would be early).
pub(super) fn sleepers<L: Loop>(
    count: u64,
    duration: Duration,
) -> Result<(Duration, Vec<f64>), LabError> {
    L::run(async move {
        let start = Instant::now();
        let handles: Vec<_> = (0..count)
            .map(|_| {
                L::spawn(async move {
                    let armed = Instant::now();
                    L::sleep(duration).await;
                    lateness(armed, duration)
                })
            })
            .collect();
        let mut late = Vec::with_capacity(handles.len());
        for handle in handles {
            late.push(handle.await?);
        }
        Ok((start.elapsed(), late))
    })?
}

/// `rounds` round trips of a `size`-byte message to an echoing task over a Unix socket pair,
/// each end waiting for readiness through the loop's selector; total time.
pub(super) fn echo<L: Loop>(rounds: u64, size: usize) -> Result<Duration, LabError> {
    let (client, server) = UnixStream::pair().map_err(echo_failed)?;
    L::echo(client, server, rounds, size)
}

/// A task arms a `delay` timer, then another computes for `block` without awaiting: how late
/// the timer's task woke after its deadline (seconds). A loop that runs one task at a time
/// until it awaits cannot wake it before the computation ends, so at least `block - delay`.
pub(super) fn blocked_timer<L: Loop>(delay: Duration, block: Duration) -> Result<f64, LabError> {
    L::run(async move {
        let timer = L::spawn(async move {
            let armed = Instant::now();
            L::sleep(delay).await;
            lateness(armed, delay)
        });
        L::spawn(async move { compute_for(block) }).await?;
        timer.await
    })?
}

/// CPU time this thread has used.
pub(super) fn thread_cpu_time() -> Duration {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
}

/// One task sleeps `duration` and nothing else happens: the wall time and the CPU time the
/// loop's thread used meanwhile (a loop that waits in its selector uses almost none).
pub(super) fn idle_wait<L: Loop>(duration: Duration) -> Result<(Duration, Duration), LabError> {
    let cpu = thread_cpu_time();
    let start = Instant::now();
    L::run(async move { L::sleep(duration).await })?;
    Ok((start.elapsed(), thread_cpu_time().saturating_sub(cpu)))
}

/// The thread's voluntary context switches so far (`/proc/thread-self/status`), if readable.
fn voluntary_context_switches() -> Option<u64> {
    parse_voluntary_switches(&std::fs::read_to_string("/proc/thread-self/status").ok()?)
}

fn parse_voluntary_switches(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|value| value.trim().parse().ok())
}

/// Three tasks on the reference loop, recorded as spans for a Gantt chart: two compute in
/// steps of `step` and yield between them, the third sleeps `1.5 × step` then computes one
/// step — it wakes only when the step running at its deadline ends.
pub(super) fn interleaving(step: Duration, steps: usize) -> Result<Vec<Span>, LabError> {
    let spans = Rc::new(RefCell::new(Vec::new()));
    let pid = std::process::id();
    let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
    let record = {
        let spans = Rc::clone(&spans);
        move |task: u64, name: &'static str| {
            let start_ns = triad::now_ns();
            compute_for(step);
            spans.borrow_mut().push(Span {
                name: name.into(),
                task,
                pid,
                tid,
                cpu: None,
                start_ns,
                end_ns: triad::now_ns(),
            });
        }
    };
    ReferenceLoop::run(async move {
        let yielders: Vec<_> = [(1, "computes, yields"), (2, "computes, yields")]
            .into_iter()
            .map(|(task, name)| {
                let record = record.clone();
                reference::spawn(async move {
                    for _ in 0..steps {
                        record(task, name);
                        reference::yield_now().await;
                    }
                })
            })
            .collect();
        let sleeper = reference::spawn(async move {
            reference::sleep(step * 3 / 2).await;
            record(3, "sleeps, then computes");
        });
        for task in yielders {
            task.await.map_err(|e| failed("a yielding task", e.0))?;
        }
        sleeper.await.map_err(|e| failed("the sleeping task", e.0))
    })??;
    Ok(spans.take())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voluntary_switches_are_read_from_the_status_file() {
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t42\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(parse_voluntary_switches(status), Some(42));
        assert_eq!(parse_voluntary_switches("Name:\tx\n"), None);
        assert!(voluntary_context_switches().is_some());
    }

    fn every_workload_runs_and_checks_itself_on<L: Loop>() {
        let key = L::RUNTIME.key();
        spawn_and_join::<L>(100).unwrap();
        let (_, switched) = yield_switches::<L>(100).unwrap();
        assert!(switched.is_some());
        let per_switch = ping_pong_switch_cost(L::RUNTIME, 100).unwrap();
        assert!(per_switch > Duration::ZERO && per_switch < Duration::from_millis(1));
        let (total, late) = sleepers::<L>(50, Duration::from_millis(2)).unwrap();
        assert_eq!(late.len(), 50);
        assert!(total >= Duration::from_millis(2));
        assert!(late.iter().all(|&l| l >= 0.0), "{key}: {late:?}");
        echo::<L>(20, 64).unwrap();
        let late = blocked_timer::<L>(Duration::from_millis(1), Duration::from_millis(6)).unwrap();
        assert!(late >= 0.005, "{key}: {late}");
        let (wall, cpu) = idle_wait::<L>(Duration::from_millis(20)).unwrap();
        assert!(
            wall >= Duration::from_millis(20) && cpu < wall / 2,
            "{key}: {cpu:?} of {wall:?}"
        );
    }

    #[test]
    fn every_workload_runs_and_checks_itself_on_the_reference_loop() {
        every_workload_runs_and_checks_itself_on::<ReferenceLoop>();
    }

    #[test]
    fn every_workload_runs_and_checks_itself_on_tokio() {
        every_workload_runs_and_checks_itself_on::<TokioLoop>();
    }

    #[test]
    fn interleaving_records_every_step_on_one_thread() {
        let spans = interleaving(Duration::from_micros(200), 3).unwrap();
        assert_eq!(spans.len(), 7);
        assert!(spans.windows(2).all(|w| w[0].end_ns <= w[1].start_ns));
        assert_eq!(spans[0].task, 1);
        assert_eq!(spans[1].task, 2);
    }
}
