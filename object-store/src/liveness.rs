//! The per-object liveness lock: `flock(2)` on the object file itself.
//!
//! Every writable open holds `LOCK_SH` for as long as the object stays open, so a process that
//! may be in the middle of a transaction is visible to others. Recovery needs `LOCK_EX`, taken
//! only with `LOCK_NB`: if anyone else has the object open for writing, its unfinished
//! transaction may be live and is never rolled back under its feet. Only shared locks are ever
//! waited for, and only briefly (behind a recovering process), so no lock cycle can form.
//! Read-only inspection never takes this lock (a momentary `LOCK_EX` would make a concurrent
//! opener skip recovery); it asks `/proc/locks` who holds it instead.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

/// The liveness lock a writable open holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Nobody else has the object open for writing: recovery may run.
    Exclusive,
    /// Others may have it open; a transaction found unfinished may be live.
    Shared,
}

fn flock(file: &File, op: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor the caller owns; it touches no memory.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(err),
        }
    }
}

/// Takes `LOCK_EX` if nobody else holds the lock, else waits for `LOCK_SH`.
pub fn acquire(file: &File) -> io::Result<Hold> {
    if flock(file, libc::LOCK_EX | libc::LOCK_NB)? {
        return Ok(Hold::Exclusive);
    }
    flock(file, libc::LOCK_SH)?;
    Ok(Hold::Shared)
}

/// Takes `LOCK_EX` only if it is free now.
pub fn try_exclusive(file: &File) -> io::Result<bool> {
    flock(file, libc::LOCK_EX | libc::LOCK_NB)
}

/// Turns a held `LOCK_EX` into `LOCK_SH` (never waits: we hold the only lock).
pub fn downgrade(file: &File) -> io::Result<()> {
    flock(file, libc::LOCK_SH).map(|_| ())
}

/// True if some process holds a `flock` on `file` (per `/proc/locks`); false when unknown.
pub fn is_held(file: &File) -> bool {
    let (Ok(meta), Ok(locks)) = (file.metadata(), std::fs::read_to_string("/proc/locks")) else {
        return false;
    };
    let dev = meta.dev();
    let want = (
        u64::from(libc::major(dev)),
        u64::from(libc::minor(dev)),
        meta.ino(),
    );
    locks.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().filter(|f| *f != "->").collect();
        fields.get(1) == Some(&"FLOCK")
            && fields.get(5).and_then(|f| parse_dev_ino(f)) == Some(want)
    })
}

/// Parses `/proc/locks`' `MAJOR:MINOR:INODE` (hex, hex, decimal).
fn parse_dev_ino(s: &str) -> Option<(u64, u64, u64)> {
    let mut it = s.split(':');
    let maj = u64::from_str_radix(it.next()?, 16).ok()?;
    let min = u64::from_str_radix(it.next()?, 16).ok()?;
    let ino = it.next()?.parse().ok()?;
    Some((maj, min, ino))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_share_recovery_needs_everyone_gone() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("obj");
        std::fs::write(&p, b"x").unwrap();
        let open = || File::options().read(true).write(true).open(&p).unwrap();
        let (a, b) = (open(), open());
        assert!(!is_held(&a));
        assert_eq!(acquire(&a).unwrap(), Hold::Exclusive);
        assert!(is_held(&b), "/proc/locks shows the holder");
        assert!(!try_exclusive(&b).unwrap());
        downgrade(&a).unwrap();
        assert_eq!(acquire(&b).unwrap(), Hold::Shared);
        drop(a);
        drop(b);
        let c = open();
        assert!(!is_held(&c));
        assert!(try_exclusive(&c).unwrap());
    }

    #[test]
    fn proc_locks_fields_parse() {
        assert_eq!(parse_dev_ino("fd:01:1234"), Some((0xfd, 1, 1234)));
        assert_eq!(parse_dev_ino("08:01"), None);
        assert_eq!(parse_dev_ino("zz:01:1"), None);
    }
}
