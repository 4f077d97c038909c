//! The stream device (`twz-vmm run --listen`), through the `netecho` guest: real TCP clients
//! talk to a guest echo server.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{kvm_available, spawn_listening, temp_store, twz};

/// A running `netecho` and what it printed on stderr so far.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: JoinHandle<String>,
    _store: tempfile::TempDir,
}

/// Starts `twz-vmm run netecho --listen 127.0.0.1:0 -- ARGS` and waits for its address.
fn netecho(args: &[&str]) -> Server {
    let store = temp_store();
    let mut cmd = twz(store.path());
    cmd.args([
        "run",
        "netecho",
        "--listen",
        "127.0.0.1:0",
        "--timeout",
        "120",
        "--",
    ])
    .args(args)
    .stdout(Stdio::piped());
    let l = spawn_listening(&mut cmd).expect("twz-vmm reports the address it listens on");
    Server {
        child: l.child,
        addr: l.addr,
        stderr: l.stderr,
        _store: store,
    }
}

impl Server {
    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s
    }

    /// Waits for the guest to end; returns (status, stdout, stderr).
    fn finish(self) -> (Option<i32>, String, String) {
        let out = self.child.wait_with_output().expect("wait for twz-vmm");
        let err = self.stderr.join().expect("stderr reader");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            err,
        )
    }

    fn expect_served(self, n: usize) {
        let (status, out, err) = self.finish();
        assert_eq!(status, Some(0), "stdout:\n{out}\nstderr:\n{err}");
        assert!(
            out.contains(&format!("netecho: served {n} connections")),
            "stdout:\n{out}\nstderr:\n{err}"
        );
    }
}

/// Sends `data` and reads the same number of bytes back.
fn echo(s: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    s.write_all(data).expect("send");
    let mut back = vec![0u8; data.len()];
    s.read_exact(&mut back).expect("echo back");
    back
}

#[test]
fn echo_round_trip() {
    if !kvm_available("echo_round_trip") {
        return;
    }
    let server = netecho(&["--conns", "1"]);
    let mut c = server.connect();
    assert_eq!(echo(&mut c, b"ping"), b"ping");
    assert_eq!(echo(&mut c, b"and again, longer\n"), b"and again, longer\n");
    c.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "the guest closes at end of stream");
    server.expect_served(1);
}

/// Raises this process's soft limit on open files towards `want` (within the hard limit) and
/// returns the limit in force.
fn raise_fd_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `lim`, a live local.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want.min(lim.rlim_max),
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

#[test]
fn thousands_of_concurrent_connections_keep_their_own_data() {
    if !kvm_available("thousands_of_concurrent_connections_keep_their_own_data") {
        return;
    }
    // As many as this process may open, up to 2000 (the soft limit is often 1024).
    let n = raise_fd_limit(2100).saturating_sub(100).min(2000) as usize;
    assert!(n >= 250, "too few file descriptors for this test: {n}");
    let server = netecho(&["--conns", &n.to_string()]);
    let mut clients: Vec<TcpStream> = (0..n).map(|_| server.connect()).collect();
    let message = |i: usize| format!("client {i}: {}\n", "abcdefgh".repeat(i % 50 + 1));
    // Every connection is open at once; all send before any reads.
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(message(i).as_bytes()).expect("send");
    }
    for (i, c) in clients.iter_mut().enumerate().rev() {
        let want = message(i);
        let mut back = vec![0u8; want.len()];
        c.read_exact(&mut back).expect("echo back");
        assert_eq!(String::from_utf8_lossy(&back), want, "connection {i}");
    }
    drop(clients);
    server.expect_served(n);
}

#[test]
fn large_transfers_are_paced_by_back_pressure_without_loss() {
    if !kvm_available("large_transfers_are_paced_by_back_pressure_without_loss") {
        return;
    }
    const LEN: usize = 8 << 20;
    let server = netecho(&["--conns", "1", "--buf", "65536"]);
    let c = server.connect();
    let data: Vec<u8> = (0..LEN).map(|i| (i * 7 + i / 4093) as u8).collect();
    let mut writer_side = c.try_clone().unwrap();
    let to_send = data.clone();
    // The client writes everything while nobody reads the echo for a while: the guest's sends
    // block, it stops receiving, and TCP holds the writer back; nothing may be lost.
    let writer = std::thread::spawn(move || {
        writer_side.write_all(&to_send).expect("send 8 MiB");
        writer_side.shutdown(Shutdown::Write).unwrap();
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut back = Vec::with_capacity(LEN);
    let mut reader = c;
    reader.read_to_end(&mut back).expect("read the echo");
    writer.join().expect("writer");
    assert_eq!(back.len(), LEN, "every byte came back");
    assert!(back == data, "in order and unchanged");
    server.expect_served(1);
}

#[test]
fn a_client_vanishing_mid_stream_disturbs_no_other() {
    if !kvm_available("a_client_vanishing_mid_stream_disturbs_no_other") {
        return;
    }
    let server = netecho(&["--conns", "3"]);
    let mut steady = server.connect();
    let mut quitter = server.connect();
    let resetter = server.connect();
    assert_eq!(echo(&mut steady, b"before"), b"before");
    // One leaves in the middle of a large request without reading the echo.
    quitter.write_all(&vec![b'q'; 1 << 20]).expect("send");
    drop(quitter);
    // One resets its connection (zero linger) with data in flight.
    let mut r = resetter;
    r.write_all(&vec![b'r'; 200_000]).expect("send");
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads a valid linger struct of the size given.
    unsafe {
        libc::setsockopt(
            r.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    drop(r);
    for i in 0..50 {
        let msg = format!("after {i}");
        assert_eq!(echo(&mut steady, msg.as_bytes()), msg.as_bytes());
    }
    drop(steady);
    server.expect_served(3);
}

#[test]
fn a_bad_or_busy_listen_address_stops_the_run_before_boot() {
    if !kvm_available("a_bad_or_busy_listen_address_stops_the_run_before_boot") {
        return;
    }
    let store = temp_store();
    let out = twz(store.path())
        .args(["run", "netecho", "--listen", "no-port-here"])
        .output()
        .expect("spawn");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("invalid --listen address"), "{err}");
    assert!(!err.contains("netecho:"), "the guest never ran: {err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let out = twz(store.path())
        .args(["run", "netecho", "--listen", &busy])
        .output()
        .expect("spawn");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("cannot listen on {busy}")), "{err}");
    assert!(!err.contains("netecho:"), "the guest never ran: {err}");
}

#[test]
fn without_listen_accept_fails_with_ebadf() {
    if !kvm_available("without_listen_accept_fails_with_ebadf") {
        return;
    }
    let store = temp_store();
    let out = twz(store.path())
        .args(["run", "netecho"])
        .output()
        .expect("spawn");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("accept: EBADF (errno 9); ring NET_ACCEPT: EBADF (-9)"),
        "{err}"
    );
}
