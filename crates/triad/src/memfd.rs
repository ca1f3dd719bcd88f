//! Memory that several processes map at once: a sealed memfd, mapped `MAP_SHARED`.
//!
//! This is the one place triad makes such memory; [`shm`](crate::shm)'s arrays, the ipc queue's
//! header and the process pool's slot pages all sit on a [`Region`]. The steps, and why each is
//! safe, are written here once:
//!
//! 1. **Create.** `memfd_create` gives an anonymous file with no name in any filesystem (nothing
//!    in `/dev/shm` to leak); `ftruncate` sizes it, and a new memfd reads as zeroes.
//! 2. **Seal.** `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`: nobody — not even a process that
//!    receives the descriptor — can shrink the file under a mapping, which would turn the next
//!    access into `SIGBUS`.
//! 3. **Map.** `mmap(MAP_SHARED)` at an address the kernel picks, so the mapping overlaps no
//!    Rust object; every process that maps the memfd sees the same pages.
//! 4. **Check.** Every region starts with a [`Prefix`] — an 8-byte magic number naming what the
//!    memory is and a layout version — written at creation. Opening a descriptor that came from
//!    elsewhere checks the seal, the size and the prefix before anything else reads the memory.
//! 5. **Unmap** when the [`Region`] drops. The memory itself lives as long as some process maps
//!    it or holds its descriptor.
//!
//! A region hands out raw pointers only: what may be read or written through them, and how
//! (atomics, a process-shared lock), is each user's own contract.
//!
//! Under Miri, which cannot create a memfd, [`Region::create`] maps anonymous memory instead and
//! hands back an eventfd in place of the memfd, so that the in-process paths of the users can be
//! checked for undefined behaviour; [`Region::open`] is not available there.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::{self, NonNull, addr_of, addr_of_mut};

use rustix::fs::SealFlags;
use rustix::mm::{MapFlags, ProtFlags};

/// What a kind of region is called and how its memory starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tag {
    /// The memfd's name, seen in `/proc/<pid>/fd` (as `memfd:<name>`) and `/proc/<pid>/maps`.
    pub(crate) name: &'static str,
    /// The first eight bytes of every region of this kind.
    pub(crate) magic: [u8; 8],
    /// The layout version; bumped whenever what follows the prefix changes.
    pub(crate) version: u32,
}

/// The start of every region: [`Tag::magic`] and [`Tag::version`]. A region's own header is a
/// `#[repr(C)]` struct whose first field is a `Prefix`.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Prefix {
    magic: [u8; 8],
    version: u32,
    _reserved: u32,
}

/// How large a received memfd must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Size {
    /// Exactly this many bytes.
    Exact(usize),
    /// At least this many bytes (and at least a prefix); the whole memfd is mapped.
    AtLeast(usize),
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Size::Exact(len) => write!(f, "the {len} expected"),
            Size::AtLeast(min) => write!(f, "at least the {min} needed"),
        }
    }
}

