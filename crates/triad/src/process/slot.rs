//! A worker's "now running" slot: one shared page in which the worker stamps the id of the task
//! it is about to run, and [`IDLE`] after it.
//!
//! When a worker dies, its socket says only that it is gone. The slot says which task was
//! running at that moment, so the pool fails (or retries) that task alone and sends the worker's
//! other unfinished tasks — queued behind it, never started — to another worker. The page is a
//! memfd mapped shared by both processes; one relaxed atomic store per task is all it costs.

use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// The slot's value while no task runs.
pub(crate) const IDLE: u64 = u64::MAX;

const SIZE: usize = 4096;

/// A mapping of one worker's slot page.
#[derive(Debug)]
pub(crate) struct Slot {
    page: NonNull<AtomicU64>,
}

// SAFETY: the mapping is only ever accessed through an `AtomicU64`, which is Sync, and it lives
// until drop; moving or sharing the pointer between threads is therefore sound.
unsafe impl Send for Slot {}
// SAFETY: as above.
unsafe impl Sync for Slot {}

impl Slot {
    /// A new slot page: the memfd (to hand to the worker) and the pool's mapping of it.
    pub(crate) fn create() -> std::io::Result<(OwnedFd, Slot)> {
        let fd = rustix::fs::memfd_create("triad-slot", rustix::fs::MemfdFlags::CLOEXEC)?;
        rustix::fs::ftruncate(&fd, SIZE as u64)?;
        let slot = Slot::map(fd.as_fd())?;
        slot.set(IDLE);
        Ok((fd, slot))
    }

    /// Maps the slot page behind `fd` (the worker's side).
    pub(crate) fn map(fd: impl AsFd) -> std::io::Result<Slot> {
        if rustix::fs::fstat(&fd)?.st_size < SIZE as i64 {
            return Err(std::io::Error::other("the slot page is too small"));
        }
        // SAFETY: a fresh shared mapping of a whole page of a memfd that is at least a page
        // long; the kernel picks the address, so nothing else in this process is overlapped.
        let address = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                SIZE,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                fd,
                0,
            )?
        };
        let page = NonNull::new(address.cast::<AtomicU64>())
            .ok_or_else(|| std::io::Error::other("mmap returned null"))?;
        Ok(Slot { page })
    }

    /// Stamps `task` (or [`IDLE`]).
    pub(crate) fn set(&self, task: u64) {
        self.atomic().store(task, Ordering::Release);
    }

    /// The task running now, if any.
    pub(crate) fn running(&self) -> Option<u64> {
        let task = self.atomic().load(Ordering::Acquire);
        (task != IDLE).then_some(task)
    }

    fn atomic(&self) -> &AtomicU64 {
        // SAFETY: `page` points at the start of a live, page-aligned shared mapping (so aligned
        // for u64) that is only accessed atomically, in this process and the other.
        unsafe { self.page.as_ref() }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the page mapped in `map`; no reference to it outlives `self`.
        let _ = unsafe { rustix::mm::munmap(self.page.as_ptr().cast(), SIZE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_mappings_of_one_slot_see_each_other() {
        let (fd, pool_side) = Slot::create().unwrap();
        let worker_side = Slot::map(&fd).unwrap();
        assert_eq!(worker_side.running(), None);
        worker_side.set(42);
        assert_eq!(pool_side.running(), Some(42));
        worker_side.set(IDLE);
        assert_eq!(pool_side.running(), None);
    }

    #[test]
    fn a_short_file_is_refused() {
        let fd = rustix::fs::memfd_create("short", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        assert!(Slot::map(&fd).is_err());
    }
}
