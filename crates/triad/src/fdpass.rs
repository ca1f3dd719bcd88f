//! File descriptors inside serde values, for everything that crosses into another process.
//!
//! A [`SharedFd`] is a file descriptor that can sit inside a task's input (or a `Pipe`, `Queue` or
//! shared-memory handle inside it). Serialising it with [`encode`] does not write the number —
//! it would mean nothing in another process — but moves a duplicate of the descriptor into a
//! side list and writes its index; the list travels beside the bytes as `SCM_RIGHTS` ancillary
//! data ([`send_with_fds`]), where the kernel installs each descriptor in the receiver, and
//! [`decode`] hands the received descriptors back to the `SharedFd`s by index. This is how
//! `multiprocessing` sends sockets and how ipc-channel sends channels; a memfd sent this way
//! is the same memory in both processes.
//!
//! Serialising a `SharedFd` outside [`encode`] (with plain postcard or serde_json, say) is an
//! error, never a silent wrong number.

use std::cell::RefCell;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The most descriptors one message may carry (the kernel's `SCM_MAX_FD`).
pub const MAX_FDS_PER_MESSAGE: usize = 253;

/// A file descriptor that serde values can carry to another process. Cloning shares it.
#[derive(Debug, Clone)]
pub struct SharedFd {
    fd: Arc<OwnedFd>,
}

impl SharedFd {
    /// Wraps `fd`; it is closed when the last clone is dropped.
    pub fn new(fd: OwnedFd) -> Self {
        SharedFd { fd: Arc::new(fd) }
    }

    /// A duplicate descriptor of the same open file (`dup` with `FD_CLOEXEC`).
    pub fn try_clone_owned(&self) -> std::io::Result<OwnedFd> {
        self.fd.try_clone()
    }
}

impl AsFd for SharedFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

thread_local! {
    // Descriptors collected by `encode` on this thread; `None` outside an `encode`.
    static OUTGOING: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    // Descriptors received with the bytes that `decode` is reading; `None` outside a `decode`.
    static INCOMING: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
}

impl Serialize for SharedFd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let index = OUTGOING.with(|outgoing| {
            let mut outgoing = outgoing.borrow_mut();
            let list = outgoing.as_mut().ok_or_else(|| {
                S::Error::custom(
                    "a SharedFd carries a file descriptor: send it with triad's process pool or ipc",
                )
            })?;
            if list.len() == MAX_FDS_PER_MESSAGE {
                return Err(S::Error::custom(format!(
                    "one message can carry at most {MAX_FDS_PER_MESSAGE} file descriptors"
                )));
            }
            let duplicate = self.try_clone_owned().map_err(S::Error::custom)?;
            list.push(duplicate);
            Ok(list.len() as u32 - 1)
        })?;
        serializer.serialize_u32(index)
    }
}

impl<'de> Deserialize<'de> for SharedFd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let index = u32::deserialize(deserializer)? as usize;
        INCOMING.with(|incoming| {
            let mut incoming = incoming.borrow_mut();
            let list = incoming.as_mut().ok_or_else(|| {
                D::Error::custom("a SharedFd can only be decoded with the descriptors it came with")
            })?;
            let count = list.len();
            let slot = list.get_mut(index).ok_or_else(|| {
                D::Error::custom(format!(
                    "descriptor {index} is missing: the message came with {count}"
                ))
            })?;
            let fd = slot
                .take()
                .ok_or_else(|| D::Error::custom(format!("descriptor {index} is used twice")))?;
            Ok(SharedFd::new(fd))
        })
    }
}

/// Bytes and the descriptors that go with them.
#[derive(Debug, Default)]
pub struct Encoded {
    /// The postcard encoding of the value.
    pub bytes: Vec<u8>,
    /// Duplicates of the value's descriptors, in the order its bytes index them.
    pub fds: Vec<OwnedFd>,
}

/// Sets a thread-local slot for the length of an `encode` or `decode`, and puts back what it held
/// before when left — or when dropped, if serde panicked.
struct Scope<T: 'static> {
    key: &'static std::thread::LocalKey<RefCell<Option<T>>>,
    // `Some(previous)` until the scope is left.
    previous: Option<Option<T>>,
}

impl<T: 'static> Scope<T> {
    fn enter(key: &'static std::thread::LocalKey<RefCell<Option<T>>>, value: T) -> Self {
        let previous = key.with(|slot| slot.borrow_mut().replace(value));
        Scope {
            key,
            previous: Some(previous),
        }
    }

    /// Restores the slot and returns what the scope put there.
    fn leave(mut self) -> Option<T> {
        let previous = self.previous.take().flatten();
        self.key
            .with(|slot| std::mem::replace(&mut *slot.borrow_mut(), previous))
    }
}

