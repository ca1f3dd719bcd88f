//! The memory behind every shared handle: a header, a robust process-shared lock, then the data.
//!
//! [`Elements<T>`] is what both kinds of handle hold: the mapping (kept alive by an `Arc`), a
//! pointer to the first element and the length. It checks indices and carries the handle on
//! the wire; what may be done through the pointer is the handle's business.

use std::fmt;
use std::marker::PhantomData;
use std::mem::{MaybeUninit, align_of, size_of};
use std::os::fd::AsFd;
use std::ptr::{NonNull, addr_of, addr_of_mut};
use std::sync::Arc;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::fdpass::SharedFd;
use crate::memfd::{Prefix, Region, RegionError, Size, Tag};

/// What triad's shared arrays and values are, on the memfd.
const TAG: Tag = Tag {
    name: "triad-shm",
    magic: *b"triadshm",
    // 2: the header records the kind of handle.
    version: 2,
};
/// The data starts at least on a cache-line boundary, so no element shares a line with the lock.
const DATA_ALIGN: usize = 64;
/// `mmap` returns page-aligned memory, so no element type may ask for more.
const MAX_ALIGN: usize = 4096;

/// Which discipline a memory is accessed by; one memory is only ever one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Kind {
    /// [`SharedArray`](super::SharedArray): plain data, under the lock.
    Locked = 1,
    /// [`AtomicArray`](super::AtomicArray): integers, by atomic operations.
    Atomic = 2,
}

impl Kind {
    fn handle(self) -> &'static str {
        match self {
            Kind::Locked => "SharedArray/SharedValue",
            Kind::Atomic => "AtomicArray/AtomicValue",
        }
    }
}

/// The start of every mapping. Written once by [`create`] before the memory is shared; only
/// `lock` changes afterwards, through `pthread_mutex_*`.
#[repr(C)]
struct Header {
    prefix: Prefix,
    /// A [`Kind`], as its number.
    kind: u32,
    elem_size: u32,
    elem_align: u32,
    /// Where the data starts, from the start of the mapping.
    data_offset: u32,
    /// The number of elements.
    len: u64,
    /// Robust, process-shared, error-checking. Never destroyed: other processes may still map it,
    /// and glibc's `pthread_mutex_destroy` does nothing for it anyway.
    lock: libc::pthread_mutex_t,
}

/// Where the data of `len` elements of `T` starts, and the size of the whole mapping.
fn layout<T>(len: u64) -> Result<(usize, usize), ShmError> {
    const {
        assert!(
            align_of::<T>() <= MAX_ALIGN,
            "element alignment above a page"
        )
    };
    let align = align_of::<T>().max(DATA_ALIGN);
    let offset = size_of::<Header>().next_multiple_of(align);
    let too_large = || ShmError::TooLarge {
        len,
        elem_size: size_of::<T>(),
    };
    let bytes = usize::try_from(len)
        .ok()
        .and_then(|len| len.checked_mul(size_of::<T>()))
        .and_then(|bytes| bytes.checked_add(offset))
        .filter(|total| *total <= isize::MAX as usize)
        .ok_or_else(too_large)?;
    Ok((offset, bytes))
}

/// Why a shared array or value could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShmError {
    /// A system call failed.
    #[error("{what} failed: {source}")]
    Os {
        /// The call that failed.
        what: &'static str,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The array would not fit in the address space.
    #[error("{len} elements of {elem_size} bytes are too many to map")]
    TooLarge {
        /// The number of elements asked for.
        len: u64,
        /// The size of one element.
        elem_size: usize,
    },
    /// The memfd does not start with triad's header.
    #[error("not triad shared memory: the header's magic number is wrong")]
    BadMagic,
    /// The header was written by a build with another layout.
    #[error("shared memory of layout version {found}; this build reads version {expected}")]
    Version {
        /// The version in the header.
        found: u32,
        /// The version this build writes and reads.
        expected: u32,
    },
    /// The memory was made for the other kind of handle (locked plain data against atomics).
    #[error("the shared memory is for {found}, not {expected}")]
    Kind {
        /// The handle asked for.
        expected: &'static str,
        /// The handle the memory was created for.
        found: &'static str,
    },
    /// The memory holds elements of another type.
    #[error(
        "the shared memory holds elements of {found_size} bytes aligned to {found_align}, \
         not {type_name} ({expected_size} bytes aligned to {expected_align})"
    )]
    ElementType {
        /// The element type asked for.
        type_name: &'static str,
        /// Its size.
        expected_size: usize,
        /// Its alignment.
        expected_align: usize,
        /// The element size in the header.
        found_size: u32,
        /// The element alignment in the header.
        found_align: u32,
    },
    /// The handle and the header disagree on the number of elements.
    #[error("the handle says {handle} elements, the shared memory's header {header}")]
    Length {
        /// The length the handle carried.
        handle: u64,
        /// The length in the header.
        header: u64,
    },
    /// The header says the data starts elsewhere than this build puts it.
    #[error("corrupt header: the data starts at byte {found}, not {expected}")]
    Layout {
        /// The offset in the header.
        found: u32,
        /// The offset this build computes.
        expected: usize,
    },
    /// The memfd is smaller than its header says the memory is.
    #[error("the memfd is {size} bytes, too small for the {needed} its header needs")]
    TooSmall {
        /// The memfd's size.
        size: u64,
        /// The size the header (or the header itself) needs.
        needed: u64,
    },
    /// The memfd could shrink under the mapping (and a later access would raise `SIGBUS`).
    #[error("the memfd is not sealed against shrinking")]
    NotSealed,
}

