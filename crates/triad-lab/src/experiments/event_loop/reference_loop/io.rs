//! The reference loop's selector (epoll) and [`AsyncFd`], a non-blocking descriptor whose reads
//! and writes wait for readiness through it — asyncio's `add_reader` / `sock_recv` in small.
//!
//! Each descriptor is registered once, one-shot and with no interest. A task that finds it not
//! ready (`EAGAIN`) records its waker and arms the registration for reading or writing
//! (`EPOLL_CTL_MOD`); when `epoll_wait` reports the descriptor, the loop notes which direction
//! is ready and wakes every task waiting on it (one-shot: the registration is disarmed, and a
//! task woken for the other direction arms it again when it polls).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Weak;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rustix::event::{Timespec, epoll};
use rustix::io::Errno;

use super::{Core, with_current};

/// The epoll data of the loop's wake eventfd (descriptors use their number).
const WAKE_TOKEN: u64 = u64::MAX;

/// Events read per `epoll_wait`.
const EVENTS_PER_WAIT: usize = 256;

/// Which way a task waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Read,
    Write,
}

/// What the selector knows about one registered descriptor.
#[derive(Default)]
struct Source {
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// Reported readable since a reader last consumed it.
    readable: bool,
    /// Reported writable since a writer last consumed it.
    writable: bool,
    /// The interest the one-shot registration is armed with (empty once it fired).
    armed: epoll::EventFlags,
}

/// The epoll set and the descriptors in it.
pub(super) struct Selector {
    epoll: OwnedFd,
    sources: RefCell<HashMap<RawFd, Source>>,
}

impl Selector {
    /// An epoll set that watches `wake_fd` (level-triggered) for cross-thread wakes.
    pub(super) fn new(wake_fd: impl AsFd) -> io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &epoll,
            wake_fd,
            epoll::EventData::new_u64(WAKE_TOKEN),
            epoll::EventFlags::IN,
        )?;
        Ok(Self {
            epoll,
            sources: RefCell::default(),
        })
    }

    /// Waits up to `timeout` (`None`: until an event), calls `before_waking` with whether the
    /// loop's wake eventfd fired, then wakes the tasks whose descriptors became ready. An
    /// interrupted wait (`EINTR`) counts as a wait with no events.
    pub(super) fn select(
        &self,
        timeout: Option<Duration>,
        before_waking: impl FnOnce(bool),
    ) -> io::Result<()> {
        let timeout = timeout.map(|t| Timespec {
            tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: t.subsec_nanos().into(),
        });
        let mut buffer = [MaybeUninit::<epoll::Event>::uninit(); EVENTS_PER_WAIT];
        let events: &[epoll::Event] = match epoll::wait(&self.epoll, &mut buffer, timeout.as_ref())
        {
            Ok((events, _)) => events,
            Err(Errno::INTR) => &[],
            Err(error) => {
                before_waking(false);
                return Err(error.into());
            }
        };
        before_waking(events.iter().any(|event| event.data.u64() == WAKE_TOKEN));
        let mut to_wake = Vec::new();
        {
            let mut sources = self.sources.borrow_mut();
            for event in events.iter() {
                let token = event.data.u64();
                if token == WAKE_TOKEN {
                    continue;
                }
                let Some(source) = sources.get_mut(&(token as RawFd)) else {
                    continue;
                };
                let flags = event.flags;
                source.armed = epoll::EventFlags::empty();
                let failed = epoll::EventFlags::ERR | epoll::EventFlags::HUP;
                source.readable |=
                    flags.intersects(epoll::EventFlags::IN | epoll::EventFlags::RDHUP | failed);
                source.writable |= flags.intersects(epoll::EventFlags::OUT | failed);
                to_wake.extend(source.reader.take());
                to_wake.extend(source.writer.take());
            }
        }
        for waker in to_wake {
            waker.wake();
        }
        Ok(())
    }

    fn register(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        epoll::add(
            &self.epoll,
            fd,
            epoll::EventData::new_u64(fd.as_raw_fd() as u64),
            epoll::EventFlags::ONESHOT,
        )?;
        self.sources
            .borrow_mut()
            .insert(fd.as_raw_fd(), Source::default());
        Ok(())
    }

    fn deregister(&self, fd: BorrowedFd<'_>) {
        self.sources.borrow_mut().remove(&fd.as_raw_fd());
        // The descriptor is closed right after, which removes it from the set anyway.
        let _ = epoll::delete(&self.epoll, fd);
    }

    /// Ready if `fd` was reported ready for `direction` since the last time; otherwise records
    /// the task's waker, arms the registration, and returns `Pending`.
    fn poll_ready(
        &self,
        fd: BorrowedFd<'_>,
        direction: Direction,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let mut sources = self.sources.borrow_mut();
        let Some(source) = sources.get_mut(&fd.as_raw_fd()) else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the descriptor is not registered with this loop",
            )));
        };
        let (ready, waiter) = match direction {
            Direction::Read => (&mut source.readable, &mut source.reader),
            Direction::Write => (&mut source.writable, &mut source.writer),
        };
        if std::mem::take(ready) {
            return Poll::Ready(Ok(()));
        }
        *waiter = Some(cx.waker().clone());
        let mut interest = epoll::EventFlags::empty();
        if source.reader.is_some() {
            interest |= epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
        }
        if source.writer.is_some() {
            interest |= epoll::EventFlags::OUT;
        }
        if !source.armed.contains(interest) {
            if let Err(error) = epoll::modify(
                &self.epoll,
                fd,
                epoll::EventData::new_u64(fd.as_raw_fd() as u64),
                interest | epoll::EventFlags::ONESHOT,
            ) {
                return Poll::Ready(Err(error.into()));
            }
            source.armed = interest;
        }
        Poll::Pending
    }
}

