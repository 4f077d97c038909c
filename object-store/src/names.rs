//! The name -> ID namespace: one small file per name in `<store>/names/`, holding the ID as
//! 32 hex digits and a newline, replaced atomically (temp + rename + fsync of the directory).
//!
//! Names are stored as file names, so the charset is restricted instead of escaped: 1 to
//! [`MAX_NAME_LEN`] bytes of UTF-8, no `/`, no control characters, no leading `.` (which also
//! keeps them apart from temp files), and not 32 hex digits (which would read as an ID).

use std::fs;
use std::path::{Path, PathBuf};

use abi::fot::MAX_NAME_LEN;
use abi::id::ObjId;

use crate::error::{Result, StoreError};
use crate::fsutil::{self, TEMP_PREFIX};

/// Checks that `name` can be bound.
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() || name.len() > MAX_NAME_LEN {
        Some("names are 1 to 96 bytes long")
    } else if name.contains('/') || name.chars().any(char::is_control) {
        Some("names may not contain '/' or control characters")
    } else if name.starts_with('.') {
        Some("names may not start with '.'")
    } else if ObjId::parse_hex(name).is_some() {
        Some("32 hex digits are read as an object ID, not a name")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidName {
            name: name.into(),
            reason,
        }),
        None => Ok(()),
    }
}

/// One entry of the namespace as found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameEntry {
    /// The name.
    pub name: String,
    /// The bound ID, or what is wrong with the name's file.
    pub target: std::result::Result<ObjId, String>,
}

/// The namespace directory. Mutations must be made under the store's exclusive lock.
#[derive(Clone, Debug)]
pub struct Names {
    dir: PathBuf,
}

impl Names {
    /// The namespace kept in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Names { dir }
    }

    /// The directory holding the name files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The ID bound to `name`, `None` if it is unbound.
    pub fn lookup(&self, name: &str) -> Result<Option<ObjId>> {
        validate_name(name)?;
        let path = self.dir.join(name);
        match fs::read(&path) {
            Ok(bytes) => {
                parse_name_file(&bytes)
                    .map(Some)
                    .map_err(|problem| StoreError::BadNameFile {
                        name: name.into(),
                        problem,
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io { path, error: e }),
        }
    }

    /// Binds a new name; fails if it is already bound.
    pub fn bind(&self, name: &str, id: ObjId) -> Result<()> {
        if let Some(old) = self.lookup(name)? {
            return Err(StoreError::NameTaken {
                name: name.into(),
                id: old,
            });
        }
        fsutil::write_atomic(&self.dir, name, format!("{id}\n").as_bytes(), 0o644)
    }

    /// Binds `name` to `id` whether or not it is bound now: one atomic rename, so a crash
    /// leaves either the old binding or the new one.
    pub fn rebind(&self, name: &str, id: ObjId) -> Result<()> {
        fsutil::write_atomic(&self.dir, name, format!("{id}\n").as_bytes(), 0o644)
    }

    /// Removes a binding; fails if the name is unbound.
    pub fn unbind(&self, name: &str) -> Result<()> {
        if self.lookup(name)?.is_none() {
            return Err(StoreError::NoSuchName(name.into()));
        }
        fsutil::remove_durably(&self.dir, name)
    }

    /// Every name file (temp files excluded), sorted by name; damaged files are reported in the
    /// entry instead of failing the listing. File names that are not valid names are skipped
    /// here and reported by `fsck`.
    pub fn list(&self) -> Result<Vec<NameEntry>> {
        let mut out = Vec::new();
        for ent in fs::read_dir(&self.dir).map_err(StoreError::io(&self.dir))? {
            let ent = ent.map_err(StoreError::io(&self.dir))?;
            let Ok(name) = ent.file_name().into_string() else {
                continue;
            };
            if name.starts_with(TEMP_PREFIX) || validate_name(&name).is_err() {
                continue;
            }
            let target = match fs::read(ent.path()) {
                Ok(b) => parse_name_file(&b),
                Err(e) => Err(format!("unreadable: {e}")),
            };
            out.push(NameEntry { name, target });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The names bound to `id`, sorted.
    pub fn names_of(&self, id: ObjId) -> Result<Vec<String>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|e| e.target == Ok(id))
            .map(|e| e.name)
            .collect())
    }
}

/// Decodes a name file: 32 hex digits, optionally followed by a newline.
fn parse_name_file(bytes: &[u8]) -> std::result::Result<ObjId, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "name file is not text".to_string())?;
    let id = ObjId::parse_hex(text.strip_suffix('\n').unwrap_or(text)).ok_or_else(|| {
        format!(
            "name file does not hold an object ID ({} bytes)",
            bytes.len()
        )
    })?;
    if id.is_null() {
        return Err("name file holds the null ID".into());
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn name_rules() {
        for good in ["people", "db users", "ünïcode", "a.b-c_d", &"x".repeat(96)] {
            validate_name(good).unwrap();
        }
        for bad in [
            "",
            ".hidden",
            "a/b",
            "tab\there",
            &"x".repeat(97),
            "0123456789abcdef0123456789abcdef",
        ] {
            let e = validate_name(bad).unwrap_err();
            assert!(e.to_string().starts_with("invalid name"), "{e}");
        }
    }

    #[test]
    fn bind_lookup_unbind_survive_reopen() {
        let d = tempfile::tempdir().unwrap();
        let n = Names::new(d.path().to_path_buf());
        let id = ObjId::from_u128(0xfeed);
        n.bind("people", id).unwrap();
        assert!(matches!(
            n.bind("people", id),
            Err(StoreError::NameTaken { .. })
        ));
        let again = Names::new(d.path().to_path_buf());
        assert_eq!(again.lookup("people").unwrap(), Some(id));
        assert_eq!(again.names_of(id).unwrap(), vec!["people".to_string()]);
        again.unbind("people").unwrap();
        assert_eq!(n.lookup("people").unwrap(), None);
        assert!(matches!(n.unbind("people"), Err(StoreError::NoSuchName(_))));
    }

    #[test]
    fn damaged_name_file_is_reported_not_followed() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("junk"), b"hello").unwrap();
        let n = Names::new(d.path().to_path_buf());
        assert!(matches!(
            n.lookup("junk"),
            Err(StoreError::BadNameFile { .. })
        ));
        assert!(n.list().unwrap()[0].target.is_err());
    }

    proptest! {
        #[test]
        fn name_file_parser_never_panics(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse_name_file(&b);
        }
    }
}
