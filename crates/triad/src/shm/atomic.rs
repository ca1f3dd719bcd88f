//! [`AtomicArray`] and [`AtomicValue`]: integers in shared memory, accessed only atomically.

use std::fmt;
use std::mem::{align_of, size_of};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::Ordering;

use bytemuck::Pod;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::mapping::{Elements, Kind, ShmError};
use crate::fdpass::SharedFd;

mod sealed {
    pub trait Sealed {}
}

/// An integer element type with a std atomic of the same size and representation, so that an
/// element of an [`AtomicArray`] can be used as that atomic.
///
/// Implemented for `u8`, `i8`, `u16`, `i16`, `u32`, `i32`, `u64`, `i64`, `usize` and `isize`;
/// sealed.
pub trait AtomicElement: Pod + Send + Sync + sealed::Sealed {
    /// The atomic type: `AtomicU64` for `u64`, and so on.
    type Atomic: fmt::Debug + Send + Sync;

    /// `atomic.load(ordering)`.
    fn load(atomic: &Self::Atomic, ordering: Ordering) -> Self;

    /// `atomic.store(value, ordering)`.
    fn store(atomic: &Self::Atomic, value: Self, ordering: Ordering);
}

macro_rules! atomic_elements {
    ($($element:ty => $atomic:ty),* $(,)?) => {$(
        impl sealed::Sealed for $element {}
        impl AtomicElement for $element {
            type Atomic = $atomic;

            fn load(atomic: &$atomic, ordering: Ordering) -> $element {
                atomic.load(ordering)
            }

            fn store(atomic: &$atomic, value: $element, ordering: Ordering) {
                atomic.store(value, ordering)
            }
        }
    )*};
}

atomic_elements! {
    u8 => std::sync::atomic::AtomicU8,
    i8 => std::sync::atomic::AtomicI8,
    u16 => std::sync::atomic::AtomicU16,
    i16 => std::sync::atomic::AtomicI16,
    u32 => std::sync::atomic::AtomicU32,
    i32 => std::sync::atomic::AtomicI32,
    u64 => std::sync::atomic::AtomicU64,
    i64 => std::sync::atomic::AtomicI64,
    usize => std::sync::atomic::AtomicUsize,
    isize => std::sync::atomic::AtomicIsize,
}

/// A fixed-length array of integers in memory shared between processes, every element an
/// atomic: counters, flags and indices that several processes update without a lock.
///
/// [`get`](Self::get) and [`set`](Self::set) are Relaxed atomic loads and stores (a
/// read-modify-write made of them can lose updates, soundly); [`atomic`](Self::atomic) gives the
/// element as its std atomic for `fetch_add`, `compare_exchange` and orderings of your choice.
/// There is no lock: plain data that needs one lives in a [`SharedArray`](super::SharedArray).
///
/// # Examples
///
/// ```
/// use std::sync::atomic::Ordering;
/// use triad::shm::AtomicArray;
///
/// let hits = AtomicArray::<usize>::new(2)?;
/// std::thread::scope(|scope| {
///     for _ in 0..4 {
///         scope.spawn(|| hits.atomic(1).fetch_add(1, Ordering::Relaxed));
///     }
/// });
/// hits.set(0, 7);
/// assert_eq!(hits.to_vec(), [7, 4]);
/// # Ok::<(), triad::shm::ShmError>(())
/// ```
pub struct AtomicArray<T> {
    elements: Elements<T>,
}

// SAFETY: the handle owns an `Arc` of a mapping that any thread may use; every access to the
// data is an atomic operation, which any thread may perform.
unsafe impl<T: AtomicElement> Send for AtomicArray<T> {}
// SAFETY: as for `Send`: `&self` gives only atomic access (and `&T::Atomic`, which is `Sync`).
unsafe impl<T: AtomicElement> Sync for AtomicArray<T> {}

impl<T> Clone for AtomicArray<T> {
    fn clone(&self) -> Self {
        AtomicArray {
            elements: self.elements.clone(),
        }
    }
}