/// A non-blocking descriptor registered with the running reference loop; reads and writes wait
/// for readiness through its selector. Dropping it deregisters and closes the descriptor.
pub(crate) struct AsyncFd {
    fd: OwnedFd,
    /// Weak, because tasks holding an `AsyncFd` live inside the loop.
    core: Weak<Core>,
}

impl std::fmt::Debug for AsyncFd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncFd").field("fd", &self.fd).finish()
    }
}

impl AsyncFd {
    /// Makes `fd` non-blocking and registers it with the running loop.
    ///
    /// # Panics
    ///
    /// Outside [`EventLoop::block_on`](super::EventLoop::block_on).
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Self> {
        rustix::io::ioctl_fionbio(&fd, true)?;
        with_current(|core| {
            core.selector.register(fd.as_fd())?;
            Ok(Self {
                fd,
                core: std::rc::Rc::downgrade(core),
            })
        })
    }

    /// Waits until the selector reports the descriptor ready for `direction`.
    async fn ready(&self, direction: Direction) -> io::Result<()> {
        std::future::poll_fn(|cx| match self.core.upgrade() {
            Some(core) => core.selector.poll_ready(self.fd.as_fd(), direction, cx),
            None => Poll::Ready(Err(io::Error::other("the reference loop is gone"))),
        })
        .await
    }

    /// Reads at least one byte into `buffer` (0 at end of file), waiting while none is there.
    pub(crate) async fn read(&self, buffer: &mut [u8]) -> io::Result<usize> {
        loop {
            match rustix::io::read(&self.fd, &mut *buffer) {
                Ok(count) => return Ok(count),
                Err(Errno::AGAIN) => self.ready(Direction::Read).await?,
                Err(Errno::INTR) => {}
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Writes some of `bytes`, waiting while the descriptor cannot take any.
    async fn write(&self, bytes: &[u8]) -> io::Result<usize> {
        loop {
            match rustix::io::write(&self.fd, bytes) {
                Ok(count) => return Ok(count),
                Err(Errno::AGAIN) => self.ready(Direction::Write).await?,
                Err(Errno::INTR) => {}
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Accepts a connection on a listening socket, waiting while none is queued.
    pub(crate) async fn accept(&self) -> io::Result<OwnedFd> {
        loop {
            match rustix::net::accept(&self.fd) {
                Ok(connection) => return Ok(connection),
                Err(Errno::AGAIN) => self.ready(Direction::Read).await?,
                Err(Errno::INTR) => {}
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Fills `buffer`; `UnexpectedEof` if the descriptor ends first.
    pub(crate) async fn read_exact(&self, buffer: &mut [u8]) -> io::Result<()> {
        let mut filled = 0;
        while filled < buffer.len() {
            match self.read(&mut buffer[filled..]).await? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                count => filled += count,
            }
        }
        Ok(())
    }

    /// Writes all of `bytes`.
    pub(crate) async fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        let mut written = 0;
        while written < bytes.len() {
            written += self.write(&bytes[written..]).await?;
        }
        Ok(())
    }
}

impl Drop for AsyncFd {
    fn drop(&mut self) {
        if let Some(core) = self.core.upgrade() {
            core.selector.deregister(self.fd.as_fd());
        }
    }
}
