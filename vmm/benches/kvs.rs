//! The key-value store against PMDK and LMDB, in one run on one machine: YCSB A, B, C and F with
//! the in-guest driver (`twz-vmm run kvs -- bench ycsb-X`) and the same driver
//! (`examples/kvs/src/ycsb.c`) over the same store design on PMDK libpmemobj
//! (`reference/pmdk_kvs.c`) and over LMDB (`reference/lmdb_kvs.c`); then `redis-benchmark` SET
//! and GET, with and without pipelining, against `twz-vmm run kvs --listen` and a real
//! `redis-server` the bench starts.
//!
//! `cargo bench -p twz-vmm --bench kvs` (needs /dev/kvm). Sizes: `TWZ_BENCH_RECORDS` (default
//! 1000000), `TWZ_BENCH_OPS` (default: the records), `TWZ_BENCH_VALUE_SIZE` (bytes, default 1000,
//! YCSB's 10 fields of 100 B), `TWZ_BENCH_DURABLE_RECORDS` (records and operations of the durable
//! rows, default 200: a synced commit takes milliseconds on this disk), `TWZ_BENCH_REDIS_REQUESTS`
//! (default 100000), `TWZ_BENCH_REPEAT` (YCSB rounds, default 1; the tables show each system's
//! best). Every store lives in a fresh directory on the disk the bench runs from; the
//! no-durability rows are: twz `--durability none`, PMDK with `PMEM_IS_PMEM_FORCE=1` (cache-line
//! flushes instead of msync), LMDB with `MDB_NOSYNC | MDB_WRITEMAP`.

#[path = "reference/harness.rs"]
mod harness;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::{results, ResultLine};

const WORKLOADS: [char; 4] = ['a', 'b', 'c', 'f'];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

/// Sizes of one set of runs.
#[derive(Clone, Copy)]
struct Size {
    records: u64,
    ops: u64,
    value: u64,
}

/// A fresh directory for one store, under the target directory (on the disk the bench runs
/// from, not tmpfs).
fn scratch() -> Option<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("twz-kvs-bench")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .or_else(|_| tempfile::tempdir())
        .ok()
}

/// The twz guest's RESULT lines for workload `w` (`durability` none or commit; `flags`: more
/// `run` options).
fn twz(w: char, size: Size, durability: &str, flags: &[&str]) -> Vec<ResultLine> {
    let Some(dir) = scratch() else {
        return Vec::new();
    };
    let Some(store) = dir.path().to_str() else {
        return Vec::new();
    };
    let (records, ops, value) = (
        size.records.to_string(),
        size.ops.to_string(),
        size.value.to_string(),
    );
    let workload = format!("ycsb-{w}");
    let mut args = vec!["--store", store, "run", "kvs", "--durability", durability];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[
        "--",
        "bench",
        &workload,
        "--records",
        &records,
        "--ops",
        &ops,
        "--value-size",
        &value,
        "--fields",
        "1",
        "--seed",
        "1",
    ]);
    harness::vmm(&args).map(|o| results(&o)).unwrap_or_default()
}

/// A host reference program's RESULT lines for workload `w`.
fn host(prog: &Path, w: char, size: Size, extra: &[&str], env: &[(&str, &str)]) -> Vec<ResultLine> {
    let Some(dir) = scratch() else {
        return Vec::new();
    };
    let Some(d) = dir.path().to_str() else {
        return Vec::new();
    };
    let (wl, records, ops, value) = (
        w.to_string(),
        size.records.to_string(),
        size.ops.to_string(),
        size.value.to_string(),
    );
    let mut args = vec![d, wl.as_str(), &records, &ops, &value];
    args.extend_from_slice(extra);
    args.push("1");
    harness::output(prog, &args, env)
        .map(|o| results(&o))
        .unwrap_or_default()
}

/// Builds a reference program linking the guest's YCSB driver.
fn build(out: &Path, name: &str, lib: &str, skipped: &str) -> Option<PathBuf> {
    let kvs_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kvs/src");
    let ycsb = kvs_src.join("ycsb.c");
    if !ycsb.exists() {
        println!("{skipped} ({} is missing)", ycsb.display());
        return None;
    }
    harness::build_c(
        out,
        name,
        &[harness::reference_source(&format!("{name}.c")), ycsb],
        &[kvs_src],
        &[lib],
        skipped,
    )
}

/// ops/s of `system`'s run phase of workload `w`.
fn run_rate(lines: &[ResultLine], system: &str, w: char) -> Option<f64> {
    best(
        lines,
        &[
            ("system", system),
            ("workload", &w.to_string()),
            ("phase", "run"),
        ],
    )
}

