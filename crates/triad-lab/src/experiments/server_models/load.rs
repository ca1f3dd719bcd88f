//! The load generator of `server-models` and `many-fetches`: a triad task ([`generate`]) run in
//! a worker process of its own, so that the server's process and the load's never share a heap
//! or a scheduler. On one tokio thread it opens C keep-alive connections to 127.0.0.1, then
//! runs each as a closed loop — send a request, read the whole answer, check its body, send the
//! next — through a warm-up and a number of timed windows.
//!
//! Requests answered during the windows count towards the window they ended in: requests/s
//! and latency quantiles per window are the samples. A request still waiting when a window
//! ends counts in that window too, as a latency of at least its age there, so that a server
//! that leaves connections unserved cannot hide them. A body that differs from the
//! API's answer fails the run.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::http::{PROBES, Work, body, read_head_line, request};

/// What load to put on which port.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct LoadJob {
    pub(crate) port: u16,
    /// Keep-alive connections held open at once.
    pub(crate) connections: usize,
    pub(crate) work: Work,
    /// Untimed load before the windows.
    pub(crate) warm_up: Duration,
    /// Timed windows, one throughput sample each.
    pub(crate) windows: usize,
    pub(crate) window: Duration,
    /// How long opening every connection may take.
    pub(crate) connect_timeout: Duration,
    /// Whether to send [`PROBES`] first, on a connection of their own.
    pub(crate) probe: bool,
}

/// What the load generator saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Load {
    pub(crate) pid: u32,
    /// Connections opened (fewer than asked when the system refused more).
    pub(crate) connected: usize,
    /// Why fewer connections than asked were opened.
    pub(crate) connect_error: Option<String>,
    /// Connections that got at least one answer.
    pub(crate) served: usize,
    /// Answers that ended in each window.
    pub(crate) per_window: Vec<u64>,
    /// Latency quantiles of each window, seconds: p50, p99, p99.9 over its answers (the
    /// requests left waiting at the end count in the last window).
    pub(crate) latency: Vec<[f64; 3]>,
    /// Requests still waiting when the last window ended.
    pub(crate) unanswered: u64,
    /// The status and body of the answer to each probe, when asked for.
    pub(crate) probed: Vec<(u16, String)>,
}

/// Why the load generator gave no figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub(crate) enum LoadError {
    /// A server answered a request wrongly: the worst a server can do.
    #[error("{0}")]
    WrongAnswer(String),
    /// Anything else: a connection, a runtime or a probe failed.
    #[error("{0}")]
    Failed(String),
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (each end of each connection
/// is a descriptor); the limit in force.
pub(crate) fn raise_file_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => limit.maximum.unwrap_or(u64::MAX),
        Err(_) => limit.current.unwrap_or(u64::MAX),
    }
}

/// Puts `job`'s load on its port and reports what came back.
#[triad::task]
pub(crate) fn generate(job: LoadJob) -> Result<Load, LoadError> {
    raise_file_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LoadError::Failed(format!("runtime: {e}")))?;
    runtime.block_on(run(job))
}

/// What one connection's loop saw.
#[derive(Default)]
struct Seen {
    per_window: Vec<u64>,
    /// (window, latency) of every answer counted, and of a request left waiting.
    latencies: Vec<(usize, f64)>,
    answered: bool,
    waiting: bool,
}

#[cfg(test)]
pub(crate) async fn run_for_test(job: LoadJob) -> Result<Load, LoadError> {
    run(job).await
}

async fn run(job: LoadJob) -> Result<Load, LoadError> {
    let probed = if job.probe {
        probe(job.port).await.map_err(LoadError::Failed)?
    } else {
        Vec::new()
    };
    let (streams, connect_error) = connect_all(job).await;
    let start = Instant::now();
    let from = start + job.warm_up;
    let end = from + job.window * job.windows as u32;
    let mut loops = tokio::task::JoinSet::new();
    for (index, stream) in streams.into_iter().enumerate() {
        loops.spawn(one_connection(stream, index, job, from, end));
    }
    let connected = loops.len();
    let mut per_window = vec![0; job.windows];
    let mut latencies = vec![Vec::new(); job.windows];
    let (mut served, mut unanswered) = (0, 0);
    while let Some(seen) = loops.join_next().await {
        let seen = seen.map_err(|e| LoadError::Failed(format!("a connection's loop: {e}")))??;
        for (total, count) in per_window.iter_mut().zip(&seen.per_window) {
            *total += count;
        }
        for (window, latency) in seen.latencies {
            latencies[window].push(latency);
        }
        served += usize::from(seen.answered);
        unanswered += u64::from(seen.waiting);
    }
    let latency = latencies
        .iter_mut()
        .map(|window| {
            window.sort_by(f64::total_cmp);
            [0.5, 0.99, 0.999].map(|q| quantile(window, q))
        })
        .collect();
    Ok(Load {
        pid: std::process::id(),
        connected,
        connect_error,
        served,
        per_window,
        latency,
        unanswered,
        probed,
    })
}

/// Sends every probe on one kept-alive connection; their answers.
async fn probe(port: u16) -> Result<Vec<(u16, String)>, String> {
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .map_err(|_| "probe: the connect timed out".to_owned())?
    .map_err(|e| format!("probe: connect: {e}"))?;
    let mut stream = BufReader::new(stream);
    let mut answers = Vec::new();
    for line in PROBES {
        let head = format!("{line}\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n");
        let exchange = async {
            stream
                .get_mut()
                .write_all(head.as_bytes())
                .await
                .map_err(|e| format!("send: {e}"))?;
            read_answer(&mut stream).await
        };
        let answer = tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .map_err(|_| format!("probe {line:?}: no answer in 5 s"))?
            .map_err(|e| format!("probe {line:?}: {e}"))?;
        answers.push(answer);
    }
    Ok(answers)
}

