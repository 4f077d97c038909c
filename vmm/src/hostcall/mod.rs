//! Synchronous host calls (`abi::hostcall`): the guest stores a request block's address to
//! `DOORBELL_SYNC`, the vCPU exits, and [`HostCalls::handle`] validates and performs the call.
//!
//! Every address and length comes from the guest and is checked by [`access::GuestAccess`]
//! before it is used; a bad request gets a negated errno in `ret`, never a VMM panic. A block
//! address that is misaligned or outside user read/write memory cannot even receive `ret`: the
//! request is dropped and counted.
//!
//! `RING_WAIT` drains the ring on the vCPU thread, then blocks it until a completion is
//! available (the event loop posts those of the stream device later), the timeout passes or the
//! run is stopped.

pub mod access;
pub mod console;
pub mod objects;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use abi::hostcall::errno::{EFAULT, EIO, ENOSYS};
use abi::hostcall::{fd, nr};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::ring::{self, RingConsumer, RingEnv};
use access::GuestAccess;
use console::Console;

/// Buckets of [`HostCalls::counts`]: one per call number, the last for unknown numbers.
pub const CALL_BUCKETS: usize = 20;
/// Longest a `RING_WAIT` sleeps before it looks at the stop flag again.
pub const RING_WAIT_SLICE: Duration = Duration::from_millis(10);
/// Largest chunk `RANDOM` fills per call.
pub const MAX_RANDOM: u64 = 4096;
/// Largest panic message or file name shown.
const MAX_PANIC_TEXT: u64 = 4096;

/// A decoded request block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Call number.
    pub nr: u64,
    /// Arguments.
    pub args: [u64; 6],
}

/// A guest panic report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicReport {
    /// The message (lossy UTF-8; `<unreadable>` if the guest's pointer was bad).
    pub message: String,
    /// Source file.
    pub file: String,
    /// Line.
    pub line: u64,
    /// Column.
    pub column: u64,
}

/// What the vCPU loop does after a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Resume the guest.
    Continue,
    /// The guest asked to exit with this status.
    Exit(u8),
    /// The guest panicked.
    Panic(PanicReport),
}

/// The synchronous call handler of one VM.
pub struct HostCalls<'a> {
    /// Guest RAM.
    pub mem: &'a GuestMemoryMmap,
    /// What the guest may name.
    pub access: &'a GuestAccess,
    /// Console streams.
    pub console: &'a Console,
    /// The ring consumer shared with the event loop.
    pub ring: &'a Mutex<RingConsumer>,
    /// Set when the run is being stopped (unblocks a stdin read).
    pub stop: &'a AtomicBool,
    /// The object mapper, if the run has a store.
    pub objects: Option<&'a crate::objects::Objects>,
    /// Calls by number (index = nr, last bucket = unknown).
    pub counts: [u64; CALL_BUCKETS],
    /// Doorbell writes whose block could not be used.
    pub dropped: u64,
}

impl<'a> HostCalls<'a> {
    /// A handler over the VM's memory, console and ring.
    pub fn new(
        mem: &'a GuestMemoryMmap,
        access: &'a GuestAccess,
        console: &'a Console,
        ring: &'a Mutex<RingConsumer>,
        stop: &'a AtomicBool,
    ) -> Self {
        HostCalls {
            mem,
            access,
            console,
            ring,
            stop,
            objects: None,
            counts: [0; CALL_BUCKETS],
            dropped: 0,
        }
    }

