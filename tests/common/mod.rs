//! Helpers shared by the integration tests: run the real `twz-vmm` binary on a fresh store.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A `twz-vmm` command with `--store` set to `store`.
pub fn twz(store: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_twz-vmm"));
    c.arg("--store")
        .arg(store)
        .env_remove("TWZ_STORE")
        .stdin(Stdio::null());
    c
}

/// Runs `twz-vmm --store STORE ARGS...` and returns its output.
pub fn run(store: &Path, args: &[&str]) -> Output {
    twz(store).args(args).output().expect("spawn twz-vmm")
}

/// Runs the command, asserts it succeeded, and returns its stdout.
pub fn ok(store: &Path, args: &[&str]) -> String {
    let out = run(store, args);
    assert!(
        out.status.success(),
        "twz-vmm {args:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// Runs the command, asserts it failed, and returns its stderr.
pub fn fails(store: &Path, args: &[&str]) -> String {
    let out = run(store, args);
    assert!(
        !out.status.success(),
        "twz-vmm {args:?} unexpectedly succeeded\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("stderr is UTF-8")
}

/// Copies the object files of store `from` over those of store `to` (`cp --sparse=always`, so
/// 1 GiB sparse files copy in milliseconds): how a test makes a store's objects look as a disk
/// held them at an earlier moment.
pub fn copy_objects(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("objects")).expect("objects dir");
    let ok = Command::new("cp")
        .args(["-a", "--sparse=always"])
        .arg(from.join("objects/."))
        .arg(to.join("objects"))
        .status()
        .expect("cp");
    assert!(ok.success(), "cp {} -> {}", from.display(), to.display());
}

/// A fresh, empty store directory (removed when dropped).
pub fn temp_store() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("twz-test-store")
        .tempdir()
        .expect("temp dir")
}

/// True when this machine can run guests. Tests that need KVM call this first and return early
/// after printing a `SKIP` line when it is false.
pub fn kvm_available(test: &str) -> bool {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => true,
        Err(e) => {
            println!("SKIP {test}: /dev/kvm is not usable here ({e})");
            false
        }
    }
}

/// A run's status, stdout and stderr, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` with `input` on its stdin and returns its output. Stdin is fed from another
/// thread so that a child filling its stdout pipe cannot deadlock the test. Fails only if the
/// command cannot be started.
pub fn output_with_stdin(cmd: &mut Command, input: &[u8]) -> std::io::Result<Output> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let data = input.to_vec();
    // A child that exits without reading all of its input closes the pipe: not an error here.
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output();
    feeder.join().expect("stdin feeder thread");
    out
}

/// The host's `sqlite3 ARGS...` with `input` on stdin, or `None` (after a `SKIP` line) when no
/// `sqlite3` is installed.
pub fn host_sqlite3<S: AsRef<std::ffi::OsStr>>(args: &[S], input: &str) -> Option<Output> {
    match output_with_stdin(Command::new("sqlite3").args(args), input.as_bytes()) {
        Ok(out) => Some(out),
        Err(e) => {
            println!("SKIP the comparison with the host: no sqlite3 ({e})");
            None
        }
    }
}

/// The (flags, target) columns of `twz-vmm obj fot OBJ` output, one pair per entry.
pub fn fot_rows(store: &Path, obj: &str) -> Vec<(String, String)> {
    ok(store, &["obj", "fot", obj])
        .lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[2].to_string(), cols[3].to_string())
        })
        .collect()
}

/// A `twz-vmm run ... --listen 127.0.0.1:0` that has bound its port.
pub struct Listening {
    /// The VMM process (stdout as the caller set it up).
    pub child: std::process::Child,
    /// The address it reported on stderr.
    pub addr: std::net::SocketAddr,
    /// Everything it writes to stderr, the address line first, once it exits.
    pub stderr: std::thread::JoinHandle<String>,
}

/// Spawns `cmd` (a run with `--listen`) with stderr piped and reads the bound address from its
/// first stderr line (`twz-vmm: listening on ADDR`). `None`, with the process killed, when that
/// line is something else (the run has no stream device, or failed).
pub fn spawn_listening(cmd: &mut Command) -> Option<Listening> {
    use std::io::{BufRead, Read};
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("spawn twz-vmm");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut first = String::new();
    let _ = lines.read_line(&mut first);
    let addr = first
        .trim()
        .strip_prefix("twz-vmm: listening on ")
        .and_then(|a| a.parse().ok());
    let Some(addr) = addr else {
        let _ = child.kill();
        let _ = child.wait();
        eprintln!("no address line from twz-vmm, got {first:?}");
        return None;
    };
    let stderr = std::thread::spawn(move || {
        let mut rest = first;
        let _ = lines.read_to_string(&mut rest);
        rest
    });
    Some(Listening {
        child,
        addr,
        stderr,
    })
}

/// A small tmpfs mounted for one test, for what a full filesystem does (needs the right to
/// mount: root with CAP_SYS_ADMIN; `None` otherwise); unmounted when dropped.
pub struct SmallFs(tempfile::TempDir);

impl SmallFs {
    /// A tmpfs of `bytes` bytes on a fresh directory.
    pub fn mount(bytes: u64) -> Option<SmallFs> {
        let dir = tempfile::tempdir().ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(SmallFs(dir))
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}