impl<T: 'static> Drop for Scope<T> {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            let _ = self.key.try_with(|slot| *slot.borrow_mut() = previous);
        }
    }
}

/// Encodes `value` with postcard, collecting the descriptors of its [`SharedFd`]s.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Encoded, postcard::Error> {
    let mut bytes = Vec::new();
    let fds = Encoder::new().append(value, &mut bytes)?;
    Ok(Encoded { bytes, fds })
}

/// A postcard flavor that appends to a borrowed buffer.
struct AppendTo<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends the postcard encoding of `value` to `bytes`; on an error `bytes` is left as it was.
pub fn postcard_append<T: Serialize + ?Sized>(
    value: &T,
    bytes: &mut Vec<u8>,
) -> Result<(), postcard::Error> {
    let start = bytes.len();
    postcard::serialize_with_flavor(value, AppendTo(bytes)).inspect_err(|_| bytes.truncate(start))
}

/// Encodes values one after another into a buffer, each with its own descriptors, under one
/// descriptor scope (cheaper than an [`encode`] per value for a batch).
pub struct Encoder {
    _scope: Scope<Vec<OwnedFd>>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Encoder")
    }
}

impl Encoder {
    /// Starts collecting descriptors on this thread until the encoder is dropped.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Encoder {
            _scope: Scope::enter(&OUTGOING, Vec::new()),
        }
    }

    /// Appends the encoding of `value` to `bytes` and returns the descriptors it carries; on an
    /// error `bytes` is left as it was.
    pub fn append<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        bytes: &mut Vec<u8>,
    ) -> Result<Vec<OwnedFd>, postcard::Error> {
        let encoded = postcard_append(value, bytes);
        let fds = OUTGOING.with(|outgoing| {
            outgoing
                .borrow_mut()
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default()
        });
        encoded.map(|()| fds)
    }
}

/// Decodes a value that [`encode`] wrote, giving its [`SharedFd`]s the descriptors `fds`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<T, postcard::Error> {
    if fds.is_empty() && INCOMING.with(|slot| slot.borrow().is_none()) {
        // No descriptors came: a `SharedFd` inside fails as it would with an empty list.
        return postcard::from_bytes(bytes);
    }
    let scope = Scope::enter(&INCOMING, fds.into_iter().map(Some).collect());
    let value = postcard::from_bytes(bytes);
    scope.leave();
    value
}

/// Sends `parts` (gathered, as one `sendmsg`) with `fds` as `SCM_RIGHTS` on a Unix socket.
///
/// Returns the bytes written, which on a stream socket may be fewer than offered; the
/// descriptors go with the first byte.
pub fn send_with_fds(
    socket: BorrowedFd<'_>,
    parts: &[IoSlice<'_>],
    fds: &[OwnedFd],
) -> std::io::Result<usize> {
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
    send_message(socket, parts, &borrowed, SendFlags::NOSIGNAL).map_err(Into::into)
}

/// The `sendmsg` under [`send_with_fds`], for callers that need their own `flags` (such as
/// `DONTWAIT`) and the raw [`Errno`]. Retries on `EINTR`.
///
/// # Panics
/// If `fds` holds more than [`MAX_FDS_PER_MESSAGE`] descriptors.
pub fn send_message(
    socket: BorrowedFd<'_>,
    parts: &[IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
    flags: SendFlags,
) -> Result<usize, Errno> {
    assert!(fds.len() <= MAX_FDS_PER_MESSAGE, "too many descriptors");
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        let pushed = control.push(SendAncillaryMessage::ScmRights(fds));
        debug_assert!(pushed, "the buffer was sized for these descriptors");
    }
    loop {
        match rustix::net::sendmsg(socket, parts, &mut control, flags) {
            Err(Errno::INTR) => continue,
            result => return result,
        }
    }
}

/// Receives into `buffer` from a Unix socket, with up to `max_fds` descriptors sent beside it.
///
/// Returns the bytes read (0 at end of stream) and the descriptors, each with `FD_CLOEXEC` set.
pub fn recv_with_fds(
    socket: BorrowedFd<'_>,
    buffer: &mut [u8],
    max_fds: usize,
) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    recv_with_flags(socket, buffer, max_fds, RecvFlags::empty())
}

/// [`recv_with_fds`] with `recvmsg` flags, such as `DONTWAIT` for a non-blocking read.
pub fn recv_with_flags(
    socket: BorrowedFd<'_>,
    buffer: &mut [u8],
    max_fds: usize,
    flags: RecvFlags,
) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    let message = recv_message(socket, buffer, max_fds, flags)?;
    Ok((message.bytes, message.fds))
}