/// Why a region could not be created or opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RegionError {
    /// A system call failed.
    #[error("{what} failed: {source}")]
    Os {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// The memfd could shrink under the mapping.
    #[error("the memfd is not sealed against shrinking")]
    NotSealed,
    /// The memfd's size is not what the region needs.
    #[error("the memfd is {found} bytes, not {expected}")]
    Size { found: u64, expected: Size },
    /// The memory does not start with the tag's magic number.
    #[error("not {name}: the magic number is wrong")]
    BadMagic { name: &'static str },
    /// The memory was laid out by a build with another layout version.
    #[error("{name} of layout version {found}; this build reads version {expected}")]
    Version {
        name: &'static str,
        found: u32,
        expected: u32,
    },
}

fn os(what: &'static str) -> impl FnOnce(rustix::io::Errno) -> RegionError {
    move |errno| RegionError::Os {
        what,
        source: errno.into(),
    }
}

/// One mapping of a region into this process, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Region {
    /// The start of the mapping (the prefix), page-aligned.
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: a `Region` only owns a mapping and hands out raw pointers into it; what may be done
// through them, from which thread, is each user's contract (atomics or a process-shared lock).
unsafe impl Send for Region {}
// SAFETY: as for `Send`: `&Region` gives nothing but raw pointers.
unsafe impl Sync for Region {}

impl Region {
    /// A new region of `len` zeroed bytes (at least a [`Prefix`]) that starts with `tag`'s
    /// prefix: its memfd, sealed at that size, and this process's mapping of it.
    pub(crate) fn create(tag: &Tag, len: usize) -> Result<(OwnedFd, Region), RegionError> {
        assert!(
            len >= size_of::<Prefix>(),
            "a region holds at least its prefix"
        );
        let (fd, region) = Self::create_unwritten(tag, len)?;
        let prefix = region.base.as_ptr().cast::<Prefix>();
        // SAFETY: the mapping is new, writable, page-aligned and at least a prefix long, and no
        // other handle to it exists yet.
        unsafe {
            addr_of_mut!((*prefix).magic).write(tag.magic);
            addr_of_mut!((*prefix).version).write(tag.version);
        }
        Ok((fd, region))
    }

    #[cfg(not(miri))]
    fn create_unwritten(tag: &Tag, len: usize) -> Result<(OwnedFd, Region), RegionError> {
        use rustix::fs::MemfdFlags;
        let fd =
            rustix::fs::memfd_create(tag.name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
                .map_err(os("memfd_create"))?;
        rustix::fs::ftruncate(&fd, len as u64).map_err(os("ftruncate"))?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
            .map_err(os("fcntl(F_ADD_SEALS)"))?;
        let region = Region::map(&fd, len)?;
        Ok((fd, region))
    }

    /// Miri has no memfd: anonymous memory, and an eventfd to stand in for the descriptor.
    #[cfg(miri)]
    fn create_unwritten(_tag: &Tag, len: usize) -> Result<(OwnedFd, Region), RegionError> {
        let fd = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC)
            .map_err(os("eventfd"))?;
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .map_err(os("mmap"))?;
        let base = NonNull::new(base.cast::<u8>()).expect("mmap never returns null on success");
        Ok((fd, Region { base, len }))
    }

    /// Maps a region that [`create`](Self::create) made, here or in another process, from its
    /// memfd: checks the seal, the size and the prefix.
    pub(crate) fn open(tag: &Tag, fd: impl AsFd, size: Size) -> Result<Region, RegionError> {
        let fd = fd.as_fd();
        // The seal first: after it, the size read below can only be a lower bound.
        let seals = rustix::fs::fcntl_get_seals(fd).map_err(os("fcntl(F_GET_SEALS)"))?;
        if !seals.contains(SealFlags::SHRINK) {
            return Err(RegionError::NotSealed);
        }
        let found = rustix::fs::fstat(fd).map_err(os("fstat"))?.st_size as u64;
        let fits = match size {
            Size::Exact(len) => found == len as u64,
            Size::AtLeast(min) => found >= min.max(size_of::<Prefix>()) as u64,
        };
        let len = usize::try_from(found)
            .ok()
            .filter(|_| fits)
            .ok_or(RegionError::Size {
                found,
                expected: size,
            })?;
        let region = Region::map(fd, len)?;
        let prefix = region.base.as_ptr().cast::<Prefix>();
        // SAFETY: the mapping holds at least a whole prefix of plain integers; they are read
        // volatile because another process may (wrongly) be writing them.
        let (magic, version) = unsafe {
            (
                addr_of!((*prefix).magic).read_volatile(),
                addr_of!((*prefix).version).read_volatile(),
            )
        };
        if magic != tag.magic {
            return Err(RegionError::BadMagic { name: tag.name });
        }
        if version != tag.version {
            return Err(RegionError::Version {
                name: tag.name,
                found: version,
                expected: tag.version,
            });
        }
        Ok(region)
    }

    /// Maps the first `len` bytes of `fd`, which is at least that long and sealed against
    /// shrinking.
    #[cfg_attr(miri, allow(dead_code))]
    fn map(fd: impl AsFd, len: usize) -> Result<Region, RegionError> {
        // SAFETY: a fresh shared mapping at an address the kernel picks replaces no existing
        // memory; `fd` is at least `len` bytes and cannot shrink, so every page stays valid.
        let base = unsafe {
            rustix::mm::mmap(
                ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
        }
        .map_err(os("mmap"))?;
        let base = NonNull::new(base.cast::<u8>()).expect("mmap never returns null on success");
        Ok(Region { base, len })
    }

    /// The start of the mapping: the prefix, page-aligned.
    pub(crate) fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// The mapping's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The region's header: a `#[repr(C)]` type whose first field is a [`Prefix`].
    ///
    /// # Panics
    ///
    /// When the region is shorter than `H` (a programming error: users size regions by `H`).
    pub(crate) fn header<H>(&self) -> NonNull<H> {
        assert!(size_of::<H>() <= self.len, "the header fits the region");
        const { assert!(std::mem::align_of::<H>() <= 4096, "page-aligned headers") };
        self.base.cast()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `base` and `len` are exactly this mapping's, and its users hold the region (or
        // an `Arc` of what owns it) for as long as they use pointers into it.
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    const TAG: Tag = Tag {
        name: "triad-test-region",
        magic: *b"testtest",
        version: 3,
    };

    #[test]
    fn a_second_mapping_sees_the_first_ones_bytes() {
        let (fd, first) = Region::create(&TAG, 4096).unwrap();
        let second = Region::open(&TAG, &fd, Size::Exact(4096)).unwrap();
        assert_ne!(first.base(), second.base());
        // SAFETY: both mappings are 4096 bytes; byte 100 is past the prefix, and this test is
        // the only user.
        unsafe {
            first.base().as_ptr().add(100).write_volatile(7);
            assert_eq!(second.base().as_ptr().add(100).read_volatile(), 7);
        }
    }

    #[test]
    fn wrong_sizes_tags_and_versions_are_refused() {
        let (fd, _region) = Region::create(&TAG, 4096).unwrap();
        assert!(matches!(
            Region::open(&TAG, &fd, Size::Exact(8192)),
            Err(RegionError::Size { found: 4096, .. })
        ));
        assert!(matches!(
            Region::open(&TAG, &fd, Size::AtLeast(8192)),
            Err(RegionError::Size { found: 4096, .. })
        ));
        assert!(Region::open(&TAG, &fd, Size::AtLeast(64)).is_ok());
        let other = Tag {
            magic: *b"othertag",
            ..TAG
        };
        assert!(matches!(
            Region::open(&other, &fd, Size::AtLeast(64)),
            Err(RegionError::BadMagic { .. })
        ));
        let newer = Tag { version: 4, ..TAG };
        assert!(matches!(
            Region::open(&newer, &fd, Size::AtLeast(64)),
            Err(RegionError::Version {
                found: 3,
                expected: 4,
                ..
            })
        ));
    }

    #[test]
    fn an_unsealed_memfd_is_refused() {
        let fd = rustix::fs::memfd_create("unsealed", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 4096).unwrap();
        assert!(matches!(
            Region::open(&TAG, &fd, Size::Exact(4096)),
            Err(RegionError::NotSealed)
        ));
    }

    #[test]
    fn a_created_region_cannot_be_resized() {
        let (fd, _region) = Region::create(&TAG, 4096).unwrap();
        assert!(rustix::fs::ftruncate(&fd, 100).is_err());
        assert!(rustix::fs::ftruncate(&fd, 8192).is_err());
    }
}
