//! Shared memory between processes: the seed's `multiprocessing.Value`, `Array` and
//! `shared_memory` (sections 1.3 and 5.1.2).
//!
//! Two kinds of handle, one per discipline of access, so that safe code cannot race:
//!
//! | handle | elements | `get` / `set` | other access |
//! |---|---|---|---|
//! | [`SharedArray<T>`], [`SharedValue<T>`] | any plain data (`T:` [`bytemuck::Pod`]) | each takes the lock, as Python's `Value.value` does | [`lock`](SharedArray::lock): `&mut` while the guard lives |
//! | [`AtomicArray<T>`], [`AtomicValue<T>`] | integers ([`AtomicElement`]) | one Relaxed atomic load / store | [`atomic`](AtomicArray::atomic): `fetch_add`, `compare_exchange`, … |
//!
//! Every safe access is either under the process-shared lock or atomic, and one memory is only
//! ever one kind (the header records which, and opening it as the other kind is an error), so
//! no two accesses can form a data race — the lock's `&mut` never meets an unlocked read. A
//! read-modify-write made of two accesses can still *lose updates*, soundly: that is the seed's
//! race ([`increment_unlocked`]), and the lock ([`increment_locked`]) or one atomic operation
//! ([`increment_atomic`]) is the cure. For raw, unlocked access to plain data there are the
//! `unsafe` [`SharedArray::get_unlocked`] and [`SharedArray::set_unlocked`], whose contract is
//! that nobody else writes the element meanwhile.
//!
//! How it works:
//!
//! - **memfd + mmap** (see `memfd`): a sealed anonymous memfd, mapped `MAP_SHARED`. Nothing is
//!   created in `/dev/shm`; the memory lives as long as some process maps it or holds its
//!   descriptor.
//! - **A header, then the data.** The mapping starts with a header — magic and layout version,
//!   which kind, element size and alignment, element count, where the data starts — and a lock;
//!   the data follows, aligned for `T` and to at least a cache line.
//! - **A robust, process-shared lock.** A `pthread_mutex_t` in the header
//!   (`PTHREAD_PROCESS_SHARED`, `PTHREAD_MUTEX_ROBUST`). When a process dies holding it, the
//!   kernel releases it, and the next `lock` succeeds and says so
//!   ([`SharedGuard::previous_owner_died`]) instead of deadlocking everyone.
//! - **Handles through [`fdpass`](crate::fdpass).** A handle is `Serialize`/`Deserialize`: it
//!   travels as its memfd (a [`SharedFd`]) and its length, and decoding maps the memfd again and
//!   checks the header against the handle's kind, `T` and the memfd's size. A forked child
//!   simply inherits the mapping. Cloning a handle shares the mapping.
//!
//! Soundness rests on every process keeping to the same rules, as it does when all of them use
//! these handles; a process that writes the memory some other way is outside what any API can
//! rule out. Even then no access can produce an invalid value (every bit pattern of a `Pod` type
//! is valid) or reach outside the mapping (indices are checked, the memfd is sealed).
//!
//! ```
//! use triad::fdpass;
//! use triad::shm::SharedArray;
//!
//! let squares = SharedArray::from_slice(&[0_u64, 1, 4, 9])?;
//! // What a process pool does with a task's input: the memfd travels beside the bytes.
//! let encoded = fdpass::encode(&squares)?;
//! let there: SharedArray<u64> = fdpass::decode(&encoded.bytes, encoded.fds)?;
//! there.set(2, 40);
//! assert_eq!(squares.to_vec(), [0, 1, 40, 9]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod atomic;
mod locked;
mod mapping;

pub use atomic::{AtomicArray, AtomicElement, AtomicValue};
pub use locked::{SharedArray, SharedGuard, SharedValue};
pub use mapping::{LockError, ShmError};

use std::sync::atomic::Ordering;

