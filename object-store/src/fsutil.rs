//! Crash-safe file primitives: write-to-temp + fsync + rename + fsync of the directory.
//!
//! A reader (or a crash) sees either the old file or the complete new one, never a torn one;
//! what a crash can leave behind is a temp file, which `fsck` reports.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};

/// Every temp file the store writes starts with this; no real entry does.
pub const TEMP_PREFIX: &str = ".tmp.";

/// `N` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(b)
}

/// A fresh temp file path inside `dir` (same directory, so the final rename is atomic).
pub fn temp_path(dir: &Path) -> Result<PathBuf> {
    let r: [u8; 8] = random_bytes().map_err(StoreError::io(dir))?;
    let tag: String = r.iter().map(|b| format!("{b:02x}")).collect();
    Ok(dir.join(format!("{TEMP_PREFIX}{}.{tag}", std::process::id())))
}

/// A temp file older than this whose writer no longer runs was left by an interrupted write.
const STRAY_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether temp file `path` (named by [`temp_path`]) looks left by a writer that is gone: the
/// process in its name no longer runs and the file is over a minute old. (Writers hold the
/// store lock, or a `flock` on the file for imports, which the remover also checks.)
pub fn is_stray_temp(path: &Path) -> bool {
    let pid = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(TEMP_PREFIX))
        .and_then(|rest| rest.split('.').next())
        .and_then(|p| p.parse::<i32>().ok())
        .filter(|&p| p > 0);
    let Some(pid) = pid else {
        return false;
    };
    let old = untouched_for(path, STRAY_AFTER);
    // SAFETY: signal 0 sends nothing; it only asks whether process `pid` exists.
    let gone = unsafe { libc::kill(pid, 0) } == -1
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    old && gone
}

/// Whether `path` was last modified more than `age` ago (false if that cannot be told).
pub fn untouched_for(path: &Path, age: std::time::Duration) -> bool {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|a| a > age)
}

/// Makes a directory's entries (creations, renames, removals) durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io(dir))
}

/// Creates `dir` (one level) with `mode` if missing, and makes its entry durable in the parent.
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {
            if let Some(parent) = dir.parent() {
                fsync_dir(parent)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(StoreError::Io {
            path: dir.to_path_buf(),
            error: e,
        }),
    }
}

/// Atomically replaces `dir/name` with `bytes` (file mode `mode`), durably.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = temp_path(dir)?;
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(StoreError::io(&tmp))?;
        f.write_all(bytes).map_err(StoreError::io(&tmp))?;
        f.sync_all().map_err(StoreError::io(&tmp))?;
        let dst = dir.join(name);
        fs::rename(&tmp, &dst).map_err(StoreError::io(&dst))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    fsync_dir(dir)
}

/// Removes `dir/name` durably.
pub fn remove_durably(dir: &Path, name: &str) -> Result<()> {
    let p = dir.join(name);
    fs::remove_file(&p).map_err(StoreError::io(&p))?;
    fsync_dir(dir)
}

/// Lowercase hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses lowercase or uppercase hex into exactly `N` bytes.
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(s[2 * i])? << 4 | digit(s[2 * i + 1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        write_atomic(d.path(), "f", b"one", 0o644).unwrap();
        write_atomic(d.path(), "f", b"two", 0o644).unwrap();
        assert_eq!(fs::read(d.path().join("f")).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(unhex::<2>(&hex(&[0xab, 0x01])), Some([0xab, 0x01]));
        assert_eq!(unhex::<2>("abc"), None);
        assert_eq!(unhex::<1>("zz"), None);
    }
}
