//! The errors of pipes and queues.

use std::io;

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
    pub(super) fn io(op: &'static str, source: impl Into<io::Error>) -> Self {
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
pub(super) enum Fail {
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
