//! Shared memory between processes: the seed's `multiprocessing.Value`, `Array` and
//! `shared_memory` (sections 1.3 and 5.1.2).
//!
//! [`SharedArray<T>`] and [`SharedValue<T>`] hold plain data (`T:` [`bytemuck::Pod`]) in memory
//! that several processes map at once. How it works:
//!
//! - **memfd + mmap.** The memory is an anonymous memfd (`memfd_create`), sized with `ftruncate`,
//!   sealed against shrinking and growing, and mapped `MAP_SHARED`. A memfd has no name in any
//!   filesystem: nothing is created in `/dev/shm`, so nothing can be leaked there, and the memory
//!   lives exactly as long as some process maps it or holds its descriptor.
//! - **A header, then the data.** The mapping starts with a header — magic and layout version,
//!   element size and alignment, element count, where the data starts — and a lock; the data
//!   follows, aligned for `T` and to at least a cache line (so for atomics too).
//! - **A robust, process-shared lock.** [`SharedArray::lock`] takes a `pthread_mutex_t` that lives
//!   in the header (`PTHREAD_PROCESS_SHARED`, `PTHREAD_MUTEX_ROBUST`). When a process dies holding
//!   it, the kernel releases it, and the next `lock` succeeds and says so
//!   ([`SharedGuard::previous_owner_died`]) instead of deadlocking everyone.
//! - **Handles through [`fdpass`](crate::fdpass).** A handle is `Serialize`/`Deserialize`: it
//!   travels as its memfd (a [`SharedFd`]) and its length, and decoding maps the memfd again and
//!   checks the header against `T` and the memfd's size. A forked child simply inherits the
//!   mapping. Cloning a handle shares the mapping.
//!
//! The data can be touched three ways, as in the seed's section 3: unlocked [`get`] / [`set`]
//! (volatile loads and stores — a read-modify-write made of them loses updates, see
//! [`increment_unlocked`]), under the lock ([`increment_locked`]), or with atomics for integer
//! elements ([`SharedArray::atomic`], [`increment_atomic`]).
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
//!
//! # The lock is advisory
//!
//! As with Python's `Value`, the lock protects the data only from code that takes it too, and
//! unlocked access is a data race whenever someone else writes at the same time: unlocked
//! [`set`] against [`get`] (the seed's demo), or against a guard's `&mut` in another thread or
//! process. In practice the numbers come out wrong: no access can produce an invalid value
//! (every bit pattern of a `Pod` type is valid) or reach outside the mapping (indices are
//! checked, the memfd is sealed against shrinking). In Rust's terms such a race is still
//! undefined behaviour, and no API over memory that other processes can write could rule it out:
//! keep to one discipline per datum — all under the lock, or all atomic — except in a race demo.
//! The unlocked accesses are volatile, as for any memory that changes outside the program.
//!
//! [`get`]: SharedArray::get
//! [`set`]: SharedArray::set

use std::fmt;
use std::marker::PhantomData;
use std::mem::{MaybeUninit, align_of, size_of};
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, BorrowedFd};
use std::ptr::{self, NonNull, addr_of, addr_of_mut};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytemuck::Pod;
use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::fdpass::SharedFd;

/// The first eight bytes of every triad shared-memory object.
const MAGIC: [u8; 8] = *b"triadshm";
/// The layout version of the header; bumped whenever [`Header`] changes.
const VERSION: u32 = 1;
/// The data starts at least on a cache-line boundary, so no element shares a line with the lock.
const DATA_ALIGN: usize = 64;
/// `mmap` returns page-aligned memory, so no element type may ask for more.
const MAX_ALIGN: usize = 4096;

