//! The `SOCK_SEQPACKET` sockets under pipes and queues: making them, sending and receiving
//! one datagram, and waiting for readiness.

use std::cell::Cell;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, ReturnFlags, SendFlags, SocketFlags, SocketType};
use serde::de::DeserializeOwned;

use super::error::{Fail, IpcError};
use super::message::{Outgoing, decode_message};
use super::{MAX_DATAGRAM, PROTOCOL_VERSION, REQUESTED_SNDBUF, SNDBUF_OVERHEAD};
use crate::fdpass::{self, MAX_FDS_PER_MESSAGE, Received};

/// A new `SOCK_SEQPACKET` socketpair whose send buffers are raised to [`REQUESTED_SNDBUF`].
pub(super) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    for fd in [&a, &b] {
        raise_sndbuf(fd.as_fd());
    }
    Ok((a, b))
}

/// Asks for a send buffer of [`REQUESTED_SNDBUF`] unless it is already that large. Best effort:
/// the limit is read back by [`message_limit`].
pub(super) fn raise_sndbuf(fd: BorrowedFd<'_>) {
    let current = rustix::net::sockopt::socket_send_buffer_size(fd).unwrap_or(0);
    if current < REQUESTED_SNDBUF {
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(fd, REQUESTED_SNDBUF);
    }
}

/// The largest datagram (version byte included) that `fd` can send.
pub(super) fn message_limit(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let sndbuf = rustix::net::sockopt::socket_send_buffer_size(fd)?;
    Ok(sndbuf.saturating_sub(SNDBUF_OVERHEAD).min(MAX_DATAGRAM))
}

/// Fails unless `fd` is a `SOCK_SEQPACKET` socket.
pub(super) fn check_seqpacket(fd: BorrowedFd<'_>) -> io::Result<()> {
    let kind = rustix::net::sockopt::socket_type(fd)?;
    if kind != SocketType::SEQPACKET {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("expected a SOCK_SEQPACKET socket, found {kind:?}"),
        ));
    }
    Ok(())
}

/// Sends one datagram: the version byte and `message`'s bytes, with its descriptors, never
/// raising `SIGPIPE`. With `dont_wait`, a full socket buffer is `EAGAIN` instead of a wait.
pub(super) fn send_datagram(
    socket: BorrowedFd<'_>,
    message: &Outgoing,
    dont_wait: bool,
) -> Result<(), Errno> {
    let borrowed: Vec<BorrowedFd<'_>> = message.fds.iter().map(AsFd::as_fd).collect();
    let version = [PROTOCOL_VERSION];
    let parts = [IoSlice::new(&version), IoSlice::new(&message.bytes)];
    let mut flags = SendFlags::NOSIGNAL;
    if dont_wait {
        flags |= SendFlags::DONTWAIT;
    }
    // SOCK_SEQPACKET sends are all or nothing.
    fdpass::send_message(socket, &parts, &borrowed, flags).map(drop)
}

/// Receives one datagram into `buffer`, with any descriptors (`FD_CLOEXEC` set). `Ok(None)` is
/// end of stream. The size it reports is the datagram's real size (`MSG_TRUNC`), even when it
/// did not fit.
pub(super) fn recv_datagram(
    socket: BorrowedFd<'_>,
    buffer: &mut [u8],
    dont_wait: bool,
) -> Result<Option<Received>, Errno> {
    let mut flags = RecvFlags::TRUNC;
    if dont_wait {
        flags |= RecvFlags::DONTWAIT;
    }
    let received = loop {
        match fdpass::recv_message(socket, buffer, MAX_FDS_PER_MESSAGE, flags) {
            // ECONNRESET: the peer closed with unread data of its own; the error is reported
            // once and cleared, and what was sent to us can still be read.
            Err(Errno::CONNRESET) => continue,
            result => break result?,
        }
    };
    if received.bytes == 0 && received.fds.is_empty() && at_end_of_stream(socket) {
        // End of stream, or an empty datagram with nothing after it but end of stream: either
        // way nothing readable is left.
        return Ok(None);
    }
    Ok(Some(received))
}

/// Whether a zero-byte read on `socket` was end of stream rather than an empty datagram: the
/// kernel reports `POLLRDHUP` once the sending side is shut down or gone, and then an empty
/// datagram can only be told apart by the bytes still queued behind it (`FIONREAD` counts
/// every queued byte on a `SOCK_SEQPACKET` socket).
pub(super) fn at_end_of_stream(socket: BorrowedFd<'_>) -> bool {
    if rustix::io::ioctl_fionread(socket).is_ok_and(|queued| queued > 0) {
        return false;
    }
    let mut fds = [PollFd::new(&socket, PollFlags::IN | PollFlags::RDHUP)];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match rustix::event::poll(&mut fds, Some(&zero)) {
        Ok(_) => fds[0]
            .revents()
            .intersects(PollFlags::RDHUP | PollFlags::HUP),
        Err(_) => false,
    }
}

/// Checks a received datagram's flags and decodes it.
pub(super) fn finish_recv<T: DeserializeOwned>(
    received: Received,
    buffer: &[u8],
) -> Result<T, IpcError> {
    if received.flags.contains(ReturnFlags::TRUNC) || received.bytes > buffer.len() {
        return Err(IpcError::Truncated {
            size: received.bytes,
            capacity: buffer.len(),
        });
    }
    if received.flags.contains(ReturnFlags::CTRUNC) {
        return Err(IpcError::DescriptorsTruncated);
    }
    decode_message(&buffer[..received.bytes], received.fds)
}

/// How long an operation may wait.
#[derive(Debug, Clone, Copy)]
pub(super) enum Wait {
    /// Not at all: the `try_*` methods.
    No,
    /// As long as it takes.
    Forever,
    /// Until the deadline.
    Until(Instant),
}

impl Wait {
    pub(super) fn after(timeout: Duration) -> Self {
        // A timeout too large for an `Instant` is as good as forever.
        Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Forever, Wait::Until)
    }
}

/// Waits until `socket` reports one of `events`, or `deadline` (`None`: forever) passes.
/// Returns whether it became ready.
pub(super) fn wait_for(
    socket: BorrowedFd<'_>,
    events: PollFlags,
    deadline: Option<Instant>,
) -> Result<bool, IpcError> {
    loop {
        let timeout = match deadline {
            None => None,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                Some(rustix::event::Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: left.subsec_nanos().into(),
                })
            }
        };
        let mut fds = [PollFd::new(&socket, events)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Err(Errno::INTR) => continue,
            Err(error) => return Err(IpcError::io("poll", error)),
            Ok(0) => {
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    return Ok(false);
                }
            }
            Ok(_) => return Ok(true),
        }
    }
}

/// After a receive found nothing (`EAGAIN`), waits as `wait` says for `socket` to become
/// readable: `try_*` gives up at once, a timed receive gives up at its deadline.
pub(super) fn wait_readable(socket: BorrowedFd<'_>, wait: Wait) -> Result<(), Fail> {
    match wait {
        Wait::No => Err(Fail::WouldBlock),
        Wait::Forever => {
            wait_for(socket, PollFlags::IN, None)?;
            Ok(())
        }
        Wait::Until(deadline) => {
            if wait_for(socket, PollFlags::IN, Some(deadline))? {
                Ok(())
            } else {
                Err(Fail::Timeout)
            }
        }
    }
}

thread_local! {
    /// The receive buffer of this thread's pipe and queue receives, as large as the largest
    /// message (or queue message limit) met. It is allocated zeroed, which maps untouched
    /// pages: only the bytes actually received become resident.
    pub(super) static RECEIVE_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}
