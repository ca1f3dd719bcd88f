//! The slow service of `io-bound` and `hybrid`: a local TCP server that answers every request
//! after a delay, and its client, blocking ([`round_trip`]) and async ([`round_trip_async`]).
//!
//! The protocol is one line each way: the client sends a delay in milliseconds as decimal digits
//! and a newline; the server waits that long on a tokio timer, sends the same line back and
//! closes the connection. It listens on 127.0.0.1 on a port the OS picks, serves every
//! connection as its own task on a current-thread tokio runtime driven by a thread of its own,
//! and stops (closing every connection) when dropped.

use std::io::{Read, Write};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::error::LabError;

/// Longest delay the server agrees to wait, so a bad request cannot hold a connection for long.
const LONGEST_DELAY_MS: u64 = 10_000;

/// A running delay server.
#[derive(Debug)]
pub(super) struct DelayServer {
    port: u16,
    // Dropping the sender ends the server thread's `block_on`.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DelayServer {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub(super) fn start() -> Result<Self, LabError> {
        let os = |what: &str| {
            let what = format!("delay server: {what}");
            move |error| LabError::os(what, error)
        };
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(os("bind"))?;
        listener.set_nonblocking(true).map_err(os("non-blocking"))?;
        let port = listener.local_addr().map_err(os("local address"))?.port();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(os("runtime"))?;
        let listener = {
            let _inside = runtime.enter();
            TcpListener::from_std(listener).map_err(os("register"))?
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("lab-delay-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        _ = stopped => {}
                        () = serve(listener) => {}
                    }
                });
            })
            .map_err(os("thread"))?;
        Ok(DelayServer {
            port,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The port it listens on (on 127.0.0.1).
    pub(super) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for DelayServer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream));
            }
            // Out of descriptors or a connection reset before accept: let it pass, and do not
            // spin on an error that repeats.
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

/// Reads the delay, waits, echoes it; a client that goes away mid-way is no concern of ours.
async fn answer(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    if stream.read_line(&mut line).await.is_err() {
        return;
    }
    let Ok(delay_ms) = line.trim().parse::<u64>() else {
        return;
    };
    tokio::time::sleep(Duration::from_millis(delay_ms.min(LONGEST_DELAY_MS))).await;
    let mut stream = stream.into_inner();
    let _ = stream.write_all(format!("{delay_ms}\n").as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// One request to the delay server on a blocking socket: connect, ask for `delay_ms`, read the
/// echo until the server closes.
#[triad::task]
pub(super) fn round_trip(port: u16, delay_ms: u64) -> Result<u64, String> {
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .write_all(format!("{delay_ms}\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| format!("receive: {e}"))?;
    parse_reply(&reply)
}

/// [`round_trip`] on the event loop's non-blocking sockets.
#[triad::task]
pub(super) async fn round_trip_async(port: u16, delay_ms: u64) -> Result<u64, String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .write_all(format!("{delay_ms}\n").as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .await
        .map_err(|e| format!("receive: {e}"))?;
    parse_reply(&reply)
}

pub(super) fn parse_reply(reply: &str) -> Result<u64, String> {
    reply
        .trim()
        .parse()
        .map_err(|_| format!("the server answered {reply:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn answers_after_the_delay_asked_for() {
        let server = DelayServer::start().unwrap();
        let started = Instant::now();
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        stream.write_all(b"30\n").unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, "30\n");
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_bad_request_is_closed_without_an_answer() {
        let server = DelayServer::start().unwrap();
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        stream.write_all(b"soon\n").unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, "");
    }

    #[test]
    fn a_refused_connection_is_an_error_not_a_panic() {
        let server = DelayServer::start().unwrap();
        let port = server.port();
        drop(server);
        assert!(round_trip::call(port, 1).is_err());
        assert_eq!(parse_reply("7\n"), Ok(7));
        assert!(parse_reply("").is_err());
    }
}