/// The `q` quantile of `sorted` (NaN when empty).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[index - 1]
}

/// Opens up to `job.connections` connections, a wave at a time, within the connect timeout.
async fn connect_all(job: LoadJob) -> (Vec<TcpStream>, Option<String>) {
    const WAVE: usize = 256;
    let deadline = Instant::now() + job.connect_timeout;
    let mut streams = Vec::with_capacity(job.connections);
    while streams.len() < job.connections {
        let wave = WAVE.min(job.connections - streams.len());
        let mut connecting = tokio::task::JoinSet::new();
        for _ in 0..wave {
            connecting.spawn(tokio::time::timeout_at(
                deadline,
                TcpStream::connect(("127.0.0.1", job.port)),
            ));
        }
        let mut error = None;
        while let Some(done) = connecting.join_next().await {
            match done {
                Ok(Ok(Ok(stream))) => {
                    let _ = stream.set_nodelay(true);
                    streams.push(stream);
                }
                Ok(Ok(Err(e))) => error = Some(format!("connection {}: {e}", streams.len() + 1)),
                Ok(Err(_)) => error = Some("the connect timeout passed".to_owned()),
                Err(e) => error = Some(e.to_string()),
            }
        }
        if let Some(error) = error {
            return (streams, Some(error));
        }
    }
    (streams, None)
}

async fn one_connection(
    stream: TcpStream,
    index: usize,
    job: LoadJob,
    from: Instant,
    end: Instant,
) -> Result<Seen, LoadError> {
    let mut seen = Seen {
        per_window: vec![0; job.windows],
        ..Seen::default()
    };
    let mut stream = BufReader::new(stream);
    let mut sequence = index as u64 * 7;
    loop {
        let sent = Instant::now();
        if sent >= end {
            return Ok(seen);
        }
        let n = sequence % 1000;
        sequence += 1;
        let exchange = async {
            stream
                .get_mut()
                .write_all(request(n, job.work).as_bytes())
                .await
                .map_err(|e| format!("send: {e}"))?;
            read_answer(&mut stream).await
        };
        match tokio::time::timeout_at(end, exchange).await {
            Err(_) => {
                // Still waiting at the end: in every window it waited through, a latency of at
                // least its age there.
                seen.waiting = true;
                seen.latencies.extend(ages(sent, end, (from, job)));
                return Ok(seen);
            }
            // The server closed the connection (or it broke): this loop ends.
            Ok(Err(_)) => return Ok(seen),
            Ok(Ok((status, answer))) => {
                let expected = body(n, job.work);
                if status != 200 || answer != expected {
                    return Err(LoadError::WrongAnswer(format!(
                        "a wrong answer to n = {n}: {status} {answer:?} (expected {expected:?})"
                    )));
                }
                let done = Instant::now();
                if done >= end {
                    // Answered as the run ended (a server that took the connection only once
                    // others closed theirs): too late to count.
                    seen.waiting = true;
                    seen.latencies.extend(ages(sent, end, (from, job)));
                    return Ok(seen);
                }
                seen.answered = true;
                seen.latencies.extend(ages(sent, done, (from, job)));
                if done >= from {
                    let window = ((done - from).as_nanos() / job.window.as_nanos().max(1)) as usize;
                    let window = window.min(job.windows - 1);
                    seen.per_window[window] += 1;
                    seen.latencies.push((window, (done - sent).as_secs_f64()));
                }
            }
        }
    }
}

/// The ends of the windows that a request sent at `sent` was still waiting at, up to `until`,
/// each with the request's age there: so that a window's latencies include the requests it
/// left waiting, and a server cannot hide connections it starves.
fn ages(
    sent: Instant,
    until: Instant,
    (from, job): (Instant, LoadJob),
) -> impl Iterator<Item = (usize, f64)> {
    (0..job.windows).filter_map(move |window| {
        let window_end = from + job.window * (window as u32 + 1);
        (window_end > sent && window_end <= until)
            .then(|| (window, (window_end - sent).as_secs_f64()))
    })
}

/// One fetch of `n` with `work` on a new connection, as [`fetch_blocking`] on the event loop.
///
/// [`fetch_blocking`]: super::http::fetch_blocking
pub(crate) async fn fetch_async(port: u16, n: u64, work: Work) -> Result<(), String> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut stream = BufReader::new(stream);
    stream
        .get_mut()
        .write_all(request(n, work).as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let (status, answer) = read_answer(&mut stream).await?;
    let expected = body(n, work);
    if status != 200 || answer != expected {
        return Err(format!(
            "a wrong answer to n = {n}: {status} {answer:?} (expected {expected:?})"
        ));
    }
    Ok(())
}

/// Reads one answer: its status and body (the head's `Content-Length` bytes after it).
pub(crate) async fn read_answer(
    stream: &mut BufReader<TcpStream>,
) -> Result<(u16, String), String> {
    let mut line = String::new();
    let mut status = None;
    let mut length = None;
    loop {
        line.clear();
        let read = stream
            .read_line(&mut line)
            .await
            .map_err(|e| format!("receive: {e}"))?;
        if read == 0 {
            return Err("the server closed the connection".to_owned());
        }
        let text = line.trim_end();
        if text.is_empty() {
            break;
        }
        read_head_line(text, &mut status, &mut length);
    }
    let (Some(status), Some(length)) = (status, length) else {
        return Err(format!(
            "an answer without a status or length, ending {line:?}"
        ));
    };
    let mut body = vec![0; length.min(1 << 20)];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| format!("receive the body: {e}"))?;
    String::from_utf8(body)
        .map(|body| (status, body))
        .map_err(|_| "an answer that is not UTF-8".to_owned())
}
