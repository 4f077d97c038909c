//! Console output: bytes are buffered per stream and sent through the ring; the buffer space of a
//! write is reclaimed when its completion arrives, so printing rarely waits.

/// A fixed byte queue whose contents pass through three states: written (by `print!`), sent
/// (named by a ring submission; must not move or change), reclaimed (completed; free again).
///
/// Positions are free-running counters; the byte at position `p` lives at `p % N`.
pub struct ByteQueue<const N: usize> {
    buf: [u8; N],
    /// Everything before this is reclaimed.
    head: u64,
    /// Everything before this has been sent.
    sent: u64,
    /// Everything before this has been written.
    tail: u64,
}

impl<const N: usize> Default for ByteQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ByteQueue<N> {
    /// An empty queue.
    pub const fn new() -> Self {
        ByteQueue {
            buf: [0; N],
            head: 0,
            sent: 0,
            tail: 0,
        }
    }

    /// Bytes that can be written now.
    pub fn free(&self) -> usize {
        N - (self.tail - self.head) as usize
    }

    /// Bytes written but not yet sent.
    pub fn unsent(&self) -> usize {
        (self.tail - self.sent) as usize
    }

    /// Bytes sent whose completion has not arrived.
    pub fn in_flight(&self) -> usize {
        (self.sent - self.head) as usize
    }

    /// Copies as much of `data` as fits; returns how much.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        let mut done = 0;
        while done < n {
            let at = (self.tail % N as u64) as usize;
            let run = (N - at).min(n - done);
            self.buf[at..at + run].copy_from_slice(&data[done..done + run]);
            done += run;
            self.tail += run as u64;
        }
        n
    }

    /// The longest contiguous run of unsent bytes (it stops at the buffer's end; the rest follows
    /// from the start on the next call). Empty when everything was sent.
    pub fn next_unsent(&self) -> &[u8] {
        let at = (self.sent % N as u64) as usize;
        let run = (N - at).min(self.unsent());
        &self.buf[at..at + run]
    }

    /// Records that the first `n` unsent bytes were named by a submission.
    pub fn mark_sent(&mut self, n: usize) {
        self.sent += (n as u64).min(self.tail - self.sent);
    }

    /// Frees `n` sent bytes whose completion arrived (completions come in submission order).
    pub fn reclaim(&mut self, n: usize) {
        self.head += (n as u64).min(self.sent - self.head);
    }
}

/// A fixed-size text buffer that truncates instead of failing, for messages built where the heap
/// may not be usable (the panic handler).
pub struct FixedBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for FixedBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FixedBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        FixedBuf {
            buf: [0; N],
            len: 0,
        }
    }

    /// The text written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> core::fmt::Write for FixedBuf<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let mut n = s.len().min(N - self.len);
        // Cut on a character boundary so the text stays UTF-8.
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn accounting_through_a_wrap() {
        let mut q = ByteQueue::<8>::new();
        assert_eq!(q.push(b"abcdef"), 6);
        assert_eq!(q.free(), 2);
        assert_eq!(q.next_unsent(), b"abcdef");
        q.mark_sent(6);
        assert_eq!((q.unsent(), q.in_flight()), (0, 6));
        // Only 2 bytes fit until the completion frees the rest.
        assert_eq!(q.push(b"ghij"), 2);
        assert_eq!(q.free(), 0);
        q.reclaim(6);
        assert_eq!(q.free(), 6);
        assert_eq!(q.push(b"ijkl"), 4);
        // The unsent bytes "ghijkl" wrap: they come out as two runs.
        assert_eq!(q.next_unsent(), b"gh");
        q.mark_sent(2);
        assert_eq!(q.next_unsent(), b"ijkl");
        q.mark_sent(4);
        assert_eq!(q.next_unsent(), b"");
        q.reclaim(100); // clamped to what was sent
        assert_eq!((q.free(), q.in_flight()), (8, 0));
    }

    #[test]
    fn cannot_send_or_reclaim_more_than_exists() {
        let mut q = ByteQueue::<4>::new();
        q.push(b"ab");
        q.mark_sent(10);
        assert_eq!((q.unsent(), q.in_flight()), (0, 2));
        q.reclaim(1);
        assert_eq!(q.free(), 3);
    }

    #[test]
    fn fixed_buf_truncates_on_char_boundaries() {
        let mut b = FixedBuf::<5>::new();
        b.write_str("ab\u{e9}\u{e9}").unwrap();
        // "ab" + one two-byte char fit; the second would split.
        assert_eq!(b.as_bytes(), "ab\u{e9}".as_bytes());
        write!(b, "zz").unwrap();
        assert_eq!(b.as_bytes(), "ab\u{e9}z".as_bytes());
    }
}
