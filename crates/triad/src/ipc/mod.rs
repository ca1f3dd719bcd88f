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

mod error;
mod message;
mod pipe;
mod queue;
mod slots;
mod socket;

pub use error::{IpcError, QueueError, RecvError, RecvTimeoutError, SendError, TryRecvError};
pub use message::fuzz_decode_message;
pub use pipe::{PipeEnd, pipe};
pub use queue::Queue;

use std::time::Duration;

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
