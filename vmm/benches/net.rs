//! The stream device, side by side in one run: TCP request/response round trips through the
//! `netecho` guest (`twz-vmm run netecho --listen`) against a host-native echo server (a thread
//! per connection in this process), with the same clients.
//!
//! `cargo bench -p twz-vmm --bench net` (needs /dev/kvm). `TWZ_BENCH_ROUNDS` sets the ping-pong
//! round trips (default 5000).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const VMM: &str = env!("CARGO_BIN_EXE_twz-vmm");
/// Bytes per request in the round-trip figures.
const MSG: usize = 64;
/// Connections of the throughput figure.
const CONNS: usize = 50;
/// Round trips per connection in the throughput figure.
const ROUNDS_EACH: usize = 400;
/// Bytes of the bulk figure.
const BULK: usize = 16 << 20;

/// A host-native echo server: one thread per connection.
fn host_echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("address");
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let mut s = s;
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Starts the netecho guest for `conns` connections; returns it and its address.
fn guest_echo(store: &std::path::Path, conns: usize) -> Option<(Child, SocketAddr)> {
    let mut child = Command::new(VMM)
        .arg("--store")
        .arg(store)
        .args([
            "run",
            "netecho",
            "--listen",
            "127.0.0.1:0",
            "--timeout",
            "600",
        ])
        .args(["--", "--conns", &conns.to_string(), "--buf", "65536"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let mut line = String::new();
    BufReader::new(child.stderr.take()?)
        .read_line(&mut line)
        .ok()?;
    let addr = line
        .trim()
        .strip_prefix("twz-vmm: listening on ")?
        .parse()
        .ok()?;
    Some((child, addr))
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

fn round_trip(s: &mut TcpStream, msg: &[u8], back: &mut [u8]) {
    s.write_all(msg).expect("send");
    s.read_exact(back).expect("receive");
}

/// One connection, one request at a time: (median, 99th percentile) latency.
fn ping_pong(addr: SocketAddr, rounds: usize) -> (Duration, Duration) {
    let mut s = connect(addr);
    let msg = [0x42u8; MSG];
    let mut back = [0u8; MSG];
    for _ in 0..rounds / 10 {
        round_trip(&mut s, &msg, &mut back);
    }
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            round_trip(&mut s, &msg, &mut back);
            t.elapsed()
        })
        .collect();
    times.sort();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

/// `CONNS` connections, each a closed loop of round trips: requests per second.
fn many(addr: SocketAddr) -> f64 {
    let start = Arc::new(Barrier::new(CONNS + 1));
    let threads: Vec<_> = (0..CONNS)
        .map(|i| {
            let start = start.clone();
            let mut s = connect(addr);
            std::thread::spawn(move || {
                let msg = [i as u8; MSG];
                let mut back = [0u8; MSG];
                start.wait();
                for _ in 0..ROUNDS_EACH {
                    round_trip(&mut s, &msg, &mut back);
                }
                assert_eq!(back, msg);
            })
        })
        .collect();
    start.wait();
    let t = Instant::now();
    for th in threads {
        th.join().expect("client thread");
    }
    (CONNS * ROUNDS_EACH) as f64 / t.elapsed().as_secs_f64()
}

/// One connection streaming `BULK` bytes through the echo: MiB per second each way.
fn bulk(addr: SocketAddr) -> f64 {
    let s = connect(addr);
    let mut w = s.try_clone().expect("clone");
    let t = Instant::now();
    let writer = std::thread::spawn(move || {
        let chunk = vec![7u8; 256 << 10];
        for _ in 0..BULK / chunk.len() {
            w.write_all(&chunk).expect("send");
        }
    });
    let mut r = s;
    let mut buf = vec![0u8; 256 << 10];
    let mut got = 0;
    while got < BULK {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    writer.join().expect("writer");
    assert_eq!(got, BULK, "bytes lost");
    BULK as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64()
}

struct Figures {
    median: Duration,
    p99: Duration,
    rps: f64,
    mib_s: f64,
}

fn measure(addr: SocketAddr, rounds: usize) -> Figures {
    let (median, p99) = ping_pong(addr, rounds);
    let rps = many(addr);
    let mib_s = bulk(addr);
    Figures {
        median,
        p99,
        rps,
        mib_s,
    }
}

fn main() {
    if std::fs::metadata("/dev/kvm").is_err() {
        println!("net bench skipped: /dev/kvm not available");
        return;
    }
    let rounds: usize = std::env::var("TWZ_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000)
        .max(10);
    let store = tempfile::tempdir().expect("temp store");
    let Some((mut guest, guest_addr)) = guest_echo(store.path(), 1 + CONNS + 1) else {
        println!("net bench: cannot start the netecho guest");
        return;
    };
    let host = measure(host_echo(), rounds);
    let twz = measure(guest_addr, rounds);
    let status = guest.wait().map(|s| s.success()).unwrap_or(false);
    if !status {
        println!("net bench: the netecho guest did not end cleanly");
    }

    let us = |d: Duration| format!("{:.1} us", d.as_secs_f64() * 1e6);
    println!(
        "{:<40} {:>16} {:>16} {:>8}",
        "echo over TCP (127.0.0.1)", "twz netecho", "host thread", "ratio"
    );
    let line = |what: &str, a: String, b: String, ratio: f64| {
        println!("{what:<40} {a:>16} {b:>16} {ratio:>7.2}x");
    };
    let secs = |d: Duration| d.as_secs_f64();
    line(
        &format!("1 conn ping-pong {MSG} B, median"),
        us(twz.median),
        us(host.median),
        secs(twz.median) / secs(host.median),
    );
    line(
        &format!("1 conn ping-pong {MSG} B, p99"),
        us(twz.p99),
        us(host.p99),
        secs(twz.p99) / secs(host.p99),
    );
    line(
        &format!("{CONNS} conns round trips, requests/s"),
        format!("{:.0}", twz.rps),
        format!("{:.0}", host.rps),
        host.rps / twz.rps,
    );
    line(
        &format!("1 conn bulk echo {} MiB, MiB/s", BULK >> 20),
        format!("{:.0}", twz.mib_s),
        format!("{:.0}", host.mib_s),
        host.mib_s / twz.mib_s,
    );
    println!("(ratio: how many times the host thread is faster; {rounds} ping-pong rounds)");
}
