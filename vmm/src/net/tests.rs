//! The stream device through the ring, with real sockets: the test plays the guest (submits,
//! reaps) and the event loop (polls).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use abi::hostcall::errno::{EBADF, EBUSY, ECANCELED, ECONNRESET, EFAULT, EINVAL};
use abi::memmap::RING_ADDR;
use abi::ring::{header, op, CQ_ENTRIES, CQ_OFFSET, SQ_ENTRIES, SQ_OFFSET};
use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::boot::RamPlan;
use crate::hostcall::console::Console;
use crate::memory::GuestRam;
use crate::ring::{RingConsumer, RingEnv};

const BUF: u64 = 0x30_0000;

struct Guest {
    ram: GuestRam,
    access: GuestAccess,
    console: Console,
    ring: RingConsumer,
    addr: SocketAddr,
    sq_tail: u32,
    cq_head: u32,
    /// Completions reaped but not yet asked for.
    seen: Vec<(u64, i64)>,
}

impl Guest {
    fn new() -> Self {
        Guest::with_ram(16 << 20)
    }

    fn with_ram(size: u64) -> Self {
        let net = Net::new(bind("127.0.0.1:0").unwrap()).unwrap();
        let addr = net.local_addr().unwrap();
        Guest {
            ram: GuestRam::new(size).unwrap(),
            access: GuestAccess::new(&RamPlan::new(size).unwrap()),
            console: Console::buffer(b""),
            ring: RingConsumer::new(Some(net)),
            addr,
            sq_tail: 0,
            cq_head: 0,
            seen: Vec::new(),
        }
    }

    fn submit(&mut self, opcode: u32, user_data: u64, args: [u64; 6]) {
        let mut sqe = Vec::new();
        sqe.extend_from_slice(&u64::from(opcode).to_le_bytes());
        sqe.extend_from_slice(&user_data.to_le_bytes());
        args.iter()
            .for_each(|a| sqe.extend_from_slice(&a.to_le_bytes()));
        let slot = u64::from(self.sq_tail % SQ_ENTRIES);
        let m = self.ram.mem();
        m.write_slice(&sqe, GuestAddress(RING_ADDR + SQ_OFFSET + slot * 64))
            .unwrap();
        self.sq_tail += 1;
        m.store(
            self.sq_tail,
            GuestAddress(RING_ADDR + header::SQ_TAIL),
            Ordering::Release,
        )
        .unwrap();
        let env = RingEnv {
            mem: self.ram.mem(),
            access: &self.access,
            console: &self.console,
            objects: None,
        };
        self.ring.drain(&env);
    }

    fn reap(&mut self) {
        let m = self.ram.mem();
        let tail: u32 = m
            .load(GuestAddress(RING_ADDR + header::CQ_TAIL), Ordering::Acquire)
            .unwrap();
        while self.cq_head != tail {
            let at = RING_ADDR + CQ_OFFSET + u64::from(self.cq_head % CQ_ENTRIES) * 16;
            let ud: u64 = m.read_obj(GuestAddress(at)).unwrap();
            let res: i64 = m.read_obj(GuestAddress(at + 8)).unwrap();
            self.seen.push((ud, res));
            self.cq_head += 1;
        }
        m.store(
            self.cq_head,
            GuestAddress(RING_ADDR + header::CQ_HEAD),
            Ordering::Release,
        )
        .unwrap();
    }

    /// Polls the sockets (as the event loop does) until `user_data` completes.
    fn result(&mut self, user_data: u64) -> i64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.reap();
            if let Some(i) = self.seen.iter().position(|c| c.0 == user_data) {
                return self.seen.remove(i).1;
            }
            assert!(
                Instant::now() < deadline,
                "operation {user_data} never completed"
            );
            let env = RingEnv {
                mem: self.ram.mem(),
                access: &self.access,
                console: &self.console,
                objects: None,
            };
            if self.ring.poll_net(&env) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// True if `user_data` has completed (after one poll).
    fn done(&mut self, user_data: u64) -> bool {
        let env = RingEnv {
            mem: self.ram.mem(),
            access: &self.access,
            console: &self.console,
            objects: None,
        };
        self.ring.poll_net(&env);
        self.reap();
        self.seen.iter().any(|c| c.0 == user_data)
    }

