//! Durable writes, side by side in one run.
//!
//! 1. How to make several dirty ranges of one sparse `MAP_SHARED` object file durable on this
//!    disk: through the store's flush journal (what the flush worker does), one `msync` per
//!    range, one `msync` of the covering range, `sync_file_range` per range then one
//!    `fdatasync` (what the worker did before the journal), and a bare `fdatasync`.
//! 2. The KVS guest's YCSB-A under `--durability commit` and `group` (in-guest driver).
//! 3. `redis-benchmark -t set -c 50` against `run kvs --listen` under `commit` and `group` (if
//!    `redis-benchmark` is installed).
//!
//! `cargo bench -p twz-vmm --bench durability` (part 2 needs /dev/kvm). `TWZ_BENCH_RECORDS` sets
//! the KVS records and operations (default 2000); `TWZ_BENCH_ROUNDS` the sync rounds (200);
//! `TWZ_BENCH_REQUESTS` the redis-benchmark requests (5000).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use twz_vmm::objects::flusher::sync_ranges;

const VMM: &str = env!("CARGO_BIN_EXE_twz-vmm");
const OBJ: usize = 1 << 30;
const PAGE: usize = 4096;
/// Where a fence's ranges typically are: a record low in the data, the index in the middle,
/// the log near the top of the object.
const RANGES: [(usize, usize); 3] = [(64 << 10, 1100), (300 << 20, 16), (1000 << 20, 128)];

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Mapped {
    file: File,
    ptr: *mut u8,
}

impl Mapped {
    fn new(path: &Path) -> Mapped {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .expect("create the file");
        file.set_len(OBJ as u64).expect("size the file");
        // SAFETY: a fresh shared mapping of a file we own, unmapped in Drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                OBJ,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap");
        Mapped {
            file,
            ptr: ptr.cast(),
        }
    }

    fn dirty(&self, round: usize) {
        for &(off, len) in &RANGES {
            // SAFETY: off + len lies inside the mapping.
            unsafe { std::ptr::write_bytes(self.ptr.add(off), round as u8, len) };
        }
    }

    fn msync(&self, off: usize, len: usize) {
        let start = off / PAGE * PAGE;
        // SAFETY: a page-aligned range inside the mapping.
        let rc =
            unsafe { libc::msync(self.ptr.add(start).cast(), off + len - start, libc::MS_SYNC) };
        assert_eq!(rc, 0, "msync");
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: exactly what mmap returned.
        unsafe { libc::munmap(self.ptr.cast(), OBJ) };
    }
}

