//! `twz-vmm run <NAME|IMAGE.elf> [--mem SIZE] [--timeout SECS] [--stats] [--slots N] [--durability none|commit|group]
//! [--listen ADDR] [--ctx CTX] [--cap FILE]... [--key NAME] [--huge-pages] [-- ARGS...]`.
//!
//! The guest's object store (`--store`, `$TWZ_STORE` or the default; created on first use) is
//! opened at its first object call, so runs that use no objects never touch it; `--pmem` stores
//! are checked before the guest starts.
//!
//! A name without `/` that is not an existing file is looked up among the built-in images. The
//! guest's exit status becomes the process status (101 after a guest panic, 139 after a fault,
//! 124 after `--timeout`); fault and panic reports and `--stats` go to stderr.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use twz_vmm::backtrace::GuestImage;
use twz_vmm::hostcall::console::Console;
use twz_vmm::memory::parse_mem_size;
use twz_vmm::run::{run, RunConfig};

use super::Globals;

/// Arguments of `twz-vmm run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// A built-in image name (hello, echo, ...) or a path to a guest ELF.
    pub image: String,
    /// Guest RAM, with an optional K/M/G suffix.
    #[arg(long, value_name = "SIZE", default_value = "128M", value_parser = parse_mem_size)]
    pub mem: u64,
    /// Stop the guest after this many seconds (status 124).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Print exits, host calls, ring use, time in guest vs VMM and pages touched to stderr.
    #[arg(long)]
    pub stats: bool,
    /// Object-window slots the guest may have mapped at once; beyond, the least recently
    /// mapped object is unmapped (at most 127).
    #[arg(long, value_name = "N", default_value_t = twz_vmm::objects::DEFAULT_SLOTS,
          value_parser = clap::value_parser!(u32).range(1..=twz_vmm::arch::layout::OBJ_PD_COUNT as i64))]
    pub slots: u32,
    /// What a transaction commit waits for: nothing, its own writes reaching durable storage,
    /// or a group of commits together.
    #[arg(long, value_enum, default_value_t = Durability::Commit)]
    pub durability: Durability,
    /// Serve TCP on ADDR (host:port, port 0 picks a free one): each connection becomes a
    /// stream the guest accepts and reads and writes over the ring.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Run the guest in this security context: it maps only objects it holds capabilities for.
    #[arg(long, value_name = "CTX")]
    pub ctx: Option<String>,
    /// A capability file the guest's context holds (repeatable).
    #[arg(long = "cap", value_name = "FILE")]
    pub caps: Vec<PathBuf>,
    /// The key that owns the objects the guest creates (default: the store's default key).
    #[arg(long, value_name = "NAME")]
    pub key: Option<String>,
    /// Back objects with 2 MiB host pages: first touches of object memory get much cheaper
    /// (one fault per 2 MiB), but files grow and flush in 2 MiB units. For bulk, non-durable
    /// work.
    #[arg(long)]
    pub huge_pages: bool,
    /// Arguments for the guest (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// `--durability`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Commits wait for nothing: updates survive a crash of the guest or of `twz-vmm`, not a
    /// power loss.
    None,
    /// Each commit waits until its writes are durable.
    Commit,
    /// Commits are made durable in groups.
    Group,
}

impl Durability {
    fn abi(self) -> u32 {
        match self {
            Durability::None => abi::boot::durability::NONE,
            Durability::Commit => abi::boot::durability::COMMIT,
            Durability::Group => abi::boot::durability::GROUP,
        }
    }
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("invalid timeout {text:?}: expected seconds"))?;
    if !(secs > 0.0 && secs <= 1e9) {
        return Err(format!(
            "invalid timeout {text:?}: must be between 0 and 1e9 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Finds the image: an ELF path, or a built-in name.
fn resolve(image: &str) -> anyhow::Result<GuestImage> {
    let path = Path::new(image);
    if image.contains('/') || path.is_file() {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read guest image {image}"))?;
        let name = path
            .file_stem()
            .map_or(image.into(), |s| s.to_string_lossy().into_owned());
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
        return Ok(GuestImage {
            name,
            bytes: Cow::Owned(bytes),
            path: Some(path),
        });
    }
    match twz_vmm::images::builtin(image) {
        Some(bytes) => Ok(GuestImage {
            name: image.into(),
            bytes: Cow::Borrowed(bytes),
            path: None,
        }),
        None => bail!("no built-in guest named {image:?} and no such file"),
    }
}

/// Runs a guest and returns the process exit status.
pub fn exec(globals: &Globals, args: RunArgs) -> anyhow::Result<u8> {
    let image = resolve(&args.image)?;
    let config = RunConfig {
        image,
        mem_size: args.mem,
        args: args.args,
        timeout: args.timeout,
        stats: args.stats,
        console: Arc::new(Console::Std),
        store: Some(globals.store_dir()),
        slots: args.slots,
        pmem: globals.pmem.is_some(),
        durability: args.durability.abi(),
        listen: args.listen,
        ctx: args.ctx,
        caps: args.caps,
        key: args.key,
        huge_pages: args.huge_pages,
    };
    let outcome = run(config).context("cannot run the guest")?;
    if let Some(report) = &outcome.report {
        eprint!("{report}");
    }
    if let Some(stats) = &outcome.stats {
        eprint!("{stats}");
    }
    Ok(outcome.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_must_be_positive() {
        assert_eq!(parse_timeout("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("nan").is_err());
        assert!(parse_timeout("abc").is_err());
    }

    #[test]
    fn missing_files_and_names_are_errors() {
        assert!(resolve("./does-not-exist.elf")
            .unwrap_err()
            .to_string()
            .contains("cannot read"));
        assert!(resolve("no-such-guest").is_err());
    }
}
