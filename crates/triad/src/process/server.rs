//! The fork server: a single-threaded process that forks workers on request.
//!
//! `fork()` is only safe in a process with one thread: the child gets a copy of every lock, and
//! the threads that held them do not come along. A fork server is a process that never starts
//! a thread, so it can fork safely for ever, whatever its parent does. The pool sends it a
//! worker's socket and slot page (`SCM_RIGHTS`); it forks, and the child serves as a worker on
//! them; it watches each child through a pidfd, reaps it when it ends and reports its exit
//! status back, since the pool cannot `waitpid` a process that is not its own child. (A pidfd
//! rather than `SIGCHLD`: a signal goes to any thread that does not block it, and a test
//! harness hosting the server has threads of its own.) When the pool's end of
//! the control socket closes, the server kills its workers and exits.
//!
//! Two start methods use it: [`StartMethod::ForkServer`](super::StartMethod::ForkServer) starts
//! one server per program by re-executing it (a fresh process, single-threaded however busy the
//! program is), and [`StartMethod::Fork`](super::StartMethod::Fork) forks a server from the
//! program itself when a pool is built, so that every worker starts as a copy of the program's
//! memory at that moment.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex};

use serde::{Deserialize, Serialize};

use super::own_threads::{self, OwnThread};
use super::slot::Slot;
use super::wire::{FrameReader, decode_payload, encode_frame};
use crate::error::describe_exit;
use crate::fdpass::{recv_with_fds, send_with_fds};

/// A request to the server.
#[derive(Debug, Serialize, Deserialize)]
enum ToServer {
    /// Fork a worker on the two descriptors sent with this message: socket, then slot page.
    Fork,
}

/// What the server tells the pool.
#[derive(Debug, Serialize, Deserialize)]
enum FromServer {
    /// A worker was forked.
    Forked { pid: i32 },
    /// The fork failed.
    Failed { error: String },
    /// A worker exited: by `signal`, or with `code`.
    Exited {
        pid: i32,
        signal: Option<i32>,
        code: Option<i32>,
    },
}

/// Serves fork requests on `control` until it closes; never returns.
pub(crate) fn serve(control: OwnedFd) -> ! {
    let code = match Server::new(control).and_then(|mut server| server.run()) {
        Ok(()) => 0,
        Err(_) => super::worker::EXIT_PROTOCOL,
    };
    // A `Fork` pool's server is a fork of the program: it must not run the program's exit
    // handlers.
    super::worker::exit_now(code)
}

struct Server {
    control: OwnedFd,
    reader: FrameReader,
    fds: VecDeque<OwnedFd>,
    /// Live children, each with a pidfd that becomes readable when it ends.
    children: Vec<(i32, OwnedFd)>,
}

impl Server {
    fn new(control: OwnedFd) -> std::io::Result<Self> {
        Ok(Server {
            control,
            reader: FrameReader::new(),
            fds: VecDeque::new(),
            children: Vec::new(),
        })
    }

    fn run(&mut self) -> std::io::Result<()> {
        loop {
            let (control_ready, ended): (bool, Vec<usize>) = {
                let mut fds = Vec::with_capacity(self.children.len() + 1);
                fds.push(rustix::event::PollFd::new(
                    &self.control,
                    rustix::event::PollFlags::IN,
                ));
                for (_, pidfd) in &self.children {
                    fds.push(rustix::event::PollFd::new(
                        pidfd,
                        rustix::event::PollFlags::IN,
                    ));
                }
                match rustix::event::poll(&mut fds, None) {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(error) => return Err(error.into()),
                }
                let ended = fds[1..]
                    .iter()
                    .enumerate()
                    .filter(|(_, fd)| !fd.revents().is_empty())
                    .map(|(index, _)| index)
                    .collect();
                (!fds[0].revents().is_empty(), ended)
            };
            for index in ended.into_iter().rev() {
                let (pid, _pidfd) = self.children.swap_remove(index);
                self.reap(pid)?;
            }
            if control_ready && !self.read_requests()? {
                // The pool is gone: its workers go with it.
                for (pid, _) in &self.children {
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe { libc::kill(*pid, libc::SIGKILL) };
                }
                return Ok(());
            }
        }
    }

