//! [`SharedArray`] and [`SharedValue`]: plain data in shared memory, accessed under its lock.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::Arc;

use bytemuck::Pod;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::mapping::{Elements, Kind, LockError, Mapping, ShmError};
use crate::fdpass::SharedFd;

/// A fixed-length array of `T` in memory shared between processes: the seed's
/// `multiprocessing.Array`, with its lock.
///
/// Every access goes through the array's process-shared lock: [`get`](Self::get) and
/// [`set`](Self::set) take it for one element (as Python's `arr[i]` does), [`lock`](Self::lock)
/// holds it for as long as its guard lives. For integers that many processes update without a
/// lock, use [`AtomicArray`](super::AtomicArray) instead.
///
/// Cloning shares the mapping; sending it to another process (inside any value, with
/// [`fdpass::encode`](crate::fdpass::encode)) maps the same memory there.
///
/// # Examples
///
/// ```
/// use triad::shm::SharedArray;
///
/// let counts = SharedArray::<u32>::new(3)?;
/// counts.set(0, 7);
/// {
///     let mut guard = counts.lock()?; // the seed's `with arr.get_lock():`
///     guard[1] += 2;
///     guard[2] = 5;
/// }
/// assert_eq!(counts.to_vec(), [7, 2, 5]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedArray<T> {
    elements: Elements<T>,
}

// SAFETY: the handle owns an `Arc` of a mapping that any thread may use, and moves only copies of
// `T` between threads, which `T: Send` allows.
unsafe impl<T: Pod + Send> Send for SharedArray<T> {}
// SAFETY: as `Mutex<T>`: through `&self`, values of `T` are copied in and out, or borrowed
// `&mut`, only while this thread holds the process-shared lock, which moves `T` between threads
// and needs nothing more than `T: Send`.
unsafe impl<T: Pod + Send> Sync for SharedArray<T> {}

impl<T> Clone for SharedArray<T> {
    fn clone(&self) -> Self {
        SharedArray {
            elements: self.elements.clone(),
        }
    }
}

impl<T> fmt::Debug for SharedArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.elements.debug("SharedArray", f)
    }
}

/// Takes the lock of `mapping` for one access; the panic of `get`/`set` when it cannot.
fn lock_for_access(mapping: &Arc<Mapping>) -> SharedGuard<'static, ()> {
    match mapping.lock() {
        Ok(owner_died) => SharedGuard {
            data: NonNull::dangling(),
            mapping: Arc::clone(mapping),
            owner_died,
            _borrow: PhantomData,
        },
        Err(LockError::WouldDeadlock) => panic!(
            "this thread holds the lock of this shared memory: read and write through its guard"
        ),
        Err(error) => panic!("the shared memory's lock is broken: {error}"),
    }
}

