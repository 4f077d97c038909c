//! The store-level lock: `flock(2)` on `<store>/lock`.
//!
//! Metadata changes (create, remove, name binding, key generation) hold it exclusively for the
//! few milliseconds they take; readers that must see a consistent directory (listing, fsck) hold
//! it shared. Mapped objects hold no lock, so any number of VMMs can have objects mapped at once.
//! The lock is released when the guard is dropped (closing the descriptor drops the `flock`).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};

/// How the lock is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Several holders at once; excludes exclusive holders.
    Shared,
    /// One holder.
    Exclusive,
}

/// A held store lock; dropping it releases the lock.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    mode: LockMode,
}

impl StoreLock {
    /// Takes the lock at `path` (created if missing), waiting for other holders.
    pub fn acquire(path: &Path, mode: LockMode) -> Result<StoreLock> {
        Self::take(path, mode, true)?.ok_or_else(|| StoreError::Locked(parent(path)))
    }

    /// Takes the lock if it is free now; `Err(Locked)` if another holder conflicts.
    pub fn try_acquire(path: &Path, mode: LockMode) -> Result<StoreLock> {
        Self::take(path, mode, false)?.ok_or_else(|| StoreError::Locked(parent(path)))
    }

    /// The mode this guard holds.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    fn take(path: &Path, mode: LockMode, wait: bool) -> Result<Option<StoreLock>> {
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
        {
            Ok(f) => f,
            // A reader of a store it may not write (read-only mount, other owner) can still
            // take the shared lock: flock needs no write access.
            Err(e) if mode == LockMode::Shared && e.kind() != std::io::ErrorKind::NotFound => {
                File::open(path).map_err(|_| StoreError::Io {
                    path: path.to_path_buf(),
                    error: e,
                })?
            }
            Err(e) => {
                return Err(StoreError::Io {
                    path: path.to_path_buf(),
                    error: e,
                })
            }
        };
        let mut op = match mode {
            LockMode::Shared => libc::LOCK_SH,
            LockMode::Exclusive => libc::LOCK_EX,
        };
        if !wait {
            op |= libc::LOCK_NB;
        }
        loop {
            // SAFETY: flock on a descriptor this function owns; it touches no memory.
            let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
            if rc == 0 {
                return Ok(Some(StoreLock { _file: file, mode }));
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) => return Ok(None),
                _ => {
                    return Err(StoreError::Io {
                        path: path.to_path_buf(),
                        error: err,
                    })
                }
            }
        }
    }
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_everyone_shared_admits_shared() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("lock");
        let ex = StoreLock::acquire(&p, LockMode::Exclusive).unwrap();
        assert!(matches!(
            StoreLock::try_acquire(&p, LockMode::Shared),
            Err(StoreError::Locked(_))
        ));
        assert!(matches!(
            StoreLock::try_acquire(&p, LockMode::Exclusive),
            Err(StoreError::Locked(_))
        ));
        drop(ex);
        let a = StoreLock::try_acquire(&p, LockMode::Shared).unwrap();
        let b = StoreLock::try_acquire(&p, LockMode::Shared).unwrap();
        assert_eq!((a.mode(), b.mode()), (LockMode::Shared, LockMode::Shared));
        assert!(StoreLock::try_acquire(&p, LockMode::Exclusive).is_err());
        drop((a, b));
        assert!(StoreLock::try_acquire(&p, LockMode::Exclusive).is_ok());
    }

    #[test]
    fn waiter_proceeds_after_release() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("lock");
        let ex = StoreLock::acquire(&p, LockMode::Exclusive).unwrap();
        let p2 = p.clone();
        let t = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            let _g = StoreLock::acquire(&p2, LockMode::Exclusive).unwrap();
            start.elapsed()
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(ex);
        let waited = t.join().unwrap();
        assert!(
            waited >= std::time::Duration::from_millis(90),
            "waited only {waited:?}"
        );
    }
}