    fn bytes(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.ram
            .mem()
            .read_slice(&mut v, GuestAddress(addr))
            .unwrap();
        v
    }

    /// Accepts one client; returns (connection number, client socket).
    fn connect(&mut self, user_data: u64) -> (u64, TcpStream) {
        self.submit(op::NET_ACCEPT, user_data, [0; 6]);
        let client = TcpStream::connect(self.addr).unwrap();
        let conn = self.result(user_data);
        assert!(conn >= 0, "accept failed: {conn}");
        (conn as u64, client)
    }
}

#[test]
fn echo_round_trip_and_clean_close() {
    let mut g = Guest::new();
    let (c, mut client) = g.connect(1);
    assert_eq!(c, 0, "numbers start at 0");
    g.submit(op::NET_RECV, 2, [c, BUF, 64, 0, 0, 0]);
    assert!(!g.done(2), "nothing sent yet");
    client.write_all(b"hello").unwrap();
    assert_eq!(g.result(2), 5);
    assert_eq!(g.bytes(BUF, 5), b"hello");
    g.submit(op::NET_SEND, 3, [c, BUF, 5, 0, 0, 0]);
    assert_eq!(g.result(3), 5);
    let mut got = [0u8; 5];
    client.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello");

    g.submit(op::NET_RECV, 4, [c, BUF, 64, 0, 0, 0]);
    g.submit(op::NET_RECV, 5, [c, BUF, 64, 0, 0, 0]);
    assert_eq!(g.result(5), -EBUSY, "one receive at a time");
    g.submit(op::NET_CLOSE, 6, [c, 0, 0, 0, 0, 0]);
    assert_eq!(g.result(4), -ECANCELED);
    assert_eq!(g.result(6), 0);
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "the client sees a clean end of stream");
    g.submit(op::NET_CLOSE, 7, [c, 0, 0, 0, 0, 0]);
    assert_eq!(g.result(7), -EBADF, "closed twice");

    let (again, _client) = g.connect(8);
    assert_eq!(again, 0, "the number is reused");
}

#[test]
fn hostile_arguments_get_errors() {
    let mut g = Guest::new();
    let (c, _client) = g.connect(1);
    let cases: [(u32, [u64; 6], i64); 9] = [
        (op::NET_RECV, [7, BUF, 16, 0, 0, 0], -EBADF),
        (op::NET_RECV, [u64::MAX, BUF, 16, 0, 0, 0], -EBADF),
        (op::NET_SEND, [1 << 40, BUF, 16, 0, 0, 0], -EBADF),
        (op::NET_CLOSE, [99, 0, 0, 0, 0, 0], -EBADF),
        (
            op::NET_RECV,
            [c, abi::memmap::SYS_BASE, 16, 0, 0, 0],
            -EFAULT,
        ),
        (op::NET_RECV, [c, 0x1000, 16, 0, 0, 0], -EFAULT),
        (op::NET_RECV, [c, BUF, 0, 0, 0, 0], -EINVAL),
        (op::NET_SEND, [c, BUF, u64::MAX, 0, 0, 0], -EINVAL),
        (op::NET_SEND, [c, u64::MAX - 4, 16, 0, 0, 0], -EFAULT),
    ];
    for (i, (opcode, args, want)) in cases.into_iter().enumerate() {
        let ud = 100 + i as u64;
        g.submit(opcode, ud, args);
        assert_eq!(g.result(ud), want, "case {i}: op {opcode} {args:?}");
    }
    // Beyond RAM, though each piece of the check alone would be in range.
    g.submit(op::NET_SEND, 200, [c, BUF, 32 << 20, 0, 0, 0]);
    assert_eq!(g.result(200), -EFAULT);
    // A huge receive buffer is filled only as far as it is checked (1 MiB).
    g.submit(op::NET_RECV, 201, [c, 0x40_0000, u64::MAX, 0, 0, 0]);
    assert!(!g.done(201), "a clamped receive is accepted and waits");
}

