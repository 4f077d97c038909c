//! An object mapped into this process: what the VMM hands to KVM as a memslot, and what host
//! tools use to write objects.
//!
//! Guests (and other processes) may store into the same file concurrently, so every accessor
//! copies bytes in or out; no Rust reference into the mapping is ever handed out. A writable
//! open holds the object's liveness lock ([`crate::liveness`]) for the mapping's lifetime.
//!
//! The mapping itself is made on first use when the open can tell its kind without trying
//! (read-only, or `MAP_SYNC` known to be refused): the VMM, which maps the object file into the
//! guest's window itself, then opens an object without a second 1 GiB `mmap` (and its `munmap`).

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use abi::fot::FotEntry;
use abi::id::ObjId;
use abi::layout::{
    fot_entry_offset, BASE_OFFSET, DATA_END, FOT_ENTRY_SIZE, LOG_OFFSET, META_OFFSET, OBJ_SIZE,
};
use abi::meta::ObjMeta;
use abi::txlog::{LogHeader, LOG_HEADER_SIZE};
use std::os::unix::fs::FileExt;

use crate::error::{Result, StoreError};
use crate::liveness::{self, Hold};
use crate::mapping::{Durability, MapError, MapSync, Mapping};
use crate::object::{check_header, check_range};

/// Byte offsets of header fields that host tools update in place.
const META_ALLOC_TOP: u64 = META_OFFSET + 96;
const META_FOT_LEN: u64 = META_OFFSET + 104;

/// How an object is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Loads only (`PROT_READ`).
    ReadOnly,
    /// Loads and stores.
    ReadWrite,
}

/// A validated object, mapped `MAP_SHARED` over its whole 1 GiB range.
#[derive(Debug)]
pub struct MappedObject {
    id: ObjId,
    path: PathBuf,
    file: File,
    /// Made at open, or on first use (see the module doc): [`MappedObject::map`].
    map: OnceLock<Mapping>,
    writable: bool,
    /// How a mapping made on first use is made.
    sync: MapSync,
    /// The liveness lock held (writable opens only).
    hold: Option<Hold>,
    /// See [`MappedObject::may_need_recovery`].
    may_need_recovery: bool,
}

/// Bytes of the log read at open: its header and the first entry's sequence number.
const LOG_HEAD: usize = LOG_HEADER_SIZE as usize + 8;

/// Whether an object with this header and log head may hold an unfinished transaction (or a
/// marker to follow). A damaged log header says yes, so recovery reports it.
fn recovery_hint(meta: &ObjMeta, log_head: &[u8; LOG_HEAD]) -> bool {
    let mut hb = [0u8; LOG_HEADER_SIZE as usize];
    hb.copy_from_slice(&log_head[..LOG_HEADER_SIZE as usize]);
    let mut first = [0u8; 8];
    first.copy_from_slice(&log_head[LOG_HEADER_SIZE as usize..]);
    match LogHeader::from_bytes(&hb).finished() {
        Ok(f) => u64::from_le_bytes(first) == f.wrapping_add(1) || !meta.tx_marker().is_clear(),
        Err(_) => true,
    }
}

/// Which liveness lock a writable open wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// Exclusive if free, else shared (a normal writable open).
    Any,
    /// Exclusive or nothing (recovery).
    Exclusive,
}

impl MappedObject {
    /// Opens the object file at `path`, validates it as object `id`, and maps it (with
    /// `MAP_SYNC` where the filesystem allows it). A writable open holds the liveness lock
    /// (see [`crate::liveness`]); this does not recover anything: [`crate::Store::open_object`]
    /// does.
    pub fn open(path: &Path, id: ObjId, access: Access) -> Result<MappedObject> {
        Self::open_with(path, id, access, Want::Any, MapSync::Try)?.ok_or(StoreError::InUse(id))
    }