impl<T: Pod> SharedArray<T> {
    /// A new shared array of `len` zeroed elements.
    ///
    /// # Examples
    ///
    /// ```
    /// let zeros = triad::shm::SharedArray::<f64>::new(4)?;
    /// assert_eq!(zeros.to_vec(), [0.0; 4]);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn new(len: usize) -> Result<Self, ShmError> {
        Ok(SharedArray {
            elements: Elements::create(len, Kind::Locked)?,
        })
    }

    /// A new shared array holding a copy of `values`: the seed's `Array('i', [1, 2, 3])`.
    ///
    /// # Examples
    ///
    /// ```
    /// let array = triad::shm::SharedArray::from_slice(&[1_i32, 2, 3])?;
    /// assert_eq!(array.get(1), 2);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn from_slice(values: &[T]) -> Result<Self, ShmError> {
        let array = Self::new(values.len())?;
        // SAFETY: the array is new and not shared yet; the data is valid for `len` elements,
        // and the fresh mapping cannot overlap `values`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                values.as_ptr(),
                array.elements.data().as_ptr(),
                values.len(),
            )
        };
        Ok(array)
    }

    /// Maps a shared array that another handle created, from its memfd, checking the header
    /// against `T` and the memfd's size. Deserialising a handle does this; call it directly when
    /// the descriptor arrives some other way.
    ///
    /// # Examples
    ///
    /// ```
    /// use triad::fdpass::SharedFd;
    /// use triad::shm::{SharedArray, ShmError};
    /// use std::os::fd::AsFd;
    ///
    /// let array = SharedArray::from_slice(&[1_u16, 2])?;
    /// let fd = SharedFd::new(array.as_fd().try_clone_to_owned()?);
    /// let again = SharedArray::<u16>::from_fd(fd.clone())?;
    /// again.set(0, 10);
    /// assert_eq!(array.get(0), 10);
    /// // The header records the element type's size.
    /// assert!(matches!(SharedArray::<u64>::from_fd(fd), Err(ShmError::ElementType { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fd(fd: SharedFd) -> Result<Self, ShmError> {
        Ok(SharedArray {
            elements: Elements::open(fd, Kind::Locked)?,
        })
    }

    /// The number of elements.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(triad::shm::SharedArray::<u8>::new(5)?.len(), 5);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// Whether the array has no elements.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(triad::shm::SharedArray::<u8>::new(0)?.is_empty());
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `index`, read under the lock (taken and released for this read alone).
    ///
    /// # Panics
    ///
    /// When `index` is out of bounds, like slice indexing; and when this thread holds the lock
    /// already — read through the guard then.
    ///
    /// # Examples
    ///
    /// ```
    /// let array = triad::shm::SharedArray::from_slice(&[3_u8, 4])?;
    /// assert_eq!(array.get(1), 4);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn get(&self, index: usize) -> T {
        let element = self.elements.element(index);
        let _held = lock_for_access(self.elements.mapping());
        // SAFETY: the element is inside the live mapping and aligned, and this thread holds the
        // lock, under which alone the element is written.
        unsafe { element.read() }
    }

    /// Sets element `index` under the lock (taken and released for this write alone).
    ///
    /// # Panics
    ///
    /// As for [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// let array = triad::shm::SharedArray::<i64>::new(2)?;
    /// array.set(1, -5);
    /// assert_eq!(array.to_vec(), [0, -5]);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn set(&self, index: usize, value: T) {
        let element = self.elements.element(index);
        let _held = lock_for_access(self.elements.mapping());
        // SAFETY: as in `get`; the mapping is writable.
        unsafe { element.write(value) }
    }

    /// A copy of every element, taken under the lock: a consistent snapshot.
    ///
    /// # Panics
    ///
    /// When this thread holds the lock already.
    ///
    /// # Examples
    ///
    /// ```
    /// let array = triad::shm::SharedArray::from_slice(&[1_u32, 2, 3])?;
    /// assert_eq!(array.to_vec(), [1, 2, 3]);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        let _held = lock_for_access(self.elements.mapping());
        // SAFETY: `len` elements from `data` lie in the live mapping, written only under the
        // lock, which this thread holds until the copy is made.
        unsafe { std::slice::from_raw_parts(self.elements.data().as_ptr(), self.len()) }.to_vec()
    }

    /// Sets every element to `value`, under the lock.
    ///
    /// # Panics
    ///
    /// When this thread holds the lock already.
    ///
    /// # Examples
    ///
    /// ```
    /// let array = triad::shm::SharedArray::<u16>::new(3)?;
    /// array.fill(9);
    /// assert_eq!(array.to_vec(), [9, 9, 9]);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn fill(&self, value: T) {
        let _held = lock_for_access(self.elements.mapping());
        // SAFETY: as in `to_vec`, and no other reference to the data exists while the lock is
        // held by this thread (guards hold it too).
        unsafe { std::slice::from_raw_parts_mut(self.elements.data().as_ptr(), self.len()) }
            .fill(value);
    }

    /// Element `index`, read with one volatile load, without the lock.
    ///
    /// # Safety
    ///
    /// No thread of any process writes element `index` while this read runs — not through
    /// [`set`](Self::set), a guard, or [`set_unlocked`](Self::set_unlocked). For example: every
    /// writer has finished and been joined, or the element is this thread's alone.
    ///
    /// # Panics
    ///
    /// When `index` is out of bounds.
    ///
    /// # Examples
    ///
    /// ```
    /// let array = triad::shm::SharedArray::from_slice(&[3_u8, 4])?;
    /// // SAFETY: nobody else has this array.
    /// assert_eq!(unsafe { array.get_unlocked(0) }, 3);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub unsafe fn get_unlocked(&self, index: usize) -> T {
        // SAFETY: the element is inside the live mapping and aligned; no write races with this
        // read (the caller's promise).
        unsafe { self.elements.element(index).as_ptr().read_volatile() }
    }

    /// Sets element `index` with one volatile store, without the lock.
    ///
    /// # Safety
    ///
    /// No other thread of any process reads or writes element `index` while this write runs:
    /// for example, each worker writes only elements that are its own, and readers wait until
    /// the workers are done.
    ///
    /// # Panics
    ///
    /// When `index` is out of bounds.
    ///
    /// # Examples
    ///
    /// ```
    /// let array = triad::shm::SharedArray::<u64>::new(2)?;
    /// // SAFETY: nobody else has this array.
    /// unsafe { array.set_unlocked(1, 8) };
    /// assert_eq!(array.to_vec(), [0, 8]);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub unsafe fn set_unlocked(&self, index: usize, value: T) {
        // SAFETY: the element is inside the live, writable mapping and aligned; no other access
        // races with this write (the caller's promise).
        unsafe { self.elements.element(index).as_ptr().write_volatile(value) }
    }

    /// Takes the array's process-shared lock — the seed's `with arr.get_lock():` — and gives
    /// `&mut [T]` access while the guard lives. Blocks until the lock is free.
    ///
    /// If the previous owner (a thread or a whole process) died holding the lock, this succeeds
    /// and [`SharedGuard::previous_owner_died`] says so: the data may be half-updated.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldDeadlock`] when this thread already holds the lock; the other variants
    /// only when the lock itself is broken.
    ///
    /// # Examples
    ///
    /// ```
    /// let array = triad::shm::SharedArray::from_slice(&[1_i32, 2, 3])?;
    /// {
    ///     let mut guard = array.lock()?;
    ///     guard[0] += 10;
    ///     guard.reverse();
    /// }
    /// assert_eq!(array.to_vec(), [3, 2, 11]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "get_lock")]
    pub fn lock(&self) -> Result<SharedGuard<'_, [T]>, LockError> {
        let mapping = self.elements.mapping();
        let owner_died = mapping.lock()?;
        Ok(SharedGuard {
            data: NonNull::slice_from_raw_parts(self.elements.data(), self.len()),
            mapping: Arc::clone(mapping),
            owner_died,
            _borrow: PhantomData,
        })
    }
}

