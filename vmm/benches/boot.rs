//! Machine-layer figures of `twz-vmm`, side by side in one run:
//! whole-process `twz-vmm run hello` against an empty host process, the synchronous host-call
//! and ring round trips (from the `callbench` guest), and the VMM's memory beyond guest RAM.
//! Object mapping, pointer dereference and transactions are in the `objects` bench.
//!
//! `cargo bench -p twz-vmm --bench boot` (needs /dev/kvm). Set `TWZ_BENCH_RUNS` to change the
//! number of process runs (default 50).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const VMM: &str = env!("CARGO_BIN_EXE_twz-vmm");

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Median wall time of running `cmd` to completion `runs` times (output discarded).
fn time_process(cmd: &[&str], runs: usize) -> Option<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let status = Command::new(cmd[0])
            .args(&cmd[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        times.push(start.elapsed());
        if !status.success() {
            eprintln!("{cmd:?} failed: {status}");
            return None;
        }
    }
    Some(median(times))
}

/// Runs the VMM and returns its stdout and stderr.
fn vmm_output(args: &[&str]) -> Option<(String, String)> {
    let out = Command::new(VMM).args(args).output().ok()?;
    if !out.status.success() {
        eprintln!(
            "twz-vmm {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The number after `key` and before `unit` on the line containing `key`.
fn figure(text: &str, key: &str, unit: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.contains(key))?;
    let after = &line[line.find(key)? + key.len()..];
    after.split(unit).next()?.trim().parse().ok()
}

fn row(what: &str, value: Option<String>, target: &str) {
    let value = value.unwrap_or_else(|| "n/a".into());
    println!("{what:<44} {value:>12}   {target}");
}

fn main() {
    if std::fs::metadata("/dev/kvm").is_err() {
        println!("boot bench skipped: /dev/kvm not available");
        return;
    }
    let runs: usize = std::env::var("TWZ_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
        .max(1);
    let ms = |d: Option<Duration>| d.map(|d| format!("{:.2} ms", d.as_secs_f64() * 1e3));

    // Warm the page cache and the binary's mappings once.
    let _ = time_process(&[VMM, "run", "hello"], 3);
    let empty = time_process(&["/bin/true"], runs);
    let hello = time_process(&[VMM, "run", "hello"], runs);
    let hello_small = time_process(&[VMM, "run", "hello", "--mem", "16M"], runs);
    let calls = vmm_output(&["run", "callbench"]).map(|(out, _)| out);
    let sync = calls
        .as_deref()
        .and_then(|c| figure(c, "sync hostcall nop: median", "ns"));
    let ring = calls
        .as_deref()
        .and_then(|c| figure(c, "ring nop round trip: median", "ns"));
    let stats = vmm_output(&["run", "hello", "--stats"]).map(|(_, err)| err);
    let overhead = stats.as_deref().and_then(|s| {
        figure(s, "of which guest RAM", "KiB beyond").or_else(|| {
            let line = s.lines().find(|l| l.contains("beyond guest memory"))?;
            line.split(": ").last()?.split(' ').next()?.parse().ok()
        })
    });

    println!("twz-vmm machine layer ({runs} process runs each, medians)");
    println!("{:<44} {:>12}   target", "what", "figure");
    row("/bin/true (empty host process)", ms(empty), "reference");
    row(
        "twz-vmm run hello, whole process (128M)",
        ms(hello),
        "<= 5 ms",
    );
    row(
        "twz-vmm run hello --mem 16M, whole process",
        ms(hello_small),
        "<= 5 ms",
    );
    row(
        "synchronous host call round trip",
        sync.map(|n| format!("{:.1} us", n / 1e3)),
        "<= 30 us (PVM floor 25)",
    );
    row(
        "asynchronous ring round trip",
        ring.map(|n| format!("{:.1} us", n / 1e3)),
        "<= 3 us (PVM floor 2.4)",
    );
    row(
        "VMM RSS beyond guest memory (run hello)",
        overhead.map(|k| format!("{:.2} MiB", k / 1024.0)),
        "<= 5 MiB",
    );
}
