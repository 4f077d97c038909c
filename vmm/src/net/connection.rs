//! One client connection: its socket, the guest's outstanding receive, its queue of sends, and a
//! pending close. Bytes move straight between the socket and guest memory (one `read`/`write`
//! system call on a `VolatileSlice` of guest RAM), with no copy in the VMM.
//!
//! The socket is registered edge-triggered, so `readable`/`writable` remember "may be ready"
//! between edges: set by an epoll event, cleared when a call would block. The VMM reads only
//! while the guest has a receive outstanding; otherwise the kernel's buffers fill and TCP pushes
//! back on the client.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::Instant;

use abi::hostcall::errno::{ECANCELED, ECONNRESET, EFAULT, EPIPE};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, ReadVolatile, WriteVolatile};

/// A completion to post: (`user_data`, result).
pub type Completion = (u64, i64);

/// A guest buffer named by a submission (already checked against `GuestAccess`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// The submission's `user_data`.
    pub user_data: u64,
    /// Guest address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u64,
}

#[derive(Debug)]
struct PendingSend {
    buf: Buffer,
    done: u64,
}

/// Why moving bytes failed.
enum IoFailure {
    /// Try again after the next edge.
    WouldBlock,
    /// The guest buffer is not in guest RAM (cannot happen after `GuestAccess::check`).
    Fault,
    /// The connection is broken: the negated errno the guest gets.
    Broken(i64),
}

fn classify(e: std::io::Error) -> Option<IoFailure> {
    match e.kind() {
        ErrorKind::WouldBlock => Some(IoFailure::WouldBlock),
        ErrorKind::Interrupted => None,
        ErrorKind::BrokenPipe => Some(IoFailure::Broken(-EPIPE)),
        _ => Some(IoFailure::Broken(-ECONNRESET)),
    }
}

/// Reads once from `stream` into guest memory.
fn read_into(stream: &TcpStream, mem: &GuestMemoryMmap, buf: Buffer) -> Result<u64, IoFailure> {
    let len = usize::try_from(buf.len).map_err(|_| IoFailure::Fault)?;
    let mut slice = mem
        .get_slice(GuestAddress(buf.addr), len)
        .map_err(|_| IoFailure::Fault)?;
    loop {
        match (&mut &*stream).read_volatile(&mut slice) {
            Ok(n) => return Ok(n as u64),
            Err(vm_memory::VolatileMemoryError::IOError(e)) => {
                if let Some(f) = classify(e) {
                    return Err(f);
                }
            }
            Err(_) => return Err(IoFailure::Fault),
        }
    }
}

/// Writes once from guest memory to `stream`.
fn write_from(
    stream: &TcpStream,
    mem: &GuestMemoryMmap,
    addr: u64,
    len: u64,
) -> Result<u64, IoFailure> {
    let len = usize::try_from(len).map_err(|_| IoFailure::Fault)?;
    let slice = mem
        .get_slice(GuestAddress(addr), len)
        .map_err(|_| IoFailure::Fault)?;
    loop {
        match (&mut &*stream).write_volatile(&slice) {
            Ok(0) if len > 0 => return Err(IoFailure::Broken(-EPIPE)),
            Ok(n) => return Ok(n as u64),
            Err(vm_memory::VolatileMemoryError::IOError(e)) => {
                if let Some(f) = classify(e) {
                    return Err(f);
                }
            }
            Err(_) => return Err(IoFailure::Fault),
        }
    }
}

/// A connection accepted for the guest.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    /// Distinguishes this connection from earlier holders of the same number in epoll events.
    pub generation: u32,
    readable: bool,
    writable: bool,
    /// The client closed its side (a read returned 0): later receives complete with 0.
    eof: bool,
    /// The connection broke: the errno later sends get.
    broken: Option<i64>,
    recv: Option<Buffer>,
    sends: VecDeque<PendingSend>,
    /// `user_data` of the `NET_CLOSE` waiting for the sends to finish.
    closing: Option<u64>,
}

impl Connection {
    /// Wraps an accepted, non-blocking socket.
    pub fn new(stream: TcpStream, generation: u32) -> Self {
        Connection {
            stream,
            generation,
            readable: true,
            writable: true,
            eof: false,
            broken: None,
            recv: None,
            sends: VecDeque::new(),
            closing: None,
        }
    }

    /// The socket (for epoll registration).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// True once a close was asked for: the connection takes no new operations.
    pub fn is_closing(&self) -> bool {
        self.closing.is_some()
    }

    /// True when a receive is outstanding.
    pub fn has_recv(&self) -> bool {
        self.recv.is_some()
    }