/// The start of every mapping. Written once by [`create`] before the memory is shared; only
/// `lock` changes afterwards, through `pthread_mutex_*`.
#[repr(C)]
struct Header {
    magic: [u8; 8],
    version: u32,
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
    #[error("shared memory of layout version {found}; this build reads version {VERSION}")]
    Version {
        /// The version in the header.
        found: u32,
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

fn os(what: &'static str) -> impl FnOnce(rustix::io::Errno) -> ShmError {
    move |errno| ShmError::Os {
        what,
        source: errno.into(),
    }
}

/// Turns a `pthread_*` return value (an error number, not `-1`) into a result.
fn pthread_result(code: libc::c_int) -> std::io::Result<()> {
    match code {
        0 => Ok(()),
        code => Err(std::io::Error::from_raw_os_error(code)),
    }
}

/// Why [`SharedArray::lock`] or [`SharedValue::lock`] gave no guard.
///
/// A dead previous owner is not an error: the lock is made consistent again and the guard says
/// so ([`SharedGuard::previous_owner_died`]).
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

/// One mapping of a memfd into this process.
struct Mapping {
    /// The start of the mapping (the header), page-aligned.
    base: NonNull<u8>,
    size: usize,
    /// Kept so that the handle can be sent on; the mapping alone would keep the memory alive.
    fd: SharedFd,
}

// SAFETY: the mapping is plain shared memory, valid until `Drop`; every access to it goes through
// volatile operations, atomics or the process-shared lock, from any thread.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`: `&Mapping` only hands out raw pointers into memory that any thread may
// touch under the rules above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `size` bytes of `fd`, which must be at least that long and sealed against
    /// shrinking.
    fn map(fd: SharedFd, size: usize) -> Result<Self, ShmError> {
        // SAFETY: a fresh mapping chosen by the kernel (no fixed address), so no existing memory
        // is replaced; `fd` is a memfd of at least `size` bytes that cannot shrink.
        let base = unsafe {
            rustix::mm::mmap(
                ptr::null_mut(),
                size,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .map_err(os("mmap"))?;
        let base = NonNull::new(base.cast::<u8>()).expect("mmap never returns null on success");
        Ok(Mapping { base, size, fd })
    }

    fn header(&self) -> *mut Header {
        self.base.as_ptr().cast()
    }

    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        // SAFETY: the mapping is at least a header long, so the field is inside it.
        unsafe { addr_of_mut!((*self.header()).lock) }
    }

    /// Takes the lock; `Ok(true)` when its previous owner died holding it.
    fn lock(&self) -> Result<bool, LockError> {
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
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base`/`size` are this mapping's, and nothing borrows it any more: every handle
        // and guard holds an `Arc<Mapping>`.
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.size) };
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

/// Creates a sealed memfd for `len` zeroed elements of `T`, maps it and writes the header.
fn create<T: Pod>(len: u64) -> Result<Mapping, ShmError> {
    let (offset, size) = layout::<T>(len)?;
    let fd = rustix::fs::memfd_create("triad-shm", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .map_err(os("memfd_create"))?;
    rustix::fs::ftruncate(&fd, size as u64).map_err(os("ftruncate"))?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
        .map_err(os("fcntl(F_ADD_SEALS)"))?;
    let mapping = Mapping::map(SharedFd::new(fd), size)?;
    let header = mapping.header();
    // SAFETY: the mapping is new, at least a header long, page-aligned, and not yet shared with
    // anyone; a memfd starts zeroed, so the data is already `T::zeroed()`.
    unsafe {
        addr_of_mut!((*header).magic).write(MAGIC);
        addr_of_mut!((*header).version).write(VERSION);
        addr_of_mut!((*header).elem_size).write(size_of::<T>() as u32);
        addr_of_mut!((*header).elem_align).write(align_of::<T>() as u32);
        addr_of_mut!((*header).data_offset).write(offset as u32);
        addr_of_mut!((*header).len).write(len);
        init_robust_mutex(mapping.mutex()).map_err(|source| ShmError::Os {
            what: "pthread_mutex_init",
            source,
        })?;
    }
    Ok(mapping)
}

/// Maps a memfd that [`create`] made (here or in another process) and checks its header
/// against `T`. Returns the mapping and the length.
fn open<T: Pod>(fd: SharedFd) -> Result<(Mapping, usize), ShmError> {
    // The seal first: after it, the size read below can only be a lower bound.
    let seals = rustix::fs::fcntl_get_seals(&fd).map_err(os("fcntl(F_GET_SEALS)"))?;
    if !seals.contains(SealFlags::SHRINK) {
        return Err(ShmError::NotSealed);
    }
    let size = rustix::fs::fstat(&fd).map_err(os("fstat"))?.st_size as u64;
    let header_size = size_of::<Header>() as u64;
    if size < header_size {
        return Err(ShmError::TooSmall {
            size,
            needed: header_size,
        });
    }
    let map_size = usize::try_from(size).map_err(|_| ShmError::TooLarge {
        len: size,
        elem_size: 1,
    })?;
    let mapping = Mapping::map(fd, map_size)?;
    let header = mapping.header();
    // SAFETY: the mapping holds at least a whole header; the fields are plain integers, read
    // volatile because another process may (wrongly) write them.
    let (magic, version, elem_size, elem_align, data_offset, len) = unsafe {
        (
            addr_of!((*header).magic).read_volatile(),
            addr_of!((*header).version).read_volatile(),
            addr_of!((*header).elem_size).read_volatile(),
            addr_of!((*header).elem_align).read_volatile(),
            addr_of!((*header).data_offset).read_volatile(),
            addr_of!((*header).len).read_volatile(),
        )
    };
    if magic != MAGIC {
        return Err(ShmError::BadMagic);
    }
    if version != VERSION {
        return Err(ShmError::Version { found: version });
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
    Ok((mapping, len as usize))
}

mod sealed {
    pub trait Sealed {}
}

/// An integer element type with a std atomic of the same size and representation, so that an
/// element of a shared array can be used as that atomic ([`SharedArray::atomic`]).
///
/// Implemented for `u8`, `i8`, `u16`, `i16`, `u32`, `i32`, `u64`, `i64`, `usize` and `isize`;
/// sealed.
pub trait AtomicElement: Pod + sealed::Sealed {
    /// The atomic type: `AtomicU64` for `u64`, and so on.
    type Atomic: fmt::Debug + Send + Sync;
}

macro_rules! atomic_elements {
    ($($element:ty => $atomic:ty),* $(,)?) => {$(
        impl sealed::Sealed for $element {}
        impl AtomicElement for $element {
            type Atomic = $atomic;
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

/// A fixed-length array of `T` in memory shared between processes: the seed's
/// `multiprocessing.Array`.
///
/// Cloning shares the mapping; sending it to another process (inside any value, with
/// [`fdpass::encode`](crate::fdpass::encode)) maps the same memory there.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::Ordering;
/// use triad::shm::SharedArray;
///
/// let counts = SharedArray::<u32>::new(3)?;
/// counts.set(0, 7);
/// counts.atomic(1).fetch_add(2, Ordering::Relaxed);
/// counts.lock()?[2] = 5;
/// assert_eq!(counts.to_vec(), [7, 2, 5]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedArray<T> {
    mapping: Arc<Mapping>,
    /// The first element, inside `mapping`, aligned for `T` and for its atomic.
    data: NonNull<T>,
    len: usize,
}

// SAFETY: the handle owns an `Arc` of a `Send + Sync` mapping and moves only copies of `T`
// between threads, which `T: Send` allows.
unsafe impl<T: Pod + Send> Send for SharedArray<T> {}
// SAFETY: every method through `&self` copies `T` values in or out (volatile, atomic or under
// the lock), which moves them between threads: `T: Send` is what that needs.
unsafe impl<T: Pod + Send> Sync for SharedArray<T> {}

impl<T> Clone for SharedArray<T> {
    fn clone(&self) -> Self {
        SharedArray {
            mapping: Arc::clone(&self.mapping),
            data: self.data,
            len: self.len,
        }
    }
}

impl<T> fmt::Debug for SharedArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedArray")
            .field("type", &std::any::type_name::<T>())
            .field("len", &self.len)
            .field("fd", &self.mapping.fd)
            .finish()
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
        Self::with_mapping(create::<T>(len as u64)?, len)
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
        // SAFETY: the array is new and not shared yet; `data` is valid for `len` elements, and
        // the fresh mapping cannot overlap `values`.
        unsafe { ptr::copy_nonoverlapping(values.as_ptr(), array.data.as_ptr(), values.len()) };
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
        let (mapping, len) = open::<T>(fd)?;
        Self::with_mapping(mapping, len)
    }

    fn with_mapping(mapping: Mapping, len: usize) -> Result<Self, ShmError> {
        let (offset, _) = layout::<T>(len as u64)?;
        // SAFETY: `create` and `open` made the mapping at least `offset + len * size_of::<T>()`
        // bytes long; `offset` is a multiple of `align_of::<T>()` and the base is page-aligned.
        let data = unsafe { mapping.base.add(offset) }.cast::<T>();
        Ok(SharedArray {
            mapping: Arc::new(mapping),
            data,
            len,
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
        self.len
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
        self.len == 0
    }

    /// A pointer to element `index`.
    ///
    /// # Panics
    ///
    /// When `index` is out of bounds.
    fn element(&self, index: usize) -> *mut T {
        assert!(
            index < self.len,
            "index {index} out of bounds for a shared array of {} elements",
            self.len
        );
        // SAFETY: `index < len`, so the element is inside the mapping.
        unsafe { self.data.as_ptr().add(index) }
    }

    /// Element `index`, read with one volatile load (without the lock).
    ///
    /// # Panics
    ///
    /// When `index` is out of bounds, like slice indexing.
    ///
    /// # Examples
    ///
    /// ```
    /// let array = triad::shm::SharedArray::from_slice(&[3_u8, 4])?;
    /// assert_eq!(array.get(1), 4);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn get(&self, index: usize) -> T {
        // SAFETY: the element is inside the live mapping and aligned; every bit pattern is a
        // valid `T` (`Pod`), whatever another process wrote.
        unsafe { self.element(index).read_volatile() }
    }

    /// Sets element `index` with one volatile store (without the lock).
    ///
    /// # Panics
    ///
    /// When `index` is out of bounds.
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
        // SAFETY: the element is inside the live, writable mapping and aligned.
        unsafe { self.element(index).write_volatile(value) }
    }

    /// A copy of every element, read one by one without the lock (take [`lock`](Self::lock)
    /// for a consistent snapshot).
    ///
    /// # Examples
    ///
    /// ```
    /// let array = triad::shm::SharedArray::from_slice(&[1_u32, 2, 3])?;
    /// assert_eq!(array.to_vec(), [1, 2, 3]);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len).map(|index| self.get(index)).collect()
    }

