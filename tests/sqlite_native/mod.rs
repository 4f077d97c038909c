//! Native builds of the guest's SQLite, for diffing and benchmarking against the guest: the same
//! amalgamation (the `libsqlite3-sys` package `examples/sqlite3-lib` compiles, SQLite 3.54.1) with
//! the same compile-time options, built with the host's gcc and SQLite's unix VFS. Used by
//! `tests/sqlite_corpus.rs` (the guest's shell, `examples/sqlite/src/shell.c`, built natively) and
//! `vmm/benches/sqlite.rs` (`speedtest1.c`).
//!
//! `sqlite3.c` takes about a minute to compile at -O2 (seconds at -O0, enough for the tests), so
//! its object files are kept in `CARGO_TARGET_TMPDIR/native-sqlite/` and reused while the options
//! and the source stay the same.
#![allow(dead_code)]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

#[path = "../../examples/sqlite3-lib/amalgamation.rs"]
mod amalgamation;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("vmm/ has a parent")
        .to_path_buf()
}

/// The guest's options (`examples/sqlite3-lib/build.rs`) less the two that only make sense
/// without an OS: `SQLITE_OS_OTHER` (natively the unix VFS serves files) and
/// `SQLITE_ZERO_MALLOC` (the shell and speedtest1 still give SQLite a memsys5 heap, as in the
/// guest, with `SQLITE_CONFIG_HEAP`).
pub const OPTIONS: &[&str] = &[
    "-DSQLITE_THREADSAFE=0",
    "-DSQLITE_ENABLE_MEMSYS5",
    "-DSQLITE_DEFAULT_MEMSTATUS=0",
    "-DSQLITE_OMIT_LOAD_EXTENSION",
    "-DSQLITE_OMIT_LOCALTIME",
    "-DSQLITE_OMIT_DEPRECATED",
    "-DSQLITE_OMIT_SHARED_CACHE",
    "-DSQLITE_OMIT_WAL",
    "-DSQLITE_TEMP_STORE=3",
    "-DSQLITE_DQS=0",
    "-DSQLITE_ENABLE_MATH_FUNCTIONS",
    "-DSQLITE_MAX_MMAP_SIZE=0x40000000",
    "-DSQLITE_DEFAULT_MMAP_SIZE=0x40000000",
];

/// How hard gcc optimises: the benchmark needs the guest's -O2; the tests only need the same
/// answers, which -O0 gives after a few seconds of compiling instead of a minute.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Opt {
    /// `-O0`.
    Quick,
    /// `-O2`, as the guest's C.
    Fast,
}

impl Opt {
    fn flags(self) -> [&'static str; 3] {
        match self {
            Opt::Quick => ["-O0", "-g1", "-w"],
            Opt::Fast => ["-O2", "-g1", "-w"],
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Opt::Quick => "O0",
            Opt::Fast => "O2",
        }
    }
}

/// The folder holding `sqlite3.c` and `sqlite3.h` (as `examples/sqlite3-lib/build.rs` finds it).
pub fn amalgamation_dir() -> Result<PathBuf, String> {
    amalgamation::dir(&root().join("examples/Cargo.toml"))
}

/// Where native builds are kept.
fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("native-sqlite")
}

/// Runs `cmd`, turning a failure into its stderr.
fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// One build at a time within a process (tests run in threads).
static BUILD: Mutex<()> = Mutex::new(());

/// `sqlite3.o` for the host, compiled once per source and option set.
fn sqlite_object(amalgamation: &Path, opt: Opt) -> Result<PathBuf, String> {
    let mut h = DefaultHasher::new();
    (amalgamation, OPTIONS, opt).hash(&mut h);
    let dir = cache_dir();
    let obj = dir.join(format!("sqlite3-{:016x}.o", h.finish()));
    if obj.is_file() {
        return Ok(obj);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Another process (a test binary, the bench) may build it too: compile to a name of our
    // own and rename, so nobody links a half-written file.
    let tmp = dir.join(format!("sqlite3-{}.o.tmp", std::process::id()));
    run(Command::new("gcc")
        .args(opt.flags())
        .args(OPTIONS)
        .arg("-c")
        .arg(amalgamation.join("sqlite3.c"))
        .arg("-o")
        .arg(&tmp))?;
    std::fs::rename(&tmp, &obj).map_err(|e| format!("{}: {e}", obj.display()))?;
    Ok(obj)
}

/// Links the C files `sources` (with `includes` on the header path) against the native SQLite
/// into the program `name`, rebuilt when a source is newer than it. Returns its path.
pub fn program(
    name: &str,
    opt: Opt,
    sources: &[PathBuf],
    includes: &[PathBuf],
) -> Result<PathBuf, String> {
    let _one = BUILD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let amalgamation = amalgamation_dir()?;
    let sqlite = sqlite_object(&amalgamation, opt)?;
    let exe = cache_dir().join(format!("{name}-{}", opt.suffix()));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let built = modified(&exe);
    let fresh = built.is_some()
        && sources
            .iter()
            .chain(std::iter::once(&sqlite))
            .all(|s| modified(s) <= built);
    if fresh {
        return Ok(exe);
    }
    let tmp = cache_dir().join(format!("{name}.{}.tmp", std::process::id()));
    let mut cmd = Command::new("gcc");
    cmd.args(opt.flags())
        .args(OPTIONS)
        .arg("-I")
        .arg(&amalgamation);
    for i in includes {
        cmd.arg("-I").arg(i);
    }
    cmd.args(sources).arg(&sqlite).args(["-lm", "-o"]).arg(&tmp);
    run(&mut cmd)?;
    std::fs::rename(&tmp, &exe).map_err(|e| format!("{}: {e}", exe.display()))?;
    Ok(exe)
}

/// The guest's shell built natively (quickly: for tests): databases are files, `.read NAME`
/// reads the file NAME.
pub fn shell() -> Result<PathBuf, String> {
    let r = root();
    program(
        "sqlite-shell",
        Opt::Quick,
        &[
            r.join("examples/sqlite/src/shell.c"),
            r.join("tests/sqlite_native/twz_native.c"),
        ],
        &[
            r.join("tests/sqlite_native/include"),
            r.join("examples/sqlite/src"),
        ],
    )
}

/// SQLite's speedtest1 (the copy the guest image `speedtest1` runs) built natively.
pub fn speedtest1() -> Result<PathBuf, String> {
    program(
        "speedtest1",
        Opt::Fast,
        &[root().join("examples/speedtest1/src/speedtest1.c")],
        &[],
    )
}