impl<T> AsFd for SharedArray<T> {
    /// The memfd behind the array.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.elements.fd().as_fd()
    }
}

impl<T> Serialize for SharedArray<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.elements.serialize(serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for SharedArray<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(SharedArray {
            elements: Elements::deserialize(deserializer, Kind::Locked)?,
        })
    }
}

/// One `T` in memory shared between processes: the seed's `multiprocessing.Value`, with its
/// lock.
///
/// A [`SharedArray`] of one element, with the same lock and handle passing. For an integer
/// that many processes update without a lock, use [`AtomicValue`](super::AtomicValue).
///
/// # Examples
///
/// ```
/// use triad::shm::SharedValue;
///
/// let total = SharedValue::new(0.0_f64)?;
/// *total.lock()? += 1.5; // the seed's `with val.get_lock(): val.value += 1.5`
/// total.set(total.get() * 2.0); // two locked accesses: another process may come between
/// assert_eq!(total.get(), 3.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedValue<T> {
    array: SharedArray<T>,
}

impl<T> Clone for SharedValue<T> {
    fn clone(&self) -> Self {
        SharedValue {
            array: self.array.clone(),
        }
    }
}

impl<T> fmt::Debug for SharedValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.array.elements.debug("SharedValue", f)
    }
}

impl<T: Pod> SharedValue<T> {
    /// A new shared value holding `value`: the seed's `Value('d', 0.0)`.
    ///
    /// # Examples
    ///
    /// ```
    /// let ratio = triad::shm::SharedValue::new(0.5_f64)?;
    /// assert_eq!(ratio.get(), 0.5);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn new(value: T) -> Result<Self, ShmError> {
        Ok(SharedValue {
            array: SharedArray::from_slice(&[value])?,
        })
    }

    /// Maps a shared value that another handle created, from its memfd (see
    /// [`SharedArray::from_fd`]); the memory must hold exactly one element.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use triad::fdpass::SharedFd;
    /// use triad::shm::SharedValue;
    ///
    /// let value = SharedValue::new(5_i32)?;
    /// let fd = SharedFd::new(value.as_fd().try_clone_to_owned()?);
    /// assert_eq!(SharedValue::<i32>::from_fd(fd)?.get(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fd(fd: SharedFd) -> Result<Self, ShmError> {
        Self::from_array(SharedArray::from_fd(fd)?)
    }

    fn from_array(array: SharedArray<T>) -> Result<Self, ShmError> {
        if array.len() != 1 {
            return Err(ShmError::Length {
                handle: 1,
                header: array.len() as u64,
            });
        }
        Ok(SharedValue { array })
    }

    /// The value, read under the lock (Python's `val.value`).
    ///
    /// # Panics
    ///
    /// When this thread holds the lock already: read through the guard then.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(triad::shm::SharedValue::new(3_u8)?.get(), 3);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn get(&self) -> T {
        self.array.get(0)
    }

    /// Sets the value under the lock (Python's `val.value = x`).
    ///
    /// # Panics
    ///
    /// As for [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// let value = triad::shm::SharedValue::new(3_u8)?;
    /// value.set(4);
    /// assert_eq!(value.get(), 4);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn set(&self, value: T) {
        self.array.set(0, value)
    }

    /// Takes the value's process-shared lock — the seed's `with val.get_lock():` — and gives
    /// `&mut T` access while the guard lives. See [`SharedArray::lock`].
    ///
    /// # Errors
    ///
    /// As for [`SharedArray::lock`].
    ///
    /// # Examples
    ///
    /// ```
    /// let total = triad::shm::SharedValue::new(10_i64)?;
    /// let mut guard = total.lock()?;
    /// *guard -= 3;
    /// assert!(!guard.previous_owner_died());
    /// drop(guard);
    /// assert_eq!(total.get(), 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "get_lock")]
    pub fn lock(&self) -> Result<SharedGuard<'_, T>, LockError> {
        let mapping = self.array.elements.mapping();
        let owner_died = mapping.lock()?;
        Ok(SharedGuard {
            data: self.array.elements.data(),
            mapping: Arc::clone(mapping),
            owner_died,
            _borrow: PhantomData,
        })
    }
}

