//! A worker's "now running" slot: one shared page in which the worker stamps the id of the task
//! it is about to run, and [`IDLE`] after it.
//!
//! When a worker dies, its socket says only that it is gone. The slot says which task was
//! running at that moment, so the pool fails (or retries) that task alone and sends the worker's
//! other unfinished tasks — queued behind it, never started — to another worker. The page is a
//! sealed memfd region (see `memfd`) mapped by both processes; one atomic store per task is all
//! it costs.

use std::mem::size_of;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::addr_of;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::memfd::{Prefix, Region, RegionError, Size, Tag};

/// The slot's value while no task runs.
pub(crate) const IDLE: u64 = u64::MAX;

const TAG: Tag = Tag {
    name: "triad-slot",
    magic: *b"triadslt",
    version: 1,
};

#[repr(C)]
struct Page {
    prefix: Prefix,
    /// The id of the task running now, or [`IDLE`]; only ever accessed atomically.
    running: AtomicU64,
}

/// A mapping of one worker's slot page.
#[derive(Debug)]
pub(crate) struct Slot {
    region: Region,
}

impl Slot {
    /// A new slot page: the memfd (to hand to the worker) and the pool's mapping of it.
    pub(crate) fn create() -> Result<(OwnedFd, Slot), RegionError> {
        let (fd, region) = Region::create(&TAG, size_of::<Page>())?;
        let slot = Slot { region };
        slot.set(IDLE);
        Ok((fd, slot))
    }

    /// Maps the slot page behind `fd` (the worker's side).
    pub(crate) fn map(fd: impl AsFd) -> Result<Slot, RegionError> {
        Ok(Slot {
            region: Region::open(&TAG, fd, Size::Exact(size_of::<Page>()))?,
        })
    }

    /// Stamps `task` (or [`IDLE`]).
    pub(crate) fn set(&self, task: u64) {
        self.running().store(task, Ordering::Release);
    }

    /// The task running now, if any.
    pub(crate) fn task(&self) -> Option<u64> {
        let task = self.running().load(Ordering::Acquire);
        (task != IDLE).then_some(task)
    }

    fn running(&self) -> &AtomicU64 {
        let page = self.region.header::<Page>().as_ptr();
        // SAFETY: the region holds a whole `Page` (`header` checks), page-aligned, for as long
        // as `self` lives; `running` is only ever accessed atomically, in both processes.
        unsafe { &*addr_of!((*page).running) }
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn two_mappings_of_one_slot_see_each_other() {
        let (fd, pool_side) = Slot::create().unwrap();
        let worker_side = Slot::map(&fd).unwrap();
        assert_eq!(worker_side.task(), None);
        worker_side.set(42);
        assert_eq!(pool_side.task(), Some(42));
        worker_side.set(IDLE);
        assert_eq!(pool_side.task(), None);
    }

    #[test]
    fn a_memfd_that_is_not_a_slot_is_refused() {
        let fd = rustix::fs::memfd_create("short", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        assert!(Slot::map(&fd).is_err());
    }
}