impl<T> fmt::Debug for AtomicArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.elements.debug("AtomicArray", f)
    }
}

impl<T: AtomicElement> AtomicArray<T> {
    /// A new shared array of `len` zeroed atomics.
    ///
    /// # Examples
    ///
    /// ```
    /// let flags = triad::shm::AtomicArray::<u8>::new(3)?;
    /// assert_eq!(flags.to_vec(), [0, 0, 0]);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn new(len: usize) -> Result<Self, ShmError> {
        Ok(AtomicArray {
            elements: Elements::create(len, Kind::Atomic)?,
        })
    }

    /// A new shared array holding a copy of `values`.
    ///
    /// # Examples
    ///
    /// ```
    /// let array = triad::shm::AtomicArray::from_slice(&[1_i32, -2])?;
    /// assert_eq!(array.get(1), -2);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn from_slice(values: &[T]) -> Result<Self, ShmError> {
        let array = Self::new(values.len())?;
        for (index, value) in values.iter().enumerate() {
            array.set(index, *value);
        }
        Ok(array)
    }

    /// Maps an atomic array that another handle created, from its memfd (see
    /// [`SharedArray::from_fd`](super::SharedArray::from_fd)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use triad::fdpass::SharedFd;
    /// use triad::shm::{AtomicArray, SharedArray, ShmError};
    ///
    /// let array = AtomicArray::from_slice(&[1_u32, 2])?;
    /// let fd = SharedFd::new(array.as_fd().try_clone_to_owned()?);
    /// assert_eq!(AtomicArray::<u32>::from_fd(fd.clone())?.get(1), 2);
    /// // One memory is one kind: atomics are never also plain data under a lock.
    /// assert!(matches!(SharedArray::<u32>::from_fd(fd), Err(ShmError::Kind { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fd(fd: SharedFd) -> Result<Self, ShmError> {
        Ok(AtomicArray {
            elements: Elements::open(fd, Kind::Atomic)?,
        })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `index` as an atomic, shared with every process that maps the array.
    ///
    /// # Panics
    ///
    /// When `index` is out of bounds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    ///
    /// let array = triad::shm::AtomicArray::<u64>::new(1)?;
    /// assert_eq!(array.atomic(0).compare_exchange(0, 5, Ordering::AcqRel, Ordering::Acquire), Ok(0));
    /// assert_eq!(array.get(0), 5);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn atomic(&self, index: usize) -> &T::Atomic {
        const {
            assert!(size_of::<T>() == size_of::<T::Atomic>());
            assert!(align_of::<T::Atomic>() <= size_of::<T>());
        };
        let element = self.elements.element(index).cast::<T::Atomic>();
        debug_assert!(element.is_aligned());
        // SAFETY: `T::Atomic` is the std atomic with `T`'s size and representation (the sealed
        // trait's only impls), and alignment equal to that size; the data starts on a cache line
        // and elements are `size_of::<T>()` apart, so the element is aligned for it. Memory of
        // this kind is only ever accessed atomically, and the mapping lives as long as `&self`.
        unsafe { element.as_ref() }
    }

    /// Element `index`, by one Relaxed atomic load.
    ///
    /// # Panics
    ///
    /// When `index` is out of bounds.
    pub fn get(&self, index: usize) -> T {
        T::load(self.atomic(index), Ordering::Relaxed)
    }

    /// Sets element `index`, by one Relaxed atomic store.
    ///
    /// # Panics
    ///
    /// When `index` is out of bounds.
    pub fn set(&self, index: usize, value: T) {
        T::store(self.atomic(index), value, Ordering::Relaxed)
    }

    /// Every element, each read by a Relaxed load (not one snapshot: others may write between).
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len()).map(|index| self.get(index)).collect()
    }
}

impl<T> AsFd for AtomicArray<T> {
    /// The memfd behind the array.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.elements.fd().as_fd()
    }
}

impl<T> Serialize for AtomicArray<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.elements.serialize(serializer)
    }
}

