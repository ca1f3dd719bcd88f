//! Starting a worker process.
//!
//! *Spawn* re-executes this program (`/proc/self/exe`) with the worker's end of a socketpair at
//! descriptor 3, its slot page (see `slot`) at 4, and `TRIAD_WORKER=<our pid>:3:4` in its
//! environment; its `main` calls
//! [`init`](super::init), which finds the socket and serves. Between fork and exec the child only
//! moves the descriptor and asks the kernel to kill it when its parent thread goes
//! (`PR_SET_PDEATHSIG`), checking that the parent is still there — so a worker never outlives
//! the pool's dispatcher thread that started it, even if the whole program is killed.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};

use super::slot::Slot;
use super::{WORKER_ENV, WorkerEntry};

/// The descriptor numbers a spawned worker finds its socket and its slot page at.
const WORKER_FD: i32 = 3;
const SLOT_FD: i32 = 4;

/// A worker process just started: its socket (non-blocking) and its handle.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) socket: OwnedFd,
    pub(crate) child: Child,
    /// The pool's mapping of the worker's "now running" slot.
    pub(crate) slot: Slot,
}

/// Starts a worker by re-executing this program.
pub(crate) fn spawn_worker() -> io::Result<Started> {
    let (ours, theirs) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let (slot_page, slot) = Slot::create()?;
    let parent = std::process::id() as i32;
    let mut command = Command::new("/proc/self/exe");
    for entry in inventory::iter::<WorkerEntry> {
        command.args(entry.args);
    }
    command
        .env(WORKER_ENV, format!("{parent}:{WORKER_FD}:{SLOT_FD}"))
        .stdin(Stdio::null());
    let theirs_raw = theirs.as_raw_fd();
    let slot_raw = slot_page.as_raw_fd();
    // SAFETY: the closure runs in the child between fork and exec, where only async-signal-safe
    // calls are allowed: dup2, fcntl, prctl and getppid are plain system calls, and it
    // allocates nothing.
    unsafe {
        command.pre_exec(move || {
            // Move the slot out of the way first, in case it sits at the socket's target.
            let slot_moved = libc::fcntl(slot_raw, libc::F_DUPFD_CLOEXEC, 10);
            if slot_moved < 0 {
                return Err(io::Error::last_os_error());
            }
            for (from, to) in [(theirs_raw, WORKER_FD), (slot_moved, SLOT_FD)] {
                if from == to {
                    // dup2 onto itself would keep FD_CLOEXEC set; clear it instead.
                    if libc::fcntl(to, libc::F_SETFD, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                } else if libc::dup2(from, to) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the request took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    drop(theirs);
    drop(slot_page);
    rustix::io::ioctl_fionbio(&ours, true)?;
    Ok(Started {
        socket: ours,
        child,
        slot,
    })
}
