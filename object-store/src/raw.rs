//! Byte-stream ("raw") objects: an ordinary file kept in an object, as `obj import`/`obj export`
//! and the guest's SQLite VFS share them. The format:
//!
//! - the header's flags have [`abi::meta::flags::RAW`] set;
//! - the file's bytes lie at `BASE_OFFSET..alloc_top`, so its length is
//!   `alloc_top - BASE_OFFSET`, at most [`MAX_RAW_LEN`];
//! - there is no persistent allocator and the FOT is empty, so `fsck` checks neither heap nor
//!   base struct, only the header, the transaction log and the FOT.
//!
//! An import writes the whole object (data, then header) into a temp file beside its final
//! place, `fsync`s it and renames it in under the store lock; only then is the name bound. A
//! crash leaves the old state plus, at worst, a stray temp file (`fsck` reports it) or a
//! complete unnamed object.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use abi::id::ObjId;
use abi::layout::{BASE_OFFSET, DATA_END, META_OFFSET, OBJ_SIZE};
use abi::meta::{flags, ObjMeta};

use crate::error::{Result, StoreError};
use crate::fsutil;
use crate::inspect::{fot_problems, Directory};
use crate::lock::LockMode;
use crate::names::validate_name;
use crate::object::{object_path, shard_of, ObjectFile};
use crate::store::{now_ns, Store};

/// The largest byte stream one object holds: its whole data region.
pub const MAX_RAW_LEN: u64 = DATA_END - BASE_OFFSET;

/// Bytes copied per read or write.
const CHUNK: usize = 1 << 20;

/// What [`Store::import_raw`] makes.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The name to bind to the new object.
    pub name: String,
    /// The owner key (by name in this store).
    pub key: String,
    /// Rebind `name` if it is bound already, then remove the object it named (unless another
    /// name still refers to it).
    pub replace: bool,
}

impl ImportOptions {
    /// Import as `name`, owned by the default key, refusing a bound name.
    pub fn named(name: &str) -> Self {
        ImportOptions {
            name: name.into(),
            key: crate::keys::DEFAULT_KEY.into(),
            replace: false,
        }
    }
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The new object.
    pub id: ObjId,
    /// Bytes imported.
    pub len: u64,
    /// The object the name was bound to before (`--replace`), and whether it was removed
    /// (`false`: another name still refers to it, so it was kept).
    pub replaced: Option<(ObjId, bool)>,
}

/// What kind of object a header describes, as listings show it.
pub fn kind_of(meta: &ObjMeta) -> &'static str {
    if is_raw(meta) {
        "raw"
    } else {
        "structured"
    }
}

/// True for a byte-stream object.
pub fn is_raw(meta: &ObjMeta) -> bool {
    meta.flags & flags::RAW != 0
}

