//! What the `objects` and `kvs` benches share: running the VMM and host programs, building the
//! C reference programs of this folder with the system compiler at run time (so the workspace
//! build never needs PMDK or LMDB), and reading the `RESULT key=value ...` lines they print.

#![allow(dead_code)] // each bench uses part of it

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The `twz-vmm` binary under test.
pub const VMM: &str = env!("CARGO_BIN_EXE_twz-vmm");

/// A source file of `vmm/benches/reference/`.
pub fn reference_source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/reference")
        .join(name)
}

/// Compiles `sources` with `cc -O2` into `out_dir/name`, linking `libs` (`-lpmemobj`...).
/// On failure prints why, then `skipped` (the line that tells the reader what to install), and
/// returns `None`.
pub fn build_c(
    out_dir: &Path,
    name: &str,
    sources: &[PathBuf],
    include_dirs: &[PathBuf],
    libs: &[&str],
    skipped: &str,
) -> Option<PathBuf> {
    let out = out_dir.join(name);
    let mut cmd = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cmd.args(["-O2", "-std=gnu11", "-o"]).arg(&out);
    for dir in include_dirs {
        cmd.arg("-I").arg(dir);
    }
    cmd.args(sources).args(libs);
    match cmd.output() {
        Ok(o) if o.status.success() => Some(out),
        Ok(o) => {
            eprintln!("{}", String::from_utf8_lossy(&o.stderr).trim_end());
            println!("{skipped}");
            None
        }
        Err(e) => {
            eprintln!("cannot run the C compiler: {e}");
            println!("{skipped}");
            None
        }
    }
}

/// Runs `program` with `args` (and `env`), returning its stdout; `None` (with its stderr shown)
/// if it cannot start or fails.
pub fn output(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Option<String> {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    match cmd.output() {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => {
            eprintln!(
                "{} {args:?} failed ({}): {}",
                program.display(),
                o.status,
                String::from_utf8_lossy(&o.stderr).trim_end()
            );
            None
        }
        Err(e) => {
            eprintln!("cannot run {}: {e}", program.display());
            None
        }
    }
}

/// Runs `twz-vmm ARGS`, returning its stdout.
pub fn vmm(args: &[&str]) -> Option<String> {
    output(Path::new(VMM), args, &[])
}

/// One `RESULT k=v k=v ...` line as key-value pairs.
#[derive(Debug, Clone)]
pub struct ResultLine(Vec<(String, String)>);

impl ResultLine {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` as a number.
    pub fn num(&self, key: &str) -> Option<f64> {
        self.get(key)?.parse().ok()
    }

    /// The line with `key` set to `value`.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value.to_string(),
            None => self.0.push((key.to_string(), value.to_string())),
        }
        self
    }

    /// True if every `(key, value)` of `want` is on the line.
    pub fn matches(&self, want: &[(&str, &str)]) -> bool {
        want.iter().all(|(k, v)| self.get(k) == Some(v))
    }
}

/// Every `RESULT` line of `text`.
pub fn results(text: &str) -> Vec<ResultLine> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("RESULT "))
        .map(|rest| {
            ResultLine(
                rest.split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        })
        .collect()
}

/// The number `key` of the first `RESULT` line that matches `want`.
pub fn result(lines: &[ResultLine], want: &[(&str, &str)], key: &str) -> Option<f64> {
    lines.iter().find(|l| l.matches(want))?.num(key)
}

/// The number after `key` and before `unit` on the first line of `text` containing `key`.
pub fn figure(text: &str, key: &str, unit: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.contains(key))?;
    let after = &line[line.find(key)? + key.len()..];
    after.split(unit).next()?.trim().parse().ok()
}

/// Prints one table row: what, the figure (or `n/a`), a note.
pub fn row(what: &str, value: Option<String>, note: &str) {
    let value = value.unwrap_or_else(|| "n/a".into());
    println!("{what:<60} {value:>12}   {note}");
}

/// The machine's load averages, for the table's heading.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The current UTC time, `YYYY-MM-DD HH:MM:SS UTC` (from `date`, else seconds since the epoch).
pub fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!("{secs} s since the epoch")
        })
}