    /// Reads and serves requests; false when the control socket has closed.
    fn read_requests(&mut self) -> std::io::Result<bool> {
        let mut buffer = [0_u8; 4096];
        let (read, fds) = recv_with_fds(self.control.as_fd(), &mut buffer, 4)?;
        if read == 0 {
            return Ok(false);
        }
        self.fds.extend(fds);
        self.reader.extend(&buffer[..read]);
        while let Some(payload) = self.reader.next_frame().map_err(std::io::Error::other)? {
            let ToServer::Fork = decode_payload(payload).map_err(std::io::Error::other)?;
            let (Some(socket), Some(slot)) = (self.fds.pop_front(), self.fds.pop_front()) else {
                return Err(std::io::Error::other(
                    "a fork request came without its descriptors",
                ));
            };
            let reply = match self.fork_worker(socket, slot) {
                Ok(pid) => FromServer::Forked { pid },
                Err(error) => FromServer::Failed {
                    error: error.to_string(),
                },
            };
            self.send(&reply)?;
        }
        Ok(true)
    }

    fn fork_worker(&mut self, socket: OwnedFd, slot_page: OwnedFd) -> std::io::Result<i32> {
        let server = std::process::id() as i32;
        // SAFETY: the server starts no thread of its own (see the module doc), so the child is
        // a whole copy of the thread that serves, with no lock of ours held elsewhere.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if pid == 0 {
            let inherited: Vec<i32> = std::iter::once(self.control.as_raw_fd())
                .chain(self.children.iter().map(|(_, pidfd)| pidfd.as_raw_fd()))
                .collect();
            become_worker(server, socket, slot_page, &inherited);
        }
        let pidfd = rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(pid).expect("fork returned a positive pid"),
            rustix::process::PidfdFlags::empty(),
        )?;
        self.children.push((pid, pidfd));
        Ok(pid)
    }

    /// Waits for an ended child and reports how it ended.
    fn reap(&mut self, pid: i32) -> std::io::Result<()> {
        let mut status = 0;
        // SAFETY: waitpid writes the status of our child `pid` to a valid pointer.
        if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
            return Ok(());
        }
        let (signal, code) = if libc::WIFSIGNALED(status) {
            (Some(libc::WTERMSIG(status)), None)
        } else {
            (None, Some(libc::WEXITSTATUS(status)))
        };
        self.send(&FromServer::Exited { pid, signal, code })
    }

    fn send(&self, message: &FromServer) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        encode_frame(message, &mut bytes).map_err(std::io::Error::other)?;
        let mut sent = 0;
        while sent < bytes.len() {
            sent += send_with_fds(self.control.as_fd(), &[IoSlice::new(&bytes[sent..])], &[])?;
        }
        Ok(())
    }
}

/// The forked child: drops the server's descriptors and signal mask, ties its life to the
/// server's, and serves as a worker.
fn become_worker(server: i32, socket: OwnedFd, slot_page: OwnedFd, inherited: &[i32]) -> ! {
    // SAFETY: closes the server's descriptors in the child (their `OwnedFd`s stay in the
    // server's copy of memory and are never used or dropped here, as this function never
    // returns); prctl and getppid are plain system calls.
    unsafe {
        for &fd in inherited {
            libc::close(fd);
        }
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != server {
            libc::_exit(1);
        }
    }
    super::init::name_this_process(super::init::WORKER_NAME);
    let slot = match Slot::map(&slot_page) {
        Ok(slot) => slot,
        Err(_) => super::worker::exit_now(super::worker::EXIT_PROTOCOL),
    };
    drop(slot_page);
    match crate::task::registry() {
        Ok(registry) => super::worker::serve(socket, slot, registry),
        Err(_) => super::worker::exit_now(super::worker::EXIT_PROTOCOL),
    }
}

/// The pool's side of a fork server, which is always this process's child (re-executed or
/// forked): a reader thread takes its replies and exit reports, and reaps the server when its
/// control socket ends, whether it died or was told to go — so it never lingers as a zombie.
#[derive(Debug)]
pub(crate) struct ServerClient {
    // One request at a time: a request and its reply are a pair.
    requests: Mutex<OwnedFd>,
    state: Arc<(Mutex<ClientState>, Condvar)>,
    /// Reads the server's messages; joined on drop.
    reader: Option<OwnThread>,
}

#[derive(Debug, Default)]
struct ClientState {
    replies: VecDeque<Result<i32, String>>,
    exited: HashMap<i32, (Option<i32>, Option<i32>)>,
    /// Workers whose exit nobody will wait for: their reports are dropped.
    forgotten: HashSet<i32>,
    /// The server is gone (how it ended, in words): no reply or status will come.
    gone: Option<String>,
}