    /// Handles the doorbell write `data` (the block address, 8 bytes little-endian).
    pub fn handle(&mut self, data: &[u8]) -> Action {
        let Ok(bytes) = <[u8; 8]>::try_from(data) else {
            self.dropped += 1;
            return Action::Continue;
        };
        let block = u64::from_le_bytes(bytes);
        let Some(req) = self.read_block(block) else {
            self.dropped += 1;
            return Action::Continue;
        };
        let last = CALL_BUCKETS - 1;
        self.counts[usize::try_from(req.nr).unwrap_or(last).min(last)] += 1;
        let ret = match req.nr {
            nr::EXIT => {
                self.drain_ring();
                return Action::Exit(req.args[0] as u8);
            }
            nr::PANIC => {
                self.drain_ring();
                return Action::Panic(self.panic_report(&req.args));
            }
            nr::WRITE => {
                self.drain_ring();
                let env = RingEnv {
                    mem: self.mem,
                    access: self.access,
                    console: self.console,
                    objects: self.objects,
                };
                ring::write(&env, req.args[0], req.args[1], req.args[2])
            }
            nr::READ => self.read(req.args[0], req.args[1], req.args[2]),
            nr::RANDOM => self.random(req.args[0], req.args[1]),
            nr::RING_WAIT => self.ring_wait(req.args[0]),
            nr::NOP => req.args[0] as i64,
            nr::OBJ_CREATE..=nr::OBJ_DELETE | nr::OBJ_RESERVE | nr::OBJ_FLUSH_MANY => {
                let calls = objects::ObjectCalls {
                    mem: self.mem,
                    access: self.access,
                    objects: self.objects,
                };
                calls.call(req.nr, &req.args)
            }
            nr::ERR_REASON => {
                let calls = objects::ObjectCalls {
                    mem: self.mem,
                    access: self.access,
                    objects: self.objects,
                };
                calls.err_reason(&req.args)
            }
            _ => -ENOSYS,
        };
        // read_block checked that the block is user-writable.
        let _ = self.mem.write_obj(ret, GuestAddress(block + 56));
        Action::Continue
    }

    /// Reads a request block if it is 64-byte aligned and in user read/write memory.
    fn read_block(&self, block: u64) -> Option<Request> {
        if !block.is_multiple_of(64) || self.access.check(block, 64, true).is_err() {
            return None;
        }
        let mut raw = [0u8; 64];
        self.mem.read_slice(&mut raw, GuestAddress(block)).ok()?;
        let w = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        Some(Request {
            nr: w(0),
            args: std::array::from_fn(|i| w(1 + i)),
        })
    }

    /// Performs pending ring submissions so their output comes before what follows.
    pub fn drain_ring(&self) {
        if let Ok(mut r) = self.ring.lock() {
            let env = RingEnv {
                mem: self.mem,
                access: self.access,
                console: self.console,
                objects: self.objects,
            };
            r.drain(&env);
        }
    }

