//! The guest's console: the VMM process's stdin, stdout and stderr, or buffers in tests.
//!
//! Writes go straight to the file descriptors (no buffering in the VMM: the guest runtime buffers
//! and flushes on newline/exit), so output from the ring and from host calls stays in order.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use abi::hostcall::fd;

/// Where guest console bytes go and come from.
pub enum Console {
    /// The process's standard streams.
    Std,
    /// In-memory streams (tests).
    Buffer {
        /// Bytes written to stdout.
        out: Mutex<Vec<u8>>,
        /// Bytes written to stderr.
        err: Mutex<Vec<u8>>,
        /// Bytes left to read from stdin.
        input: Mutex<Vec<u8>>,
    },
}

fn write_fd(fd: i32, mut buf: &[u8]) -> io::Result<usize> {
    let total = buf.len();
    while !buf.is_empty() {
        // SAFETY: `buf` is a valid, initialized slice for the duration of the call.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = buf.get(n as usize..).unwrap_or_default();
    }
    Ok(total)
}

impl Console {
    /// A console over in-memory buffers with `input` as stdin.
    pub fn buffer(input: &[u8]) -> Self {
        Console::Buffer {
            out: Mutex::default(),
            err: Mutex::default(),
            input: Mutex::new(input.to_vec()),
        }
    }

    /// Writes all of `buf` to stream `stream` (stdout or stderr).
    pub fn write(&self, stream: u64, buf: &[u8]) -> io::Result<usize> {
        match (self, stream) {
            (Console::Std, fd::STDOUT) => write_fd(1, buf),
            (Console::Std, fd::STDERR) => write_fd(2, buf),
            (Console::Buffer { out, .. }, fd::STDOUT) => lock(out).map(|mut o| {
                o.extend_from_slice(buf);
                buf.len()
            }),
            (Console::Buffer { err, .. }, fd::STDERR) => lock(err).map(|mut o| {
                o.extend_from_slice(buf);
                buf.len()
            }),
            _ => Err(io::Error::from_raw_os_error(libc::EBADF)),
        }
    }

    /// Reads up to `buf.len()` bytes from stdin, blocking; 0 at end of input. Gives up with
    /// `Interrupted` when `stop` is set (the run is being stopped).
    pub fn read(&self, buf: &mut [u8], stop: &AtomicBool) -> io::Result<usize> {
        match self {
            Console::Std => loop {
                // SAFETY: `buf` is a valid, writable slice for the duration of the call.
                let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
                if n >= 0 {
                    return Ok(n as usize);
                }
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted || stop.load(Ordering::Relaxed) {
                    return Err(e);
                }
            },
            Console::Buffer { input, .. } => {
                let mut input = lock(input)?;
                let n = buf.len().min(input.len());
                buf[..n].copy_from_slice(&input[..n]);
                input.drain(..n);
                Ok(n)
            }
        }
    }

    /// What was written to stdout (buffer consoles only).
    pub fn stdout_bytes(&self) -> Vec<u8> {
        match self {
            Console::Buffer { out, .. } => lock(out).map(|o| o.clone()).unwrap_or_default(),
            Console::Std => Vec::new(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> io::Result<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| io::Error::other("console lock poisoned"))
}
