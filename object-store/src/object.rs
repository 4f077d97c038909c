//! One object on disk: where its file lives, how a new one is created crash-safely, and how an
//! existing one is validated before anyone reads or maps it.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use abi::fot::FotEntry;
use abi::id::{ObjId, ID_DERIVATION_DOMAIN};
use abi::layout::{FOT_ENTRY_SIZE, FOT_OFFSET, FOT_SLOTS, META_OFFSET, OBJ_SIZE, PAGE_SIZE};
use abi::meta::ObjMeta;
use sha2::{Digest, Sha512};

use crate::error::{Result, StoreError};
use crate::fsutil;

/// File name extension of object files.
pub const OBJ_EXT: &str = ".obj";

/// The ID an object with this nonce and owner key must have (see [`abi::id`]).
pub fn derive_id(nonce: &[u8; 16], owner_key: &[u8; 32]) -> ObjId {
    let mut h = Sha512::new();
    h.update(ID_DERIVATION_DOMAIN);
    h.update(nonce);
    h.update(owner_key);
    let digest = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    ObjId(id)
}

/// The shard directory name of an ID: its first two hex digits.
pub fn shard_of(id: ObjId) -> String {
    id.to_string()[..2].to_string()
}

/// `objects/<shard>/<id>.obj` under `objects_dir`.
pub fn object_path(objects_dir: &Path, id: ObjId) -> PathBuf {
    objects_dir
        .join(shard_of(id))
        .join(format!("{id}{OBJ_EXT}"))
}

