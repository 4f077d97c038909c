//! Set-up shared by the benchmarks.

use object_store::Store;
use tempfile::TempDir;

/// A fresh temp dir under the target directory (on the local disk, not tmpfs).
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("twz-bench")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir")
}

/// A fresh store in a [`temp_dir`]. Keep the `TempDir` alive for as long as the store is used.
#[allow(dead_code)] // not every benchmark needs a store
pub fn temp_store() -> (TempDir, Store) {
    let dir = temp_dir();
    let store = Store::open(dir.path().join("store")).expect("store");
    (dir, store)
}