    /// Sets every element to `value`, one by one without the lock.
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
        for index in 0..self.len {
            self.set(index, value);
        }
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
        let owner_died = self.mapping.lock()?;
        Ok(SharedGuard {
            data: NonNull::slice_from_raw_parts(self.data, self.len),
            mapping: Arc::clone(&self.mapping),
            owner_died,
            _borrow: PhantomData,
        })
    }
}

impl<T: AtomicElement> SharedArray<T> {
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
    /// let hits = triad::shm::SharedArray::<usize>::new(2)?;
    /// std::thread::scope(|scope| {
    ///     for _ in 0..4 {
    ///         scope.spawn(|| hits.atomic(1).fetch_add(1, Ordering::Relaxed));
    ///     }
    /// });
    /// assert_eq!(hits.atomic(1).load(Ordering::Relaxed), 4);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn atomic(&self, index: usize) -> &T::Atomic {
        const {
            assert!(size_of::<T>() == size_of::<T::Atomic>());
            assert!(align_of::<T::Atomic>() <= size_of::<T>());
        };
        let element = self.element(index);
        debug_assert!(element.cast::<T::Atomic>().is_aligned());
        // SAFETY: `T::Atomic` is the std atomic with `T`'s size and representation (the sealed
        // trait's only impls), and alignment equal to that size; the data starts on a cache line
        // and elements are `size_of::<T>()` apart, so the element is aligned for it. The mapping
        // lives as long as `&self`.
        unsafe { &*element.cast::<T::Atomic>() }
    }
}