impl From<RegionError> for ShmError {
    fn from(error: RegionError) -> Self {
        match error {
            RegionError::Os { what, source } => ShmError::Os { what, source },
            RegionError::NotSealed => ShmError::NotSealed,
            RegionError::Size { found, .. } => ShmError::TooSmall {
                size: found,
                needed: size_of::<Header>() as u64,
            },
            RegionError::BadMagic { .. } => ShmError::BadMagic,
            RegionError::Version {
                found, expected, ..
            } => ShmError::Version { found, expected },
        }
    }
}

/// Turns a `pthread_*` return value (an error number, not `-1`) into a result.
fn pthread_result(code: libc::c_int) -> std::io::Result<()> {
    match code {
        0 => Ok(()),
        code => Err(std::io::Error::from_raw_os_error(code)),
    }
}

/// Why [`SharedArray::lock`](super::SharedArray::lock) or
/// [`SharedValue::lock`](super::SharedValue::lock) gave no guard.
///
/// A dead previous owner is not an error: the lock is made consistent again and the guard says
/// so ([`SharedGuard::previous_owner_died`](super::SharedGuard::previous_owner_died)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// This thread already holds the lock (through this handle or another of the same memory);
    /// waiting would wait for ever.
    #[error("this thread already holds the shared lock")]
    WouldDeadlock,
    /// The lock was left unusable: a process recovered it after its owner died but released it
    /// without marking it consistent (triad always marks it; another program may not have).
    #[error("the shared lock is not recoverable")]
    NotRecoverable,
    /// Another failure of `pthread_mutex_lock`.
    #[error("locking the shared lock failed: {0}")]
    Os(#[source] std::io::Error),
}

/// One mapping of a shared array's memfd into this process.
pub(crate) struct Mapping {
    region: Region,
    /// Kept so that the handle can be sent on; the mapping alone would keep the memory alive.
    fd: SharedFd,
}

impl Mapping {
    fn header(&self) -> *mut Header {
        self.region.header::<Header>().as_ptr()
    }

    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        // SAFETY: the region holds a whole header (`Region::header` checks), so the field is
        // inside it.
        unsafe { addr_of_mut!((*self.header()).lock) }
    }

    /// Takes the lock; `Ok(true)` when its previous owner died holding it.
    pub(crate) fn lock(&self) -> Result<bool, LockError> {
        // SAFETY: the mutex was initialised by `create` before the memory was shared, and the
        // mapping outlives this call.
        match unsafe { libc::pthread_mutex_lock(self.mutex()) } {
            0 => Ok(false),
            libc::EOWNERDEAD => {
                // SAFETY: this thread holds the mutex (EOWNERDEAD hands it over locked).
                pthread_result(unsafe { libc::pthread_mutex_consistent(self.mutex()) })
                    .map_err(LockError::Os)?;
                Ok(true)
            }
            libc::EDEADLK => Err(LockError::WouldDeadlock),
            libc::ENOTRECOVERABLE => Err(LockError::NotRecoverable),
            code => Err(LockError::Os(std::io::Error::from_raw_os_error(code))),
        }
    }

    /// Releases the lock this thread holds.
    ///
    /// # Safety
    ///
    /// This thread took the lock with [`lock`](Self::lock) and has not released it since.
    pub(crate) unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock; the mutex lives in the mapping, alive for `&self`.
        let code = unsafe { libc::pthread_mutex_unlock(self.mutex()) };
        debug_assert_eq!(code, 0, "unlocking a held lock cannot fail");
    }
}

