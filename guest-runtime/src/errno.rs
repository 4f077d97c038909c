//! Error numbers returned by host calls and ring operations.

use core::fmt;

use abi::hostcall::errno;

/// A host error: the positive errno value the VMM returned negated.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i64);

impl Errno {
    /// Operation not permitted.
    pub const EPERM: Errno = Errno(errno::EPERM);
    /// No such object or name.
    pub const ENOENT: Errno = Errno(errno::ENOENT);
    /// I/O error on the host.
    pub const EIO: Errno = Errno(errno::EIO);
    /// Bad stream number.
    pub const EBADF: Errno = Errno(errno::EBADF);
    /// Try again.
    pub const EAGAIN: Errno = Errno(errno::EAGAIN);
    /// Out of memory or of slots.
    pub const ENOMEM: Errno = Errno(errno::ENOMEM);
    /// Permission denied.
    pub const EACCES: Errno = Errno(errno::EACCES);
    /// An address or length outside guest memory.
    pub const EFAULT: Errno = Errno(errno::EFAULT);
    /// Invalid argument.
    pub const EINVAL: Errno = Errno(errno::EINVAL);
    /// Unknown call number.
    pub const ENOSYS: Errno = Errno(errno::ENOSYS);
    /// Timed out.
    pub const ETIMEDOUT: Errno = Errno(errno::ETIMEDOUT);
    /// Busy.
    pub const EBUSY: Errno = Errno(errno::EBUSY);
    /// The peer closed the connection.
    pub const EPIPE: Errno = Errno(errno::EPIPE);
    /// The connection was reset by the peer.
    pub const ECONNRESET: Errno = Errno(errno::ECONNRESET);
    /// Cancelled.
    pub const ECANCELED: Errno = Errno(errno::ECANCELED);

    /// Splits a raw host-call or completion result into success or error.
    pub fn result(ret: i64) -> Result<u64, Errno> {
        if ret < 0 {
            Err(Errno(ret.wrapping_neg()))
        } else {
            Ok(ret as u64)
        }
    }

    /// The symbolic name, for messages (`"EFAULT"`), or `None` for a number this runtime does
    /// not know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            errno::EPERM => "EPERM",
            errno::ENOENT => "ENOENT",
            errno::EIO => "EIO",
            errno::EBADF => "EBADF",
            errno::EAGAIN => "EAGAIN",
            errno::ENOMEM => "ENOMEM",
            errno::EACCES => "EACCES",
            errno::EFAULT => "EFAULT",
            errno::EEXIST => "EEXIST",
            errno::EINVAL => "EINVAL",
            errno::ENOSPC => "ENOSPC",
            errno::ENAMETOOLONG => "ENAMETOOLONG",
            errno::ENOSYS => "ENOSYS",
            errno::ETIMEDOUT => "ETIMEDOUT",
            errno::EBUSY => "EBUSY",
            errno::EPIPE => "EPIPE",
            errno::ECONNRESET => "ECONNRESET",
            errno::ECANCELED => "ECANCELED",
            _ => return None,
        })
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "errno {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn splits_results() {
        assert_eq!(Errno::result(5), Ok(5));
        assert_eq!(Errno::result(0), Ok(0));
        assert_eq!(Errno::result(-14), Err(Errno::EFAULT));
        assert_eq!(Errno::result(i64::MIN), Err(Errno(i64::MIN)));
    }

    #[test]
    fn names() {
        assert_eq!(Errno::EFAULT.to_string(), "EFAULT");
        assert_eq!(Errno(999).to_string(), "errno 999");
    }
}