impl<'de, T: AtomicElement> Deserialize<'de> for AtomicArray<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(AtomicArray {
            elements: Elements::deserialize(deserializer, Kind::Atomic)?,
        })
    }
}

/// One atomic integer in memory shared between processes: a counter or flag that several
/// processes update without a lock. An [`AtomicArray`] of one element.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::Ordering;
/// use triad::shm::AtomicValue;
///
/// let counter = AtomicValue::new(0_u64)?;
/// counter.atomic().fetch_add(2, Ordering::Relaxed);
/// assert_eq!(counter.get(), 2);
/// # Ok::<(), triad::shm::ShmError>(())
/// ```
pub struct AtomicValue<T> {
    array: AtomicArray<T>,
}

impl<T> Clone for AtomicValue<T> {
    fn clone(&self) -> Self {
        AtomicValue {
            array: self.array.clone(),
        }
    }
}

impl<T> fmt::Debug for AtomicValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.array.elements.debug("AtomicValue", f)
    }
}

impl<T: AtomicElement> AtomicValue<T> {
    /// A new shared atomic holding `value`.
    pub fn new(value: T) -> Result<Self, ShmError> {
        Ok(AtomicValue {
            array: AtomicArray::from_slice(&[value])?,
        })
    }

    /// Maps a shared atomic that another handle created, from its memfd; the memory must hold
    /// exactly one element.
    pub fn from_fd(fd: SharedFd) -> Result<Self, ShmError> {
        Self::from_array(AtomicArray::from_fd(fd)?)
    }

    fn from_array(array: AtomicArray<T>) -> Result<Self, ShmError> {
        if array.len() != 1 {
            return Err(ShmError::Length {
                handle: 1,
                header: array.len() as u64,
            });
        }
        Ok(AtomicValue { array })
    }

    /// The value as an atomic, shared with every process that maps it: `fetch_add`, `load`,
    /// `store`, `compare_exchange` and the rest.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    ///
    /// let flag = triad::shm::AtomicValue::new(0_u32)?;
    /// let swapped = flag.atomic().compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire);
    /// assert_eq!(swapped, Ok(0));
    /// assert_eq!(flag.atomic().load(Ordering::Acquire), 1);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn atomic(&self) -> &T::Atomic {
        self.array.atomic(0)
    }

    /// The value, by one Relaxed atomic load.
    pub fn get(&self) -> T {
        self.array.get(0)
    }

    /// Sets the value, by one Relaxed atomic store.
    pub fn set(&self, value: T) {
        self.array.set(0, value)
    }
}

impl<T> AsFd for AtomicValue<T> {
    /// The memfd behind the value.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.array.as_fd()
    }
}

impl<T> Serialize for AtomicValue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.array.serialize(serializer)
    }
}

impl<'de, T: AtomicElement> Deserialize<'de> for AtomicValue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        AtomicValue::from_array(AtomicArray::deserialize(deserializer)?).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot map a memfd twice")]
    fn a_value_is_an_array_of_one() {
        let array = AtomicArray::<u64>::new(2).unwrap();
        let fd = SharedFd::new(array.as_fd().try_clone_to_owned().unwrap());
        assert!(matches!(
            AtomicValue::<u64>::from_fd(fd),
            Err(ShmError::Length {
                handle: 1,
                header: 2
            })
        ));
    }

    #[test]
    fn every_width_loads_what_was_stored() {
        let wide = AtomicArray::from_slice(&[i64::MIN, -1, i64::MAX]).unwrap();
        assert_eq!(wide.to_vec(), [i64::MIN, -1, i64::MAX]);
        let narrow = AtomicArray::from_slice(&[u8::MAX, 0, 1]).unwrap();
        narrow.set(1, 9);
        assert_eq!(narrow.to_vec(), [u8::MAX, 9, 1]);
        let value = AtomicValue::new(usize::MAX).unwrap();
        assert_eq!(value.get(), usize::MAX);
    }
}