#[test]
fn client_going_away_ends_only_its_connection() {
    let mut g = Guest::new();
    let (a, client_a) = g.connect(1);
    let (b, mut client_b) = g.connect(2);
    let (r, client_r) = g.connect(3);
    g.submit(op::NET_RECV, 10, [a, BUF, 64, 0, 0, 0]);
    g.submit(op::NET_RECV, 11, [b, BUF + 64, 64, 0, 0, 0]);
    g.submit(op::NET_RECV, 12, [r, BUF + 128, 64, 0, 0, 0]);
    drop(client_a);
    assert_eq!(g.result(10), 0, "end of stream");
    // A reset: close with unread data pending and a zero linger.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads a valid linger struct of the size given.
    unsafe {
        libc::setsockopt(
            client_r.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    drop(client_r);
    assert_eq!(g.result(12), -ECONNRESET);
    g.submit(op::NET_SEND, 13, [r, BUF, 8, 0, 0, 0]);
    assert!(g.result(13) < 0, "sending on a reset connection fails");
    client_b.write_all(b"still here").unwrap();
    assert_eq!(g.result(11), 10);
    assert_eq!(g.bytes(BUF + 64, 10), b"still here");
}

#[test]
fn no_receive_outstanding_means_no_reading() {
    let mut g = Guest::new();
    let (c, mut client) = g.connect(1);
    client.set_nonblocking(true).unwrap();
    // Without a receive the VMM reads nothing: the kernel buffers fill and writes block.
    let chunk = vec![0x5au8; 64 << 10];
    let mut sent = 0usize;
    let start = Instant::now();
    loop {
        match client.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Give the VMM a chance to (wrongly) read, then try once more.
                g.done(0);
                if client.write(&chunk).is_err() {
                    break;
                }
            }
            Err(e) => panic!("{e}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never pushed back"
        );
        assert!(sent < 256 << 20, "the VMM kept reading without a receive");
    }
    // Now receive it all.
    let mut got = 0usize;
    let mut n = 0;
    while got < sent {
        n += 1;
        g.submit(op::NET_RECV, 1000 + n, [c, BUF, 1 << 20, 0, 0, 0]);
        let r = g.result(1000 + n);
        assert!(r > 0, "receive failed: {r}");
        got += r as usize;
    }
    assert_eq!(got, sent, "nothing lost or invented");
}

#[test]
fn guest_exit_closes_every_socket() {
    let mut g = Guest::new();
    let (_a, mut client_a) = g.connect(1);
    let (_b, mut client_b) = g.connect(2);
    g.ring.close_net(g.ram.mem());
    let mut rest = Vec::new();
    client_a
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client_b
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(client_a.read_to_end(&mut rest).unwrap(), 0);
    assert_eq!(client_b.read_to_end(&mut rest).unwrap(), 0);
    assert!(
        TcpStream::connect(g.addr).is_err(),
        "the listener is closed"
    );
}

#[test]
fn sends_queued_before_exit_still_reach_the_client() {
    let mut g = Guest::with_ram(64 << 20);
    let (c, client) = g.connect(1);
    // Far more than the kernel buffers of a loopback connection hold.
    const LEN: usize = 40 << 20;
    let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    g.ram.mem().write_slice(&data, GuestAddress(BUF)).unwrap();
    g.submit(op::NET_SEND, 2, [c, BUF, LEN as u64, 0, 0, 0]);
    assert!(!g.done(2), "more than the socket takes at once");
    let reader = std::thread::spawn(move || {
        let mut client = client;
        let mut got = Vec::new();
        client.read_to_end(&mut got).map(|_| got)
    });
    g.ring.close_net(g.ram.mem());
    let got = reader.join().unwrap().expect("a clean end of stream");
    assert_eq!(got.len(), LEN);
    assert!(got == data);
}