impl<T> AsFd for SharedArray<T> {
    /// The memfd behind the array.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.mapping.fd.as_fd()
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

impl<T> Serialize for SharedArray<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireRef {
            fd: &self.mapping.fd,
            len: self.len as u64,
        }
        .serialize(serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for SharedArray<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        let array = SharedArray::from_fd(wire.fd).map_err(D::Error::custom)?;
        if array.len as u64 != wire.len {
            return Err(D::Error::custom(ShmError::Length {
                handle: wire.len,
                header: array.len as u64,
            }));
        }
        Ok(array)
    }
}

/// One `T` in memory shared between processes: the seed's `multiprocessing.Value`.
///
/// A [`SharedArray`] of one element, with the same lock, atomics and handle passing.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::Ordering;
/// use triad::shm::SharedValue;
///
/// let counter = SharedValue::new(0_u64)?;
/// *counter.lock()? += 1; // the seed's `with val.get_lock(): val.value += 1`
/// counter.atomic().fetch_add(1, Ordering::Relaxed);
/// assert_eq!(counter.get(), 2);
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
        f.debug_struct("SharedValue")
            .field("type", &std::any::type_name::<T>())
            .field("fd", &self.array.mapping.fd)
            .finish()
    }
}

impl<T: Pod> SharedValue<T> {
    /// A new shared value holding `value`: the seed's `Value('i', 0)`.
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
        if array.len != 1 {
            return Err(ShmError::Length {
                handle: 1,
                header: array.len as u64,
            });
        }
        Ok(SharedValue { array })
    }

    /// The value, read with one volatile load (without the lock).
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

    /// Sets the value with one volatile store (without the lock).
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
        let owner_died = self.array.mapping.lock()?;
        Ok(SharedGuard {
            data: self.array.data,
            mapping: Arc::clone(&self.array.mapping),
            owner_died,
            _borrow: PhantomData,
        })
    }
}

