//! An echo server on the stream device: `twz-vmm run netecho --listen ADDR [-- OPTIONS]`.
//! Serves any number of clients at once; each connection receives, sends the same bytes back,
//! receives again, and is closed at end of stream.
//!
//! Options: `--conns N` exits (status 0) once N connections have been served and closed;
//! `--buf BYTES` sets the per-connection buffer (default 32 KiB).
//! Without `--listen` it reports that accepting fails with EBADF (through the API, and through
//! a raw `NET_ACCEPT` submission) and exits with status 2.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use twz_rt::net::{self, Conn, Event, Op};
use twz_rt::{eprintln, println, Errno};

twz_rt::entry!(main);

/// Accepts kept outstanding, so a burst of clients is taken without a round trip each.
const ACCEPTS_AHEAD: u64 = 16;

struct Options {
    conns: Option<u64>,
    buf: usize,
}

fn options() -> Result<Options, Errno> {
    let args = twz_rt::args();
    let mut o = Options {
        conns: None,
        buf: 32 << 10,
    };
    let mut i = 1;
    while let Some(a) = args.get_str(i) {
        let value = args.get_str(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (a, value) {
            ("--conns", Some(n)) => o.conns = Some(n),
            ("--buf", Some(n)) if n > 0 => o.buf = n as usize,
            _ => {
                eprintln!("netecho: usage: netecho [--conns N] [--buf BYTES]");
                return Err(Errno::EINVAL);
            }
        }
        i += 2;
    }
    Ok(o)
}

fn main() -> i32 {
    let opts = match options() {
        Ok(o) => o,
        Err(_) => return 2,
    };
    if !net::listening() {
        return report_no_listen();
    }
    match serve(&opts) {
        Ok(served) => {
            println!("netecho: served {served} connections");
            0
        }
        Err(e) => {
            eprintln!("netecho: {e:?}");
            1
        }
    }
}

/// Shows what a guest gets from the stream device without `--listen`.
fn report_no_listen() -> i32 {
    let api = net::accept(0);
    // SAFETY: NET_ACCEPT names no guest memory.
    let raw = unsafe { twz_rt::io::call_raw(twz_rt::abi::ring::op::NET_ACCEPT, 0, [0; 6]) };
    let name = |r: i64| Errno(-r).name().unwrap_or("?");
    match (api, raw) {
        (Err(e), Ok(r)) => eprintln!(
            "netecho: no --listen: accept: {} (errno {}); ring NET_ACCEPT: {} ({r})",
            e.name().unwrap_or("?"),
            e.0,
            name(r),
        ),
        other => eprintln!("netecho: no --listen, yet accept gave {other:?}"),
    }
    2
}

/// The echo loop; returns the number of connections served.
fn serve(opts: &Options) -> Result<u64, Errno> {
    let mut buffers: Vec<Option<Vec<u8>>> = Vec::new();
    let (mut accepting, mut accepted, mut open, mut served) = (0u64, 0u64, 0u64, 0u64);
    let want_more =
        |accepted: u64, accepting: u64| opts.conns.is_none_or(|m| accepted + accepting < m);
    while accepting < ACCEPTS_AHEAD && want_more(accepted, accepting) {
        net::accept(0)?;
        accepting += 1;
    }
    let mut events = [Event::default(); 64];
    loop {
        if accepting == 0 && open == 0 {
            return Ok(served);
        }
        let n = net::wait(&mut events, None)?;
        for e in &events[..n] {
            match e.op {
                Op::Accept => {
                    accepting -= 1;
                    if e.result < 0 {
                        eprintln!("netecho: accept failed: {:?}", Errno(-e.result));
                    } else {
                        accepted += 1;
                        open += 1;
                        let buf = buffer(&mut buffers, e.conn, opts.buf);
                        // SAFETY: the buffer lives in `buffers` until the connection's close
                        // completes, after every receive and send on it.
                        unsafe { net::recv(e.conn, buf.as_mut_ptr(), buf.len(), 0)? };
                    }
                    if want_more(accepted, accepting) {
                        net::accept(0)?;
                        accepting += 1;
                    }
                }
                Op::Recv if e.result > 0 => {
                    let buf = buffer(&mut buffers, e.conn, opts.buf);
                    // SAFETY: as above; no receive is outstanding while the send reads it.
                    unsafe { net::send(e.conn, buf.as_ptr(), e.result as usize, 0)? };
                }
                Op::Send if e.result >= 0 => {
                    let buf = buffer(&mut buffers, e.conn, opts.buf);
                    // SAFETY: as above; the send that read the buffer has completed.
                    unsafe { net::recv(e.conn, buf.as_mut_ptr(), buf.len(), 0)? };
                }
                Op::Recv | Op::Send => net::close(e.conn, 0)?,
                Op::Close => {
                    open -= 1;
                    served += 1;
                }
            }
        }
    }
}

/// The buffer of connection `conn`, created on first use and kept for later holders of the
/// number.
fn buffer(buffers: &mut Vec<Option<Vec<u8>>>, conn: Conn, size: usize) -> &mut Vec<u8> {
    let i = conn.max(0) as usize;
    if buffers.len() <= i {
        buffers.resize_with(i + 1, || None);
    }
    buffers[i].get_or_insert_with(|| vec![0u8; size])
}
