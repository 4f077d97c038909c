//! placeholder
use std::path::PathBuf;

/// The store used when neither `--store` nor `$TWZ_STORE` is given.
pub fn default_store_dir() -> PathBuf {
    PathBuf::from("twz-store")
}
