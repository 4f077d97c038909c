//! The stream device (`twz-vmm run --listen ADDR`): TCP connections the VMM accepts and passes to
//! the guest over the asynchronous ring (`abi::ring::op::NET_*`).
//!
//! [`Net`] lives inside the ring consumer (under its lock): the ring hands it each `NET_*`
//! submission, and the event loop calls [`Net::poll`] when its epoll set (the listener and every
//! connection, edge-triggered, in an epoll instance of its own that the event loop watches) has
//! events. Both return completions for the ring to post. Nothing a guest passes is trusted:
//! unknown or closing connections get `-EBADF`, buffers are checked against
//! [`GuestAccess`] before the first byte moves, and a second receive on a connection gets
//! `-EBUSY`.
//!
//! Resources: the listener's backlog holds clients until the guest accepts; at most
//! [`MAX_CONNECTIONS`] (or what the open-file limit allows) are open at once, and a client beyond
//! that is accepted and closed at once. Closing the `Net` (the guest's exit) closes every socket.

mod connection;
mod listener;
mod table;

use std::collections::VecDeque;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};

use abi::hostcall::errno::{EBADF, EBUSY, EINVAL, ENOSYS};
use abi::ring::op;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

use crate::hostcall::access::{GuestAccess, MAX_IO_LEN};
pub use connection::Completion;
use connection::{Buffer, Connection};
pub use listener::{bind, raise_fd_limit, ListenError};
use table::Table;

/// Most connections open at once (further clients are accepted and closed at once).
pub const MAX_CONNECTIONS: usize = 16384;
/// Descriptors kept free for everything else the VMM opens.
const FD_RESERVE: u64 = 64;
/// Largest single send: the guest's RAM can hold no larger buffer.
pub const MAX_SEND_LEN: u64 = abi::memmap::MAX_MEM_SIZE;
/// Epoll events handled per [`Net::poll`].
const EVENTS_PER_POLL: usize = 256;
/// How long, at the guest's exit, sends it queued may take to reach their sockets.
pub const EXIT_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);
/// Epoll data of the listener.
const LISTENER: u64 = u64::MAX;

/// Errors of setting up the stream device.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Binding the listener failed.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The epoll instance could not be created or the listener registered.
    #[error("cannot set up the stream device's event queue: {0}")]
    Epoll(std::io::Error),
}

/// What the stream device needs from the machine.
pub struct Guest<'a> {
    /// Guest RAM.
    pub mem: &'a GuestMemoryMmap,
    /// What the guest may name.
    pub access: &'a GuestAccess,
}

/// Counters for `--stats` and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NetStats {
    /// Connections handed to the guest.
    pub accepted: u64,
    /// Clients closed at once because the table was full.
    pub refused: u64,
}

/// The stream device of one run.
#[derive(Debug)]
pub struct Net {
    listener: TcpListener,
    epoll: Epoll,
    conns: Table<Connection>,
    /// `user_data` of outstanding accepts, oldest first.
    accepts: VecDeque<u64>,
    cap: usize,
    stats: NetStats,
}

/// Checks a guest buffer of any length up to [`MAX_SEND_LEN`] piece by piece
/// (`GuestAccess::check` takes at most `MAX_IO_LEN` at once).
fn check_long(access: &GuestAccess, addr: u64, len: u64, write: bool) -> Result<(), i64> {
    if len > MAX_SEND_LEN {
        return Err(-EINVAL);
    }
    let end = addr.checked_add(len).ok_or(-abi::hostcall::errno::EFAULT)?;
    let mut at = addr;
    loop {
        let piece = (end - at).min(MAX_IO_LEN);
        access.check(at, piece, write)?;
        at += piece;
        if at >= end {
            return Ok(());
        }
    }
}

impl Net {
    /// The stream device over a bound listener (see [`bind`]). Raises the open-file limit.
    pub fn new(listener: TcpListener) -> Result<Net, NetError> {
        let epoll = Epoll::new().map_err(NetError::Epoll)?;
        let ev = EpollEvent::new(EventSet::IN | EventSet::EDGE_TRIGGERED, LISTENER);
        epoll
            .ctl(ControlOperation::Add, listener.as_raw_fd(), ev)
            .map_err(NetError::Epoll)?;
        let fds = raise_fd_limit().saturating_sub(FD_RESERVE);
        let cap = usize::try_from(fds)
            .unwrap_or(MAX_CONNECTIONS)
            .min(MAX_CONNECTIONS);
        Ok(Net {
            listener,
            epoll,
            conns: Table::default(),
            accepts: VecDeque::new(),
            cap: cap.max(1),
            stats: NetStats::default(),
        })
    }

    /// The epoll instance to watch for readiness (readable when [`Net::poll`] has work).
    pub fn fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Counters so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// Performs one `NET_*` submission; completions (its own, if it finished at once, and any
    /// it caused) are appended to `out`.
    pub fn submit(
        &mut self,
        guest: &Guest<'_>,
        opcode: u32,
        user_data: u64,
        args: &[u64; 6],
        out: &mut Vec<Completion>,
    ) {
        match opcode {
            op::NET_ACCEPT => {
                self.accepts.push_back(user_data);
                self.accept_pending(out);
            }
            op::NET_RECV => self.recv(guest, user_data, args, out),
            op::NET_SEND => self.send(guest, user_data, args, out),
            op::NET_CLOSE => self.close(guest, user_data, args[0], out),
            _ => out.push((user_data, -ENOSYS)),
        }
    }

