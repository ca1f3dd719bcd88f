//! Typed pipes and a bounded queue between processes: the seed's `multiprocessing.Pipe` and
//! `multiprocessing.Queue`.
//!
//! [`pipe`] makes a duplex pair of [`PipeEnd`]s: each end sends one type and receives another.
//! [`Queue`] is a bounded multi-producer multi-consumer FIFO that any number of processes can
//! [`put`](Queue::put) into and [`get`](Queue::get) from. Both are handles that serialise
//! (with [`fdpass::encode`]) into messages, task inputs — or each other's
//! messages — so they reach worker processes the way `multiprocessing` hands its pipes and
//! queues to children.
//!
//! How it works: both sit on a `SOCK_SEQPACKET` Unix socketpair, so the kernel keeps message
//! boundaries and hands each datagram to exactly one reader. A message is one datagram: a
//! protocol-version byte ([`PROTOCOL_VERSION`]) followed by the postcard encoding of the value,
//! with the value's [`SharedFd`]s riding beside it as `SCM_RIGHTS`. Sends use `MSG_NOSIGNAL`
//! (a closed peer is an error, never `SIGPIPE`), and a receive that the kernel truncated is an
//! error, never a silently shortened message. The queue's bound is a process-shared counting
//! semaphore (`sem_init(pshared = 1)`) of free slots, in a small sealed memfd mapped
//! `MAP_SHARED` by every process holding the queue; the same header holds the closed flag and
//! an approximate length.
//!
//! A message must fit in one datagram: [`PipeEnd::max_message_size`] and
//! [`Queue::max_message_size`] give the limit, which comes from the socket's `SO_SNDBUF` (the
//! kernel refuses datagrams larger than the send buffer). Both ask for [`REQUESTED_SNDBUF`];
//! the kernel caps that at `net.core.wmem_max` and doubles it, so the limit is about 416 KiB
//! with Linux's default `wmem_max` (212992) and 2 MiB where `wmem_max` is 1 MiB or more. A
//! larger message is refused with [`IpcError::TooLarge`]; send a big payload as a memfd
//! ([`SharedFd`]) inside the message instead.
//!
//! ```
//! use triad::ipc::{pipe, RecvError};
//!
//! let (parent, child) = pipe::<String, usize>()?;
//! parent.send(&"hello".to_string())?;
//! let text = child.recv()?;
//! child.send(&text.len())?;
//! assert_eq!(parent.recv()?, 5);
//! drop(child);
//! assert!(matches!(parent.recv(), Err(RecvError::Disconnected)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cell::Cell;
use std::fmt;
use std::io::{self, IoSlice};
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, ReturnFlags, SendFlags, SocketFlags, SocketType};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::fdpass::{self, MAX_FDS_PER_MESSAGE, Received, SharedFd};
use crate::queue::{
    GetError, GetTimeoutError, PutError, PutTimeoutError, TryGetError, TryPutError,
};

/// The first byte of every message; a datagram that starts with another byte is refused with
/// [`IpcError::Version`].
pub const PROTOCOL_VERSION: u8 = 1;

/// The `SO_SNDBUF` that pipes and queues ask for (the kernel caps it at `net.core.wmem_max`,
/// then doubles it).
pub const REQUESTED_SNDBUF: usize = 1 << 20;

/// What the kernel keeps of `SO_SNDBUF` for itself: a datagram may carry `SO_SNDBUF - 32`
/// bytes (`unix_dgram_sendmsg`).
const SNDBUF_OVERHEAD: usize = 32;

/// A ceiling on the datagram size we promise, below the kernel's own allocation limit for one
/// datagram (about 4 MiB + 64 KiB), whatever `SO_SNDBUF` says.
const MAX_DATAGRAM: usize = 4 << 20;

/// The longest slice a waiting `put_timeout` sleeps between looks at the closed flag, when
/// the socket buffer (not the slot count) is what is full.
const SEND_POLL_SLICE: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------------------------
// Errors

/// A transport or codec failure of a pipe or a queue.
///
/// After any of these the pipe or queue stays usable: a message that failed is consumed whole
/// and the next one is read normally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IpcError {
    /// A system call failed.
    #[error("{op} failed")]
    Io {
        /// The operation, for the message.
        op: &'static str,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// The value could not be encoded (a serde error, or too many descriptors in one message).
    #[error("the message could not be encoded")]
    Encode(#[source] postcard::Error),
    /// A received message does not decode as the expected type.
    #[error("a received message could not be decoded: {detail}")]
    Codec {
        /// What was wrong.
        detail: String,
        /// The decoder's error, if it came from the decoder.
        #[source]
        source: Option<postcard::Error>,
    },
    /// A received message starts with a protocol version other than [`PROTOCOL_VERSION`].
    #[error("a received message has protocol version {found}, expected {expected}")]
    Version {
        /// The version byte found.
        found: u8,
        /// [`PROTOCOL_VERSION`].
        expected: u8,
    },
    /// The encoded message is larger than one datagram can carry.
    #[error(
        "the message is {size} bytes, more than the {limit} bytes one datagram can carry: \
         send large payloads as a memfd (SharedFd) inside the message"
    )]
    TooLarge {
        /// The encoded size, version byte included.
        size: usize,
        /// The largest message the socket accepts.
        limit: usize,
    },
    /// The kernel truncated a received datagram (`MSG_TRUNC`): it was larger than the buffer
    /// (another reader took the datagram that was sized, or the sender's limit is higher than
    /// ours). The datagram is lost.
    #[error("a received message of {size} bytes was truncated to {capacity} bytes and dropped")]
    Truncated {
        /// The datagram's real size.
        size: usize,
        /// The receive buffer's size.
        capacity: usize,
    },
    /// The kernel dropped descriptors that came with a message (`MSG_CTRUNC`); the message is
    /// dropped with them.
    #[error("the descriptors sent with a message were truncated (MSG_CTRUNC); message dropped")]
    DescriptorsTruncated,
}

impl IpcError {
    fn io(op: &'static str, source: impl Into<io::Error>) -> Self {
        IpcError::Io {
            op,
            source: source.into(),
        }
    }
}

/// The error of [`PipeEnd::send`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The other end is closed (every copy of it, in every process).
    #[error("send on a pipe whose other end is closed")]
    Disconnected,
    /// The message could not be encoded or sent.
    #[error(transparent)]
    Ipc(#[from] IpcError),
}

/// The error of [`PipeEnd::recv`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The other end is closed and every message it sent has been received.
    #[error("receive on a pipe whose other end is closed")]
    Disconnected,
    /// A message could not be received or decoded; the next one can be.
    #[error(transparent)]
    Ipc(#[from] IpcError),
}

/// The error of [`PipeEnd::try_recv`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TryRecvError {
    /// No message is waiting.
    #[error("receive on an empty pipe")]
    Empty,
    /// The other end is closed and every message it sent has been received.
    #[error("receive on a pipe whose other end is closed")]
    Disconnected,
    /// A message could not be received or decoded; the next one can be.
    #[error(transparent)]
    Ipc(#[from] IpcError),
}

