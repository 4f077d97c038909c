//! `examples/linked`: a list across objects built by transactions in separate runs, its
//! cross-object edges seen from the host, and crash consistency when `twz-vmm` is killed with
//! SIGKILL in the middle of a stream of transactions.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::kvm_available;

/// SIGKILLs in the list crash test (`TWZ_LINKED_KILLS` overrides). Each round re-walks a list
/// that grows every round, so it stays at 20; the transfer test does the 100.
const DEFAULT_KILLS: usize = 20;

/// SIGKILLs in the transfer crash test (`TWZ_TRANSFER_KILLS` overrides).
const DEFAULT_TRANSFER_KILLS: usize = 100;

/// `examples/linked`'s opening balance of each account.
const OPENING: u64 = 1_000_000;

/// The fsck finding a kill during object creation leaves behind.
const STRAY_TEMP: &str = "stray temp file left by an interrupted write";

fn linked(store: &Path, args: &[&str]) -> String {
    let cmd = [&["run", "linked", "--"], args].concat();
    common::ok(store, &cmd)
}

#[test]
fn names_added_in_separate_runs_are_listed_in_order_across_objects() {
    if !kvm_available("names_added_in_separate_runs_are_listed_in_order_across_objects") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    let names = ["alice", "bob", "carol", "dave", "erin"];
    for n in names {
        assert_eq!(linked(s, &["add", n]), format!("added {n}\n"));
    }
    assert_eq!(linked(s, &["show"]), names.join("\n") + "\n");
    assert_eq!(linked(s, &["count"]), "5\n");

    // people -> node 1 -> node 2 -> ... : one FOT edge per object, to a different object each.
    let mut obj = "people".to_string();
    let mut targets = Vec::new();
    for _ in 0..names.len() - 1 {
        let rows = common::fot_rows(s, &obj);
        assert_eq!(rows.len(), 1, "{obj}: {rows:?}");
        assert!(rows[0].0.contains("valid"), "{rows:?}");
        obj = rows[0].1.clone();
        assert!(
            !targets.contains(&obj),
            "edges form a chain: {targets:?} {obj}"
        );
        targets.push(obj.clone());
    }
    assert!(
        common::fot_rows(s, &obj).len() == 1,
        "the fourth node links the fifth"
    );
    common::ok(s, &["store", "fsck"]);
}

#[test]
fn bench_reports_the_median_cost_of_a_transactional_update() {
    if !kvm_available("bench_reports_the_median_cost_of_a_transactional_update") {
        return;
    }
    let store = common::temp_store();
    let out = common::ok(
        store.path(),
        &["run", "--durability", "none", "linked", "--", "bench"],
    );
    println!("{out}");
    let ns = |prefix: &str| -> u64 {
        let line = out.lines().find_map(|l| l.strip_prefix(prefix));
        let figure = line.and_then(|l| l.split(' ').next());
        figure
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{prefix} in {out}"))
    };
    assert!(ns("tx update 8 B: ") > 0);
    assert!(ns("tx alloc+free: ") > 0);
    assert!(out.contains("durability 0"), "{out}");
}

/// Runs `store fsck`; objects it finds touched by an unfinished transaction (a node object
/// created by a killed run and marked, but never linked, so `show` does not open it) are opened
/// once (`obj recover`) and fsck runs again. Then the only finding allowed is a temp file of an
/// object creation the kill interrupted (the store does not sweep those yet; they hold nothing
/// reachable). Returns how many of those there were.
fn fsck_after_opening(store: &Path, round: usize) -> usize {
    let first = common::run(store, &["store", "fsck"]);
    for line in String::from_utf8_lossy(&first.stdout).lines() {
        if let Some(id) = line
            .strip_prefix("object ")
            .filter(|_| line.contains("needs recovery"))
            .and_then(|l| l.split(':').next())
        {
            common::ok(store, &["obj", "recover", id]);
        }
    }
    let fsck = common::run(store, &["store", "fsck"]);
    let report = String::from_utf8_lossy(&fsck.stdout);
    let damage: Vec<&str> = report
        .lines()
        .filter(|l| !l.starts_with("checked ") && !l.contains(STRAY_TEMP))
        .collect();
    assert!(
        fsck.status.success() || damage.is_empty(),
        "round {round}: fsck\n{report}\n{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
    report.lines().filter(|l| l.contains(STRAY_TEMP)).count()
}

/// A small pseudo-random generator (xorshift), seeded from the clock; the seed is printed so a
/// failure can be replayed with `TWZ_LINKED_SEED`.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn env_number(var: &str) -> Option<u64> {
    std::env::var(var).ok().and_then(|v| v.parse().ok())
}

/// Starts `bulk` and SIGKILLs the VMM after `delay`; returns the indices it reported committed.
fn bulk_then_kill(store: &Path, prefix: &str, delay: Duration) -> Vec<u64> {
    run_then_kill(store, &["bulk", "100000", prefix], delay)
}

/// Starts `linked ARGS` and SIGKILLs the VMM after `delay`; returns the numbers it reported in
/// `committed I` lines.
fn run_then_kill(store: &Path, args: &[&str], delay: Duration) -> Vec<u64> {
    run_then_kill_with(store, &[], args, delay)
}

/// [`run_then_kill`] with `run` options before the image name's arguments.
fn run_then_kill_with(store: &Path, options: &[&str], args: &[&str], delay: Duration) -> Vec<u64> {
    let cmd = [&["run", "linked"], options, &["--"], args].concat();
    let mut child = common::twz(store)
        .args(cmd)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn twz-vmm");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(i) = line.strip_prefix("committed ") {
                let _ = tx.send(i.parse::<u64>().expect("index"));
            }
        }
    });
    std::thread::sleep(delay);
    child.kill().expect("SIGKILL twz-vmm");
    child.wait().expect("reap twz-vmm");
    reader.join().expect("reader thread");
    rx.try_iter().collect()
}

