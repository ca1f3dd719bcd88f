//! A real `redis-server` for tests and benchmarks: started on a free loopback port, in a
//! temporary directory of its own, and stopped when dropped. Never a mock.
//!
//! The program is `redis-server` from `PATH` (Debian's package; `.ci/run` installs it), or the
//! one `TRIAD_REDIS_SERVER` names. It listens on 127.0.0.1 only. With [`Persistence::Aof`] it
//! writes an append-only file synced on every write, so that [`RedisServer::restart`] and even
//! [`RedisServer::kill`] followed by [`RedisServer::start_again`] keep every acknowledged write.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What the server keeps on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Persistence {
    /// Nothing: a restart starts empty.
    #[default]
    None,
    /// An append-only file, fsynced on every write: a restart keeps everything.
    Aof,
}

/// How long a server may take to answer its first PING.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A running `redis-server` of this process's own.
#[derive(Debug)]
pub struct RedisServer {
    directory: tempfile::TempDir,
    port: u16,
    persistence: Persistence,
    also_bind: Option<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server without persistence.
    pub fn start() -> io::Result<RedisServer> {
        RedisServer::start_with(Persistence::None)
    }

    /// Starts a server that keeps what `persistence` says, on a free loopback port.
    pub fn start_with(persistence: Persistence) -> io::Result<RedisServer> {
        RedisServer::start_bound(persistence, None)
    }

    /// Starts a server without persistence that also listens on `address`: an address of the
    /// caller's own (a veth end into a network namespace it made), never a public one.
    pub fn start_also_on(address: &str) -> io::Result<RedisServer> {
        RedisServer::start_bound(Persistence::None, Some(address.to_owned()))
    }

    fn start_bound(persistence: Persistence, also_bind: Option<String>) -> io::Result<RedisServer> {
        let mut last_error = None;
        // A port found free may be taken before the server binds it: try a few.
        for _ in 0..5 {
            let port = free_port()?;
            let mut server = RedisServer {
                directory: tempfile::Builder::new().prefix("triad-redis-").tempdir()?,
                port,
                persistence,
                also_bind: also_bind.clone(),
                child: None,
            };
            match server.start_again() {
                Ok(()) => return Ok(server),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port it listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its directory (data files, `redis.log`).
    pub fn directory(&self) -> &Path {
        self.directory.path()
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server the way an operator would (SIGTERM: it writes what it keeps and
    /// exits), then starts it again on the same port and directory.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// Stops it gracefully (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) -> io::Result<()> {
        if let Some(mut child) = self.child.take() {
            terminate(&child);
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait()?.is_none() {
                if Instant::now() > deadline {
                    child.kill()?;
                    child.wait()?;
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    /// Kills it at once (SIGKILL), as a crash or a power cut would.
    pub fn kill(&mut self) -> io::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the server (again) on its port and directory; returns once it answers PING.
    pub fn start_again(&mut self) -> io::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let program =
            std::env::var_os("TRIAD_REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
        let mut command = Command::new(&program);
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(self.also_bind.as_deref())
            .arg("--dir")
            .arg(self.directory.path())
            .args(["--save", "", "--daemonize", "no", "--protected-mode"])
            // Protected mode answers only loopback clients; the other address is a private
            // link of the caller's own (a veth into its network namespace), so let it in.
            .arg(if self.also_bind.is_some() {
                "no"
            } else {
                "yes"
            })
            .args(["--logfile", "redis.log"]);
        match self.persistence {
            Persistence::None => command.args(["--appendonly", "no"]),
            Persistence::Aof => command.args(["--appendonly", "yes", "--appendfsync", "always"]),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| {
                if error.kind() == io::ErrorKind::NotFound {
                    io::Error::new(
                        error.kind(),
                        format!(
                            "{} not found: install Debian's redis-server (.ci/run does), or set \
                             TRIAD_REDIS_SERVER",
                            PathBuf::from(&program).display()
                        ),
                    )
                } else {
                    error
                }
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if ping(self.port) {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .map(|child| child.try_wait())
                .transpose()?
                .flatten();
            if let Some(status) = exited {
                self.child = None;
                return Err(io::Error::other(format!(
                    "redis-server on port {} exited ({status}): {}",
                    self.port,
                    self.log_tail()
                )));
            }
            if Instant::now() > deadline {
                let _ = self.kill();
                return Err(io::Error::other(format!(
                    "redis-server on port {} did not answer within {READY_WITHIN:?}",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.directory.path().join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(3).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// A loopback port nothing listens on now.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Whether a server on `port` answers PING with PONG (a server still loading its data says
/// LOADING: not yet).
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 7];
    stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}

/// Sends SIGTERM to `child` (not yet reaped, so its pid is still its own).
fn terminate(child: &Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_starts_answers_restarts_and_is_gone_when_dropped() {
        let mut server = RedisServer::start_with(Persistence::Aof).unwrap();
        let port = server.port();
        assert!(ping(port));
        assert!(server.url().starts_with("redis://127.0.0.1:"));
        server.restart().unwrap();
        assert!(ping(port), "the same port after a restart");
        server.kill().unwrap();
        assert!(!ping(port));
        server.start_again().unwrap();
        assert!(ping(port));
        let directory = server.directory().to_owned();
        drop(server);
        assert!(!ping(port));
        assert!(!directory.exists(), "its directory goes with it");
    }
}