/// Initialises the robust, process-shared, error-checking mutex at `mutex`.
///
/// # Safety
///
/// `mutex` is valid for writes and no other thread or process uses it yet.
unsafe fn init_robust_mutex(mutex: *mut libc::pthread_mutex_t) -> std::io::Result<()> {
    let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    // SAFETY: `attr` is valid for writes.
    pthread_result(unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) })?;
    let attr = attr.as_mut_ptr();
    // SAFETY: `attr` was initialised above, and `mutex` is valid and unused (the caller's
    // promise).
    let result = unsafe {
        // Miri knows neither attribute; its threads share one process, where an error-checking
        // mutex is all the in-process paths need.
        let shared = if cfg!(miri) {
            Ok(())
        } else {
            pthread_result(libc::pthread_mutexattr_setpshared(
                attr,
                libc::PTHREAD_PROCESS_SHARED,
            ))
            .and_then(|()| {
                pthread_result(libc::pthread_mutexattr_setrobust(
                    attr,
                    libc::PTHREAD_MUTEX_ROBUST,
                ))
            })
        };
        shared
            .and_then(|()| {
                pthread_result(libc::pthread_mutexattr_settype(
                    attr,
                    libc::PTHREAD_MUTEX_ERRORCHECK,
                ))
            })
            .and_then(|()| pthread_result(libc::pthread_mutex_init(mutex, attr)))
    };
    // SAFETY: `attr` is initialised and no longer needed (the mutex keeps no reference to it).
    unsafe { libc::pthread_mutexattr_destroy(attr) };
    result
}

/// The elements of one shared memory, as a handle of kind `kind` sees them: the mapping, the
/// first element, the length. Cloning shares the mapping.
pub(crate) struct Elements<T> {
    mapping: Arc<Mapping>,
    /// The first element, inside `mapping`, aligned for `T` (and for its atomic).
    data: NonNull<T>,
    len: usize,
    _type: PhantomData<T>,
}

impl<T> Clone for Elements<T> {
    fn clone(&self) -> Self {
        Elements {
            mapping: Arc::clone(&self.mapping),
            data: self.data,
            len: self.len,
            _type: PhantomData,
        }
    }
}

impl<T> Elements<T> {
    /// A new memory for `len` zeroed elements of `T`, of `kind`, with its header and lock.
    pub(crate) fn create(len: usize, kind: Kind) -> Result<Self, ShmError> {
        let (offset, size) = layout::<T>(len as u64)?;
        let (fd, region) = Region::create(&TAG, size)?;
        let mapping = Mapping {
            region,
            fd: SharedFd::new(fd),
        };
        let header = mapping.header();
        // SAFETY: the mapping is new, holds a whole header, and is not shared with anyone yet;
        // a new region reads as zeroes, so the data is already `T::zeroed()`.
        unsafe {
            addr_of_mut!((*header).kind).write(kind as u32);
            addr_of_mut!((*header).elem_size).write(size_of::<T>() as u32);
            addr_of_mut!((*header).elem_align).write(align_of::<T>() as u32);
            addr_of_mut!((*header).data_offset).write(offset as u32);
            addr_of_mut!((*header).len).write(len as u64);
            init_robust_mutex(mapping.mutex()).map_err(|source| ShmError::Os {
                what: "pthread_mutex_init",
                source,
            })?;
        }
        Ok(Self::new(mapping, offset, len))
    }

    /// Maps a memory that [`create`](Self::create) made (here or in another process) and checks
    /// its header against `kind` and `T`.
    pub(crate) fn open(fd: SharedFd, kind: Kind) -> Result<Self, ShmError> {
        let region = Region::open(&TAG, &fd, Size::AtLeast(size_of::<Header>()))?;
        let size = region.len() as u64;
        let mapping = Mapping { region, fd };
        let header = mapping.header();
        // SAFETY: the mapping holds at least a whole header; the fields are plain integers, read
        // volatile because another process may (wrongly) write them.
        let (found_kind, elem_size, elem_align, data_offset, len) = unsafe {
            (
                addr_of!((*header).kind).read_volatile(),
                addr_of!((*header).elem_size).read_volatile(),
                addr_of!((*header).elem_align).read_volatile(),
                addr_of!((*header).data_offset).read_volatile(),
                addr_of!((*header).len).read_volatile(),
            )
        };
        if found_kind != kind as u32 {
            let other = if kind == Kind::Locked {
                Kind::Atomic
            } else {
                Kind::Locked
            };
            return Err(if found_kind == other as u32 {
                ShmError::Kind {
                    expected: kind.handle(),
                    found: other.handle(),
                }
            } else {
                ShmError::BadMagic
            });
        }
        if elem_size as usize != size_of::<T>() || elem_align as usize != align_of::<T>() {
            return Err(ShmError::ElementType {
                type_name: std::any::type_name::<T>(),
                expected_size: size_of::<T>(),
                expected_align: align_of::<T>(),
                found_size: elem_size,
                found_align: elem_align,
            });
        }
        let (offset, needed) = layout::<T>(len)?;
        if data_offset as usize != offset {
            return Err(ShmError::Layout {
                found: data_offset,
                expected: offset,
            });
        }
        if (needed as u64) > size {
            return Err(ShmError::TooSmall {
                size,
                needed: needed as u64,
            });
        }
        // `needed` fits in a usize, so `len` does too.
        Ok(Self::new(mapping, offset, len as usize))
    }

