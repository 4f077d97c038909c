//! A `MAP_SHARED` mapping of a whole object file, and how stores to it become durable.
//!
//! On a DAX filesystem (persistent memory) a writable mapping is first tried with
//! `MAP_SHARED_VALIDATE | MAP_SYNC`: if the kernel accepts it, the page tables point straight at
//! the media and flushing CPU cache lines (`clwb` + `sfence`) makes a store durable. Everywhere
//! else the kernel refuses with `EOPNOTSUPP` (or `EINVAL` on old kernels) and the plain
//! `MAP_SHARED` mapping needs `msync` of the dirtied pages. Writable shared file mappings are
//! never pre-populated: measured here, `MAP_POPULATE` made later writes ~30x slower.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

use abi::layout::PAGE_SIZE;

/// What a caller must do to make stores to a mapping durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// Mapped with `MAP_SYNC` on DAX: cache-line flushes (`clwb`/`clflushopt` + `sfence`) suffice.
    CacheFlush,
    /// Page-cache backed: `msync(MS_SYNC)` of the dirtied range is needed ([`crate::MappedObject::flush`]).
    Msync,
}

/// An owned `mmap` of `len` bytes of a file, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
    durability: Durability,
}

// SAFETY: the mapping is plain shared memory owned by this value; every access goes through raw
// copies, and other threads (or processes) touching it concurrently is its intended use.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` exposes no interior references, only copying accessors.
unsafe impl Sync for Mapping {}

/// Whether a mapping uses `MAP_SYNC`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapSync {
    /// Try `MAP_SYNC` for writable mappings; fall back to plain `MAP_SHARED` where refused.
    Try,
    /// Plain `MAP_SHARED` (the filesystem is known to refuse `MAP_SYNC`).
    Never,
    /// `MAP_SYNC` for every mapping, or fail (a store that must be on persistent memory).
    Require,
}

/// Why a mapping failed.
#[derive(Debug)]
pub enum MapError {
    /// `mmap` failed.
    Io(io::Error),
    /// [`MapSync::Require`] and the kernel refused `MAP_SYNC` (not a DAX filesystem).
    SyncRefused(io::Error),
}

impl Mapping {
    /// Maps the first `len` bytes of `file` shared, read-write when `writable`, with
    /// `MAP_SYNC` as `sync` says.
    pub fn new(
        file: &File,
        len: usize,
        writable: bool,
        sync: MapSync,
    ) -> Result<Mapping, MapError> {
        let try_sync = match sync {
            MapSync::Require => true,
            MapSync::Try => writable,
            MapSync::Never => false,
        };
        if try_sync {
            match Self::mmap(
                file,
                len,
                writable,
                libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC,
            ) {
                Ok(ptr) => {
                    return Ok(Mapping {
                        ptr,
                        len,
                        writable,
                        durability: Durability::CacheFlush,
                    })
                }
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)
                    ) =>
                {
                    if sync == MapSync::Require {
                        return Err(MapError::SyncRefused(e));
                    }
                }
                Err(e) => return Err(MapError::Io(e)),
            }
        }
        let ptr = Self::mmap(file, len, writable, libc::MAP_SHARED).map_err(MapError::Io)?;
        Ok(Mapping {
            ptr,
            len,
            writable,
            durability: Durability::Msync,
        })
    }

    fn mmap(
        file: &File,
        len: usize,
        writable: bool,
        flags: libc::c_int,
    ) -> io::Result<NonNull<u8>> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh mapping at an address the kernel picks; it aliases no Rust object.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, file.as_raw_fd(), 0) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))
    }

    /// Start of the mapping in this process.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length mapping (never produced by the store).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether stores are allowed.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// How stores become durable.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Copies `buf.len()` bytes at `offset` out; the caller has bounds-checked the range. (The
    /// store reads and writes through the file instead, see `MappedObject::read_at`; these two
    /// check in tests that the mapping and the file agree.)
    #[cfg(test)]
    pub(crate) fn copy_out(&self, offset: usize, buf: &mut [u8]) {
        debug_assert!(offset.checked_add(buf.len()).is_some_and(|e| e <= self.len));
        // SAFETY: offset+len lies inside the live mapping (checked by every caller); the
        // destination is a distinct Rust buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                buf.as_mut_ptr(),
                buf.len(),
            )
        }
    }

    /// Copies `data` in at `offset`; the caller has bounds-checked and checked writability.
    #[cfg(test)]
    pub(crate) fn copy_in(&self, offset: usize, data: &[u8]) {
        debug_assert!(
            self.writable
                && offset
                    .checked_add(data.len())
                    .is_some_and(|e| e <= self.len)
        );
        // SAFETY: the range lies inside a live PROT_WRITE mapping (checked by every caller); the
        // source is a distinct Rust buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(offset), data.len())
        }
    }

    /// Writes the pages covering `offset..offset+len` back to the file and waits (`MS_SYNC`).
    /// The range is clamped to the mapping.
    pub fn flush(&self, offset: usize, len: usize) -> io::Result<()> {
        let page = PAGE_SIZE as usize;
        let start = (offset.min(self.len) / page) * page;
        let end = offset.saturating_add(len).min(self.len);
        if end <= start {
            return Ok(());
        }
        // SAFETY: start is page aligned and start..end lies inside the live mapping.
        let rc = unsafe {
            libc::msync(
                self.ptr.as_ptr().add(start).cast(),
                end - start,
                libc::MS_SYNC,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned, and no reference into the mapping
        // outlives `self` (accessors copy).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_cache_files_fall_back_to_msync() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(1 << 20).unwrap();
        let m = Mapping::new(&f, 1 << 20, true, MapSync::Try).unwrap();
        assert_eq!(m.durability(), Durability::Msync);
        m.copy_in(4096 + 5, b"hello");
        m.flush(4096 + 5, 5).unwrap();
        m.flush(usize::MAX - 1, 10).unwrap(); // clamped, no error
        let mut buf = [0u8; 5];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, 4096 + 5).unwrap();
        assert_eq!(&buf, b"hello");
        let ro = Mapping::new(&f, 1 << 20, false, MapSync::Never).unwrap();
        assert!(matches!(
            Mapping::new(&f, 1 << 20, true, MapSync::Require),
            Err(MapError::SyncRefused(_))
        ));
        assert!(matches!(
            Mapping::new(&f, 1 << 20, false, MapSync::Require),
            Err(MapError::SyncRefused(_))
        ));
        assert!(!ro.is_writable());
        let mut b2 = [0u8; 5];
        ro.copy_out(4096 + 5, &mut b2);
        assert_eq!(&b2, b"hello");
    }
}