/// Creates the file of a new object with header `meta`, durably: temp file, sparse resize,
/// header write, fsync, rename, fsync of the shard directory. The caller holds the store's
/// exclusive lock and has checked the ID is free.
pub fn create_file(objects_dir: &Path, meta: &ObjMeta) -> Result<PathBuf> {
    let shard = objects_dir.join(shard_of(meta.id));
    fsutil::ensure_dir(&shard, 0o755)?;
    let tmp = fsutil::temp_path(&shard)?;
    let dst = object_path(objects_dir, meta.id);
    let result = (|| {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(StoreError::io(&tmp))?;
        f.set_len(OBJ_SIZE).map_err(StoreError::io(&tmp))?;
        f.write_all_at(&meta.to_bytes(), META_OFFSET)
            .map_err(StoreError::io(&tmp))?;
        f.sync_all().map_err(StoreError::io(&tmp))?;
        fs::rename(&tmp, &dst).map_err(StoreError::io(&dst))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    fsutil::fsync_dir(&shard)?;
    Ok(dst)
}

/// The first thing wrong with an object file's size or header, as a sentence; `Ok` gives the
/// validated header. `expected` is the ID the file's name claims. One `pread` of the metadata
/// page (one byte more, to see an oversized file) checks the size too; only a bad size costs
/// a `stat`, for the message.
pub fn check_header(file: &File, expected: ObjId) -> std::result::Result<ObjMeta, String> {
    let mut page = [0u8; PAGE_SIZE as usize + 1];
    let mut got = 0;
    // A regular file reads short only at its end: normally one call, 4096 bytes.
    while got < PAGE_SIZE as usize {
        match file.read_at(&mut page[got..], META_OFFSET + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read the metadata header: {e}")),
        }
    }
    if got != PAGE_SIZE as usize {
        let len = file
            .metadata()
            .map_err(|e| format!("cannot stat the object file: {e}"))?
            .len();
        let what = if got < PAGE_SIZE as usize {
            "truncated"
        } else {
            "oversized"
        };
        return Err(format!(
            "object file is {len} bytes, expected {OBJ_SIZE} ({what})"
        ));
    }
    let mut raw = [0u8; 256];
    raw.copy_from_slice(&page[..256]);
    let meta = ObjMeta::from_bytes(&raw);
    meta.validate().map_err(|e| e.to_string())?;
    if meta.id != expected {
        return Err(format!(
            "header holds ID {}, not the ID its file is named for",
            meta.id
        ));
    }
    if derive_id(&meta.nonce, &meta.owner_key) != meta.id {
        return Err(
            "ID does not match its nonce and owner key (header overwritten or key swapped)".into(),
        );
    }
    Ok(meta)
}

/// A validated object opened for reading with `pread` (no mapping, so a file truncated behind
/// our back gives an I/O error instead of `SIGBUS`). Used by inspection and `fsck`.
#[derive(Debug)]
pub struct ObjectFile {
    id: ObjId,
    path: PathBuf,
    file: File,
    meta: ObjMeta,
}

impl ObjectFile {
    /// Opens and validates the object `id` stored at `path`.
    pub fn open(path: &Path, id: ObjId) -> Result<ObjectFile> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchObject(id))
            }
            Err(e) => {
                return Err(StoreError::corrupt(
                    id,
                    format!("cannot open {}: {e}", path.display()),
                ))
            }
        };
        let meta = check_header(&file, id).map_err(|p| StoreError::corrupt(id, p))?;
        Ok(ObjectFile {
            id,
            path: path.to_path_buf(),
            file,
            meta,
        })
    }

    /// The object's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The header as validated at open.
    pub fn meta(&self) -> &ObjMeta {
        &self.meta
    }

    /// Reads `len` bytes at `offset` (must lie inside the object).
    pub fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        check_range(self.id, offset, len, "the object", 0, OBJ_SIZE)?;
        let n = usize::try_from(len)
            .map_err(|_| StoreError::corrupt(self.id, "read length too large"))?;
        let mut buf = vec![0u8; n];
        self.file.read_exact_at(&mut buf, offset).map_err(|e| {
            StoreError::corrupt(self.id, format!("read at {offset:#x} failed: {e}"))
        })?;
        Ok(buf)
    }

    /// Fills `buf` from `offset` (must lie inside the object).
    pub fn read_into(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(self.id, offset, buf.len() as u64, "the object", 0, OBJ_SIZE)?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| StoreError::corrupt(self.id, format!("read at {offset:#x} failed: {e}")))
    }

    /// The open file (for lock queries).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Every FOT slot, index 0 (unused) included, decoded but not checked.
    pub fn fot_slots(&self) -> Result<Vec<FotEntry>> {
        let raw = self.read(FOT_OFFSET, FOT_SLOTS as u64 * FOT_ENTRY_SIZE)?;
        Ok(raw
            .chunks_exact(FOT_ENTRY_SIZE as usize)
            .map(|c| {
                let mut b = [0u8; FOT_ENTRY_SIZE as usize];
                b.copy_from_slice(c);
                FotEntry::from_bytes(&b)
            })
            .collect())
    }
}

/// Fails with `OutOfBounds` unless `offset..offset+len` lies in `start..limit`.
pub fn check_range(
    id: ObjId,
    offset: u64,
    len: u64,
    region: &'static str,
    start: u64,
    limit: u64,
) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if offset >= start && end <= limit => Ok(()),
        _ => Err(StoreError::OutOfBounds {
            id,
            offset,
            len,
            region,
            start,
            limit,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_binds_nonce_and_key() {
        let a = derive_id(&[1; 16], &[2; 32]);
        assert_eq!(a, derive_id(&[1; 16], &[2; 32]));
        assert_ne!(a, derive_id(&[1; 16], &[3; 32]));
        assert_ne!(a, derive_id(&[0; 16], &[2; 32]));
    }

    #[test]
    fn ranges() {
        let id = ObjId::from_u128(1);
        assert!(check_range(id, 0, OBJ_SIZE, "x", 0, OBJ_SIZE).is_ok());
        assert!(check_range(id, 1, OBJ_SIZE, "x", 0, OBJ_SIZE).is_err());
        assert!(check_range(id, u64::MAX, 2, "x", 0, OBJ_SIZE).is_err());
        let e = check_range(id, 0, 4, "the data region", 0x1000, 0x2000).unwrap_err();
        assert!(e.to_string().contains("outside the data region"), "{e}");
    }
}
