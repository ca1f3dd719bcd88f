//! The queue's shared header: its bound (a process-shared semaphore of free slots), its
//! closed flag and its approximate length, in a sealed memfd region.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::ptr::addr_of_mut;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::MAX_DATAGRAM;
use super::error::{Fail, IpcError};
use super::socket::Wait;
use crate::memfd::{Prefix, Region, Size, Tag};

/// The queue's shared header, at the start of its memfd region.
#[repr(C)]
pub(super) struct Header {
    prefix: Prefix,
    /// Nonzero once the queue is closed; never cleared.
    pub(super) closed: AtomicU32,
    /// The bound, at most `SEM_VALUE_MAX`.
    pub(super) capacity: u64,
    /// The largest datagram, version byte included; also the readers' buffer size.
    pub(super) max_message: u64,
    /// Items sent and not yet received (approximate: raised before a send, lowered after a
    /// receive or a failed send).
    pub(super) len: AtomicI64,
    /// Free slots: `capacity` minus the items in flight, while the queue is open.
    pub(super) free_slots: std::cell::UnsafeCell<libc::sem_t>,
}

pub(super) const TAG: Tag = Tag {
    name: "triad-ipc-queue",
    magic: *b"triad-Q\0",
    version: 2,
};
pub(super) const HEADER_SIZE: usize = size_of::<Header>();
/// Linux's `SEM_VALUE_MAX`.
pub(super) const SEM_VALUE_MAX: usize = i32::MAX as usize;

/// This process's mapping of a queue's header.
pub(super) struct Mapping {
    region: Region,
}

// SAFETY: the header is made for sharing between processes, so between threads too: its
// mutable fields are atomics or the semaphore, which is used only through the thread-safe
// `sem_*` functions; the other fields are written once, before any other handle exists.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// A new memfd, sealed at the header's size, with an initialised header.
    pub(super) fn create(capacity: usize, max_message: usize) -> io::Result<(OwnedFd, Mapping)> {
        let (memfd, region) = Region::create(&TAG, HEADER_SIZE).map_err(io::Error::other)?;
        let header = region.header::<Header>().as_ptr();
        // SAFETY: the region is fresh, writable, a whole header long and page-aligned, and no
        // other handle can see it yet; the prefix is written, the other fields are written
        // here, and the semaphore is initialised in place, once, before use.
        let result = unsafe {
            addr_of_mut!((*header).closed).write(AtomicU32::new(0));
            addr_of_mut!((*header).capacity).write(capacity as u64);
            addr_of_mut!((*header).max_message).write(max_message as u64);
            addr_of_mut!((*header).len).write(AtomicI64::new(0));
            libc::sem_init((*header).free_slots.get(), 1, capacity as libc::c_uint)
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((memfd, Mapping { region }))
    }

    /// Maps the header of another handle's memfd and checks it.
    pub(super) fn open(memfd: BorrowedFd<'_>) -> io::Result<Mapping> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        let region = Region::open(&TAG, memfd, Size::Exact(HEADER_SIZE))
            .map_err(|error| invalid(format!("not a triad queue: {error}")))?;
        let mapping = Mapping { region };
        let header = mapping.header();
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

    pub(super) fn header(&self) -> &Header {
        // SAFETY: the region is valid and initialised for as long as `self` lives, and only
        // shared references to it are made (mutation goes through atomics and the semaphore).
        unsafe { self.region.header::<Header>().as_ref() }
    }

    pub(super) fn semaphore(&self) -> *mut libc::sem_t {
        self.header().free_slots.get()
    }

    /// Takes a free slot, waiting as `wait` says. Every wait that ends, however, looks at the
    /// closed flag; see [`Queue::close`] for how closing wakes waiters.
    pub(super) fn acquire_slot(&self, wait: Wait) -> Result<(), Fail> {
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
    pub(super) fn wait_until(&self, deadline: Instant) -> libc::c_int {
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
    pub(super) fn wait_until(&self, deadline: Instant) -> libc::c_int {
        let left = deadline.saturating_duration_since(Instant::now());
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
        let abstime = add_to_timespec(now.tv_sec, now.tv_nsec as i64, left);
        // SAFETY: the semaphore was initialised by `sem_init`; `abstime` is a valid timespec.
        unsafe { libc::sem_timedwait(self.semaphore(), &abstime) }
    }

    pub(super) fn release_slot(&self) {
        // SAFETY: the semaphore was initialised by `sem_init`. EOVERFLOW (at SEM_VALUE_MAX,
        // only possible after close) is harmless.
        unsafe { libc::sem_post(self.semaphore()) };
    }
}

pub(super) fn add_to_timespec(sec: i64, nsec: i64, add: Duration) -> libc::timespec {
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
