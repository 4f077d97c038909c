//! SQLite's speedtest1 in the guest on persistent objects against native SQLite, side by side in
//! one run: the same `speedtest1.c` (Debian's sqlite3 3.40.1 source package) and the same SQLite
//! (3.54.1, same amalgamation and compile-time options, a 256 MiB memsys5 heap in both), natively
//! on a file on the ext4 disk and on tmpfs (/dev/shm), and `:memory:` in both. Durability pairs:
//! `twz-vmm run --durability none` with native `--nosync` (`synchronous=OFF`), and `--durability
//! commit` with native `synchronous=FULL` (the default); rollback journal (`journal_mode=DELETE`)
//! everywhere. The guest's store lives on the ext4 disk.
//!
//! `cargo bench -p twz-vmm --bench sqlite` (needs /dev/kvm and gcc). `TWZ_SPEEDTEST_SIZE` sets
//! speedtest1's `--size` (default 25; 100 is speedtest1's own default), `TWZ_SPEEDTEST_RUNS` the
//! rounds (default 1; each round runs every configuration in turn, and the table shows each
//! test's fastest).

#[path = "../../tests/sqlite_native/mod.rs"]
mod sqlite_native;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const VMM: &str = env!("CARGO_BIN_EXE_twz-vmm");
/// speedtest1's memsys5 heap, as `--heap SIZE MIN`.
const HEAP: [&str; 3] = ["--heap", "268435456", "64"];

/// One column of the table.
struct Config {
    title: &'static str,
    /// In the guest (else native).
    guest: bool,
    /// speedtest1 options besides `--size` and `--heap`.
    args: Vec<String>,
    /// `twz-vmm run` options.
    run: Vec<&'static str>,
    /// The database.
    db: Db,
}

/// Where a configuration's database lives.
enum Db {
    /// An object of the guest's store, by name.
    Object(&'static str),
    /// A host file (removed before each run, with its journal).
    File(PathBuf),
    /// `--memdb`.
    Memory,
}

/// speedtest1's results: test number and name -> seconds, in order, plus the total.
#[derive(Default, Clone)]
struct Results {
    tests: BTreeMap<u32, (String, f64)>,
    total: f64,
    /// The SQLite version speedtest1 reports.
    version: String,
}

/// Parses lines like ` 100 - 12500 INSERTs into table with no index......   0.116s`.
fn parse(out: &str) -> Option<Results> {
    let mut r = Results::default();
    for line in out.lines() {
        if let Some(v) = line.strip_prefix("-- Speedtest1 for SQLite ") {
            r.version = v.split_whitespace().next().unwrap_or_default().to_owned();
        }
        let Some(secs) = line
            .trim_end()
            .strip_suffix('s')
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|t| t.parse::<f64>().ok())
        else {
            continue;
        };
        let text = line.trim_start();
        if text.starts_with("TOTAL") {
            r.total = secs;
        } else if let Some((num, rest)) = text.split_once(" - ") {
            let name = rest
                .trim_end_matches(|c: char| c != '.')
                .trim_end_matches('.');
            r.tests
                .insert(num.trim().parse().ok()?, (name.to_owned(), secs));
        }
    }
    (r.total > 0.0).then_some(r)
}

/// Runs one configuration once.
fn run_once(c: &Config, native: &Path, size: &str, store: &Path) -> Result<Results, String> {
    let mut cmd;
    if c.guest {
        cmd = Command::new(VMM);
        cmd.arg("--store")
            .arg(store)
            .args(["run", "speedtest1", "--mem", "1G"])
            .args(&c.run)
            .arg("--");
    } else {
        cmd = Command::new(native);
    }
    cmd.args(HEAP).args(["--size", size]).args(&c.args);
    match &c.db {
        // speedtest1 empties its database itself before it starts (xDelete).
        Db::Object(name) => {
            cmd.arg(name);
        }
        Db::File(db) => {
            let _ = std::fs::remove_file(db);
            let _ = std::fs::remove_file(format!("{}-journal", db.display()));
            cmd.arg(db);
        }
        Db::Memory => {
            cmd.args(["--memdb", "unused"]);
        }
    }
    let out = cmd
        .env_remove("TWZ_STORE")
        .output()
        .map_err(|e| format!("{}: cannot run: {e}", c.title))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}): {}{}",
            c.title,
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse(&text).ok_or_else(|| format!("{}: no results in:\n{text}", c.title))
}

/// Keeps, per test and for the total, the faster of `best` and `r`.
fn keep_fastest(best: Option<Results>, r: Results) -> Results {
    match best {
        None => r,
        Some(mut b) => {
            for (k, (_, t)) in &r.tests {
                if let Some(e) = b.tests.get_mut(k) {
                    e.1 = e.1.min(*t);
                }
            }
            b.total = b.total.min(r.total);
            b
        }
    }
}