    /// Records an epoll event.
    pub fn on_event(&mut self, readable: bool, writable: bool) {
        self.readable |= readable;
        self.writable |= writable;
    }

    /// Starts a receive (the caller checked there is none outstanding).
    pub fn start_recv(&mut self, buf: Buffer, mem: &GuestMemoryMmap, out: &mut Vec<Completion>) {
        self.recv = Some(buf);
        self.pump_recv(mem, out);
    }

    /// Queues a send behind the earlier ones.
    pub fn start_send(&mut self, buf: Buffer, mem: &GuestMemoryMmap, out: &mut Vec<Completion>) {
        self.sends.push_back(PendingSend { buf, done: 0 });
        self.pump_send(mem, out);
    }

    /// Starts closing: cancels the receive; the close completes (see [`Self::close_done`]) once
    /// the sends have finished or failed.
    pub fn start_close(
        &mut self,
        user_data: u64,
        mem: &GuestMemoryMmap,
        out: &mut Vec<Completion>,
    ) {
        if let Some(r) = self.recv.take() {
            out.push((r.user_data, -ECANCELED));
        }
        self.closing = Some(user_data);
        self.pump_send(mem, out);
    }

    /// The close's `user_data` when nothing is left to send (the caller then drops the
    /// connection and completes the close with 0).
    pub fn close_done(&self) -> Option<u64> {
        self.closing.filter(|_| self.sends.is_empty())
    }

    /// Reads and drops whatever the client sent that the guest will never receive, so that
    /// closing the socket ends the stream with a FIN after the last reply rather than a reset
    /// that could discard it (bounded: a client still sending gets its reset).
    pub fn discard_input(&mut self) {
        if self.stream.set_nonblocking(true).is_err() {
            return;
        }
        let mut sink = [0u8; 16 << 10];
        for _ in 0..64 {
            match (&self.stream).read(&mut sink) {
                Ok(n) if n > 0 => continue,
                _ => return,
            }
        }
    }

    /// Sends what the guest queued before it ended, waiting for the socket until `deadline`
    /// (the guest's memory is still mapped); gives up on anything that cannot go by then.
    pub fn flush_before_exit(&mut self, mem: &GuestMemoryMmap, deadline: Instant) {
        let mut ignored = Vec::new();
        while !self.sends.is_empty() && self.broken.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stream.set_nonblocking(false).is_err() {
                return;
            }
            if self.stream.set_write_timeout(Some(left)).is_err() {
                return;
            }
            self.writable = true;
            self.pump_send(mem, &mut ignored);
            if !self.writable {
                return;
            }
        }
    }

    /// Moves bytes for whatever is outstanding, as far as the socket allows.
    pub fn pump(&mut self, mem: &GuestMemoryMmap, out: &mut Vec<Completion>) {
        self.pump_recv(mem, out);
        self.pump_send(mem, out);
    }

    fn pump_recv(&mut self, mem: &GuestMemoryMmap, out: &mut Vec<Completion>) {
        let Some(buf) = self.recv else {
            return;
        };
        let result = if self.broken.is_some() {
            -ECONNRESET
        } else if self.eof {
            0
        } else if !self.readable {
            return;
        } else {
            match read_into(&self.stream, mem, buf) {
                Ok(0) => {
                    self.eof = true;
                    0
                }
                Ok(n) => n as i64,
                Err(IoFailure::WouldBlock) => {
                    self.readable = false;
                    return;
                }
                Err(IoFailure::Fault) => -EFAULT,
                Err(IoFailure::Broken(e)) => {
                    self.broken = Some(e);
                    -ECONNRESET
                }
            }
        };
        self.recv = None;
        out.push((buf.user_data, result));
    }

    fn pump_send(&mut self, mem: &GuestMemoryMmap, out: &mut Vec<Completion>) {
        while let Some(front) = self.sends.front_mut() {
            let result = if let Some(e) = self.broken {
                e
            } else if front.done == front.buf.len {
                front.buf.len as i64
            } else if !self.writable {
                return;
            } else {
                let rest = front.buf.len - front.done;
                match write_from(&self.stream, mem, front.buf.addr + front.done, rest) {
                    Ok(n) => {
                        front.done += n;
                        continue;
                    }
                    Err(IoFailure::WouldBlock) => {
                        self.writable = false;
                        return;
                    }
                    Err(IoFailure::Fault) => -EFAULT,
                    Err(IoFailure::Broken(e)) => {
                        self.broken = Some(e);
                        e
                    }
                }
            };
            if let Some(s) = self.sends.pop_front() {
                out.push((s.buf.user_data, result));
            }
        }
    }
}