    /// [`MappedObject::open`] choosing the lock and `MAP_SYNC`; `None` if `Want::Exclusive`
    /// cannot be had. Syscalls on the common path: open, flock, two `pread`s (metadata page,
    /// log header), and mmap unless the mapping can wait for first use.
    pub(crate) fn open_with(
        path: &Path,
        id: ObjId,
        access: Access,
        want: Want,
        sync: MapSync,
    ) -> Result<Option<MappedObject>> {
        let file = match OpenOptions::new()
            .read(true)
            .write(access == Access::ReadWrite)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchObject(id))
            }
            Err(e) => {
                return Err(StoreError::Io {
                    path: path.to_path_buf(),
                    error: e,
                })
            }
        };
        let hold = match (access, want) {
            (Access::ReadOnly, _) => None,
            (Access::ReadWrite, Want::Any) => {
                Some(liveness::acquire(&file).map_err(StoreError::io(path))?)
            }
            (Access::ReadWrite, Want::Exclusive) => {
                if !liveness::try_exclusive(&file).map_err(StoreError::io(path))? {
                    return Ok(None);
                }
                Some(Hold::Exclusive)
            }
        };
        let meta = check_header(&file, id).map_err(|p| StoreError::corrupt(id, p))?;
        let mut log_head = [0u8; LOG_HEAD];
        file.read_exact_at(&mut log_head, LOG_OFFSET)
            .map_err(|e| StoreError::corrupt(id, format!("cannot read the log header: {e}")))?;
        let writable = access == Access::ReadWrite;
        let map = OnceLock::new();
        // Only an attempt tells whether MAP_SYNC works, and a store that requires it must fail
        // here: those map now. Everything else is a plain MAP_SHARED mapping, made when needed.
        let lazy = match sync {
            MapSync::Never => true,
            MapSync::Try => !writable,
            MapSync::Require => false,
        };
        if !lazy {
            let m =
                Mapping::new(&file, OBJ_SIZE as usize, writable, sync).map_err(|e| match e {
                    MapError::Io(e) => {
                        StoreError::corrupt(id, format!("cannot map {}: {e}", path.display()))
                    }
                    MapError::SyncRefused(e) => StoreError::NotPmem {
                        path: path.to_path_buf(),
                        reason: e.to_string(),
                    },
                })?;
            let _ = map.set(m);
        }
        Ok(Some(MappedObject {
            id,
            path: path.to_path_buf(),
            file,
            map,
            writable,
            sync: if lazy { MapSync::Never } else { sync },
            hold,
            may_need_recovery: recovery_hint(&meta, &log_head),
        }))
    }

    /// The mapping, made now if the open left it for first use.
    fn map(&self) -> Result<&Mapping> {
        if let Some(m) = self.map.get() {
            return Ok(m);
        }
        let m =
            Mapping::new(&self.file, OBJ_SIZE as usize, self.writable, self.sync).map_err(|e| {
                let error = match e {
                    MapError::Io(e) | MapError::SyncRefused(e) => e,
                };
                StoreError::Io {
                    path: self.path.clone(),
                    error,
                }
            })?;
        // A racing first use may have set it meanwhile: then `m` is simply unmapped again.
        Ok(self.map.get_or_init(|| m))
    }

    /// False when the header and log read at open show nothing to recover: no transaction
    /// entries after the last finished one, and no pending-transaction marker.
    pub(crate) fn may_need_recovery(&self) -> bool {
        self.may_need_recovery
    }

    /// The liveness lock this open holds (`None` for read-only opens).
    pub fn hold(&self) -> Option<Hold> {
        self.hold
    }

    /// Lets other writers in once recovery is done.
    pub(crate) fn downgrade(&mut self) -> Result<()> {
        if self.hold == Some(Hold::Exclusive) {
            liveness::downgrade(&self.file).map_err(StoreError::io(&self.path))?;
            self.hold = Some(Hold::Shared);
        }
        Ok(())
    }

    /// The object's ID.
    pub fn id(&self) -> ObjId {
        self.id
    }

    /// The object's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Host address of the mapping, made now if needed; null if it cannot be made.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map().map_or(std::ptr::null_mut(), Mapping::as_ptr)
    }

    /// Length of the mapping: always `OBJ_SIZE`.
    pub fn len(&self) -> u64 {
        self.map.get().map_or(OBJ_SIZE, |m| m.len() as u64)
    }

    /// Always false: objects are never empty mappings.
    pub fn is_empty(&self) -> bool {
        self.map.get().is_some_and(Mapping::is_empty)
    }

    /// Whether the mapping accepts stores (decides a read-only memslot).
    pub fn is_writable(&self) -> bool {
        self.map.get().map_or(self.writable, Mapping::is_writable)
    }

    /// What it takes to make stores durable. A mapping left for first use is a plain
    /// `MAP_SHARED` one: `Msync`.
    pub fn durability(&self) -> Durability {
        self.map
            .get()
            .map_or(Durability::Msync, Mapping::durability)
    }

    /// True when the mapping is synchronous (`MAP_SYNC` on persistent memory): a guest makes
    /// its stores durable with `clwb` + `sfence`, no flush request to the VMM needed.
    pub fn is_synchronous(&self) -> bool {
        self.durability() == Durability::CacheFlush
    }

    /// The current header (guests update `alloc_top` and `fot_len` in place), read from the
    /// file (`pread`: the same page cache as every mapping); all zeros (an invalid header) if
    /// that fails.
    pub fn meta(&self) -> ObjMeta {
        let mut raw = [0u8; 256];
        if self.file.read_exact_at(&mut raw, META_OFFSET).is_err() {
            raw = [0; 256];
        }
        ObjMeta::from_bytes(&raw)
    }

    /// Copies bytes at `offset` into `buf`.
    ///
    /// Reads and writes of single ranges go through the file (`pread`/`pwrite`, the same page
    /// cache as every mapping) rather than a mapping: when the filesystem is full, touching a
    /// page a mapping has not backed yet raises `SIGBUS` (tmpfs even on a read), while the
    /// system calls just fail with `ENOSPC`.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(self.id, offset, buf.len() as u64, "the object", 0, OBJ_SIZE)?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(StoreError::io(&self.path))
    }

    /// Stores `data` at `offset`, anywhere past the null page. Not durable until [`flush`](Self::flush).
    /// `ENOSPC` comes back as an error (see [`read_at`](Self::read_at)).
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        if !self.is_writable() {
            return Err(StoreError::ReadOnly(self.id));
        }
        check_range(
            self.id,
            offset,
            data.len() as u64,
            "the object past its null page",
            BASE_OFFSET,
            OBJ_SIZE,
        )?;
        self.file
            .write_all_at(data, offset)
            .map_err(StoreError::io(&self.path))
    }

    /// Stores `data` in the data region and raises `alloc_top` to cover it.
    pub fn write_data(&self, offset: u64, data: &[u8]) -> Result<()> {
        check_range(
            self.id,
            offset,
            data.len() as u64,
            "the data region",
            BASE_OFFSET,
            DATA_END,
        )?;
        self.write_at(offset, data)?;
        let end = offset + data.len() as u64;
        if end > self.meta().alloc_top {
            self.write_at(META_ALLOC_TOP, &end.to_le_bytes())?;
        }
        Ok(())
    }

    /// FOT entry `index` (1..=`FOT_MAX_INDEX`), decoded but not checked.
    pub fn fot_entry(&self, index: u32) -> Result<FotEntry> {
        let off = fot_entry_offset(index).ok_or(StoreError::BadFotIndex { id: self.id, index })?;
        let mut raw = [0u8; FOT_ENTRY_SIZE as usize];
        self.read_at(off, &mut raw)?;
        Ok(FotEntry::from_bytes(&raw))
    }

    /// Sets FOT entry `index` and raises `fot_len` past it. Ordered for a crash at any point
    /// (as the guest runtime does): `fot_len` first, then the entry with its flags word last, so
    /// a crash never leaves a live entry past `fot_len` or a torn live one.
    pub fn set_fot_entry(&self, index: u32, entry: &FotEntry) -> Result<()> {
        let off = fot_entry_offset(index).ok_or(StoreError::BadFotIndex { id: self.id, index })?;
        if index >= self.meta().fot_len {
            self.write_at(META_FOT_LEN, &(index + 1).to_le_bytes())?;
        }
        let mut bytes = entry.to_bytes();
        bytes[abi::fot::FLAGS_OFFSET..abi::fot::FLAGS_OFFSET + 4].fill(0);
        self.write_at(off, &bytes)?;
        self.write_at(
            off + abi::fot::FLAGS_OFFSET as u64,
            &entry.flags.to_le_bytes(),
        )
    }

    /// Allocates the file's blocks for `offset..offset+len` (`fallocate`, size unchanged), so
    /// that later stores through any mapping cannot fail for want of space. A filesystem that
    /// cannot allocate ahead (`EOPNOTSUPP`) is left as it is: stores allocate as they go there.
    pub fn reserve(&self, offset: u64, len: u64) -> Result<()> {
        if !self.is_writable() {
            return Err(StoreError::ReadOnly(self.id));
        }
        check_range(self.id, offset, len, "the object", 0, OBJ_SIZE)?;
        // Both fit in i64: the range lies inside a 1 GiB object.
        // SAFETY: fallocate on our own descriptor; it changes no byte the object reads.
        let rc = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                0,
                offset as libc::off_t,
                len as libc::off_t,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EOPNOTSUPP) => Ok(()),
            _ => Err(StoreError::io(&self.path)(error)),
        }
    }

    /// Makes stores to `offset..offset+len` durable (`msync(MS_SYNC)` of the covering pages).
    pub fn flush(&self, offset: u64, len: u64) -> Result<()> {
        check_range(self.id, offset, len, "the object", 0, OBJ_SIZE)?;
        self.map()?
            .flush(offset as usize, len as usize)
            .map_err(StoreError::io(&self.path))
    }
}

impl AsFd for MappedObject {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// The transaction log's view of this one object (the host side of [`abi::txlog`]): flushes
/// are synchronous `msync`s, so `fence` has nothing left to wait for.
impl abi::txlog::ObjectMemory for MappedObject {
    type Error = StoreError;

    #[inline]
    fn read(&mut self, obj: ObjId, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.same(obj)?;
        self.read_at(offset, buf)
    }

    #[inline]
    fn write(&mut self, obj: ObjId, offset: u64, data: &[u8]) -> Result<()> {
        self.same(obj)?;
        self.write_at(offset, data)
    }

    fn flush(&mut self, obj: ObjId, offset: u64, len: u64) -> Result<()> {
        self.same(obj)?;
        MappedObject::flush(self, offset, len)
    }

    fn fence(&mut self) -> Result<()> {
        Ok(())
    }
}

impl MappedObject {
    #[inline]
    fn same(&self, obj: ObjId) -> Result<()> {
        if obj == self.id {
            Ok(())
        } else {
            Err(StoreError::NotMapped(obj))
        }
    }
}
