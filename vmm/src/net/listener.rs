//! The stream device's TCP listener (`twz-vmm run --listen ADDR`), bound before the guest boots
//! so that a bad or busy address ends the run with a clear error instead of a guest that never
//! sees a client.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::AsRawFd;

/// Connections the kernel may hold for us before the guest accepts them. std listens with 128;
/// a burst of a few hundred clients (a benchmark's connection pool) should wait, not be dropped.
pub const BACKLOG: libc::c_int = 1024;

/// Errors of binding the listener.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address is not `host:port`, or names no address.
    #[error(
        "invalid --listen address {addr:?}: {reason} (expected HOST:PORT, e.g. 127.0.0.1:6380)"
    )]
    BadAddress {
        /// What was given.
        addr: String,
        /// Why it is not usable.
        reason: String,
    },
    /// The host refused to listen there (in use, not ours, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// What was given.
        addr: String,
        /// The host's refusal.
        source: std::io::Error,
    },
}

/// Binds a non-blocking listener on `addr` (`host:port`; port 0 picks a free one).
pub fn bind(addr: &str) -> Result<TcpListener, ListenError> {
    let bad = |reason: String| ListenError::BadAddress {
        addr: addr.to_string(),
        reason,
    };
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| bad(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(bad("it resolves to no address".into()));
    }
    let bind_err = |source| ListenError::Bind {
        addr: addr.to_string(),
        source,
    };
    let listener = TcpListener::bind(&addrs[..]).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    // SAFETY: `listen` on a socket we own, already listening: it only raises the backlog. A
    // failure leaves std's backlog in place, which still works.
    unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) };
    Ok(listener)
}

/// Raises this process's soft limit on open files to its hard limit (thousands of connections
/// need as many descriptors); returns the soft limit now in force.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads a valid rlimit; raising the soft limit up to the hard one is
        // always permitted.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    lim.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_port_zero_and_reports_the_port() {
        let l = bind("127.0.0.1:0").unwrap();
        assert_ne!(l.local_addr().unwrap().port(), 0);
    }

    #[test]
    fn bad_and_busy_addresses_are_clear_errors() {
        let e = bind("6380").unwrap_err();
        assert!(matches!(e, ListenError::BadAddress { .. }), "{e}");
        assert!(e.to_string().contains("HOST:PORT"), "{e}");
        let e = bind("127.0.0.1:99999").unwrap_err();
        assert!(matches!(e, ListenError::BadAddress { .. }), "{e}");
        let taken = bind("127.0.0.1:0").unwrap();
        let busy = taken.local_addr().unwrap().to_string();
        let e = bind(&busy).unwrap_err();
        assert!(matches!(e, ListenError::Bind { .. }), "{e}");
        assert!(e.to_string().contains(&busy), "{e}");
    }

    #[test]
    fn fd_limit_is_at_least_the_default() {
        assert!(raise_fd_limit() >= 256);
    }
}