impl<T> AsFd for SharedValue<T> {
    /// The memfd behind the value.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.array.as_fd()
    }
}

impl<T> Serialize for SharedValue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.array.serialize(serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for SharedValue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        SharedValue::from_array(SharedArray::deserialize(deserializer)?).map_err(D::Error::custom)
    }
}

/// The lock of a [`SharedArray`] (`U = [T]`) or [`SharedValue`] (`U = T`), held; the data is
/// reachable through `Deref`/`DerefMut` while it lives, and the lock is released on drop.
///
/// A guard stays on the thread that locked (it is not `Send`): a `pthread_mutex_t` must be
/// released by its owner.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct SharedGuard<'a, U: ?Sized> {
    data: NonNull<U>,
    /// Keeps the mapping alive even if the guard is leaked: a locked robust mutex sits on this
    /// thread's robust list, which glibc and the kernel walk, so its memory must never be
    /// unmapped while it is there.
    mapping: Arc<Mapping>,
    owner_died: bool,
    _borrow: PhantomData<&'a mut U>,
}

// SAFETY: `&SharedGuard` gives only `&U`, which is safe to share when `U: Sync`.
unsafe impl<U: ?Sized + Sync> Sync for SharedGuard<'_, U> {}

impl<U: ?Sized> SharedGuard<'_, U> {
    /// Whether the previous owner of the lock died holding it (a process that exited or was
    /// killed inside its critical section). The lock was made consistent again, but the data
    /// may be half-updated: check or repair it. Only the first locker after the death is told.
    ///
    /// # Examples
    ///
    /// ```
    /// let value = triad::shm::SharedValue::new(1_u8)?;
    /// assert!(!value.lock()?.previous_owner_died());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn previous_owner_died(&self) -> bool {
        self.owner_died
    }
}

impl<U: ?Sized> Deref for SharedGuard<'_, U> {
    type Target = U;

    fn deref(&self) -> &U {
        // SAFETY: the data is inside the mapping, which `self.mapping` keeps alive, and this
        // guard holds the lock, under which alone the data is read or written.
        unsafe { self.data.as_ref() }
    }
}

impl<U: ?Sized> DerefMut for SharedGuard<'_, U> {
    fn deref_mut(&mut self) -> &mut U {
        // SAFETY: as for `deref`; `&mut self` makes this the only reference through the guard,
        // and the lock makes the guard the only access to the data.
        unsafe { self.data.as_mut() }
    }
}

impl<U: ?Sized> Drop for SharedGuard<'_, U> {
    fn drop(&mut self) {
        // SAFETY: this thread locked the mutex when it made the guard (guards are not `Send`).
        unsafe { self.mapping.unlock() };
    }
}

