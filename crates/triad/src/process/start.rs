//! Starting a worker process, by each start method.
//!
//! *Spawn* re-executes this program (`/proc/self/exe`) with the worker's end of a socketpair at
//! descriptor 3, its slot page (see `slot`) at 4, and `TRIAD_WORKER=<our pid>:3:4` in its
//! environment; its `main` calls
//! [`init`](super::init), which finds the socket and serves. Between fork and exec the child only
//! moves the descriptor and asks the kernel to kill it when its parent thread goes
//! (`PR_SET_PDEATHSIG`), checking that the parent is still there — so a worker never outlives
//! the pool's dispatcher thread that started it, even if the whole program is killed.
//!
//! A re-executed process's command line starts `triad worker (pool of <program>)` or `triad
//! fork server (of <program>)`, so that `ps` says what it is; `init` also names it (`comm`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};

use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};

use super::server::ServerClient;
use super::slot::Slot;
use super::{FORK_SERVER_ENV, WORKER_ENV, WorkerEntry};

/// The descriptor number a re-executed process finds the first descriptor it is given at; the
/// others follow.
const FIRST_FD: i32 = 3;

/// A worker process just started: its socket (non-blocking) and its handle.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) socket: OwnedFd,
    pub(crate) process: WorkerProcess,
    /// The pool's mapping of the worker's "now running" slot.
    pub(crate) slot: Slot,
}

/// How a pool starts its workers.
#[derive(Debug, Clone)]
pub(crate) enum Starter {
    /// Re-execute this program for each worker.
    Spawn,
    /// Ask the program's shared fork server; if it has gone (killed, say), a new one is started.
    SharedServer(Arc<ServerClient>),
    /// Ask the pool's own fork server, forked from the program when the pool was built; if it
    /// has gone, no other can be forked (the program has threads by then).
    OwnServer(Arc<ServerClient>),
}

/// A worker process: our own child, or a child of a fork server.
#[derive(Debug)]
pub(crate) enum WorkerProcess {
    Child(Child),
    Forked { pid: i32, server: Arc<ServerClient> },
}

impl WorkerProcess {
    pub(crate) fn id(&self) -> u32 {
        match self {
            WorkerProcess::Child(child) => child.id(),
            WorkerProcess::Forked { pid, .. } => *pid as u32,
        }
    }

    pub(crate) fn kill(&mut self) {
        match self {
            WorkerProcess::Child(child) => {
                let _ = child.kill();
            }
            // SAFETY: kill has no memory-safety preconditions; the pid is a live worker's,
            // as the server has not reported it exited (it would not be in the pool then).
            WorkerProcess::Forked { pid, .. } => unsafe {
                libc::kill(*pid, libc::SIGKILL);
            },
        }
    }

    /// Lets the process go without waiting for its end: a fork server's child is reaped by the
    /// server; our own child is reaped here, as it must be (it was told to stop, so this is
    /// short).
    pub(crate) fn release(&mut self) {
        match self {
            WorkerProcess::Child(child) => {
                let _ = child.wait();
            }
            WorkerProcess::Forked { pid, server } => server.forget(*pid),
        }
    }

    /// Waits for the process to end and returns (signal, exit code).
    pub(crate) fn wait(&mut self) -> (Option<i32>, Option<i32>) {
        match self {
            WorkerProcess::Child(child) => match child.wait() {
                Ok(status) => (status.signal(), status.code()),
                Err(_) => (None, None),
            },
            WorkerProcess::Forked { pid, server } => server.wait(*pid),
        }
    }
}

impl Starter {
    /// Starts a worker. A shared fork server that has gone is replaced by a new one first.
    pub(crate) fn start(&mut self) -> io::Result<Started> {
        let server = match self {
            Starter::Spawn => return spawn_worker(),
            Starter::SharedServer(server) if server.is_gone() => {
                *server = shared_fork_server()?;
                server
            }
            Starter::SharedServer(server) => server,
            Starter::OwnServer(server) if server.is_gone() => {
                return Err(io::Error::other(
                    "the pool's fork server is gone, and a fork pool cannot fork another from \
                     a program that has threads by now",
                ));
            }
            Starter::OwnServer(server) => server,
        };
        let (ours, theirs) = stream_pair()?;
        let (slot_page, slot) = Slot::create().map_err(std::io::Error::other)?;
        let pid = server.fork_worker(theirs, slot_page)?;
        rustix::io::ioctl_fionbio(&ours, true)?;
        Ok(Started {
            socket: ours,
            process: WorkerProcess::Forked {
                pid,
                server: server.clone(),
            },
            slot,
        })
    }
}

/// The program's shared fork server, while some pool uses it. It starts on first use by
/// re-executing this program, again if it has gone (killed, say), and ends — reaped — when the
/// last pool using it is dropped.
static SHARED_SERVER: Mutex<Weak<ServerClient>> = Mutex::new(Weak::new());