/// The seed's `shared_value.value += 1` (section 3) without the lock around it: a Relaxed
/// load, a pause, then a Relaxed store. Each access is atomic, so nothing is undefined, but
/// when processes run it at once their increments interleave and updates are lost — the race
/// the lab demonstrates. The pause (`spin_loop`) only widens the window between read and write.
///
/// # Examples
///
/// ```
/// let counter = triad::shm::AtomicValue::new(0_u64)?;
/// triad::shm::increment_unlocked(&counter); // fine alone; loses updates with company
/// assert_eq!(counter.get(), 1);
/// # Ok::<(), triad::shm::ShmError>(())
/// ```
pub fn increment_unlocked(value: &AtomicValue<u64>) {
    let current = value.get();
    std::hint::spin_loop();
    value.set(current.wrapping_add(1));
}

/// The seed's safe `with val.get_lock(): val.value += 1`: the increment under the process-shared
/// lock. Never loses an update; a dead previous owner is ignored (an increment is never half
/// done).
///
/// # Errors
///
/// As for [`SharedValue::lock`].
///
/// # Examples
///
/// ```
/// let counter = triad::shm::SharedValue::new(0_u64)?;
/// triad::shm::increment_locked(&counter)?;
/// assert_eq!(counter.get(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn increment_locked(value: &SharedValue<u64>) -> Result<(), LockError> {
    let mut guard = value.lock()?;
    *guard = guard.wrapping_add(1);
    Ok(())
}

/// The increment as one atomic `fetch_add`: never loses an update, and takes no lock.
///
/// # Examples
///
/// ```
/// let counter = triad::shm::AtomicValue::new(0_u64)?;
/// triad::shm::increment_atomic(&counter);
/// assert_eq!(counter.get(), 1);
/// # Ok::<(), triad::shm::ShmError>(())
/// ```
pub fn increment_atomic(value: &AtomicValue<u64>) {
    value.atomic().fetch_add(1, Ordering::Relaxed);
}

/// The sound paths, from several threads at once: under Miri (`cargo +nightly miri test -p
/// triad --lib shm::`), these would report any data race or aliasing violation.
#[cfg(test)]
mod concurrent_tests {
    use super::*;

    const THREADS: u64 = 4;
    const ROUNDS: u64 = if cfg!(miri) { 20 } else { 2_000 };

    #[test]
    fn locked_access_from_many_threads_is_exact_and_race_free() {
        let value = SharedValue::new(0_u64).unwrap();
        let array = SharedArray::<u32>::new(3).unwrap();
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let (value, array) = (&value, &array);
                scope.spawn(move || {
                    for round in 0..ROUNDS {
                        increment_locked(value).unwrap();
                        {
                            let mut guard = array.lock().unwrap();
                            guard[0] += 1;
                            guard[2] = thread as u32;
                        }
                        // Per-access locking, as Python's `Value.value`: a read and a write
                        // that are each whole, though together they may lose an update.
                        array.set(1, round as u32);
                        let _ = array.get(1);
                        let _ = value.get();
                    }
                });
            }
        });
        assert_eq!(value.get(), THREADS * ROUNDS);
        assert_eq!(array.get(0), (THREADS * ROUNDS) as u32);
        assert!(array.get(2) < THREADS as u32);
    }

    #[test]
    fn atomic_access_from_many_threads_is_race_free() {
        let exact = AtomicValue::new(0_u64).unwrap();
        let racy = AtomicValue::new(0_u64).unwrap();
        let slots = AtomicArray::<u16>::new(THREADS as usize).unwrap();
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let (exact, racy, slots) = (&exact, &racy, &slots);
                scope.spawn(move || {
                    for round in 0..ROUNDS {
                        increment_atomic(exact);
                        increment_unlocked(racy);
                        slots.set(thread as usize, round as u16);
                        let _ = slots.to_vec();
                    }
                });
            }
        });
        assert_eq!(exact.get(), THREADS * ROUNDS);
        // Lost updates, never invented ones.
        assert!((1..=THREADS * ROUNDS).contains(&racy.get()));
        assert_eq!(slots.to_vec(), vec![(ROUNDS - 1) as u16; THREADS as usize]);
    }

    #[test]
    #[should_panic(expected = "holds the lock")]
    fn get_while_this_thread_holds_the_lock_panics_instead_of_deadlocking() {
        let value = SharedValue::new(1_u8).unwrap();
        let _guard = value.lock().unwrap();
        value.get();
    }
}