impl<U: ?Sized + fmt::Debug> fmt::Debug for SharedGuard<'_, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedGuard")
            .field("data", &&**self)
            .field("previous_owner_died", &self.owner_died)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot map a memfd twice")]
    fn a_second_mapping_of_the_same_memfd_shares_data_and_lock() {
        let first = SharedArray::<u32>::new(4).unwrap();
        let fd = SharedFd::new(first.as_fd().try_clone_to_owned().unwrap());
        let second = SharedArray::<u32>::from_fd(fd).unwrap();
        first.set(3, 99);
        assert_eq!(second.get(3), 99);
        second.lock().unwrap()[0] = 5;
        assert_eq!(first.get(0), 5);
        // One lock, whichever mapping takes it.
        let _held = first.lock().unwrap();
        assert!(matches!(second.lock(), Err(LockError::WouldDeadlock)));
    }

    #[test]
    fn clones_share_one_mapping() {
        let value = SharedValue::new(1_i32).unwrap();
        let clone = value.clone();
        assert!(Arc::ptr_eq(
            value.array.elements.mapping(),
            clone.array.elements.mapping()
        ));
        clone.set(-1);
        assert_eq!(value.get(), -1);
    }

    #[test]
    fn relocking_on_the_same_thread_is_an_error_not_a_deadlock() {
        let value = SharedValue::new(0_u64).unwrap();
        let guard = value.lock().unwrap();
        assert!(matches!(value.lock(), Err(LockError::WouldDeadlock)));
        drop(guard);
        assert!(value.lock().is_ok());
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no robust mutexes")]
    fn a_thread_that_exits_holding_the_lock_is_a_dead_owner() {
        let value = SharedValue::new(0_u64).unwrap();
        let other = value.clone();
        std::thread::spawn(move || {
            let mut guard = other.lock().unwrap();
            *guard = 42;
            std::mem::forget(guard);
        })
        .join()
        .unwrap();
        let guard = value.lock().unwrap();
        assert!(guard.previous_owner_died());
        assert_eq!(*guard, 42);
        drop(guard);
        assert!(!value.lock().unwrap().previous_owner_died());
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no robust mutexes")]
    fn a_leaked_guard_keeps_the_mapping() {
        let value = SharedValue::new(0_u8).unwrap();
        let weak = Arc::downgrade(value.array.elements.mapping());
        std::thread::spawn(move || std::mem::forget(value.lock().unwrap()))
            .join()
            .unwrap();
        assert!(
            weak.upgrade().is_some(),
            "the leaked guard holds the mapping"
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot map a memfd twice")]
    fn a_value_is_an_array_of_one() {
        let array = SharedArray::<u64>::new(2).unwrap();
        let fd = SharedFd::new(array.as_fd().try_clone_to_owned().unwrap());
        assert!(matches!(
            SharedValue::<u64>::from_fd(fd),
            Err(ShmError::Length {
                handle: 1,
                header: 2
            })
        ));
    }

    #[test]
    fn an_empty_array_still_has_its_lock() {
        let empty = SharedArray::<u64>::new(0).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.to_vec(), Vec::<u64>::new());
        assert!(empty.lock().unwrap().is_empty());
    }

    #[test]
    fn unlocked_access_sees_locked_writes_once_they_are_done() {
        let array = SharedArray::from_slice(&[1.5_f64, 2.5]).unwrap();
        array.lock().unwrap()[1] = 4.0;
        // SAFETY: no other thread or process has the array.
        unsafe {
            array.set_unlocked(0, -1.0);
            assert_eq!(array.get_unlocked(1), 4.0);
        }
        assert_eq!(array.to_vec(), [-1.0, 4.0]);
    }

    proptest! {
        // Under Miri: few cases, and no failure file (Miri isolates the file system).
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 4 } else { 64 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]
        #[test]
        fn set_and_get_match_a_vec(
            len in 1_usize..64,
            writes in prop::collection::vec((any::<prop::sample::Index>(), any::<u64>()), 0..128),
        ) {
            let array = SharedArray::<u64>::new(len).unwrap();
            let mut model = vec![0_u64; len];
            for (index, value) in writes {
                let index = index.index(len);
                array.set(index, value);
                model[index] = value;
                prop_assert_eq!(array.get(index), value);
            }
            prop_assert_eq!(array.to_vec(), model.clone());
            prop_assert_eq!(&array.lock().unwrap()[..], &model[..]);
        }
    }
}