/// What one `recvmsg` brought.
#[derive(Debug)]
pub struct Received {
    /// The bytes read into the buffer; with `RecvFlags::TRUNC` on a datagram socket, the
    /// datagram's real size even when it was larger than the buffer.
    pub bytes: usize,
    /// The descriptors that came with it, each with `FD_CLOEXEC` set.
    pub fds: Vec<OwnedFd>,
    /// The kernel's flags on the message, such as `TRUNC` and `CTRUNC`.
    pub flags: ReturnFlags,
}

/// The `recvmsg` under [`recv_with_flags`], for callers that need the return flags and the raw
/// [`Errno`]. Retries on `EINTR`; descriptors are received with `FD_CLOEXEC`.
pub fn recv_message(
    socket: BorrowedFd<'_>,
    buffer: &mut [u8],
    max_fds: usize,
    flags: RecvFlags,
) -> Result<Received, Errno> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(max_fds))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = loop {
        let mut parts = [IoSliceMut::new(buffer)];
        match rustix::net::recvmsg(
            socket,
            &mut parts,
            &mut control,
            flags | RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(Errno::INTR) => continue,
            result => break result?,
        }
    };
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received_fds) = message {
            fds.extend(received_fds);
        }
    }
    Ok(Received {
        bytes: received.bytes,
        fds,
        flags: received.flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[derive(Debug, Serialize, Deserialize)]
    struct WithFiles {
        name: String,
        first: SharedFd,
        second: SharedFd,
    }

    fn memfd_with(text: &str) -> SharedFd {
        let fd = rustix::fs::memfd_create("triad-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        let mut file = std::fs::File::from(fd);
        file.write_all(text.as_bytes()).unwrap();
        SharedFd::new(file.into())
    }

    fn read_all(fd: &SharedFd) -> String {
        let mut file = std::fs::File::from(fd.try_clone_owned().unwrap());
        file.rewind().unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn descriptors_travel_over_a_socket_beside_the_bytes() {
        let value = WithFiles {
            name: "pair".into(),
            first: memfd_with("one"),
            second: memfd_with("two"),
        };
        let encoded = encode(&value).unwrap();
        assert_eq!(encoded.fds.len(), 2);

        let (left, right) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let sent =
            send_with_fds(left.as_fd(), &[IoSlice::new(&encoded.bytes)], &encoded.fds).unwrap();
        assert_eq!(sent, encoded.bytes.len());
        drop(encoded.fds);

        let mut buffer = [0_u8; 256];
        let (read, fds) = recv_with_fds(right.as_fd(), &mut buffer, 4).unwrap();
        let decoded: WithFiles = decode(&buffer[..read], fds).unwrap();
        assert_eq!(decoded.name, "pair");
        assert_eq!(read_all(&decoded.first), "one");
        assert_eq!(read_all(&decoded.second), "two");
    }

    #[test]
    fn plain_serialisation_of_a_descriptor_is_an_error() {
        let error = postcard::to_stdvec(&memfd_with("x")).unwrap_err();
        assert!(matches!(error, postcard::Error::SerdeSerCustom));
        assert!(
            serde_json::to_string(&memfd_with("x"))
                .unwrap_err()
                .to_string()
                .contains("file descriptor")
        );
    }

    #[test]
    fn missing_or_reused_descriptors_are_decode_errors() {
        let encoded = encode(&(memfd_with("a"), memfd_with("b"))).unwrap();
        assert!(decode::<(SharedFd, SharedFd)>(&encoded.bytes, Vec::new()).is_err());
        let twice = postcard::to_stdvec(&(0_u32, 0_u32)).unwrap();
        let one = vec![memfd_with("a").try_clone_owned().unwrap()];
        assert!(decode::<(SharedFd, SharedFd)>(&twice, one).is_err());
    }

    #[test]
    fn a_failed_append_leaves_the_buffer_as_it_was() {
        let mut bytes = vec![1, 2, 3];
        let mut encoder = Encoder::new();
        let too_many: Vec<SharedFd> = (0..=MAX_FDS_PER_MESSAGE).map(|_| memfd_with("")).collect();
        assert!(encoder.append(&too_many, &mut bytes).is_err());
        assert_eq!(bytes, [1, 2, 3]);
        let fds = encoder
            .append(&(7_u8, memfd_with("x")), &mut bytes)
            .unwrap();
        assert_eq!(
            fds.len(),
            1,
            "only the descriptors of the value that went in"
        );
        assert_eq!(&bytes[..4], &[1, 2, 3, 7]);
    }

    #[test]
    fn scopes_nest_and_are_left_clean() {
        let outer = encode(&memfd_with("a")).unwrap();
        assert_eq!(outer.fds.len(), 1);
        assert!(OUTGOING.with(|slot| slot.borrow().is_none()));
        assert!(INCOMING.with(|slot| slot.borrow().is_none()));
    }
}
