//! The Rust server models of `server-models`, each run as a triad task in a worker process of
//! its own ([`serve`]), on a listening socket the lab bound and sent along (`SharedFd`, passed
//! with `SCM_RIGHTS`: prefork's workers inherit the same socket and share its accept queue).
//!
//! A server runs until the lab closes its end of the stop socket, then stops accepting and
//! answers with its process id, its peak resident memory and what it served. The models:
//! one OS thread per connection; a pool of threads, each owning a connection until the client
//! closes it (`triad::ThreadPool`); prefork, where each of several processes runs one event loop
//! on the shared socket; tokio's multi-threaded runtime; and the lab's reference event loop.

use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::event::{PollFd, PollFlags};
use serde::{Deserialize, Serialize};
use triad::fdpass::SharedFd;

use super::http::{serve_async, serve_blocking};
use crate::experiments::cost_support::read_memory;

/// A Rust server model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Model {
    /// One OS thread per accepted connection.
    ThreadPerConnection,
    /// A fixed pool of threads, each serving one connection at a time.
    ThreadPool,
    /// One of several processes, each an event loop (tokio, current-thread) on the shared socket.
    Prefork,
    /// tokio's multi-threaded runtime, one task per connection.
    Tokio,
    /// The lab's reference event loop (`event-loop`), one task per connection.
    ReferenceLoop,
}

/// What a server process is given.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ServeJob {
    pub(crate) model: Model,
    /// The listening socket, bound by the lab on 127.0.0.1.
    pub(crate) listener: SharedFd,
    /// One end of a socket pair: readable (at end of file) when the lab wants the server to stop.
    pub(crate) stop: SharedFd,
    /// Threads of the thread pool.
    pub(crate) pool_threads: usize,
}

/// What a server process says when it stops.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Served {
    pub(crate) pid: u32,
    /// `VmHWM` of the process, bytes.
    pub(crate) peak_resident: u64,
    /// Connections accepted.
    pub(crate) accepted: u64,
    /// Why the server refused connections it accepted (a thread it could not start), if it did.
    pub(crate) refused: Option<String>,
}

/// Serves `job.model` on `job.listener` until the stop socket reads end of file.
#[triad::task]
pub(crate) fn serve(job: ServeJob) -> Result<Served, String> {
    super::load::raise_file_limit();
    let listener = job
        .listener
        .try_clone_owned()
        .map_err(|e| format!("listener: {e}"))?;
    let stop = job
        .stop
        .try_clone_owned()
        .map_err(|e| format!("stop: {e}"))?;
    let listener = TcpListener::from(listener);
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("non-blocking: {e}"))?;
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = match job.model {
        Model::ThreadPerConnection => threads(&listener, &stop, &accepted, None)?,
        Model::ThreadPool => threads(&listener, &stop, &accepted, Some(job.pool_threads))?,
        Model::Prefork | Model::Tokio => {
            event_loop(listener, stop, &accepted, job.model == Model::Tokio)?;
            None
        }
        Model::ReferenceLoop => {
            reference_loop(listener, stop, Arc::clone(&accepted))?;
            None
        }
    };
    let memory = read_memory().map_err(|e| format!("memory: {e}"))?;
    Ok(Served {
        pid: std::process::id(),
        peak_resident: memory.peak_resident,
        accepted: accepted.load(Ordering::Relaxed),
        refused,
    })
}