impl Store {
    /// Imports the file at `path` (`-`: standard input) as a new raw object. A file larger
    /// than [`MAX_RAW_LEN`], a bound name without `replace`, or a missing key fail before
    /// anything is created.
    pub fn import_raw_file(&self, opts: &ImportOptions, path: &Path) -> Result<Imported> {
        if path == Path::new("-") {
            return self.import_raw(opts, &mut std::io::stdin().lock(), None, path);
        }
        let mut f = File::open(path).map_err(StoreError::io(path))?;
        let meta = f.metadata().map_err(StoreError::io(path))?;
        if meta.is_dir() {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                error: std::io::Error::new(ErrorKind::IsADirectory, "is a directory"),
            });
        }
        let known = meta.is_file().then_some(meta.len());
        self.import_raw(opts, &mut f, known, path)
    }

    /// Imports the bytes `src` yields as a new raw object bound to `opts.name`. `known_len`
    /// (a regular file's size) lets an oversized source fail before anything is written;
    /// `label` names the source in errors.
    pub fn import_raw(
        &self,
        opts: &ImportOptions,
        src: &mut dyn Read,
        known_len: Option<u64>,
        label: &Path,
    ) -> Result<Imported> {
        validate_name(&opts.name)?;
        let owner = self.public_key(&opts.key)?;
        if let Some(len) = known_len.filter(|&l| l > MAX_RAW_LEN) {
            return Err(too_large(label, len));
        }
        if !opts.replace {
            self.refuse_bound(&opts.name)?;
        }
        // The copy runs without the store lock (standard input may take its time); the ID is
        // checked again under the lock before the rename.
        let (nonce, id) = self.new_identity(&owner)?;
        let shard = self.objects_dir().join(shard_of(id));
        fsutil::ensure_dir(&shard, 0o755)?;
        let tmp = fsutil::temp_path(&shard)?;
        let mut meta = ObjMeta::new(id, nonce, owner.to_bytes(), now_ns());
        meta.flags |= flags::RAW;
        let written = write_object(&tmp, &mut meta, src, label);
        let result = written.and_then(|(held, len)| self.commit(opts, &tmp, held, id, len));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Fails with `NameTaken` if `name` is bound.
    fn refuse_bound(&self, name: &str) -> Result<()> {
        match self.lookup(name)? {
            Some(id) => Err(StoreError::NameTaken {
                name: name.into(),
                id,
            }),
            None => Ok(()),
        }
    }

    /// Moves the finished temp object into place and binds its name, under the store lock.
    fn commit(
        &self,
        opts: &ImportOptions,
        tmp: &Path,
        held: File,
        id: ObjId,
        len: u64,
    ) -> Result<Imported> {
        let _lock = self.lock(LockMode::Exclusive)?;
        // The store lock keeps `Store::remove_stray_temps` away from here on.
        drop(held);
        if !opts.replace {
            self.refuse_bound(&opts.name)?;
        }
        let old = self.lookup(&opts.name)?;
        let dst = object_path(&self.objects_dir(), id);
        if dst.exists() {
            // A 128-bit collision with an object created meanwhile: vanishingly unlikely.
            return Err(StoreError::corrupt(
                id,
                "an object with this new ID appeared",
            ));
        }
        fs::rename(tmp, &dst).map_err(StoreError::io(&dst))?;
        if let Some(shard) = dst.parent() {
            fsutil::fsync_dir(shard)?;
        }
        self.names().rebind(&opts.name, id)?;
        let replaced = match old {
            Some(old) if old != id => {
                let still_named = !self.names().names_of(old)?.is_empty();
                if !still_named && self.contains(old) {
                    self.remove_file_locked(old)?;
                }
                Some((old, !still_named))
            }
            _ => None,
        };
        Ok(Imported { id, len, replaced })
    }

    /// Writes raw object `id`'s bytes to `out`; returns how many. Validates first: the object
    /// must be undamaged and raw; an unfinished transaction nobody runs is recovered (as any
    /// open does), one in progress elsewhere is refused.
    pub fn export_raw(&self, id: ObjId, out: &mut dyn Write) -> Result<u64> {
        let (obj, len) = self.raw_source(id)?;
        copy_out(&obj, len, out, Path::new("-"))
    }

    /// [`Store::export_raw`] into `dest` atomically (temp file beside it, `fsync`, rename):
    /// a failed export leaves an existing `dest` untouched.
    pub fn export_raw_file(&self, id: ObjId, dest: &Path) -> Result<u64> {
        let (obj, len) = self.raw_source(id)?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = fsutil::temp_path(&dir)?;
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&tmp)
                .map_err(StoreError::io(&tmp))?;
            let n = copy_out(&obj, len, &mut f, &tmp)?;
            f.sync_all().map_err(StoreError::io(&tmp))?;
            fs::rename(&tmp, dest).map_err(StoreError::io(dest))?;
            Ok(n)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        let n = result?;
        fsutil::fsync_dir(&dir)?;
        Ok(n)
    }

    /// Opens raw object `id` for export after checking it; gives the file and data length.
    fn raw_source(&self, id: ObjId) -> Result<(ObjectFile, u64)> {
        let path = self.object_path(id);
        let mut obj = ObjectFile::open(&path, id)?;
        if !is_raw(obj.meta()) {
            return Err(StoreError::NotRaw {
                id,
                kind: kind_of(obj.meta()),
            });
        }
        let log = self.tx_view(id)?;
        if let Some(p) = log.problem {
            return Err(StoreError::corrupt(
                id,
                format!("damaged transaction log: {p}"),
            ));
        }
        if log.needs_recovery() {
            self.recover(id)?;
            // Recovery may have rolled the header (and so the length) back.
            obj = ObjectFile::open(&path, id)?;
        } else if log.pending.is_some() || matches!(log.marker, Some((_, _, true))) {
            return Err(StoreError::InUse(id));
        }
        let problems = fot_problems(&Directory::load(self)?.fot_rows(self, &obj)?);
        if let Some(p) = problems.into_iter().next() {
            return Err(StoreError::corrupt(id, p));
        }
        let len = obj.meta().alloc_top - BASE_OFFSET;
        Ok((obj, len))
    }
}

fn too_large(label: &Path, len: u64) -> StoreError {
    StoreError::TooLarge {
        file: label.to_path_buf(),
        len,
        max: MAX_RAW_LEN,
    }
}

/// Creates the complete object file at `tmp`: sparse 1 GiB, `src`'s bytes at `BASE_OFFSET`
/// (all-zero chunks left as holes), then the header with `alloc_top` set, then `fsync`.
/// Writes the object into temp file `tmp`; returns the file, locked (`flock`) so that
/// `Store::remove_stray_temps` leaves it alone however long `src` takes, and the length.
fn write_object(
    tmp: &Path,
    meta: &mut ObjMeta,
    src: &mut dyn Read,
    label: &Path,
) -> Result<(File, u64)> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(tmp)
        .map_err(StoreError::io(tmp))?;
    crate::liveness::try_exclusive(&f).map_err(StoreError::io(tmp))?;
    f.set_len(OBJ_SIZE).map_err(StoreError::io(tmp))?;
    let mut buf = vec![0u8; CHUNK];
    let mut len = 0u64;
    loop {
        let n = read_full(src, &mut buf).map_err(StoreError::io(label))?;
        if n == 0 {
            break;
        }
        let end = len + n as u64;
        if end > MAX_RAW_LEN {
            return Err(too_large(label, end));
        }
        if buf[..n].iter().any(|&b| b != 0) {
            f.write_all_at(&buf[..n], BASE_OFFSET + len)
                .map_err(StoreError::io(tmp))?;
        }
        len = end;
        if n < buf.len() {
            break;
        }
    }
    meta.alloc_top = BASE_OFFSET + len;
    f.write_all_at(&meta.to_bytes(), META_OFFSET)
        .map_err(StoreError::io(tmp))?;
    f.sync_all().map_err(StoreError::io(tmp))?;
    Ok((f, len))
}

/// Reads until `buf` is full or the source ends; returns the bytes read.
fn read_full(src: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match src.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Copies the data region's first `len` bytes of `obj` to `out` (`label` names it in errors).
fn copy_out(obj: &ObjectFile, len: u64, out: &mut dyn Write, label: &Path) -> Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(CHUNK as u64) as usize;
        obj.read_into(BASE_OFFSET + done, &mut buf[..n])?;
        out.write_all(&buf[..n]).map_err(StoreError::io(label))?;
        done += n as u64;
    }
    out.flush().map_err(StoreError::io(label))?;
    Ok(done)
}