impl ServerClient {
    /// Talks to the server `pid`, our child, on `control`.
    pub(crate) fn new(pid: i32, control: OwnedFd) -> std::io::Result<Self> {
        let reader = control.try_clone()?;
        let state: Arc<(Mutex<ClientState>, Condvar)> = Arc::default();
        let shared = state.clone();
        let reader = own_threads::spawn("triad-fork-server", move || {
            read_server(reader, &shared);
            let ended = reap(pid);
            let (lock, changed) = &*shared;
            lock.lock().unwrap_or_else(|e| e.into_inner()).gone = Some(ended);
            changed.notify_all();
        })?;
        Ok(ServerClient {
            requests: Mutex::new(control),
            state,
            reader: Some(reader),
        })
    }

    /// Asks the server to fork a worker on `socket` and `slot_page`; returns its pid.
    pub(crate) fn fork_worker(&self, socket: OwnedFd, slot_page: OwnedFd) -> std::io::Result<i32> {
        let control = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let mut bytes = Vec::new();
        encode_frame(&ToServer::Fork, &mut bytes).map_err(std::io::Error::other)?;
        send_with_fds(
            control.as_fd(),
            &[IoSlice::new(&bytes)],
            &[socket, slot_page],
        )?;
        let (lock, changed) = &*self.state;
        let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(reply) = state.replies.pop_front() {
                return reply.map_err(std::io::Error::other);
            }
            if let Some(ended) = &state.gone {
                return Err(std::io::Error::other(format!(
                    "the fork server is gone ({ended})"
                )));
            }
            state = changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Whether the server has gone (its control socket ended): no fork request can succeed.
    pub(crate) fn is_gone(&self) -> bool {
        self.state
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .gone
            .is_some()
    }

    /// Gives up on `pid`'s exit report (the server reaps it all the same).
    pub(crate) fn forget(&self, pid: i32) {
        let (lock, _) = &*self.state;
        let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
        if state.exited.remove(&pid).is_none() {
            state.forgotten.insert(pid);
        }
    }

    /// Waits for the server's report of `pid`'s exit: (signal, exit code).
    pub(crate) fn wait(&self, pid: i32) -> (Option<i32>, Option<i32>) {
        let (lock, changed) = &*self.state;
        let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(status) = state.exited.remove(&pid) {
                return status;
            }
            if state.gone.is_some() {
                return (None, None);
            }
            state = changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for ServerClient {
    fn drop(&mut self) {
        // Both directions: the server sees the end and exits, and our reader thread wakes.
        let control = self.requests.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = rustix::net::shutdown(&*control, rustix::net::Shutdown::Both);
        // The reader sees the end, reaps the server (which exits on the end too) and returns.
        if let Some(reader) = self.reader.take() {
            reader.join();
        }
    }
}

/// Waits for the server, our child, to end; how it ended, in words.
fn reap(pid: i32) -> String {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child, the server, with a valid status pointer.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        if waited == pid {
            return if libc::WIFSIGNALED(status) {
                describe_exit(Some(libc::WTERMSIG(status)), None)
            } else {
                describe_exit(None, Some(libc::WEXITSTATUS(status)))
            };
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return "its exit status was lost".to_owned();
        }
    }
}

fn read_server(control: OwnedFd, shared: &(Mutex<ClientState>, Condvar)) {
    let mut reader = FrameReader::new();
    let mut buffer = [0_u8; 4096];
    loop {
        let read = match rustix::io::read(&control, &mut buffer) {
            Ok(read) if read > 0 => read,
            Err(rustix::io::Errno::INTR) => continue,
            _ => break,
        };
        reader.extend(&buffer[..read]);
        while let Ok(Some(payload)) = reader.next_frame() {
            let Ok(message) = decode_payload::<FromServer>(payload) else {
                continue;
            };
            let (lock, changed) = shared;
            let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
            match message {
                FromServer::Forked { pid } => state.replies.push_back(Ok(pid)),
                FromServer::Failed { error } => state.replies.push_back(Err(error)),
                FromServer::Exited { pid, signal, code } => {
                    if !state.forgotten.remove(&pid) {
                        state.exited.insert(pid, (signal, code));
                    }
                }
            }
            changed.notify_all();
        }
    }
}