/// The error of [`PipeEnd::recv_timeout`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecvTimeoutError {
    /// No message came within the timeout.
    #[error("timed out waiting for a message")]
    Timeout,
    /// The other end is closed and every message it sent has been received.
    #[error("receive on a pipe whose other end is closed")]
    Disconnected,
    /// A message could not be received or decoded; the next one can be.
    #[error(transparent)]
    Ipc(#[from] IpcError),
}

/// The error of a [`Queue`] operation: the queue's own answer `E` — one of the thread queue's
/// errors ([`PutError`], [`TryPutError`], [`PutTimeoutError`], [`GetError`], [`TryGetError`],
/// [`GetTimeoutError`]), so the crate has one vocabulary — or a transport or codec failure.
///
/// `put` borrows its item, so the put errors hand back `()`: the caller still has the item.
#[derive(Debug, thiserror::Error)]
pub enum QueueError<E> {
    /// The queue said no: closed, full, empty or timed out.
    #[error(transparent)]
    Queue(E),
    /// The item could not be encoded, sent, received or decoded. The queue stays usable.
    #[error(transparent)]
    Ipc(#[from] IpcError),
}

impl<E> QueueError<E> {
    /// The queue's answer, if that is what this is.
    pub fn queue_error(&self) -> Option<&E> {
        match self {
            QueueError::Queue(error) => Some(error),
            QueueError::Ipc(_) => None,
        }
    }
}

/// Why a receive or send did not complete, before it is mapped to an operation's error type.
#[derive(Debug)]
enum Fail {
    /// Nothing there (`try_*`), or no room (`try_put`).
    WouldBlock,
    /// The deadline passed.
    Timeout,
    /// End of stream: the pipe's peer is gone, or the queue is closed.
    Closed,
    Ipc(IpcError),
}

impl From<IpcError> for Fail {
    fn from(error: IpcError) -> Self {
        Fail::Ipc(error)
    }
}

// ---------------------------------------------------------------------------------------------
// Messages

/// A value encoded as one datagram: the version byte, its bytes and its descriptors.
struct Outgoing {
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Outgoing {
    fn new<T: Serialize + ?Sized>(value: &T) -> Result<Self, IpcError> {
        let encoded = fdpass::encode(value).map_err(IpcError::Encode)?;
        Ok(Outgoing {
            bytes: encoded.bytes,
            fds: encoded.fds,
        })
    }

    /// The datagram's size.
    fn size(&self) -> usize {
        1 + self.bytes.len()
    }

    fn check_size(&self, limit: usize) -> Result<(), IpcError> {
        if self.size() > limit {
            return Err(IpcError::TooLarge {
                size: self.size(),
                limit,
            });
        }
        Ok(())
    }
}

/// Decodes one received datagram: the version byte, then the value (whose [`SharedFd`]s take
/// `fds`). Never panics, whatever the bytes.
fn decode_message<T: DeserializeOwned>(datagram: &[u8], fds: Vec<OwnedFd>) -> Result<T, IpcError> {
    match datagram.split_first() {
        None => Err(IpcError::Codec {
            detail: "empty datagram (no protocol version byte)".into(),
            source: None,
        }),
        Some((&found, _)) if found != PROTOCOL_VERSION => Err(IpcError::Version {
            found,
            expected: PROTOCOL_VERSION,
        }),
        Some((_, body)) => {
            DECODE_DETAIL.set(None);
            fdpass::decode(body, fds).map_err(|error| {
                // postcard keeps only the kind of a custom error; ours left its text here.
                let why = DECODE_DETAIL.take().unwrap_or_else(|| error.to_string());
                IpcError::Codec {
                    detail: format!(
                        "{} bytes do not decode as {}: {why}",
                        body.len(),
                        std::any::type_name::<T>()
                    ),
                    source: Some(error),
                }
            })
        }
    }
}

/// The received-message decoder, exposed only for the `ipc_message` fuzz target
/// (`fuzz/fuzz_targets/ipc_message.rs`), which cannot reach the private function; not an API.
#[doc(hidden)]
pub fn fuzz_decode_message<T: DeserializeOwned>(
    datagram: &[u8],
    fds: Vec<OwnedFd>,
) -> Result<T, IpcError> {
    decode_message(datagram, fds)
}

thread_local! {
    /// The text of the last custom error raised while deserialising a [`PipeEnd`] or a
    /// [`Queue`] on this thread; postcard's error keeps only its kind.
    static DECODE_DETAIL: Cell<Option<String>> = const { Cell::new(None) };
}

/// A serde error for a handle that failed to deserialise, keeping its text for
/// [`IpcError::Codec`]'s detail.
fn handle_error<E: serde::de::Error>(text: String) -> E {
    DECODE_DETAIL.set(Some(text.clone()));
    E::custom(text)
}

// ---------------------------------------------------------------------------------------------
// Sockets

/// A new `SOCK_SEQPACKET` socketpair whose send buffers are raised to [`REQUESTED_SNDBUF`].
fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
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
fn raise_sndbuf(fd: BorrowedFd<'_>) {
    let current = rustix::net::sockopt::socket_send_buffer_size(fd).unwrap_or(0);
    if current < REQUESTED_SNDBUF {
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(fd, REQUESTED_SNDBUF);
    }
}

/// The largest datagram (version byte included) that `fd` can send.
fn message_limit(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let sndbuf = rustix::net::sockopt::socket_send_buffer_size(fd)?;
    Ok(sndbuf.saturating_sub(SNDBUF_OVERHEAD).min(MAX_DATAGRAM))
}

/// Fails unless `fd` is a `SOCK_SEQPACKET` socket.
fn check_seqpacket(fd: BorrowedFd<'_>) -> io::Result<()> {
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
fn send_datagram(socket: BorrowedFd<'_>, message: &Outgoing, dont_wait: bool) -> Result<(), Errno> {
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
fn recv_datagram(
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
fn at_end_of_stream(socket: BorrowedFd<'_>) -> bool {
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
fn finish_recv<T: DeserializeOwned>(received: Received, buffer: &[u8]) -> Result<T, IpcError> {
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
enum Wait {
    /// Not at all: the `try_*` methods.
    No,
    /// As long as it takes.
    Forever,
    /// Until the deadline.
    Until(Instant),
}

impl Wait {
    fn after(timeout: Duration) -> Self {
        // A timeout too large for an `Instant` is as good as forever.
        Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Forever, Wait::Until)
    }
}

/// Waits until `socket` reports one of `events`, or `deadline` (`None`: forever) passes.
/// Returns whether it became ready.
fn wait_for(
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
fn wait_readable(socket: BorrowedFd<'_>, wait: Wait) -> Result<(), Fail> {
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

// ---------------------------------------------------------------------------------------------
// Pipe

/// Makes a duplex pipe: the first end sends `A` and receives `B`, the second the reverse
/// (`multiprocessing.Pipe(duplex=True)`, typed).
///
/// Give one end to another process inside a message or task input (it serialises with
/// [`fdpass::encode`]), or across `exec` with [`PipeEnd::from_fd`].
pub fn pipe<A, B>() -> io::Result<(PipeEnd<A, B>, PipeEnd<B, A>)> {
    let (a, b) = seqpacket_pair()?;
    Ok((
        PipeEnd::new(SharedFd::new(a))?,
        PipeEnd::new(SharedFd::new(b))?,
    ))
}

/// One end of a [`pipe`]: sends `S`, receives `R`.
///
/// Each [`send`](Self::send) is one message, delivered whole to the other end in order. When the
/// other end is closed — every copy of it dropped, in every process, or its process dead — the
/// messages already sent can still be received, then [`recv`](Self::recv) returns
/// [`RecvError::Disconnected`] and [`send`](Self::send) [`SendError::Disconnected`].
///
/// A `PipeEnd` is `Send` and `Sync`; threads of one process may share it (receives are
/// serialised by a lock). As with Python's `Connection`, two *processes* should not receive on
/// the same end at the same time: one could take the datagram the other sized its buffer for,
/// which is then reported as [`IpcError::Truncated`] and lost.
///
/// Serialising a `PipeEnd` (with [`fdpass::encode`]) sends a duplicate of
/// its socket; the sender's copy stays open until dropped.
pub struct PipeEnd<S, R> {
    socket: SharedFd,
    /// The largest datagram this end can send.
    limit: usize,
    /// Held from peeking a datagram's size to receiving it, so threads of this process do not
    /// take each other's datagrams.
    recv_lock: Mutex<()>,
    _types: PhantomData<fn(S) -> R>,
}

impl<S, R> PipeEnd<S, R> {
    fn new(socket: SharedFd) -> io::Result<Self> {
        check_seqpacket(socket.as_fd())?;
        let limit = message_limit(socket.as_fd())?;
        Ok(PipeEnd {
            socket,
            limit,
            recv_lock: Mutex::new(()),
            _types: PhantomData,
        })
    }

    /// Wraps a `SOCK_SEQPACKET` socket whose peer speaks this protocol, such as one end of a
    /// [`pipe`] passed to a child process across `exec` (clear `FD_CLOEXEC` or `dup2` it in a
    /// `pre_exec` hook, and tell the child its number).
    ///
    /// Fails with `InvalidInput` if `fd` is not a `SOCK_SEQPACKET` socket.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        check_seqpacket(fd.as_fd())?;
        raise_sndbuf(fd.as_fd());
        PipeEnd::new(SharedFd::new(fd))
    }

    /// The largest message [`send`](Self::send) accepts, in bytes of the encoding plus one for
    /// the version byte (see the [module documentation](self)).
    pub fn max_message_size(&self) -> usize {
        self.limit
    }
}

impl<S: Serialize, R> PipeEnd<S, R> {
    /// Sends `message`, waiting while the socket buffer is full (the other end reads too slowly).
    ///
    /// The message may carry [`SharedFd`]s — another `PipeEnd` or a [`Queue`], for instance —
    /// which arrive as descriptors in the receiving process.
    pub fn send(&self, message: &S) -> Result<(), SendError> {
        let message = Outgoing::new(message)?;
        message.check_size(self.limit)?;
        match send_datagram(self.socket.as_fd(), &message, false) {
            Ok(()) => Ok(()),
            Err(Errno::PIPE | Errno::CONNRESET) => Err(SendError::Disconnected),
            Err(Errno::MSGSIZE) => Err(IpcError::TooLarge {
                size: message.size(),
                limit: message_limit(self.socket.as_fd()).unwrap_or(self.limit),
            }
            .into()),
            Err(error) => Err(IpcError::io("sendmsg", error).into()),
        }
    }
}

impl<S, R: DeserializeOwned> PipeEnd<S, R> {
    /// Receives the next message, waiting for one.
    pub fn recv(&self) -> Result<R, RecvError> {
        self.recv_waiting(Wait::Forever).map_err(|fail| match fail {
            Fail::Closed => RecvError::Disconnected,
            Fail::Ipc(error) => RecvError::Ipc(error),
            Fail::WouldBlock | Fail::Timeout => unreachable!("a wait without a deadline ended"),
        })
    }

    /// Receives a message if one is waiting.
    pub fn try_recv(&self) -> Result<R, TryRecvError> {
        self.recv_waiting(Wait::No).map_err(|fail| match fail {
            Fail::WouldBlock | Fail::Timeout => TryRecvError::Empty,
            Fail::Closed => TryRecvError::Disconnected,
            Fail::Ipc(error) => TryRecvError::Ipc(error),
        })
    }

    /// Receives the next message, waiting at most `timeout` for one.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<R, RecvTimeoutError> {
        self.recv_waiting(Wait::after(timeout))
            .map_err(|fail| match fail {
                Fail::WouldBlock | Fail::Timeout => RecvTimeoutError::Timeout,
                Fail::Closed => RecvTimeoutError::Disconnected,
                Fail::Ipc(error) => RecvTimeoutError::Ipc(error),
            })
    }

    /// Peeks the next datagram's size (`MSG_PEEK | MSG_TRUNC` reports the real length on Linux),
    /// then receives it into a buffer of that size.
    fn recv_waiting(&self, wait: Wait) -> Result<R, Fail> {
        let socket = self.socket.as_fd();
        loop {
            if let Some(result) = self.try_recv_now() {
                return result;
            }
            // Wait without the lock, so that a `try_recv` on another thread is not held up.
            wait_readable(socket, wait)?;
        }
    }

    /// Receives a waiting datagram, without waiting; `None` if there is none.
    fn try_recv_now(&self) -> Option<Result<R, Fail>> {
        let _guard = self
            .recv_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let socket = self.socket.as_fd();
        let peek_flags = RecvFlags::PEEK | RecvFlags::TRUNC | RecvFlags::DONTWAIT;
        loop {
            let size = match rustix::net::recv(socket, &mut [0_u8; 0][..], peek_flags) {
                Ok((_, size)) => size,
                Err(Errno::INTR | Errno::CONNRESET) => continue,
                Err(Errno::AGAIN) => return None,
                Err(error) => return Some(Err(IpcError::io("recv (peek)", error).into())),
            };
            // This thread's receive buffer, grown to the datagram's size when it is smaller.
            let mut buffer = RECEIVE_BUFFER.take();
            if buffer.len() < size {
                buffer.resize(size, 0);
            }
            let result = match recv_datagram(socket, &mut buffer[..size], true) {
                Ok(None) => Some(Err(Fail::Closed)),
                Ok(Some(received)) => {
                    Some(finish_recv(received, &buffer[..size]).map_err(Fail::Ipc))
                }
                // Another process took the datagram we peeked.
                Err(Errno::AGAIN) => None,
                Err(error) => Some(Err(IpcError::io("recvmsg", error).into())),
            };
            RECEIVE_BUFFER.set(buffer);
            return result;
        }
    }
}

impl<S, R> AsFd for PipeEnd<S, R> {
    /// The socket, for polling several pipes at once (`multiprocessing.connection.wait`).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl<S, R> fmt::Debug for PipeEnd<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeEnd")
            .field("socket", &self.socket)
            .field("max_message_size", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<S, R> Serialize for PipeEnd<S, R> {
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        self.socket.serialize(serializer)
    }
}

impl<'de, S, R> Deserialize<'de> for PipeEnd<S, R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let socket = SharedFd::deserialize(deserializer)?;
        PipeEnd::new(socket).map_err(|error| handle_error(format!("not a pipe end: {error}")))
    }
}

// ---------------------------------------------------------------------------------------------
// Queue: the shared header

/// The queue's shared header, at the start of its memfd.
#[repr(C)]
struct Header {
    /// [`MAGIC`].
    magic: [u8; 8],
    /// [`LAYOUT_VERSION`].
    layout: u32,
    /// Nonzero once the queue is closed; never cleared.
    closed: AtomicU32,
    /// The bound, at most `SEM_VALUE_MAX`.
    capacity: u64,
    /// The largest datagram, version byte included; also the readers' buffer size.
    max_message: u64,
    /// Items sent and not yet received (approximate: raised before a send, lowered after a
    /// receive or a failed send).
    len: AtomicI64,
    /// Free slots: `capacity` minus the items in flight, while the queue is open.
    free_slots: std::cell::UnsafeCell<libc::sem_t>,
}

const MAGIC: [u8; 8] = *b"triad-Q\0";
const LAYOUT_VERSION: u32 = 1;
const HEADER_SIZE: usize = size_of::<Header>();
/// Linux's `SEM_VALUE_MAX`.
const SEM_VALUE_MAX: usize = i32::MAX as usize;

/// This process's mapping of a queue's header.
struct Mapping {
    header: NonNull<Header>,
}

// SAFETY: the header is made for sharing between processes, so between threads too: its
// mutable fields are atomics or the semaphore, which is used only through the thread-safe
// `sem_*` functions; the other fields are written once, before any other handle exists.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// A new memfd, sealed at the header's size, with an initialised header.
    fn create(capacity: usize, max_message: usize) -> io::Result<(OwnedFd, Mapping)> {
        use rustix::fs::{MemfdFlags, SealFlags};
        let memfd = rustix::fs::memfd_create(
            "triad-ipc-queue",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        rustix::fs::ftruncate(&memfd, HEADER_SIZE as u64)?;
        rustix::fs::fcntl_add_seals(
            &memfd,
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
        )?;
        let mapping = Mapping::map(&memfd)?;
        let header = mapping.header.as_ptr();
        // SAFETY: the mapping is fresh, writable, `HEADER_SIZE` long and page-aligned, and no
        // other handle can see it yet; the semaphore is initialised in place, once, before use.
        let result = unsafe {
            header.write(Header {
                magic: MAGIC,
                layout: LAYOUT_VERSION,
                closed: AtomicU32::new(0),
                capacity: capacity as u64,
                max_message: max_message as u64,
                len: AtomicI64::new(0),
                free_slots: std::cell::UnsafeCell::new(std::mem::zeroed()),
            });
            libc::sem_init((*header).free_slots.get(), 1, capacity as libc::c_uint)
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((memfd, mapping))
    }

    /// Maps the header of another handle's memfd and checks it.
    fn open(memfd: BorrowedFd<'_>) -> io::Result<Mapping> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        let size = rustix::fs::fstat(memfd)?.st_size;
        if usize::try_from(size).ok() != Some(HEADER_SIZE) {
            return Err(invalid(format!(
                "queue header is {size} bytes, expected {HEADER_SIZE}"
            )));
        }
        let seals = rustix::fs::fcntl_get_seals(memfd)?;
        if !seals.contains(rustix::fs::SealFlags::SHRINK) {
            return Err(invalid(
                "queue header memfd is not sealed against shrinking".into(),
            ));
        }
        let mapping = Mapping::map(memfd)?;
        let header = mapping.header();
        if header.magic != MAGIC {
            return Err(invalid("not a triad queue header (bad magic)".into()));
        }
        if header.layout != LAYOUT_VERSION {
            return Err(invalid(format!(
                "queue header layout {} is not {LAYOUT_VERSION}",
                header.layout
            )));
        }
        let capacity = usize::try_from(header.capacity).unwrap_or(usize::MAX);
        if capacity == 0 || capacity > SEM_VALUE_MAX {
            return Err(invalid(format!(
                "queue capacity {capacity} is out of range"
            )));
        }
        let max_message = usize::try_from(header.max_message).unwrap_or(usize::MAX);
        if max_message == 0 || max_message > MAX_DATAGRAM {
            return Err(invalid(format!(
                "queue message limit {max_message} is out of range"
            )));
        }
        Ok(mapping)
    }

    fn map(memfd: impl AsFd) -> io::Result<Mapping> {
        use rustix::mm::{MapFlags, ProtFlags};
        // SAFETY: a new shared mapping at an address of the kernel's choosing aliases no Rust
        // object; the memfd is sealed against shrinking, so the pages stay valid.
        let pointer = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                HEADER_SIZE,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                memfd,
                0,
            )?
        };
        let header = NonNull::new(pointer.cast::<Header>())
            .ok_or_else(|| io::Error::other("mmap returned a null pointer"))?;
        Ok(Mapping { header })
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping is valid and initialised for as long as `self` lives, and only
        // shared references to it are made (mutation goes through atomics and the semaphore).
        unsafe { self.header.as_ref() }
    }

    fn semaphore(&self) -> *mut libc::sem_t {
        self.header().free_slots.get()
    }

    /// Takes a free slot, waiting as `wait` says. Every wait that ends, however, looks at the
    /// closed flag; see [`Queue::close`] for how closing wakes waiters.
    fn acquire_slot(&self, wait: Wait) -> Result<(), Fail> {
        let header = self.header();
        loop {
            if header.closed.load(Ordering::SeqCst) != 0 {
                return Err(Fail::Closed);
            }
            let result = match wait {
                // SAFETY: the semaphore was initialised by `sem_init` and lives in the mapping.
                Wait::No => unsafe { libc::sem_trywait(self.semaphore()) },
                // SAFETY: as above.
                Wait::Forever => unsafe { libc::sem_wait(self.semaphore()) },
                Wait::Until(deadline) => self.wait_until(deadline),
            };
            if result == 0 {
                if header.closed.load(Ordering::SeqCst) != 0 {
                    // Pass the wake-up on to the next waiter.
                    self.release_slot();
                    return Err(Fail::Closed);
                }
                return Ok(());
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Err(Fail::WouldBlock),
                Some(libc::ETIMEDOUT) => {
                    // The semaphore's clock said the deadline passed; trust `Instant`.
                    if let Wait::Until(deadline) = wait
                        && Instant::now() < deadline
                    {
                        continue;
                    }
                    return Err(Fail::Timeout);
                }
                _ => {
                    return Err(IpcError::io("sem_wait", io::Error::last_os_error()).into());
                }
            }
        }
    }

    /// `sem_clockwait` on `CLOCK_MONOTONIC` (glibc 2.30+), so that setting the wall clock does
    /// not stretch or cut the wait.
    #[cfg(target_env = "gnu")]
    fn wait_until(&self, deadline: Instant) -> libc::c_int {
        unsafe extern "C" {
            fn sem_clockwait(
                sem: *mut libc::sem_t,
                clock: libc::clockid_t,
                abstime: *const libc::timespec,
            ) -> libc::c_int;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let abstime = add_to_timespec(now.tv_sec, now.tv_nsec as i64, left);
        // SAFETY: the semaphore was initialised by `sem_init`; `abstime` is a valid timespec.
        unsafe { sem_clockwait(self.semaphore(), libc::CLOCK_MONOTONIC, &abstime) }
    }

    /// `sem_timedwait` on `CLOCK_REALTIME`, where `sem_clockwait` may be missing; a clock
    /// change ends the wait early, and `acquire_slot` then waits again.
    #[cfg(not(target_env = "gnu"))]
    fn wait_until(&self, deadline: Instant) -> libc::c_int {
        let left = deadline.saturating_duration_since(Instant::now());
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
        let abstime = add_to_timespec(now.tv_sec, now.tv_nsec as i64, left);
        // SAFETY: the semaphore was initialised by `sem_init`; `abstime` is a valid timespec.
        unsafe { libc::sem_timedwait(self.semaphore(), &abstime) }
    }

    fn release_slot(&self) {
        // SAFETY: the semaphore was initialised by `sem_init`. EOVERFLOW (at SEM_VALUE_MAX,
        // only possible after close) is harmless.
        unsafe { libc::sem_post(self.semaphore()) };
    }
}

fn add_to_timespec(sec: i64, nsec: i64, add: Duration) -> libc::timespec {
    let mut sec = sec.saturating_add(i64::try_from(add.as_secs()).unwrap_or(i64::MAX));
    let mut nsec = nsec + i64::from(add.subsec_nanos());
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as _,
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `map` with this length, and no reference into it
        // outlives `self`. The semaphore is never destroyed: other processes may use it.
        let _ = unsafe { rustix::mm::munmap(self.header.as_ptr().cast(), HEADER_SIZE) };
    }
}

// ---------------------------------------------------------------------------------------------
// Queue

/// A bounded multi-producer multi-consumer FIFO queue between processes
/// (`multiprocessing.Queue(maxsize)`).
///
/// Any process holding a handle may [`put`](Self::put) and [`get`](Self::get); each item goes
/// to exactly one getter. `put` waits while `capacity` items are in the queue. Cloning a handle
/// shares it; serialising one with [`fdpass::encode`] — inside a task
/// input or a pipe message — hands the same queue to another process.
///
/// Like the thread [`JoinableQueue`](crate::JoinableQueue), and unlike Python's `Queue.close`
/// (which only stops the calling process), [`close`](Self::close) closes the queue for every
/// process: new puts fail, waiting putters wake with `Closed`, and getters drain what is left
/// before they see `Closed`. Dropping handles never closes it.
///
/// Items are encoded on `put` and decoded on `get`, so `T` need not be `Send`; an item that does
/// not decode is reported as [`IpcError::Codec`] (its slot is freed and the queue stays usable).
/// Each item must fit in one datagram: see [`max_message_size`](Self::max_message_size).
///
/// Limits: items in flight also occupy the socket's send buffer; if that fills first (many
/// items, or large ones, with a large `capacity`), `put` waits and `try_put` reports `Full`
/// though fewer than `capacity` items are queued. A process that dies between taking a slot
/// and sending, or between receiving and freeing the slot, leaks that slot (as Python's does);
/// a getter that dies after receiving loses that item.
///
/// # Examples
///
/// ```
/// use triad::ipc::{Queue, QueueError};
/// use triad::{GetError, TryPutError};
///
/// let queue = Queue::<String>::new(2)?;
/// queue.put(&"a".to_string())?;
/// queue.put(&"b".to_string())?;
/// assert!(matches!(
///     queue.try_put(&"c".to_string()),
///     Err(QueueError::Queue(TryPutError::Full(())))
/// ));
/// assert_eq!(queue.get()?, "a");
/// queue.close()?;
/// assert_eq!(queue.get()?, "b"); // drained after close
/// assert!(matches!(queue.get(), Err(QueueError::Queue(GetError::Closed))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Queue<T> {
    inner: Arc<QueueInner>,
    _items: PhantomData<fn(T) -> T>,
}

/// What the clones of a handle share.
struct QueueInner {
    /// Producers send here.
    write: SharedFd,
    /// Consumers receive here.
    read: SharedFd,
    /// The header's memfd, kept to hand on to other processes.
    memfd: SharedFd,
    mapping: Mapping,
}

/// How a queue handle travels: its three descriptors.
#[derive(Serialize, Deserialize)]
struct QueueWire {
    write: SharedFd,
    read: SharedFd,
    memfd: SharedFd,
}

thread_local! {
    /// The receive buffer of this thread's pipe and queue receives, as large as the largest
    /// message (or queue message limit) met. It is allocated zeroed, which maps untouched
    /// pages: only the bytes actually received become resident.
    static RECEIVE_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

impl<T> Queue<T> {
    /// A new queue holding at most `capacity` items. A capacity above `SEM_VALUE_MAX`
    /// (2³¹ − 1) is lowered to it, which is effectively unbounded.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0, as [`JoinableQueue::new`](crate::JoinableQueue::new) does.
    pub fn new(capacity: usize) -> io::Result<Self> {
        assert!(capacity > 0, "capacity must be at least 1");
        let capacity = capacity.min(SEM_VALUE_MAX);
        let (write, read) = seqpacket_pair()?;
        let max_message = message_limit(write.as_fd())?;
        let (memfd, mapping) = Mapping::create(capacity, max_message)?;
        Ok(Queue {
            inner: Arc::new(QueueInner {
                write: SharedFd::new(write),
                read: SharedFd::new(read),
                memfd: SharedFd::new(memfd),
                mapping,
            }),
            _items: PhantomData,
        })
    }

    fn header(&self) -> &Header {
        self.inner.mapping.header()
    }

    /// The most items the queue holds.
    pub fn capacity(&self) -> usize {
        self.header().capacity as usize
    }

    /// The number of items in the queue, approximately: items being put or got concurrently
    /// may or may not be counted (`multiprocessing.Queue.qsize`).
    pub fn len(&self) -> usize {
        let len = self.header().len.load(Ordering::Relaxed);
        usize::try_from(len).unwrap_or(0).min(self.capacity())
    }

    /// Whether [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether [`close`](Self::close) has been called, in any process.
    pub fn is_closed(&self) -> bool {
        self.header().closed.load(Ordering::SeqCst) != 0
    }

    /// The largest item [`put`](Self::put) accepts, in encoded bytes plus one (see the
    /// [module documentation](self)).
    pub fn max_message_size(&self) -> usize {
        self.header().max_message as usize
    }

    /// Closes the queue, for every process that holds it.
    ///
    /// Sets the shared closed flag, posts the free-slot semaphore once and shuts down the
    /// socket's sending side. Then:
    /// - a new `put` fails with `Closed`;
    /// - a `put` waiting for a slot wakes: each putter that takes a slot after close sees the
    ///   flag, posts the slot back to wake the next one, and returns `Closed` — so one post wakes
    ///   them all, in any process, and no count of waiters is needed. (A putter waiting for room
    ///   in the socket buffer is woken by the shutdown, with `EPIPE`.)
    /// - getters receive the items still queued, then end of stream, which they report as
    ///   `Closed`.
    ///
    /// Closing twice is harmless.
    pub fn close(&self) -> Result<(), IpcError> {
        self.header().closed.store(1, Ordering::SeqCst);
        self.inner.mapping.release_slot();
        match rustix::net::shutdown(&self.inner.write, rustix::net::Shutdown::Write) {
            Ok(()) | Err(Errno::NOTCONN) => Ok(()),
            Err(error) => Err(IpcError::io("shutdown", error)),
        }
    }
}

impl<T: Serialize> Queue<T> {
    /// Puts `item`, waiting while the queue is full.
    pub fn put(&self, item: &T) -> Result<(), QueueError<PutError<()>>> {
        self.put_waiting(item, Wait::Forever)
            .map_err(|fail| match fail {
                Fail::Closed => QueueError::Queue(PutError::Closed(())),
                Fail::Ipc(error) => QueueError::Ipc(error),
                Fail::WouldBlock | Fail::Timeout => unreachable!("a wait without a deadline ended"),
            })
    }

    /// Puts `item` if there is room now.
    pub fn try_put(&self, item: &T) -> Result<(), QueueError<TryPutError<()>>> {
        self.put_waiting(item, Wait::No).map_err(|fail| match fail {
            Fail::WouldBlock | Fail::Timeout => QueueError::Queue(TryPutError::Full(())),
            Fail::Closed => QueueError::Queue(TryPutError::Closed(())),
            Fail::Ipc(error) => QueueError::Ipc(error),
        })
    }

    /// Puts `item`, waiting at most `timeout` for room.
    pub fn put_timeout(
        &self,
        item: &T,
        timeout: Duration,
    ) -> Result<(), QueueError<PutTimeoutError<()>>> {
        self.put_waiting(item, Wait::after(timeout))
            .map_err(|fail| match fail {
                Fail::WouldBlock | Fail::Timeout => QueueError::Queue(PutTimeoutError::Timeout(())),
                Fail::Closed => QueueError::Queue(PutTimeoutError::Closed(())),
                Fail::Ipc(error) => QueueError::Ipc(error),
            })
    }

    fn put_waiting(&self, item: &T, wait: Wait) -> Result<(), Fail> {
        if self.is_closed() {
            return Err(Fail::Closed);
        }
        let message = Outgoing::new(item)?;
        message.check_size(self.max_message_size())?;
        let mapping = &self.inner.mapping;
        mapping.acquire_slot(wait)?;
        let len = &self.header().len;
        len.fetch_add(1, Ordering::Relaxed);
        let result = self.send_slot(&message, wait);
        if result.is_err() {
            len.fetch_sub(1, Ordering::Relaxed);
            mapping.release_slot();
        }
        result
    }

    /// Sends a message whose slot is taken. A blocking send waits in `sendmsg`, which the
    /// shutdown in `close` wakes; a timed one polls in slices, looking at the closed flag.
    fn send_slot(&self, message: &Outgoing, wait: Wait) -> Result<(), Fail> {
        let socket = self.inner.write.as_fd();
        loop {
            match send_datagram(socket, message, !matches!(wait, Wait::Forever)) {
                Ok(()) => return Ok(()),
                Err(Errno::PIPE | Errno::CONNRESET) => return Err(Fail::Closed),
                Err(Errno::MSGSIZE) => {
                    return Err(IpcError::TooLarge {
                        size: message.size(),
                        limit: message_limit(socket).unwrap_or(self.max_message_size()),
                    }
                    .into());
                }
                // The socket buffer is full (or someone made the socket non-blocking).
                Err(Errno::AGAIN) => {
                    let deadline = match wait {
                        Wait::No => return Err(Fail::WouldBlock),
                        Wait::Forever => None,
                        Wait::Until(deadline) => Some(deadline),
                    };
                    let now = Instant::now();
                    if deadline.is_some_and(|deadline| now >= deadline) {
                        return Err(Fail::Timeout);
                    }
                    let slice = now + SEND_POLL_SLICE;
                    let slice = deadline.map_or(slice, |deadline| deadline.min(slice));
                    wait_for(socket, PollFlags::OUT, Some(slice))?;
                    if self.is_closed() {
                        return Err(Fail::Closed);
                    }
                }
                Err(error) => return Err(IpcError::io("sendmsg", error).into()),
            }
        }
    }
}

impl<T: DeserializeOwned> Queue<T> {
    /// Takes the oldest item, waiting for one; `Closed` once the queue is closed and drained.
    pub fn get(&self) -> Result<T, QueueError<GetError>> {
        self.get_waiting(Wait::Forever).map_err(|fail| match fail {
            Fail::Closed => QueueError::Queue(GetError::Closed),
            Fail::Ipc(error) => QueueError::Ipc(error),
            Fail::WouldBlock | Fail::Timeout => unreachable!("a wait without a deadline ended"),
        })
    }

    /// Takes the oldest item if there is one.
    pub fn try_get(&self) -> Result<T, QueueError<TryGetError>> {
        self.get_waiting(Wait::No).map_err(|fail| match fail {
            Fail::WouldBlock | Fail::Timeout => QueueError::Queue(TryGetError::Empty),
            Fail::Closed => QueueError::Queue(TryGetError::Closed),
            Fail::Ipc(error) => QueueError::Ipc(error),
        })
    }

    /// Takes the oldest item, waiting at most `timeout` for one.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, QueueError<GetTimeoutError>> {
        self.get_waiting(Wait::after(timeout))
            .map_err(|fail| match fail {
                Fail::WouldBlock | Fail::Timeout => QueueError::Queue(GetTimeoutError::Timeout),
                Fail::Closed => QueueError::Queue(GetTimeoutError::Closed),
                Fail::Ipc(error) => QueueError::Ipc(error),
            })
    }

    /// Receives straight into a buffer as large as any datagram the queue accepts, so that no
    /// peek is needed and a datagram taken by another reader cannot leave ours truncated.
    fn get_waiting(&self, wait: Wait) -> Result<T, Fail> {
        let socket = self.inner.read.as_fd();
        let capacity = self.max_message_size();
        let mut buffer = RECEIVE_BUFFER.take();
        if buffer.len() < capacity {
            buffer = vec![0; capacity];
        }
        // A blocking get waits in `recvmsg` itself, which `close` (end of stream) wakes; the
        // others try first, then poll.
        let result = loop {
            match recv_datagram(socket, &mut buffer, !matches!(wait, Wait::Forever)) {
                Ok(None) => break Err(Fail::Closed),
                Ok(Some(received)) => {
                    self.header().len.fetch_sub(1, Ordering::Relaxed);
                    self.inner.mapping.release_slot();
                    break finish_recv(received, &buffer).map_err(Fail::Ipc);
                }
                // Nothing there, or another reader took the item that woke us.
                Err(Errno::AGAIN) => {
                    if let Err(fail) = wait_readable(socket, wait) {
                        break Err(fail);
                    }
                }
                Err(error) => break Err(IpcError::io("recvmsg", error).into()),
            }
        };
        RECEIVE_BUFFER.set(buffer);
        result
    }
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            inner: Arc::clone(&self.inner),
            _items: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("closed", &self.is_closed())
            .field("max_message_size", &self.max_message_size())
            .finish_non_exhaustive()
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        QueueWire {
            write: self.inner.write.clone(),
            read: self.inner.read.clone(),
            memfd: self.inner.memfd.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = QueueWire::deserialize(deserializer)?;
        let bad = |error: io::Error| handle_error(format!("not a triad queue: {error}"));
        check_seqpacket(wire.write.as_fd()).map_err(bad)?;
        check_seqpacket(wire.read.as_fd()).map_err(bad)?;
        let mapping = Mapping::open(wire.memfd.as_fd()).map_err(bad)?;
        Ok(Queue {
            inner: Arc::new(QueueInner {
                write: wire.write,
                read: wire.read,
                memfd: wire.memfd,
                mapping,
            }),
            _items: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use proptest::prelude::*;

    use super::*;

    const SHORT: Duration = Duration::from_millis(50);

    fn send_raw(end: &impl AsFd, bytes: &[u8]) {
        let sent = rustix::net::send(end.as_fd(), bytes, SendFlags::NOSIGNAL).unwrap();
        assert_eq!(sent, bytes.len());
    }

    #[test]
    fn pipe_round_trip_both_ways() {
        let (a, b) = pipe::<(u32, String), Vec<u8>>().unwrap();
        a.send(&(7, "seven".into())).unwrap();
        a.send(&(8, "eight".into())).unwrap();
        assert_eq!(b.recv().unwrap(), (7, "seven".into()));
        assert_eq!(b.try_recv().unwrap(), (8, "eight".into()));
        assert!(matches!(b.try_recv(), Err(TryRecvError::Empty)));
        b.send(&vec![1, 2, 3]).unwrap();
        assert_eq!(a.recv_timeout(SHORT).unwrap(), vec![1, 2, 3]);
        let started = Instant::now();
        assert!(matches!(
            a.recv_timeout(SHORT),
            Err(RecvTimeoutError::Timeout)
        ));
        assert!(started.elapsed() >= SHORT);
    }

    #[test]
    fn dropping_one_end_disconnects_the_other_after_draining() {
        let (a, b) = pipe::<u8, u8>().unwrap();
        a.send(&1).unwrap();
        drop(a);
        assert_eq!(b.recv().unwrap(), 1);
        assert!(matches!(b.recv(), Err(RecvError::Disconnected)));
        assert!(matches!(b.try_recv(), Err(TryRecvError::Disconnected)));
        assert!(matches!(
            b.recv_timeout(SHORT),
            Err(RecvTimeoutError::Disconnected)
        ));
        assert!(matches!(b.send(&2), Err(SendError::Disconnected)));
    }

    #[test]
    fn a_blocked_recv_wakes_when_the_peer_goes() {
        let (a, b) = pipe::<u8, u8>().unwrap();
        let waiter = thread::spawn(move || b.recv());
        thread::sleep(SHORT);
        drop(a);
        assert!(matches!(
            waiter.join().unwrap(),
            Err(RecvError::Disconnected)
        ));
    }

    #[test]
    fn try_recv_is_not_held_up_by_a_blocked_recv() {
        let (a, b) = pipe::<u8, u8>().unwrap();
        let b = Arc::new(b);
        let waiter = {
            let b = Arc::clone(&b);
            thread::spawn(move || b.recv())
        };
        thread::sleep(SHORT);
        let started = Instant::now();
        assert!(matches!(b.try_recv(), Err(TryRecvError::Empty)));
        assert!(matches!(
            b.recv_timeout(SHORT),
            Err(RecvTimeoutError::Timeout)
        ));
        assert!(started.elapsed() < Duration::from_secs(2));
        a.send(&5).unwrap();
        assert_eq!(waiter.join().unwrap().unwrap(), 5);
    }

    #[test]
    fn garbage_and_wrong_versions_are_errors_and_the_pipe_goes_on() {
        let (a, b) = pipe::<Vec<(u32, String)>, Vec<(u32, String)>>().unwrap();
        send_raw(&a, &[]);
        send_raw(&a, &[2, 1, 2, 3]);
        send_raw(&a, &[PROTOCOL_VERSION, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        a.send(&vec![(1, "ok".into())]).unwrap();
        let empty = b.recv().unwrap_err();
        assert!(
            matches!(empty, RecvError::Ipc(IpcError::Codec { .. })),
            "{empty:?}"
        );
        let version = b.recv().unwrap_err();
        assert!(
            matches!(
                version,
                RecvError::Ipc(IpcError::Version {
                    found: 2,
                    expected: PROTOCOL_VERSION
                })
            ),
            "{version:?}"
        );
        let codec = b.recv().unwrap_err();
        let RecvError::Ipc(IpcError::Codec { detail, source }) = &codec else {
            panic!("{codec:?}");
        };
        assert!(detail.contains("do not decode"), "{detail}");
        assert!(source.is_some());
        assert_eq!(b.recv().unwrap(), vec![(1, "ok".into())]);
    }

    #[test]
    fn too_large_messages_are_refused_and_the_limit_is_usable() {
        let (a, b) = pipe::<Vec<u8>, Vec<u8>>().unwrap();
        let limit = a.max_message_size();
        assert!(limit >= 100_000, "limit {limit}");
        let error = a.send(&vec![0; limit]).unwrap_err();
        assert!(
            matches!(error, SendError::Ipc(IpcError::TooLarge { size, limit: l }) if size > l && l == limit),
            "{error:?}"
        );
        // The largest message that fits: version byte + length varint + bytes.
        let varint = |n: usize| {
            if n < 1 << 14 {
                2
            } else if n < 1 << 21 {
                3
            } else {
                4
            }
        };
        let mut n = limit - 1 - 4;
        while 1 + varint(n) + n < limit {
            n += 1;
        }
        while 1 + varint(n) + n > limit {
            n -= 1;
        }
        let big: Vec<u8> = (0..n).map(|i| i as u8).collect();
        let sender = thread::spawn(move || a.send(&big).map(|()| a));
        let received = b.recv().unwrap();
        assert_eq!(received.len(), n);
        assert!(received.iter().enumerate().all(|(i, &x)| x == i as u8));
        sender.join().unwrap().unwrap();
    }

    #[test]
    fn a_pipe_end_travels_inside_a_message() {
        let (carrier_a, carrier_b) = pipe::<PipeEnd<u32, u32>, PipeEnd<u32, u32>>().unwrap();
        let (x, y) = pipe::<u32, u32>().unwrap();
        carrier_a.send(&y).unwrap();
        drop(y);
        let y = carrier_b.recv().unwrap();
        x.send(&41).unwrap();
        assert_eq!(y.recv().unwrap(), 41);
        y.send(&42).unwrap();
        assert_eq!(x.recv().unwrap(), 42);
        drop(y);
        assert!(matches!(x.recv(), Err(RecvError::Disconnected)));
    }

    #[test]
    fn from_fd_refuses_other_sockets() {
        let (stream, _other) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let error = PipeEnd::<u8, u8>::from_fd(stream).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn queue_is_fifo_and_bounded() {
        let queue = Queue::<u32>::new(3).unwrap();
        assert_eq!(queue.capacity(), 3);
        assert!(queue.is_empty());
        for n in 0..3 {
            queue.put(&n).unwrap();
        }
        assert_eq!(queue.len(), 3);
        assert!(matches!(
            queue.try_put(&9),
            Err(QueueError::Queue(TryPutError::Full(())))
        ));
        let started = Instant::now();
        assert!(matches!(
            queue.put_timeout(&9, SHORT),
            Err(QueueError::Queue(PutTimeoutError::Timeout(())))
        ));
        assert!(started.elapsed() >= SHORT);
        assert_eq!(queue.get().unwrap(), 0);
        queue.put_timeout(&3, SHORT).unwrap();
        assert_eq!(
            (0..3).map(|_| queue.try_get().unwrap()).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(matches!(
            queue.try_get(),
            Err(QueueError::Queue(TryGetError::Empty))
        ));
        assert!(matches!(
            queue.get_timeout(SHORT),
            Err(QueueError::Queue(GetTimeoutError::Timeout))
        ));
    }

    #[test]
    fn close_wakes_blocked_putters_and_getters() {
        let full = Queue::<u32>::new(1).unwrap();
        full.put(&0).unwrap();
        let putters: Vec<_> = (0..3)
            .map(|_| {
                let full = full.clone();
                thread::spawn(move || full.put(&1))
            })
            .collect();
        let empty = Queue::<u32>::new(1).unwrap();
        let getters: Vec<_> = (0..2)
            .map(|_| {
                let empty = empty.clone();
                thread::spawn(move || empty.get())
            })
            .collect();
        thread::sleep(SHORT);
        full.close().unwrap();
        empty.close().unwrap();
        for putter in putters {
            assert!(matches!(
                putter.join().unwrap(),
                Err(QueueError::Queue(PutError::Closed(())))
            ));
        }
        for getter in getters {
            assert!(matches!(
                getter.join().unwrap(),
                Err(QueueError::Queue(GetError::Closed))
            ));
        }
        // The item put before close is still there.
        assert_eq!(full.get().unwrap(), 0);
        assert!(matches!(
            full.try_get(),
            Err(QueueError::Queue(TryGetError::Closed))
        ));
        assert!(matches!(
            full.try_put(&2),
            Err(QueueError::Queue(TryPutError::Closed(())))
        ));
        full.close().unwrap();
    }

    #[test]
    fn a_queue_travels_inside_a_message() {
        let queue = Queue::<String>::new(4).unwrap();
        let (a, b) = pipe::<Queue<String>, Queue<String>>().unwrap();
        a.send(&queue).unwrap();
        let other = b.recv().unwrap();
        assert_eq!(other.capacity(), 4);
        other.put(&"from the copy".into()).unwrap();
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.get().unwrap(), "from the copy");
        queue.close().unwrap();
        assert!(other.is_closed());
    }

    #[test]
    fn a_bad_queue_header_is_refused() {
        let (x, y) = seqpacket_pair().unwrap();
        let memfd = rustix::fs::memfd_create("bogus", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&memfd, HEADER_SIZE as u64).unwrap();
        let wire = QueueWire {
            write: SharedFd::new(x),
            read: SharedFd::new(y),
            memfd: SharedFd::new(memfd),
        };
        let encoded = fdpass::encode(&wire).unwrap();
        let mut datagram = vec![PROTOCOL_VERSION];
        datagram.extend(&encoded.bytes);
        let error = decode_message::<Queue<u8>>(&datagram, encoded.fds).unwrap_err();
        assert!(
            matches!(&error, IpcError::Codec { detail, .. } if detail.contains("not a triad queue: queue header memfd is not sealed")),
            "{error:?}"
        );
    }

    #[test]
    fn an_item_that_does_not_decode_is_a_codec_error_and_frees_its_slot() {
        let queue = Queue::<String>::new(1).unwrap();
        let encoded = fdpass::encode(&queue).unwrap();
        let wrong: Queue<u32> = fdpass::decode(&encoded.bytes, encoded.fds).unwrap();
        // A length of 300 with no bytes behind it.
        wrong.put(&300).unwrap();
        let error = queue.get().unwrap_err();
        assert!(
            matches!(error, QueueError::Ipc(IpcError::Codec { .. })),
            "{error:?}"
        );
        queue.try_put(&"five".into()).unwrap();
        assert_eq!(queue.get().unwrap(), "five");
    }

    #[test]
    fn too_large_queue_items_are_refused_without_taking_a_slot() {
        let queue = Queue::<Vec<u8>>::new(1).unwrap();
        let error = queue.put(&vec![0; queue.max_message_size()]).unwrap_err();
        assert!(
            matches!(error, QueueError::Ipc(IpcError::TooLarge { .. })),
            "{error:?}"
        );
        queue.try_put(&vec![1]).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_messages_round_trip_through_a_pipe(
            messages in proptest::collection::vec(
                proptest::collection::vec((any::<u32>(), ".{0,40}"), 0..20),
                1..8,
            )
        ) {
            let (a, b) = pipe::<Vec<(u32, String)>, Vec<(u32, String)>>().unwrap();
            for message in &messages {
                a.send(message).unwrap();
            }
            for message in &messages {
                prop_assert_eq!(&b.recv().unwrap(), message);
            }
        }

        #[test]
        fn random_bytes_never_panic_the_decoder(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
            versioned in any::<bool>(),
        ) {
            let mut datagram = bytes;
            if versioned && !datagram.is_empty() {
                datagram[0] = PROTOCOL_VERSION;
            }
            let _ = decode_message::<Vec<(u32, String)>>(&datagram, Vec::new());
            let _ = decode_message::<(Option<i64>, Vec<f64>, bool)>(&datagram, Vec::new());
            let _ = decode_message::<PipeEnd<u8, u8>>(&datagram, Vec::new());
            let _ = decode_message::<Queue<u8>>(&datagram, Vec::new());
        }

        #[test]
        fn random_datagrams_never_panic_a_receiver(
            bytes in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let (a, b) = pipe::<u8, Vec<(u32, String)>>().unwrap();
            send_raw(&a, &bytes);
            a.send(&7).unwrap();
            drop(a);
            let _ = b.recv();
            // Whatever the garbage did, the good message after it arrives.
            let (c, d) = pipe::<u8, u8>().unwrap();
            send_raw(&c, &bytes);
            c.send(&7).unwrap();
            let first = d.recv();
            let second = d.recv();
            prop_assert!(matches!(first, Ok(7)) || matches!(second, Ok(7)));
        }
    }
}