fn load_rate(lines: &[ResultLine], system: &str, w: char) -> Option<f64> {
    best(
        lines,
        &[
            ("system", system),
            ("workload", &w.to_string()),
            ("phase", "load"),
        ],
    )
}

/// The highest `ops_per_sec` of the lines matching `want` (one per repetition).
fn best(lines: &[ResultLine], want: &[(&str, &str)]) -> Option<f64> {
    lines
        .iter()
        .filter(|l| l.matches(want))
        .filter_map(|l| l.num("ops_per_sec"))
        .reduce(f64::max)
}

fn rate(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".into(), |r| format!("{r:.0}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "n/a".into(),
    }
}

/// Prints the YCSB table: one row per workload and phase.
fn ycsb_table(title: &str, lines: &[ResultLine], systems: [&str; 3], workloads: &[char]) {
    println!("{title}");
    println!(
        "{:<10} {:>13} {:>13} {:>13} {:>10} {:>10}",
        "workload",
        format!("{} ops/s", systems[0]),
        format!("{} ops/s", systems[1]),
        format!("{} ops/s", systems[2]),
        format!("/{}", systems[1]),
        format!("/{}", systems[2]),
    );
    for &w in workloads {
        for (phase, f) in [
            (
                "load",
                load_rate as fn(&[ResultLine], &str, char) -> Option<f64>,
            ),
            ("run", run_rate),
        ] {
            let r: Vec<Option<f64>> = systems.iter().map(|s| f(lines, s, w)).collect();
            println!(
                "{:<10} {:>13} {:>13} {:>13} {:>10} {:>10}",
                format!("{}-{phase}", w.to_ascii_uppercase()),
                rate(r[0]),
                rate(r[1]),
                rate(r[2]),
                ratio(r[0], r[1]),
                ratio(r[0], r[2]),
            );
        }
    }
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> Option<u16> {
    TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()
        .map(|a| a.port())
}

/// Waits until something accepts connections on `port` (or `child` exits, or 15 s pass).
fn wait_listening(port: u16, child: &mut Child) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return true;
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A server process the bench started, stopped (killed and reaped) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and waits for it to listen on `port`.
fn start_server(mut cmd: Command, port: u16, what: &str) -> Option<Server> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            println!("{what}: cannot start: {e}");
            return None;
        }
    };
    if wait_listening(port, &mut child) {
        return Some(Server(child));
    }
    let _ = child.kill();
    let err = child
        .wait_with_output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default();
    println!("{what}: not listening on port {port}: {err}");
    None
}

/// requests/s of SET and GET from `redis-benchmark -q` against `port`, pipelining `pipeline`.
fn redis_benchmark(port: u16, requests: u64, pipeline: u32) -> (Option<f64>, Option<f64>) {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", "set,get", "-q", "-n", &requests.to_string()])
        .args(["-P", &pipeline.to_string()])
        .stdin(Stdio::null())
        .output();
    let Ok(out) = out else {
        return (None, None);
    };
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    let rate = |what: &str| {
        text.lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix(what))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
    };
    (rate("SET:"), rate("GET:"))
}

fn redis_rows(requests: u64) {
    println!();
    println!("redis-benchmark -t set,get -n {requests} (requests/s)");
    if Command::new("redis-benchmark")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("redis rows skipped: install redis-tools (redis-benchmark) and redis-server");
        return;
    }
    let mut rows: Vec<(String, [Option<f64>; 4])> = Vec::new();

    // twz-vmm serving the Redis protocol from the kvs guest.
    let twz = (|| {
        let dir = scratch()?;
        let port = free_port()?;
        let mut cmd = Command::new(harness::VMM);
        cmd.arg("--store")
            .arg(dir.path())
            .args(["run", "kvs", "--durability", "none", "--listen"])
            .arg(format!("127.0.0.1:{port}"));
        let server = start_server(cmd, port, "twz-vmm run kvs --listen")?;
        let (s1, g1) = redis_benchmark(port, requests, 1);
        let (s16, g16) = redis_benchmark(port, requests, 16);
        drop(server);
        Some([s1, g1, s16, g16])
    })();
    rows.push(("twz kvs --listen".into(), twz.unwrap_or([None; 4])));

    let redis = (|| {
        let dir = scratch()?;
        let port = free_port()?;
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path());
        let server = start_server(cmd, port, "redis-server")?;
        let (s1, g1) = redis_benchmark(port, requests, 1);
        let (s16, g16) = redis_benchmark(port, requests, 16);
        drop(server);
        Some([s1, g1, s16, g16])
    })();
    rows.push((
        "redis-server (no persistence)".into(),
        redis.unwrap_or([None; 4]),
    ));

    println!(
        "{:<32} {:>11} {:>11} {:>11} {:>11}",
        "server", "SET", "GET", "SET -P 16", "GET -P 16"
    );
    for (name, r) in &rows {
        println!(
            "{name:<32} {:>11} {:>11} {:>11} {:>11}",
            rate(r[0]),
            rate(r[1]),
            rate(r[2]),
            rate(r[3])
        );
    }
    if let [(_, t), (_, r)] = rows.as_slice() {
        println!(
            "{:<32} {:>11} {:>11} {:>11} {:>11}",
            "twz / redis",
            ratio(t[0], r[0]),
            ratio(t[1], r[1]),
            ratio(t[2], r[2]),
            ratio(t[3], r[3])
        );
    }
}