/// The blocking models: accept until `stop` is readable, each connection on a new thread or on
/// the pool; why a connection was refused, if one was.
fn threads(
    listener: &TcpListener,
    stop: &OwnedFd,
    accepted: &AtomicU64,
    pool: Option<usize>,
) -> Result<Option<String>, String> {
    let pool = pool
        .map(triad::ThreadPool::new)
        .transpose()
        .map_err(|e| format!("thread pool: {e}"))?;
    let mut refused = None;
    loop {
        let mut fds = [
            PollFd::new(listener, PollFlags::IN),
            PollFd::new(stop, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        if !fds[1].revents().is_empty() {
            return Ok(refused);
        }
        // Take every connection waiting, then poll again.
        while let Ok((stream, _)) = listener.accept() {
            accepted.fetch_add(1, Ordering::Relaxed);
            if stream.set_nonblocking(false).is_err() {
                continue;
            }
            match &pool {
                Some(pool) => pool.execute(move || serve_blocking(stream)),
                None => {
                    let started = std::thread::Builder::new().spawn(move || serve_blocking(stream));
                    if let Err(e) = started {
                        let count = accepted.load(Ordering::Relaxed);
                        refused.get_or_insert(format!("thread {count}: {e}"));
                    }
                }
            }
        }
    }
}

/// The event-loop models: a task per connection on tokio (multi-threaded, or one thread for a
/// prefork process), until `stop` reads end of file.
fn event_loop(
    listener: TcpListener,
    stop: OwnedFd,
    accepted: &AtomicU64,
    multi_threaded: bool,
) -> Result<(), String> {
    let runtime = if multi_threaded {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    }
    .enable_all()
    .build()
    .map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(async {
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|e| format!("listener: {e}"))?;
        let stop = std::os::unix::net::UnixStream::from(stop);
        stop.set_nonblocking(true)
            .map_err(|e| format!("stop: {e}"))?;
        let stop = tokio::net::UnixStream::from_std(stop).map_err(|e| format!("stop: {e}"))?;
        let stopped = async {
            let mut byte = [0u8; 1];
            loop {
                let _ = stop.readable().await;
                match stop.try_read(&mut byte) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    _ => return,
                }
            }
        };
        let accepting = async {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(serve_async(stream));
                    }
                    // Out of descriptors, or another prefork process took the connection.
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
                }
            }
        };
        tokio::select! {
            () = stopped => {}
            () = accepting => {}
        }
        Ok::<(), String>(())
    })?;
    // The connections' tasks go with the runtime.
    runtime.shutdown_background();
    Ok(())
}

/// The reference loop's model: an accept loop and a task per connection on the lab's own event
/// loop, until `stop` reads end of file.
fn reference_loop(
    listener: TcpListener,
    stop: OwnedFd,
    accepted: Arc<AtomicU64>,
) -> Result<(), String> {
    use crate::experiments::event_loop::reference_loop::{AsyncFd, EventLoop, spawn};
    let event_loop = EventLoop::new().map_err(|e| format!("the reference loop: {e}"))?;
    event_loop.block_on(async move {
        let listener =
            AsyncFd::new(OwnedFd::from(listener)).map_err(|e| format!("listener: {e}"))?;
        let stop = AsyncFd::new(stop).map_err(|e| format!("stop: {e}"))?;
        spawn(async move {
            while let Ok(connection) = listener.accept().await {
                accepted.fetch_add(1, Ordering::Relaxed);
                let _ = rustix::net::sockopt::set_tcp_nodelay(&connection, true);
                if let Ok(connection) = AsyncFd::new(connection) {
                    spawn(super::http::serve_reference(connection));
                }
            }
        });
        // End of file (or an error) on the stop socket: the lab is done.
        let _ = stop.read(&mut [0u8; 1]).await;
        Ok::<(), String>(())
    })
}

/// A Rust server model running in worker processes of its own, on a fresh port of 127.0.0.1;
/// dropping it (or [`stop`](Self::stop)) stops them.
pub(crate) struct RunningServer {
    port: u16,
    /// The lab's end of the stop socket: closing it stops every server process.
    stop: Option<OwnedFd>,
    servers: Vec<triad::TaskHandle<Result<Served, String>>>,
    pool: triad::ProcessPool,
}

