//! The twz persistent object space on the host: objects, names, keys, durability, `fsck` and
//! read-only inspection.
//!
//! ```
//! use object_store::{Access, CreateOptions, Store};
//!
//! # fn main() -> Result<(), object_store::StoreError> {
//! let dir = tempfile::tempdir().expect("temp dir");
//! let store = Store::open(dir.path().join("store"))?;          // created on first use
//! let id = store.create(&CreateOptions::default().named("greeting"))?;
//!
//! let obj = store.open_object(id, Access::ReadWrite)?;         // MAP_SHARED, 1 GiB, sparse
//! obj.write_data(0x1000, b"hello, persistent world")?;        // data starts after the null page
//! obj.flush(0x1000, 23)?;                                      // durable now
//! drop(obj);
//!
//! let again = Store::open(dir.path().join("store"))?;
//! let obj = again.open_object(again.resolve("greeting")?, Access::ReadOnly)?;
//! let mut buf = [0u8; 23];
//! obj.read_at(0x1000, &mut buf)?;
//! assert_eq!(&buf, b"hello, persistent world");
//! assert_eq!(again.list_objects()?[0].size_in_use, Some(23));
//! assert!(again.fsck()?.is_clean());
//! # Ok(())
//! # }
//! ```
//!
//! # On-disk layout (store format version 1)
//!
//! ```text
//! <store>/
//! ├── FORMAT                 "twz-store\nversion 1\n", written last at init; other versions refused
//! ├── lock                   flock(2) target: exclusive for create/rm/bind/key gen, shared for reads
//! ├── keys/                  (0700)
//! │   ├── default.secret     Ed25519 seed, 64 hex + "\n", mode 0600
//! │   └── default.pub        Ed25519 public key, 64 hex + "\n"
//! ├── journal/               flush journals of durable runs (journal.rs), settled at open
//! ├── revoked/               <32 hex> empty files: revoked capability references (abi::cap)
//! ├── names/
//! │   └── <name>             "<32 hex ID>\n"; one file per name, replaced by temp + rename
//! └── objects/
//!     └── <ab>/              shard: the ID's first two hex digits
//!         └── <ab…32 hex>.obj   sparse file of exactly OBJ_SIZE (1 GiB):
//!
//!     0x0000_0000  +----------------------+  null page
//!     0x0000_1000  +----------------------+  BASE_OFFSET: data, in use up to alloc_top
//!                  |         ...          |
//!     LOG_OFFSET   +----------------------+  transaction log (abi::txlog)
//!     FOT_OFFSET   +----------------------+  FOT: 8192 x 128-byte entries (abi::fot)
//!     META_OFFSET  +----------------------+  ObjMeta header (abi::meta), rest of page zero
//!     0x4000_0000  +----------------------+
//! ```
//!
//! Temp files (`.tmp.<pid>.<random>`) live beside their destination so the final `rename` is
//! atomic; a crash can leave one behind, and `fsck` reports it. An object's ID is the first 16
//! bytes of `SHA-512("twz-object-id-v1" || nonce || owner public key)`, so the header's key
//! cannot be swapped without the ID (and the file name) ceasing to match. The header holds no
//! checksum on purpose: guests update `alloc_top`, `fot_len` and FOT entries in place.
//!
//! # Persistent memory
//! On a DAX filesystem (`mkfs.ext4 /dev/pmem0 && mount -o dax /dev/pmem0 /mnt/pmem`; or
//! xfs), [`Store::open_pmem`] (`twz-vmm --pmem /mnt/pmem/store ...`) maps every object
//! `MAP_SHARED_VALIDATE | MAP_SYNC`: the page tables point at the media, so a guest's
//! `clwb` + `sfence` makes its stores durable without asking the VMM for an `msync`
//! ([`MappedObject::is_synchronous`]). Where the kernel refuses `MAP_SYNC` it fails with
//! [`StoreError::NotPmem`] and creates nothing. [`Store::open`] tries `MAP_SYNC` once and
//! falls back to `msync`-backed mappings.
//!
//! # Concurrency
//! Metadata changes serialise on the store lock; mapped objects hold no store lock, so several
//! VMMs can map objects at once. A writable open holds a shared `flock` on the object file (its
//! liveness lock) and recovers an unfinished transaction only when it can take that lock
//! exclusively, so a live writer in another process is never rolled back under its feet. Removing an object that someone has mapped unlinks the file; the mapping
//! stays valid until unmapped. Truncating an object file behind a mapping's back makes touching
//! the lost range raise `SIGBUS`, so inspection reads with `pread`, never through a mapping.

mod cap;
mod error;
mod format;
mod fsck;
mod fsutil;
mod heap;
mod inspect;
mod journal;
mod keys;
mod liveness;
mod lock;
mod mapped;
mod mapping;
mod names;
mod object;
mod raw;
mod recovery;
mod store;

use std::ffi::OsString;
use std::path::PathBuf;

pub use cap::{context_id, CapCache, CapChain, CapError, Grant, Verified};
pub use error::{Result, StoreError};
pub use format::STORE_VERSION;
pub use fsck::{FsckReport, Problem, Subject};
pub use heap::{FreeClass, HeapView};
pub use inspect::{
    parse_perms, perms_string, FotRow, HeaderView, ObjectInfo, ObjectReport, MAX_DUMP_LEN,
};
pub use journal::{
    record_size as journal_record_size, replay, settle, Journal, JournalStats, SettleReport,
    JOURNAL_BATCH_MAX, JOURNAL_CAPACITY, JOURNAL_DIR, JOURNAL_RANGE_MAX,
};
pub use keys::{validate_key_name, KeyEntry, Keys, DEFAULT_KEY};
pub use liveness::Hold;
pub use lock::{LockMode, StoreLock};
pub use mapped::{Access, MappedObject};
pub use mapping::Durability;
pub use names::{validate_name, NameEntry, Names};
pub use object::derive_id;
pub use raw::{is_raw, kind_of, ImportOptions, Imported, MAX_RAW_LEN};
pub use recovery::{MarkerAction, MarkerReport, RecoveryReport, TxView};
pub use store::{now_ns, CreateOptions, ObjectScan, Store};

/// The store used when neither `--store` nor `$TWZ_STORE` is given:
/// `$XDG_DATA_HOME/twz/store`, else `$HOME/.local/share/twz/store`, else `./twz-store`.
pub fn default_store_dir() -> PathBuf {
    store_dir_from(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))
}

/// [`default_store_dir`] for given values of `$XDG_DATA_HOME` and `$HOME`; relative or empty
/// values are ignored, as the XDG base directory specification asks.
fn store_dir_from(xdg_data_home: Option<OsString>, home: Option<OsString>) -> PathBuf {
    let absolute = |v: Option<OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(d) = absolute(xdg_data_home) {
        d.join("twz").join("store")
    } else if let Some(h) = absolute(home) {
        h.join(".local/share/twz/store")
    } else {
        PathBuf::from("twz-store")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_store_follows_xdg_then_home() {
        let s =
            |x: Option<&str>, h: Option<&str>| store_dir_from(x.map(Into::into), h.map(Into::into));
        assert_eq!(s(Some("/x"), Some("/h")), PathBuf::from("/x/twz/store"));
        assert_eq!(
            s(Some("rel"), Some("/h")),
            PathBuf::from("/h/.local/share/twz/store")
        );
        assert_eq!(s(Some(""), None), PathBuf::from("twz-store"));
    }
}
