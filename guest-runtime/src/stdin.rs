//! Standard input: blocking reads through the READ host call (one exit each), with a buffer so
//! that line reads do not cost a call per byte.

use alloc::string::String;
use alloc::vec::Vec;

use abi::hostcall::fd;

use crate::errno::Errno;
use crate::global::Global;

/// A read-ahead buffer over any byte source.
pub struct LineBuffer<const N: usize> {
    buf: [u8; N],
    start: usize,
    end: usize,
}

impl<const N: usize> Default for LineBuffer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineBuffer<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        LineBuffer {
            buf: [0; N],
            start: 0,
            end: 0,
        }
    }

    /// Reads into `out`: buffered bytes first, else one call of `fill`. Returns 0 at end of input.
    pub fn read(
        &mut self,
        out: &mut [u8],
        mut fill: impl FnMut(&mut [u8]) -> Result<usize, Errno>,
    ) -> Result<usize, Errno> {
        if self.start == self.end {
            if out.len() >= N {
                // Large reads bypass the buffer.
                return fill(out);
            }
            self.refill(&mut fill)?;
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }

    fn refill(
        &mut self,
        fill: &mut impl FnMut(&mut [u8]) -> Result<usize, Errno>,
    ) -> Result<usize, Errno> {
        let n = fill(&mut self.buf)?.min(N);
        self.start = 0;
        self.end = n;
        Ok(n)
    }

    /// Appends one line, including its `\n` if present, to `out`. Returns bytes appended; 0 at
    /// end of input.
    pub fn read_line(
        &mut self,
        out: &mut Vec<u8>,
        mut fill: impl FnMut(&mut [u8]) -> Result<usize, Errno>,
    ) -> Result<usize, Errno> {
        let mut total = 0;
        loop {
            if self.start == self.end && self.refill(&mut fill)? == 0 {
                return Ok(total);
            }
            let avail = &self.buf[self.start..self.end];
            let (take, done) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            out.extend_from_slice(&avail[..take]);
            self.start += take;
            total += take;
            if done {
                return Ok(total);
            }
        }
    }
}

static STDIN: Global<LineBuffer<4096>> = Global::new(LineBuffer::new());

fn host_read(buf: &mut [u8]) -> Result<usize, Errno> {
    crate::hostcall::read(fd::STDIN, buf)
}

/// Reads from standard input into `buf`, blocking until at least one byte; 0 at end of input.
pub fn read(buf: &mut [u8]) -> Result<usize, Errno> {
    // Output the program wrote so far (a prompt) should be visible before blocking.
    crate::io::flush();
    match STDIN.try_lock() {
        Some(mut b) => b.read(buf, host_read),
        None => Err(Errno::EAGAIN),
    }
}

/// Appends the next line of standard input (with its `\n`, if any) to `line`; invalid UTF-8 is
/// replaced. Returns bytes read; 0 at end of input.
pub fn read_line(line: &mut String) -> Result<usize, Errno> {
    crate::io::flush();
    let mut bytes = Vec::new();
    let n = match STDIN.try_lock() {
        Some(mut b) => b.read_line(&mut bytes, host_read)?,
        None => return Err(Errno::EAGAIN),
    };
    line.push_str(&String::from_utf8_lossy(&bytes));
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that hands out `chunks` one per call, then end of input.
    fn source<'a>(chunks: &'a [&'a [u8]]) -> impl FnMut(&mut [u8]) -> Result<usize, Errno> + 'a {
        let mut i = 0;
        move |buf: &mut [u8]| {
            let Some(c) = chunks.get(i) else { return Ok(0) };
            i += 1;
            let n = c.len().min(buf.len());
            buf[..n].copy_from_slice(&c[..n]);
            Ok(n)
        }
    }

    #[test]
    fn lines_span_chunks() {
        let mut b = LineBuffer::<8>::new();
        let mut src = source(&[b"ab\ncd", b"ef\n", b"tail"]);
        let mut out = Vec::new();
        assert_eq!(b.read_line(&mut out, &mut src), Ok(3));
        assert_eq!(out, b"ab\n");
        out.clear();
        assert_eq!(b.read_line(&mut out, &mut src), Ok(5));
        assert_eq!(out, b"cdef\n");
        out.clear();
        assert_eq!(b.read_line(&mut out, &mut src), Ok(4));
        assert_eq!(out, b"tail");
        out.clear();
        assert_eq!(b.read_line(&mut out, &mut src), Ok(0));
    }

    #[test]
    fn reads_drain_the_buffer_first() {
        let mut b = LineBuffer::<8>::new();
        let mut src = source(&[b"12\n34", b"5678"]);
        let mut line = Vec::new();
        b.read_line(&mut line, &mut src).unwrap();
        let mut out = [0u8; 4];
        assert_eq!(b.read(&mut out, &mut src), Ok(2));
        assert_eq!(&out[..2], b"34");
        assert_eq!(b.read(&mut out, &mut src), Ok(4));
        assert_eq!(&out, b"5678");
        assert_eq!(b.read(&mut out, &mut src), Ok(0));
    }

    #[test]
    fn errors_pass_through() {
        let mut b = LineBuffer::<8>::new();
        let mut out = Vec::new();
        assert_eq!(
            b.read_line(&mut out, |_| Err(Errno::EFAULT)),
            Err(Errno::EFAULT)
        );
    }
}