impl RunningServer {
    /// Binds a fresh socket (backlog 4096) and starts `model` on it in `processes` worker
    /// processes (more than one for prefork), each killed after `timeout`.
    pub(crate) fn start(
        model: Model,
        processes: usize,
        pool_threads: usize,
        timeout: std::time::Duration,
    ) -> Result<Self, String> {
        let (listener, port) = listen(4096).map_err(|e| format!("listening: {e}"))?;
        let (stop, stop_theirs) = stop_pair().map_err(|e| format!("the stop socket: {e}"))?;
        let listener = SharedFd::new(OwnedFd::from(listener));
        let pool = triad::ProcessPool::builder()
            .workers(processes)
            .max_tasks_per_child(1)
            .start_method(triad::StartMethod::ForkServer)
            .build()
            .map_err(|e| format!("starting the server: {e}"))?;
        let servers = (0..processes)
            .map(|_| {
                let job = ServeJob {
                    model,
                    listener: listener.clone(),
                    stop: stop_theirs.clone(),
                    pool_threads,
                };
                pool.submit_with_timeout(serve, job, timeout)
                    .map_err(|e| format!("starting the server: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The servers hold the socket now: the port is free once they stop.
        Ok(Self {
            port,
            stop: Some(stop),
            servers,
            pool,
        })
    }

    /// The port it serves on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Stops every server process; what each said.
    pub(crate) fn stop(mut self) -> Result<Vec<Served>, String> {
        drop(self.stop.take());
        let served = std::mem::take(&mut self.servers)
            .into_iter()
            .map(|server| server.wait().map_err(|e| format!("the server: {e}"))?)
            .collect();
        self.pool.join();
        served
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        drop(self.stop.take());
    }
}

/// The socket a server stops on, as the lab's end and the server's.
fn stop_pair() -> std::io::Result<(OwnedFd, SharedFd)> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    Ok((OwnedFd::from(ours), SharedFd::new(OwnedFd::from(theirs))))
}

/// A listening socket on 127.0.0.1 with a port the OS picks and a backlog of `backlog`
/// connections (the kernel caps it at `net.core.somaxconn`).
fn listen(backlog: i32) -> std::io::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    // Listening again changes the backlog of a listening socket (std's is 128).
    rustix::net::listen(listener.as_fd(), backlog)?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::server_models::http::Work;
    use crate::experiments::server_models::load::{LoadJob, run_for_test};
    use std::time::Duration;

    /// A pool of 4 threads under 12 keep-alive connections: 4 are served and 8 wait, to the
    /// very end (a connection answered only as the others close does not count).
    #[test]
    fn a_pool_serves_as_many_connections_as_it_has_threads() {
        let (listener, port) = listen(4096).unwrap();
        listener.set_nonblocking(true).unwrap();
        let (stop, theirs) = stop_pair().unwrap();
        let theirs = theirs.try_clone_owned().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let counted = accepted.clone();
        let server = std::thread::spawn(move || threads(&listener, &theirs, &counted, Some(4)));
        for work in [Work::Cpu, Work::Wait] {
            let job = LoadJob {
                port,
                connections: 12,
                work,
                warm_up: Duration::from_millis(40),
                windows: 2,
                window: Duration::from_millis(40),
                connect_timeout: Duration::from_secs(5),
                probe: false,
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let load = runtime.block_on(run_for_test(job)).unwrap();
            assert_eq!((load.connected, load.served), (12, 4), "{work:?}");
            // The 8 queued, and perhaps the served ones' requests in flight at the end.
            assert!(load.unanswered >= 8, "{work:?}: {}", load.unanswered);
            // Two thirds of the connections starve, one waiting request each against the
            // served ones' many: every window's p99.9 is their age, at least the warm-up's 40 ms.
            for window in &load.latency {
                assert!(window[2] >= 0.040, "{work:?}: {:?}", load.latency);
            }
        }
        drop(stop);
        assert_eq!(server.join().unwrap(), Ok(None));
        assert_eq!(accepted.load(Ordering::Relaxed), 24);
    }
}