fn main() {
    if std::fs::metadata("/dev/kvm").is_err() {
        println!("kvs bench skipped: /dev/kvm not available");
        return;
    }
    let records = env_u64("TWZ_BENCH_RECORDS", 1_000_000);
    let size = Size {
        records,
        ops: env_u64("TWZ_BENCH_OPS", records),
        value: env_u64("TWZ_BENCH_VALUE_SIZE", 1000),
    };
    let durable = env_u64("TWZ_BENCH_DURABLE_RECORDS", 200);
    let durable_size = Size {
        records: durable,
        ops: durable,
        value: size.value,
    };
    let Ok(build_dir) = tempfile::tempdir() else {
        println!("kvs bench skipped: no temporary directory");
        return;
    };
    let pmdk = build(
        build_dir.path(),
        "pmdk_kvs",
        "-lpmemobj",
        "PMDK rows skipped: install libpmemobj-dev (and a C compiler)",
    );
    let lmdb = build(
        build_dir.path(),
        "lmdb_kvs",
        "-llmdb",
        "LMDB rows skipped: install liblmdb-dev (and a C compiler)",
    );
    let started = harness::now_utc();
    let load = harness::load_average();

    // Repetitions interleave the systems, so that a slow spell of this shared machine hits
    // them alike; each table shows every system's best.
    let repeat = env_u64("TWZ_BENCH_REPEAT", 1).max(1);
    let mut lines = Vec::new();
    for w in (0..repeat).flat_map(|_| WORKLOADS) {
        lines.extend(twz(w, size, "none", &[]));
        lines.extend(
            twz(w, size, "none", &["--huge-pages"])
                .into_iter()
                .map(|l| rename(l, "twz-huge")),
        );
        if let Some(p) = &pmdk {
            lines.extend(host(p, w, size, &[], &[("PMEM_IS_PMEM_FORCE", "1")]));
        }
        if let Some(l) = &lmdb {
            lines.extend(host(l, w, size, &["nosync"], &[]));
        }
    }
    let mut durable_lines = twz('a', durable_size, "commit", &[])
        .into_iter()
        .map(|l| rename(l, "twz-commit"))
        .collect::<Vec<_>>();
    if let Some(p) = &pmdk {
        durable_lines.extend(
            host(p, 'a', durable_size, &[], &[])
                .into_iter()
                .map(|l| rename(l, "pmdk-msync")),
        );
    }
    if let Some(l) = &lmdb {
        durable_lines.extend(host(l, 'a', durable_size, &["sync"], &[]));
    }

    println!(
        "YCSB, {} records of {} B, {} operations, zipfian, best of {repeat} (started {started}, load average {load}; ended {}, load average {})",
        size.records,
        size.value,
        size.ops,
        harness::now_utc(),
        harness::load_average()
    );
    ycsb_table(
        "no durability: twz --durability none, PMDK PMEM_IS_PMEM_FORCE=1, LMDB NOSYNC|WRITEMAP",
        &lines,
        ["twz", "pmdk", "lmdb"],
        &WORKLOADS,
    );
    println!();
    ycsb_table(
        "the same with objects on 2 MiB host pages: twz --durability none --huge-pages",
        &lines,
        ["twz-huge", "pmdk", "lmdb"],
        &WORKLOADS,
    );
    println!();
    ycsb_table(
        &format!(
            "durable commits, {} records and operations: twz --durability commit, PMDK msync, LMDB synced",
            durable_size.records
        ),
        &durable_lines,
        ["twz-commit", "pmdk-msync", "lmdb-sync"],
        &['a'],
    );
    redis_rows(env_u64("TWZ_BENCH_REDIS_REQUESTS", 100_000));
}

/// The same line with `system=` replaced (to tell durability modes apart in one table).
fn rename(line: ResultLine, system: &str) -> ResultLine {
    line.with("system", system)
}
