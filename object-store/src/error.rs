//! The one error type of the store: every message names its subject (object, name, key or
//! path) and the problem in one line, so the CLI can print it as is.

use std::path::PathBuf;

use abi::id::ObjId;

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O operation on a store path failed. The OS error is part of the message and
    /// deliberately not a `source`, so an `anyhow` chain (`{:#}`) prints it once.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The store path exists but is not a directory.
    #[error("store {}: not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// The directory holds other things and no store format marker.
    #[error("store {}: not a twz store (no FORMAT marker) and not empty; refusing to use it", .0.display())]
    NotAStore(PathBuf),
    /// The format marker is unreadable.
    #[error("store {}: bad FORMAT marker ({reason})", path.display())]
    BadFormatMarker {
        /// The store directory.
        path: PathBuf,
        /// What is wrong with the marker.
        reason: String,
    },
    /// The store was written by a newer or unknown version of twz.
    #[error("store {}: unsupported store format version {found} (this build reads version {supported})", path.display())]
    UnsupportedVersion {
        /// The store directory.
        path: PathBuf,
        /// Version found in the marker.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// No object with this ID exists.
    #[error("object {0}: no such object")]
    NoSuchObject(ObjId),
    /// The object's file is damaged or is not a twz object.
    #[error("object {subject}: {problem}")]
    Corrupt {
        /// The object ID, or the file name when the ID cannot be known.
        subject: String,
        /// What is wrong.
        problem: String,
    },
    /// `OBJ` was neither a bound name nor an ID.
    #[error("no object named {0:?} (and it is not a 32-hex-digit object ID)")]
    NoSuchName(String),
    /// A name that cannot be stored.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// The name is already bound.
    #[error("name {name:?} is already bound to object {id}")]
    NameTaken {
        /// The name.
        name: String,
        /// The object it names.
        id: ObjId,
    },
    /// The name file is damaged.
    #[error("name {name:?}: {problem}")]
    BadNameFile {
        /// The name.
        name: String,
        /// What is wrong with its file.
        problem: String,
    },
    /// No key of this name exists.
    #[error("key {0:?}: no such key")]
    NoSuchKey(String),
    /// A key of this name already exists.
    #[error("key {0:?}: already exists")]
    KeyExists(String),
    /// A key file is damaged.
    #[error("key {name:?}: {problem}")]
    BadKey {
        /// The key name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// A byte range outside what the operation allows.
    #[error("object {id}: range {offset:#x}..{end:#x} is outside {region} ({start:#x}..{limit:#x})", end = .offset.saturating_add(*.len))]
    OutOfBounds {
        /// The object.
        id: ObjId,
        /// Start of the requested range.
        offset: u64,
        /// Length of the requested range.
        len: u64,
        /// Which region the range must lie in.
        region: &'static str,
        /// Start of that region.
        start: u64,
        /// End of that region (exclusive).
        limit: u64,
    },
    /// A FOT index outside `1..=FOT_MAX_INDEX`.
    #[error("object {id}: FOT index {index} is outside 1..={max}", max = abi::layout::FOT_MAX_INDEX)]
    BadFotIndex {
        /// The object.
        id: ObjId,
        /// The rejected index.
        index: u32,
    },
    /// A write through a read-only mapping.
    #[error("object {0}: opened read-only")]
    ReadOnly(ObjId),
    /// Another process has the object open for writing, so its log may belong to a live
    /// transaction.
    #[error(
        "object {0}: transaction in progress (open for writing in another process); not recovered"
    )]
    InUse(ObjId),
    /// Another process (a running guest) has the object open for writing, so it is not deleted.
    #[error("object {0}: open for writing in another process; not deleted")]
    Busy(ObjId),
    /// Transaction memory named an object that is not part of the operation.
    #[error("object {0}: not mapped here")]
    NotMapped(ObjId),
    /// A store that must be on persistent memory is not: the kernel refused `MAP_SYNC`.
    #[error("{} is not on a DAX filesystem: MAP_SYNC is refused ({reason}); use --store for a file-backed store", path.display())]
    NotPmem {
        /// The store directory or object file.
        path: PathBuf,
        /// The kernel's answer.
        reason: String,
    },
    /// `obj export` of an object that is not a byte stream.
    #[error("object {id}: it is a {kind} object, not a raw byte stream; only raw objects (made by `obj import` or the guest's SQLite VFS) can be exported")]
    NotRaw {
        /// The object.
        id: ObjId,
        /// What it is instead.
        kind: &'static str,
    },
    /// An import source that does not fit in one object's data region.
    #[error("{}: {len} bytes do not fit in an object's data region (at most {max} bytes); nothing was imported", file.display())]
    TooLarge {
        /// The file (or `-` for standard input).
        file: PathBuf,
        /// Its size, or the bytes read before giving up.
        len: u64,
        /// The data region's size.
        max: u64,
    },
    /// Another process holds the store lock and the caller asked not to wait.
    #[error("store {}: locked by another process", .0.display())]
    Locked(PathBuf),
}

impl StoreError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |error| StoreError::Io { path, error }
    }

    /// True for a full filesystem (or quota).
    pub fn is_no_space(&self) -> bool {
        matches!(self, StoreError::Io { error, .. }
            if matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)))
    }

    /// An integrity problem of an object.
    pub(crate) fn corrupt(subject: impl ToString, problem: impl ToString) -> StoreError {
        StoreError::Corrupt {
            subject: subject.to_string(),
            problem: problem.to_string(),
        }
    }
}
