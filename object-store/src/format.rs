//! The store format marker: `<store>/FORMAT`, two text lines, `twz-store` and `version N`.
//!
//! It is written last during initialisation, so its presence means the store is complete, and
//! a store written by a future, incompatible version is refused instead of misread.

use std::path::Path;

use crate::error::{Result, StoreError};

/// File name of the marker.
pub const FORMAT_FILE: &str = "FORMAT";
/// First line of the marker.
pub const STORE_MAGIC: &str = "twz-store";
/// The store layout version this build reads and writes.
pub const STORE_VERSION: u32 = 1;

/// The marker's bytes for this version.
pub fn marker_bytes() -> Vec<u8> {
    format!("{STORE_MAGIC}\nversion {STORE_VERSION}\n").into_bytes()
}

/// Checks a marker's contents; `store` is only used in errors.
pub fn check_marker(store: &Path, bytes: &[u8]) -> Result<()> {
    let bad = |reason: &str| StoreError::BadFormatMarker {
        path: store.to_path_buf(),
        reason: reason.into(),
    };
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not text"))?;
    let mut lines = text.lines();
    if lines.next() != Some(STORE_MAGIC) {
        return Err(bad("first line is not \"twz-store\""));
    }
    let version = lines
        .next()
        .and_then(|l| l.strip_prefix("version "))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .ok_or_else(|| bad("no \"version N\" line"))?;
    if version != STORE_VERSION {
        return Err(StoreError::UnsupportedVersion {
            path: store.to_path_buf(),
            found: version,
            supported: STORE_VERSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn own_marker_is_accepted_others_refused() {
        let p = Path::new("/s");
        check_marker(p, &marker_bytes()).unwrap();
        let e = check_marker(p, b"twz-store\nversion 2\n").unwrap_err();
        assert!(
            matches!(e, StoreError::UnsupportedVersion { found: 2, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("unsupported store format version 2"));
        assert!(matches!(
            check_marker(p, b"hello\n"),
            Err(StoreError::BadFormatMarker { .. })
        ));
        assert!(matches!(
            check_marker(p, b"twz-store\n"),
            Err(StoreError::BadFormatMarker { .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_markers_never_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = check_marker(Path::new("/s"), &b);
        }
    }
}
