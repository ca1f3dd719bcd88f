//! [`Queue`]: the seed's `multiprocessing.Queue`, bounded, between processes.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustix::event::PollFlags;
use rustix::io::Errno;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::SEND_POLL_SLICE;
use super::error::{Fail, IpcError, QueueError};
use super::message::{Outgoing, handle_error};
use super::slots::{Header, Mapping, SEM_VALUE_MAX};
use super::socket::{
    RECEIVE_BUFFER, Wait, check_seqpacket, finish_recv, message_limit, recv_datagram,
    send_datagram, seqpacket_pair, wait_for, wait_readable,
};
use crate::fdpass::SharedFd;
use crate::queue::{
    GetError, GetTimeoutError, PutError, PutTimeoutError, TryGetError, TryPutError,
};

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
pub(super) struct QueueInner {
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
pub(super) struct QueueWire {
    write: SharedFd,
    read: SharedFd,
    memfd: SharedFd,
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

    use super::*;

    use super::super::message::decode_message;
    use super::super::{PROTOCOL_VERSION, pipe};
    use crate::fdpass;

    const SHORT: Duration = Duration::from_millis(50);

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
        rustix::fs::ftruncate(&memfd, 4096).unwrap();
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
            matches!(&error, IpcError::Codec { detail, .. } if detail.contains("not a triad queue: the memfd is not sealed")),
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
}