#[test]
fn sigkill_during_transactions_loses_nothing_committed_and_tears_nothing() {
    if !kvm_available("sigkill_during_transactions_loses_nothing_committed_and_tears_nothing") {
        return;
    }
    let kills = env_number("TWZ_LINKED_KILLS").map_or(DEFAULT_KILLS, |n| n as usize);
    let seed = seed();
    println!("seed {seed}, {kills} kills");
    let mut rng = Rng(seed);
    let store = common::temp_store();
    let s = store.path();
    let mut expected: Vec<String> = Vec::new();
    let mut strays = 0;
    for round in 0..kills {
        let prefix = format!("r{round}");
        let delay = Duration::from_millis(20 + rng.next(600));
        let committed = bulk_then_kill(s, &prefix, delay);
        // The next open of `people` recovers whatever the kill interrupted.
        let shown = linked(s, &["show"]);
        let lines: Vec<&str> = shown.lines().collect();
        assert!(
            lines.len() >= expected.len() && lines[..expected.len()] == expected[..],
            "round {round}: earlier names changed\n{shown}"
        );
        // This round's names: r{round}-0, -1, ... contiguous, each once, and at least every one
        // reported committed (later ones may have committed before their line reached us).
        let new = &lines[expected.len()..];
        for (i, name) in new.iter().enumerate() {
            assert_eq!(*name, format!("{prefix}-{i}"), "round {round}: {shown}");
        }
        let reported = committed.iter().max().map_or(0, |m| m + 1);
        assert!(
            new.len() as u64 >= reported,
            "round {round}: {} new names, {reported} reported committed",
            new.len()
        );
        assert_eq!(linked(s, &["count"]), format!("{}\n", lines.len()));
        expected = lines.iter().map(|l| l.to_string()).collect();
        strays += fsck_after_opening(s, round);
    }
    println!(
        "{} names committed over {kills} kills; stray temp files in fsck reports: {strays}",
        expected.len()
    );
}

/// The seed of a crash test: `TWZ_LINKED_SEED`, else the clock.
fn seed() -> u64 {
    env_number("TWZ_LINKED_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    })
}

/// What `examples/linked` moves in transfer `i`, and whether from A to B (its `transfer_amount`).
fn transfer_amount(i: u64) -> (u64, bool) {
    (1 + i.wrapping_mul(7919) % 1000, i.is_multiple_of(2))
}

/// The balances of A and B after transfers `from..to`, starting from `start`.
fn balances_after(start: (u64, u64), from: u64, to: u64) -> (u64, u64) {
    (from..to).fold(start, |(a, b), i| match transfer_amount(i) {
        (amount, true) => (a.wrapping_sub(amount), b.wrapping_add(amount)),
        (amount, false) => (a.wrapping_add(amount), b.wrapping_sub(amount)),
    })
}

/// `linked accounts`: (transfers, a, b).
fn accounts(store: &Path) -> (u64, u64, u64) {
    let out = linked(store, &["accounts"]);
    let field = |key: &str| -> u64 {
        out.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} in {out}"))
    };
    (field("transfers="), field("a="), field("b="))
}

#[test]
fn sigkill_during_transfers_keeps_the_sum_and_every_acknowledged_transfer() {
    if !kvm_available("sigkill_during_transfers_keeps_the_sum_and_every_acknowledged_transfer") {
        return;
    }
    let kills = env_number("TWZ_TRANSFER_KILLS").map_or(DEFAULT_TRANSFER_KILLS, |n| n as usize);
    let seed = seed();
    println!("seed {seed}, {kills} kills");
    let mut rng = Rng(seed);
    let store = common::temp_store();
    let s = store.path();
    let mut applied = 0;
    let mut balances = (OPENING, OPENING);
    let mut strays = 0;
    for round in 0..kills {
        // Kill anywhere from the VMM's start-up to deep into the stream of transfers. Odd
        // rounds wait for each commit to be durable (a few transfers, the kill mostly lands in
        // a flush); even ones do not (thousands, the kill lands anywhere in the transaction
        // code): a SIGKILL of the VMM must lose nothing committed either way.
        let delay = Duration::from_millis(5 + rng.next(250));
        let durability = if round % 2 == 0 { "none" } else { "commit" };
        let acked = run_then_kill_with(
            s,
            &["--durability", durability],
            &["transfer", "100000000"],
            delay,
        );
        // The next open of account A (the transactions' anchor) recovers an interrupted one.
        let (n, a, b) = accounts(s);
        if n == 0 && a == 0 {
            // Killed before the accounts were set up: nothing may have been acknowledged.
            assert!(
                acked.is_empty(),
                "round {round}: {acked:?} acknowledged, none applied"
            );
            continue;
        }
        assert_eq!(
            a.wrapping_add(b),
            2 * OPENING,
            "round {round}: the sum changed (a torn transfer): a={a} b={b} after {n}"
        );
        assert!(
            n >= applied,
            "round {round}: {n} transfers, {applied} before"
        );
        balances = balances_after(balances, applied, n);
        assert_eq!(
            (a, b),
            balances,
            "round {round}: balances do not match {n} whole transfers"
        );
        if let Some(last) = acked.iter().max() {
            assert!(
                n > *last,
                "round {round}: transfer {last} was acknowledged, only {n} applied"
            );
        }
        applied = n;
        strays += fsck_after_opening(s, round);
    }
    assert!(applied > 0, "no transfer ever committed in {kills} rounds");
    println!("{applied} transfers over {kills} kills; stray temp files in fsck reports: {strays}");
}