    fn new(mapping: Mapping, offset: usize, len: usize) -> Self {
        // SAFETY: `create` and `open` checked that the mapping is at least `offset + len *
        // size_of::<T>()` bytes long; `offset` is a multiple of `align_of::<T>()` and the base
        // is page-aligned.
        let data = unsafe { mapping.region.base().add(offset) }.cast::<T>();
        Elements {
            mapping: Arc::new(mapping),
            data,
            len,
            _type: PhantomData,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The first element.
    pub(crate) fn data(&self) -> NonNull<T> {
        self.data
    }

    pub(crate) fn mapping(&self) -> &Arc<Mapping> {
        &self.mapping
    }

    /// A pointer to element `index`, inside the live mapping and aligned for `T`.
    ///
    /// # Panics
    ///
    /// When `index` is out of bounds.
    pub(crate) fn element(&self, index: usize) -> NonNull<T> {
        assert!(
            index < self.len,
            "index {index} out of bounds for a shared array of {} elements",
            self.len
        );
        // SAFETY: `index < len`, so the element is inside the mapping.
        unsafe { self.data.add(index) }
    }

    pub(crate) fn fd(&self) -> &SharedFd {
        &self.mapping.fd
    }

    pub(crate) fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("type", &std::any::type_name::<T>())
            .field("len", &self.len)
            .field("fd", &self.mapping.fd)
            .finish()
    }

    /// Puts the handle on the wire: its memfd and its length.
    pub(crate) fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireRef {
            fd: &self.mapping.fd,
            len: self.len as u64,
        }
        .serialize(serializer)
    }

    /// Takes a handle of `kind` off the wire, mapping its memfd and checking it.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
        kind: Kind,
    ) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        let elements = Self::open(wire.fd, kind).map_err(D::Error::custom)?;
        if elements.len as u64 != wire.len {
            return Err(D::Error::custom(ShmError::Length {
                handle: wire.len,
                header: elements.len as u64,
            }));
        }
        Ok(elements)
    }
}

impl AsFd for Mapping {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// What a handle is on the wire: the memfd and the length.
#[derive(Serialize)]
struct WireRef<'a> {
    fd: &'a SharedFd,
    len: u64,
}

#[derive(Deserialize)]
struct Wire {
    fd: SharedFd,
    len: u64,
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, bytemuck::Zeroable, bytemuck::Pod)]
    #[repr(C, align(128))]
    struct Wide {
        a: u64,
        b: [u64; 15],
    }

    #[test]
    fn data_is_aligned_past_the_header() {
        let small = Elements::<u8>::create(3, Kind::Locked).unwrap();
        assert_eq!(small.data.as_ptr() as usize % DATA_ALIGN, 0);
        let base = small.mapping.region.base().as_ptr() as usize;
        assert!(small.data.as_ptr() as usize >= base + size_of::<Header>());
        let wide = Elements::<Wide>::create(2, Kind::Locked).unwrap();
        assert_eq!(wide.data.as_ptr() as usize % 128, 0);
    }

    #[test]
    fn a_second_mapping_is_elsewhere_and_one_kind_only() {
        let first = Elements::<u32>::create(4, Kind::Atomic).unwrap();
        let fd = SharedFd::new(first.fd().as_fd().try_clone_to_owned().unwrap());
        let second = Elements::<u32>::open(fd.clone(), Kind::Atomic).unwrap();
        assert_ne!(first.data, second.data, "two mappings, two addresses");
        assert!(matches!(
            Elements::<u32>::open(fd, Kind::Locked),
            Err(ShmError::Kind {
                expected: "SharedArray/SharedValue",
                found: "AtomicArray/AtomicValue"
            })
        ));
    }

    #[test]
    fn too_many_elements_is_an_error() {
        assert!(matches!(
            Elements::<u64>::create(usize::MAX / 4, Kind::Locked),
            Err(ShmError::TooLarge { .. })
        ));
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn out_of_bounds_panics() {
        Elements::<u8>::create(2, Kind::Locked).unwrap().element(2);
    }
}