fn sync_strategies(dir: &Path) {
    let rounds = env_or("TWZ_BENCH_ROUNDS", 200);
    let m = Mapped::new(&dir.join("object"));
    let ranges: Vec<(u64, u64)> = RANGES.iter().map(|&(o, l)| (o as u64, l as u64)).collect();
    let (lo, hi) = (RANGES[0].0, RANGES[2].0 + RANGES[2].1);
    object_store::Store::open(dir.join("store")).expect("store");
    let journal = std::cell::RefCell::new(
        object_store::Journal::acquire(&dir.join("store")).expect("flush journal"),
    );
    let journaled = |ranges: &[(usize, usize)]| {
        let mut j = journal.borrow_mut();
        for &(o, l) in ranges {
            j.push_data(abi::id::ObjId::from_u128(1), o as u64, l as u64, |b| {
                // SAFETY: o + l lies inside the mapping.
                b.copy_from_slice(unsafe { std::slice::from_raw_parts(m.ptr.add(o), l) });
                Ok(())
            })
            .expect("journal");
        }
        j.commit().expect("commit");
    };
    let strategies: [(&str, &dyn Fn()); 8] = [
        ("flush journal: copy, write, fdatasync (a fence)", &|| {
            journaled(&RANGES)
        }),
        ("1 range: flush journal", &|| journaled(&RANGES[2..])),
        ("msync each range (before)", &|| {
            RANGES.iter().for_each(|&(o, l)| m.msync(o, l))
        }),
        ("msync of the covering range", &|| m.msync(lo, hi - lo)),
        ("sync_file_range each + fdatasync", &|| {
            sync_ranges(&m.file, &ranges).expect("sync")
        }),
        ("fdatasync alone", &|| {
            m.file.sync_data().expect("fdatasync")
        }),
        ("1 range: msync", &|| m.msync(RANGES[2].0, RANGES[2].1)),
        ("1 range: sync_file_range + fdatasync", &|| {
            sync_ranges(&m.file, &ranges[2..]).expect("sync")
        }),
    ];
    println!("3 dirty ranges (1 KiB record, 16 B index slot, 128 B log) of a sparse 1 GiB MAP_SHARED file, {rounds} rounds");
    println!("{:<48} {:>12}", "strategy", "us/fence");
    for (round_base, (name, f)) in strategies.iter().enumerate() {
        m.dirty(0);
        f();
        let start = Instant::now();
        for r in 0..rounds {
            m.dirty(round_base * rounds + r + 1);
            f();
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / rounds as f64;
        println!("{name:<48} {us:>12.0}");
    }
}

fn kvs_rows(dir: &Path) {
    if !Path::new("/dev/kvm").exists() {
        println!("SKIP kvs rows: no /dev/kvm");
        return;
    }
    let n = env_or("TWZ_BENCH_RECORDS", 2000).to_string();
    println!();
    println!("KVS YCSB-A in the guest, {n} records of 1000 B, {n} operations");
    println!(
        "{:<12} {:>14} {:>14}",
        "durability", "load ops/s", "run ops/s"
    );
    for mode in ["none", "commit", "group"] {
        let store = dir.join(format!("store-{mode}"));
        let out = Command::new(VMM)
            .arg("--store")
            .arg(&store)
            .args(["run", "kvs", "--durability", mode, "--", "bench", "ycsb-a"])
            .args(["--records", &n, "--ops", &n])
            .output()
            .expect("run twz-vmm");
        let text = String::from_utf8_lossy(&out.stdout);
        let rate = |phase: &str| {
            text.lines()
                .find(|l| l.starts_with("RESULT") && l.contains(&format!("phase={phase} ")))
                .and_then(|l| l.split("ops_per_sec=").nth(1))
                .unwrap_or("?")
                .trim()
                .to_string()
        };
        println!("{mode:<12} {:>14} {:>14}", rate("load"), rate("run"));
    }
}

/// `redis-benchmark -t set -c 50` against `twz-vmm run kvs --listen` per durability mode.
fn redis_rows(dir: &Path) {
    let have = Command::new("redis-benchmark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have || !Path::new("/dev/kvm").exists() {
        println!("SKIP redis-benchmark rows: no redis-benchmark or no /dev/kvm");
        return;
    }
    let n = env_or("TWZ_BENCH_REQUESTS", 5000).to_string();
    println!();
    println!("redis-benchmark -t set -n {n} -c 50 against run kvs --listen");
    println!("{:<12} {:>14}", "durability", "SET/s");
    for mode in ["commit", "group"] {
        // A free port: bound, read, released (a race with other programs is harmless here).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut cmd = Command::new(VMM);
        cmd.arg("--store")
            .arg(dir.join(format!("redis-{mode}")))
            .args(["run", "kvs", "--durability", mode, "--timeout", "600"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut server = cmd.spawn().expect("run twz-vmm");
        let ready = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let rate = if ready {
            let out = Command::new("redis-benchmark")
                .args([
                    "-p",
                    &port.to_string(),
                    "-t",
                    "set",
                    "-n",
                    &n,
                    "-c",
                    "50",
                    "-q",
                ])
                .output()
                .expect("redis-benchmark");
            String::from_utf8_lossy(&out.stdout)
                .split(['\r', '\n'])
                .rev()
                .find_map(|l| l.strip_prefix("SET: "))
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or("?")
                .to_string()
        } else {
            "no server".to_string()
        };
        let _ = server.kill();
        let _ = server.wait();
        println!("{mode:<12} {rate:>14}");
    }
}

fn main() {
    // On the disk (a temp dir in the target directory), not on a tmpfs /tmp.
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir_in(base).expect("temp dir");
    sync_strategies(dir.path());
    kvs_rows(dir.path());
    redis_rows(dir.path());
}