fn main() {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        println!("SKIP sqlite bench: /dev/kvm is not usable here");
        return;
    }
    let native = match sqlite_native::speedtest1() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot build the native speedtest1 (needs gcc): {e}");
            std::process::exit(1);
        }
    };
    let size = std::env::var("TWZ_SPEEDTEST_SIZE").unwrap_or_else(|_| "25".into());
    let runs = std::env::var("TWZ_SPEEDTEST_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let disk = tempfile::Builder::new()
        .prefix("twz-speedtest")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir on the disk");
    let shm = tempfile::Builder::new()
        .prefix("twz-speedtest")
        .tempdir_in("/dev/shm")
        .expect("temp dir on /dev/shm");
    let store = disk.path().join("store");
    let ext4 = disk.path().join("speed.db");
    let tmpfs = shm.path().join("speed.db");
    let nosync = || vec!["--nosync".to_string()];
    let configs = [
        Config {
            title: "guest none",
            guest: true,
            args: vec![],
            run: vec!["--durability", "none"],
            db: Db::Object("speedtest"),
        },
        Config {
            title: "ext4 off",
            guest: false,
            args: nosync(),
            run: vec![],
            db: Db::File(ext4.clone()),
        },
        Config {
            title: "tmpfs off",
            guest: false,
            args: nosync(),
            run: vec![],
            db: Db::File(tmpfs.clone()),
        },
        Config {
            title: "guest commit",
            guest: true,
            args: vec![],
            run: vec!["--durability", "commit"],
            db: Db::Object("speedtest"),
        },
        Config {
            title: "ext4 full",
            guest: false,
            args: vec![],
            run: vec![],
            db: Db::File(ext4.clone()),
        },
        Config {
            title: "tmpfs full",
            guest: false,
            args: vec![],
            run: vec![],
            db: Db::File(tmpfs.clone()),
        },
        Config {
            title: "guest :mem:",
            guest: true,
            args: vec![],
            run: vec!["--durability", "none"],
            db: Db::Memory,
        },
        Config {
            title: "native :mem:",
            guest: false,
            args: vec![],
            run: vec![],
            db: Db::Memory,
        },
    ];
    // Rounds go through every configuration in turn, so that a slow spell of this shared
    // machine (it has one, minutes long, where everything takes ~1.6x) hits them alike; each
    // column keeps its fastest round.
    let mut best: Vec<Option<Results>> = configs.iter().map(|_| None).collect();
    for _ in 0..runs {
        for (c, b) in configs.iter().zip(best.iter_mut()) {
            match run_once(c, &native, &size, &store) {
                Ok(r) => *b = Some(keep_fastest(b.take(), r)),
                Err(e) => {
                    eprintln!("{}: {e}", c.title);
                    std::process::exit(1);
                }
            }
        }
    }
    let results: Vec<Results> = best.into_iter().flatten().collect();
    print_table(&configs, &results, &size, runs);
}

fn print_table(configs: &[Config], results: &[Results], size: &str, runs: usize) {
    let versions: Vec<&str> = results.iter().map(|r| r.version.as_str()).collect();
    println!(
        "speedtest1 --size {size}, SQLite {versions:?}, seconds (fastest of {runs}); \
         durability none = native synchronous=OFF, commit = synchronous=FULL"
    );
    print!("{:<48}", "test");
    for c in configs {
        print!("{:>13}", c.title);
    }
    println!();
    for (num, (name, _)) in &results[0].tests {
        let mut label = format!("{num} {name}");
        label.truncate(47);
        print!("{label:<48}");
        for r in results {
            match r.tests.get(num) {
                Some((_, t)) => print!("{t:>13.3}"),
                None => print!("{:>13}", "-"),
            }
        }
        println!();
    }
    print!("{:<48}", "TOTAL");
    for r in results {
        print!("{:>13.3}", r.total);
    }
    println!();
    // Speed-ups of the guest over native with the same durability (native time / guest time).
    let t = |i: usize| results[i].total;
    println!();
    println!("guest speed-up (native total / guest total, >1 = guest faster):");
    println!(
        "  durability none:   {:.2}x vs ext4, {:.2}x vs tmpfs",
        t(1) / t(0),
        t(2) / t(0)
    );
    println!(
        "  durability commit: {:.2}x vs ext4, {:.2}x vs tmpfs",
        t(4) / t(3),
        t(5) / t(3)
    );
    println!("  :memory:          {:.2}x", t(7) / t(6));
}
