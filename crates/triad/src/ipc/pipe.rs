//! [`pipe`] and [`PipeEnd`]: the seed's `multiprocessing.Pipe`, typed.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::RecvFlags;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{Fail, IpcError, RecvError, RecvTimeoutError, SendError, TryRecvError};
use super::message::{Outgoing, handle_error};
use super::socket::{
    RECEIVE_BUFFER, Wait, check_seqpacket, finish_recv, message_limit, raise_sndbuf, recv_datagram,
    send_datagram, seqpacket_pair, wait_readable,
};
use crate::fdpass::SharedFd;

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

#[cfg(test)]
mod tests {
    use std::thread;

    use proptest::prelude::*;

    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    use rustix::net::{AddressFamily, SendFlags, SocketFlags, SocketType};

    use super::super::message::decode_message;
    use super::super::{PROTOCOL_VERSION, Queue};

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