    /// `RING_WAIT`: drains the ring, then waits (in slices of [`RING_WAIT_SLICE`], so a stop
    /// is noticed) until a completion is available or `timeout_ns` (0: none) passes. Returns the
    /// completions available. The wait holds no lock: the event loop posts meanwhile and wakes
    /// this thread through the ring's [`ring::Waker`].
    fn ring_wait(&self, timeout_ns: u64) -> i64 {
        let deadline = (timeout_ns != 0)
            .then(|| Instant::now().checked_add(Duration::from_nanos(timeout_ns)))
            .flatten();
        let waker = match self.ring.lock() {
            Ok(mut ring) => {
                ring.drain(&RingEnv {
                    mem: self.mem,
                    access: self.access,
                    console: self.console,
                    objects: self.objects,
                });
                ring.waker()
            }
            Err(_) => return 0,
        };
        let stopped = || self.stop.load(Ordering::Acquire);
        loop {
            let ready = RingConsumer::posted_in(self.mem);
            if ready > 0 || stopped() {
                return i64::from(ready);
            }
            let slice = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(RING_WAIT_SLICE),
                    _ => return 0,
                },
                None => RING_WAIT_SLICE,
            };
            waker.wait(|| RingConsumer::posted_in(self.mem) > 0 || stopped(), slice);
        }
    }

    fn read(&self, stream: u64, addr: u64, len: u64) -> i64 {
        if stream != fd::STDIN {
            return -abi::hostcall::errno::EBADF;
        }
        if let Err(e) = self.access.check(addr, len, true) {
            return e;
        }
        let mut buf = vec![0u8; len.min(64 << 10) as usize];
        match self.console.read(&mut buf, self.stop) {
            Ok(n) => match self.mem.write_slice(&buf[..n], GuestAddress(addr)) {
                Ok(()) => n as i64,
                Err(_) => -EFAULT,
            },
            Err(e) => -i64::from(e.raw_os_error().unwrap_or(EIO as i32)),
        }
    }

    fn random(&self, addr: u64, len: u64) -> i64 {
        let len = len.min(MAX_RANDOM);
        if let Err(e) = self.access.check(addr, len, true) {
            return e;
        }
        let mut buf = vec![0u8; len as usize];
        let mut filled = 0;
        while filled < buf.len() {
            let rest = &mut buf[filled..];
            // SAFETY: `rest` is a valid writable buffer of the length passed.
            let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return -EIO;
            }
            filled += n as usize;
        }
        match self.mem.write_slice(&buf, GuestAddress(addr)) {
            Ok(()) => len as i64,
            Err(_) => -EFAULT,
        }
    }

    fn text(&self, addr: u64, len: u64) -> String {
        let len = len.min(MAX_PANIC_TEXT);
        if self.access.check(addr, len, false).is_err() {
            return "<unreadable>".into();
        }
        let mut buf = vec![0u8; len as usize];
        match self.mem.read_slice(&mut buf, GuestAddress(addr)) {
            Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
            Err(_) => "<unreadable>".into(),
        }
    }

    fn panic_report(&self, a: &[u64; 6]) -> PanicReport {
        PanicReport {
            message: self.text(a[0], a[1]),
            file: self.text(a[2], a[3]),
            line: a[4],
            column: a[5],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::RamPlan;
    use crate::memory::GuestRam;
    use abi::hostcall::errno::{EBADF, EINVAL};
    use abi::memmap::HOSTCALL_BLOCK_ADDR;

    struct Vm {
        ram: GuestRam,
        access: GuestAccess,
        console: Console,
        ring: Mutex<RingConsumer>,
        stop: AtomicBool,
    }

    fn vm(input: &[u8]) -> Vm {
        Vm {
            ram: GuestRam::new(16 << 20).unwrap(),
            access: GuestAccess::new(&RamPlan::new(16 << 20).unwrap()),
            console: Console::buffer(input),
            ring: Mutex::default(),
            stop: AtomicBool::new(false),
        }
    }

    fn call(vm: &Vm, block: u64, nr: u64, args: [u64; 6]) -> (Action, i64) {
        let mut raw = Vec::new();
        raw.extend_from_slice(&nr.to_le_bytes());
        args.iter()
            .for_each(|a| raw.extend_from_slice(&a.to_le_bytes()));
        raw.extend_from_slice(&0x5555i64.to_le_bytes());
        let m = vm.ram.mem();
        let _ = m.write_slice(&raw, GuestAddress(block));
        let mut h = HostCalls::new(m, &vm.access, &vm.console, &vm.ring, &vm.stop);
        let action = h.handle(&block.to_le_bytes());
        let ret = m
            .read_obj::<i64>(GuestAddress(block + 56))
            .unwrap_or(0x5555);
        (action, ret)
    }

    const B: u64 = HOSTCALL_BLOCK_ADDR;

    #[test]
    fn write_read_random_nop_exit() {
        let v = vm(b"typed");
        v.ram
            .mem()
            .write_slice(b"hello\n", GuestAddress(0x30_0000))
            .unwrap();
        assert_eq!(
            call(&v, B, nr::WRITE, [fd::STDOUT, 0x30_0000, 6, 0, 0, 0]).1,
            6
        );
        assert_eq!(v.console.stdout_bytes(), b"hello\n");
        assert_eq!(
            call(&v, B, nr::READ, [fd::STDIN, 0x30_1000, 100, 0, 0, 0]).1,
            5
        );
        let mut got = [0u8; 5];
        v.ram
            .mem()
            .read_slice(&mut got, GuestAddress(0x30_1000))
            .unwrap();
        assert_eq!(&got, b"typed");
        assert_eq!(
            call(&v, B, nr::READ, [fd::STDIN, 0x30_1000, 100, 0, 0, 0]).1,
            0,
            "EOF"
        );
        assert_eq!(
            call(&v, B, nr::RANDOM, [0x30_2000, 10_000, 0, 0, 0, 0]).1,
            4096
        );
        assert_eq!(call(&v, B, nr::NOP, [77, 0, 0, 0, 0, 0]).1, 77);
        assert_eq!(
            call(&v, B, nr::EXIT, [0x1_2A, 0, 0, 0, 0, 0]).0,
            Action::Exit(0x2A)
        );
    }

    #[test]
    fn malformed_requests_get_errors() {
        let v = vm(b"");
        let sys = abi::memmap::SYS_BASE;
        assert_eq!(call(&v, B, 999, [0; 6]).1, -ENOSYS);
        assert_eq!(
            call(&v, B, nr::WRITE, [fd::STDOUT, 0, 16, 0, 0, 0]).1,
            -EFAULT
        );
        assert_eq!(
            call(&v, B, nr::WRITE, [fd::STDOUT, u64::MAX, 16, 0, 0, 0]).1,
            -EFAULT
        );
        assert_eq!(
            call(&v, B, nr::WRITE, [fd::STDOUT, 0x30_0000, 1 << 40, 0, 0, 0]).1,
            -EINVAL
        );
        assert_eq!(call(&v, B, nr::WRITE, [7, 0x30_0000, 1, 0, 0, 0]).1, -EBADF);
        assert_eq!(
            call(&v, B, nr::READ, [fd::STDIN, sys, 16, 0, 0, 0]).1,
            -EFAULT
        );
        assert_eq!(call(&v, B, nr::RANDOM, [sys, 16, 0, 0, 0, 0]).1, -EFAULT);
        assert_eq!(
            call(&v, B, nr::RANDOM, [0x1000, 16, 0, 0, 0, 0]).1,
            -EFAULT,
            "boot info is RO"
        );
        let mut page_tables = [0u8; 8];
        v.ram
            .mem()
            .read_slice(&mut page_tables, GuestAddress(sys))
            .unwrap();
        assert_eq!(page_tables, [0; 8], "nothing written into the system area");
    }

    #[test]
    fn unusable_blocks_are_dropped() {
        let v = vm(b"");
        let m = v.ram.mem();
        let mut h = HostCalls::new(m, &v.access, &v.console, &v.ring, &v.stop);
        assert_eq!(
            h.handle(&(B + 8).to_le_bytes()),
            Action::Continue,
            "misaligned"
        );
        assert_eq!(
            h.handle(&abi::memmap::SYS_BASE.to_le_bytes()),
            Action::Continue
        );
        assert_eq!(h.handle(&0u64.to_le_bytes()), Action::Continue, "null");
        assert_eq!(h.handle(&[1, 2, 3, 4]), Action::Continue, "short write");
        assert_eq!(h.dropped, 4);
    }

    #[test]
    fn ring_wait_blocks_until_a_completion_is_posted() {
        use abi::memmap::RING_ADDR;
        use abi::ring::{header, op, SQ_OFFSET};
        let v = vm(b"");
        let t = Instant::now();
        let (_, n) = call(&v, B, nr::RING_WAIT, [20_000_000, 0, 0, 0, 0, 0]);
        assert_eq!(n, 0, "nothing to wait for: times out");
        assert!(t.elapsed() >= Duration::from_millis(20), "it did block");
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(30));
                // The event loop's part: a submission arrives and completes.
                let m = v.ram.mem();
                let mut sqe = [0u8; 64];
                sqe[..4].copy_from_slice(&op::NOP.to_le_bytes());
                m.write_slice(&sqe, GuestAddress(RING_ADDR + SQ_OFFSET))
                    .unwrap();
                m.store(
                    1u32,
                    GuestAddress(RING_ADDR + header::SQ_TAIL),
                    std::sync::atomic::Ordering::Release,
                )
                .unwrap();
                let env = RingEnv {
                    mem: m,
                    access: &v.access,
                    console: &v.console,
                    objects: None,
                };
                v.ring.lock().unwrap().drain(&env);
            });
            let (_, n) = call(&v, B, nr::RING_WAIT, [0; 6]);
            assert_eq!(n, 1, "woken by the completion, without a timeout");
        });
        v.stop.store(true, Ordering::Release);
        let m = v.ram.mem();
        m.store(
            1u32,
            GuestAddress(RING_ADDR + header::CQ_HEAD),
            std::sync::atomic::Ordering::Release,
        )
        .unwrap();
        assert_eq!(
            call(&v, B, nr::RING_WAIT, [0; 6]).1,
            0,
            "a stopped run does not wait"
        );
    }

    #[test]
    fn panic_reports_message_and_location() {
        let v = vm(b"");
        let m = v.ram.mem();
        m.write_slice(b"boom", GuestAddress(0x30_0000)).unwrap();
        m.write_slice(b"src/main.rs", GuestAddress(0x30_0100))
            .unwrap();
        let (a, _) = call(&v, B, nr::PANIC, [0x30_0000, 4, 0x30_0100, 11, 7, 9]);
        let want = PanicReport {
            message: "boom".into(),
            file: "src/main.rs".into(),
            line: 7,
            column: 9,
        };
        assert_eq!(a, Action::Panic(want));
        let (a, _) = call(&v, B, nr::PANIC, [0, 4, u64::MAX, 11, 7, 9]);
        assert!(matches!(a, Action::Panic(p) if p.message == "<unreadable>"));
    }
}