/// The program's shared fork server, started if none runs.
pub(crate) fn shared_fork_server() -> io::Result<Arc<ServerClient>> {
    let mut server = SHARED_SERVER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(running) = server.upgrade().filter(|server| !server.is_gone()) {
        return Ok(running);
    }
    let started = Arc::new(start_fork_server()?);
    *server = Arc::downgrade(&started);
    Ok(started)
}

/// Whether the shared fork server is running (the default start method then uses it).
pub(crate) fn fork_server_running() -> bool {
    SHARED_SERVER
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .upgrade()
        .is_some_and(|server| !server.is_gone())
}

fn start_fork_server() -> io::Result<ServerClient> {
    let (ours, theirs) = stream_pair()?;
    let parent = std::process::id() as i32;
    // No parent-death signal: it would follow the thread that happens to start the server;
    // the server leaves when its control socket closes, which happens when the last pool using
    // it is dropped, or when this program ends however it ends.
    let child = reexec(
        "triad fork server (of",
        (FORK_SERVER_ENV, format!("{parent}:{FIRST_FD}")),
        &[theirs.as_raw_fd()],
        false,
    )?;
    drop(theirs);
    // Dropping `Child` neither kills nor waits: the client's reader thread reaps the server.
    ServerClient::new(child.id() as i32, ours)
}

/// Forks a fork server from this program, for a `Fork` pool: refused unless this thread is the
/// process's only one (threads of triad's that have been joined do not count), as `fork` is
/// only safe then.
pub(crate) fn fork_own_server() -> io::Result<ServerClient> {
    let others = super::own_threads::other_threads()?;
    if others != 0 {
        return Err(io::Error::other(format!(
            "the fork start method needs a single-threaded process, and this one has {} \
             threads; use StartMethod::ForkServer (or Spawn) instead",
            others + 1
        )));
    }
    let (ours, theirs) = stream_pair()?;
    // Whatever sits in our output buffers would otherwise be printed again by the copy.
    {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
    }
    // SAFETY: this process has exactly one thread (checked above), so the child is a whole
    // copy of it.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        drop(ours);
        super::init::name_this_process(super::init::FORK_SERVER_NAME);
        super::server::serve(theirs);
    }
    drop(theirs);
    ServerClient::new(pid, ours)
}

/// A connected pair of Unix stream sockets, closed on exec: one end for the pool or server,
/// one for the process it starts.
fn stream_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Starts a worker by re-executing this program.
fn spawn_worker() -> io::Result<Started> {
    let (ours, theirs) = stream_pair()?;
    let (slot_page, slot) = Slot::create().map_err(std::io::Error::other)?;
    let parent = std::process::id() as i32;
    let child = reexec(
        "triad worker (pool of",
        (WORKER_ENV, format!("{parent}:{FIRST_FD}:{}", FIRST_FD + 1)),
        &[theirs.as_raw_fd(), slot_page.as_raw_fd()],
        true,
    )?;
    drop(theirs);
    drop(slot_page);
    rustix::io::ioctl_fionbio(&ours, true)?;
    Ok(Started {
        socket: ours,
        process: WorkerProcess::Child(child),
        slot,
    })
}

/// Re-executes this program with `env` set and `fds` at descriptors 3, 4, …, and a first
/// argument that reads `<role> <program>)`; with `die_with_parent`, the kernel kills it when the
/// calling thread ends (`PR_SET_PDEATHSIG`), and it exits at once if that has already happened.
fn reexec(
    role: &str,
    env: (&str, String),
    fds: &[i32],
    die_with_parent: bool,
) -> io::Result<Child> {
    let parent = std::process::id() as i32;
    let mut command = Command::new("/proc/self/exe");
    command.arg0(format!("{role} {})", program_name()));
    for entry in inventory::iter::<WorkerEntry> {
        command.args(entry.args);
    }
    command.env(env.0, env.1).stdin(Stdio::null());
    assert!(fds.len() <= 8, "reexec places at most 8 descriptors");
    let fds = fds.to_vec();
    // SAFETY: the closure runs in the child between fork and exec, where only async-signal-safe
    // calls are allowed: fcntl, dup2, prctl and getppid are plain system calls, and it reads
    // `fds` without allocating.
    unsafe {
        command.pre_exec(move || {
            // First move every descriptor above the targets, so no move overwrites another;
            // the copies close at exec, and dup2 leaves the targets open across it.
            let mut moved = [0; 8];
            for (index, &fd) in fds.iter().enumerate() {
                moved[index] = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
                if moved[index] < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (index, &fd) in moved[..fds.len()].iter().enumerate() {
                if libc::dup2(fd, FIRST_FD + index as i32) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if die_with_parent {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
            }
            Ok(())
        });
    }
    command.spawn()
}

/// This program's name, as its own first argument gives it (or the executable's file name).
fn program_name() -> String {
    let from_arg = std::env::args_os().next().and_then(|arg| {
        std::path::Path::new(&arg)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
    });
    from_arg
        .or_else(|| {
            std::env::current_exe()
                .ok()?
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "this program".to_owned())
}