impl<T: AtomicElement> SharedValue<T> {
    /// The value as an atomic, shared with every process that maps it: `fetch_add`, `load`,
    /// `store`, `compare_exchange` and the rest.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    ///
    /// let flag = triad::shm::SharedValue::new(0_u32)?;
    /// let swapped = flag.atomic().compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire);
    /// assert_eq!(swapped, Ok(0));
    /// assert_eq!(flag.atomic().load(Ordering::Acquire), 1);
    /// # Ok::<(), triad::shm::ShmError>(())
    /// ```
    pub fn atomic(&self) -> &T::Atomic {
        self.array.atomic(0)
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
        // guard holds the lock (see the module's note on unlocked access).
        unsafe { self.data.as_ref() }
    }
}

impl<U: ?Sized> DerefMut for SharedGuard<'_, U> {
    fn deref_mut(&mut self) -> &mut U {
        // SAFETY: as for `deref`; `&mut self` makes this the only reference through the guard.
        unsafe { self.data.as_mut() }
    }
}

impl<U: ?Sized> Drop for SharedGuard<'_, U> {
    fn drop(&mut self) {
        // SAFETY: this thread locked the mutex when it made the guard (guards are not `Send`),
        // and the mapping is alive.
        let code = unsafe { libc::pthread_mutex_unlock(self.mapping.mutex()) };
        debug_assert_eq!(code, 0, "unlocking a held lock cannot fail");
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

/// The seed's unsafe `shared_value.value += 1` (section 3): a volatile load, a pause, then a
/// volatile store, with no lock. When processes run it at once, increments are lost — the race
/// the lab demonstrates. The pause (`spin_loop`) only widens the window between read and write.
///
/// # Examples
///
/// ```
/// let counter = triad::shm::SharedValue::new(0_u64)?;
/// triad::shm::increment_unlocked(&counter); // fine alone; wrong with company
/// assert_eq!(counter.get(), 1);
/// # Ok::<(), triad::shm::ShmError>(())
/// ```
pub fn increment_unlocked(value: &SharedValue<u64>) {
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
/// let counter = triad::shm::SharedValue::new(0_u64)?;
/// triad::shm::increment_atomic(&counter);
/// assert_eq!(counter.get(), 1);
/// # Ok::<(), triad::shm::ShmError>(())
/// ```
pub fn increment_atomic(value: &SharedValue<u64>) {
    value.atomic().fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, Copy, PartialEq, bytemuck::Zeroable, bytemuck::Pod)]
    #[repr(C, align(128))]
    struct Wide {
        a: u64,
        b: [u64; 15],
    }

    #[test]
    fn data_is_aligned_past_the_header() {
        let small = SharedArray::<u8>::new(3).unwrap();
        assert_eq!(small.data.as_ptr() as usize % DATA_ALIGN, 0);
        assert!(small.data.as_ptr() as usize >= small.mapping.base.as_ptr() as usize + 64);
        let wide = SharedArray::<Wide>::new(2).unwrap();
        assert_eq!(wide.data.as_ptr() as usize % 128, 0);
        let value = Wide { a: 7, b: [3; 15] };
        wide.set(1, value);
        assert_eq!(wide.get(1), value);
        assert_eq!(wide.get(0).a, 0);
    }

    #[test]
    fn a_second_mapping_of_the_same_memfd_sees_the_same_memory_elsewhere() {
        let first = SharedArray::<u32>::new(4).unwrap();
        let fd = SharedFd::new(first.as_fd().try_clone_to_owned().unwrap());
        let second = SharedArray::<u32>::from_fd(fd).unwrap();
        assert_ne!(first.data, second.data, "two mappings, two addresses");
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
        assert!(Arc::ptr_eq(&value.array.mapping, &clone.array.mapping));
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
    fn a_leaked_guard_keeps_the_mapping() {
        let value = SharedValue::new(0_u8).unwrap();
        let weak = Arc::downgrade(&value.array.mapping);
        std::thread::spawn(move || std::mem::forget(value.lock().unwrap()))
            .join()
            .unwrap();
        assert!(
            weak.upgrade().is_some(),
            "the leaked guard holds the mapping"
        );
    }

    #[test]
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
    fn too_many_elements_is_an_error() {
        assert!(matches!(
            SharedArray::<u64>::new(usize::MAX / 4),
            Err(ShmError::TooLarge { .. })
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
    #[should_panic(expected = "out of bounds")]
    fn out_of_bounds_panics() {
        SharedArray::<u8>::new(2).unwrap().get(2);
    }

    proptest! {
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