    /// The open connection `n` that takes new operations.
    fn open(&mut self, n: u64) -> Option<&mut Connection> {
        self.conns.get_mut(n).filter(|c| !c.is_closing())
    }

    fn recv(
        &mut self,
        guest: &Guest<'_>,
        user_data: u64,
        args: &[u64; 6],
        out: &mut Vec<Completion>,
    ) {
        let Some(conn) = self.open(args[0]) else {
            return out.push((user_data, -EBADF));
        };
        if conn.has_recv() {
            return out.push((user_data, -EBUSY));
        }
        // "Up to len bytes": a longer buffer is simply not filled beyond MAX_IO_LEN at once.
        let len = args[2].min(MAX_IO_LEN);
        if len == 0 {
            return out.push((user_data, -EINVAL));
        }
        if let Err(e) = guest.access.check(args[1], len, true) {
            return out.push((user_data, e));
        }
        let buf = Buffer {
            user_data,
            addr: args[1],
            len,
        };
        conn.start_recv(buf, guest.mem, out);
    }

    fn send(
        &mut self,
        guest: &Guest<'_>,
        user_data: u64,
        args: &[u64; 6],
        out: &mut Vec<Completion>,
    ) {
        let Some(conn) = self.open(args[0]) else {
            return out.push((user_data, -EBADF));
        };
        if let Err(e) = check_long(guest.access, args[1], args[2], false) {
            return out.push((user_data, e));
        }
        let buf = Buffer {
            user_data,
            addr: args[1],
            len: args[2],
        };
        conn.start_send(buf, guest.mem, out);
    }

    fn close(&mut self, guest: &Guest<'_>, user_data: u64, n: u64, out: &mut Vec<Completion>) {
        let Some(conn) = self.open(n) else {
            return out.push((user_data, -EBADF));
        };
        conn.start_close(user_data, guest.mem, out);
        self.finish_close(n, out);
    }

    /// Drops connection `n` and completes its close, if the close is only waiting for that.
    fn finish_close(&mut self, n: u64, out: &mut Vec<Completion>) {
        let Ok(n32) = u32::try_from(n) else {
            return;
        };
        let Some(user_data) = self.conns.get_mut(n).and_then(|c| c.close_done()) else {
            return;
        };
        if let Some(mut c) = self.conns.remove(n32) {
            let _ = self.epoll.ctl(
                ControlOperation::Delete,
                c.stream().as_raw_fd(),
                EpollEvent::default(),
            );
            c.discard_input();
        }
        out.push((user_data, 0));
        // A descriptor is free again: clients left waiting for one can be taken now.
        if !self.accepts.is_empty() {
            self.accept_pending(out);
        }
    }

    /// Hands waiting clients to outstanding accepts.
    fn accept_pending(&mut self, out: &mut Vec<Completion>) {
        while let Some(&user_data) = self.accepts.front() {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => continue,
                // WouldBlock (the next edge brings more), or out of descriptors (clients wait
                // in the backlog until a connection closes and an accept looks again).
                Err(_) => return,
            };
            if self.conns.len() >= self.cap || stream.set_nonblocking(true).is_err() {
                self.stats.refused += 1;
                continue;
            }
            let _ = stream.set_nodelay(true);
            let generation = self.conns.next_generation();
            let fd = stream.as_raw_fd();
            let n = self.conns.insert(Connection::new(stream, generation));
            let events =
                EventSet::IN | EventSet::OUT | EventSet::READ_HANG_UP | EventSet::EDGE_TRIGGERED;
            let data = u64::from(generation) << 32 | u64::from(n);
            if self
                .epoll
                .ctl(ControlOperation::Add, fd, EpollEvent::new(events, data))
                .is_err()
            {
                self.conns.remove(n);
                self.stats.refused += 1;
                continue;
            }
            self.accepts.pop_front();
            self.stats.accepted += 1;
            out.push((user_data, i64::from(n)));
        }
    }

    /// Handles the events ready now (without blocking); returns how many there were.
    pub fn poll(&mut self, guest: &Guest<'_>, out: &mut Vec<Completion>) -> usize {
        let mut events = [EpollEvent::default(); EVENTS_PER_POLL];
        let n = match self.epoll.wait(0, &mut events) {
            Ok(n) => n,
            Err(_) => return 0,
        };
        for ev in &events[..n] {
            let data = ev.data();
            if data == LISTENER {
                self.accept_pending(out);
                continue;
            }
            let (generation, index) = ((data >> 32) as u32, data & 0xffff_ffff);
            let set = ev.event_set();
            let Some(conn) = self.conns.get_mut(index) else {
                continue;
            };
            if conn.generation != generation {
                continue;
            }
            let trouble = set.intersects(EventSet::ERROR | EventSet::HANG_UP);
            conn.on_event(
                trouble || set.intersects(EventSet::IN | EventSet::READ_HANG_UP),
                trouble || set.contains(EventSet::OUT),
            );
            conn.pump(guest.mem, out);
            self.finish_close(index, out);
        }
        n
    }

    /// Closes every connection (the guest has ended): sends it queued are given until
    /// [`EXIT_FLUSH`] to reach their sockets; other outstanding operations are dropped.
    pub fn shutdown(&mut self, mem: &GuestMemoryMmap) {
        let deadline = std::time::Instant::now() + EXIT_FLUSH;
        let mut n = 0;
        while n < self.conns.slots() {
            if let Some(c) = self.conns.get_mut(n as u64) {
                c.flush_before_exit(mem, deadline);
                c.discard_input();
            }
            n += 1;
        }
        self.conns.clear();
        self.accepts.clear();
    }
}

#[cfg(test)]
mod tests;
