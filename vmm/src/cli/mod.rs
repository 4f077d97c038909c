//! The command line: argument parsing and dispatch to one module per command group.

mod cap;
mod ctx;
mod obj;
mod run;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// twz-vmm: a hypervisor-based persistent object monitor.
#[derive(Parser, Debug)]
#[command(name = "twz-vmm", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub globals: Globals,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Globals {
    /// The object store directory (default: $TWZ_STORE, else a per-user data directory).
    // $TWZ_STORE is read by `store_dir`, not by clap: an environment value would conflict
    // with --pmem.
    #[arg(long, global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// A store on persistent memory (a DAX filesystem, `mount -o dax`): every object is mapped
    /// MAP_SYNC, or the command fails.
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "store")]
    pub pmem: Option<PathBuf>,
}

impl Globals {
    /// The store directory this invocation uses.
    pub fn store_dir(&self) -> PathBuf {
        self.pmem
            .clone()
            .or_else(|| self.store.clone())
            .or_else(|| {
                std::env::var_os("TWZ_STORE")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(object_store::default_store_dir)
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a guest: a built-in image by name (hello, echo, ...) or a guest ELF file.
    Run(run::RunArgs),
    /// Inspect and manage objects.
    #[command(subcommand)]
    Obj(obj::ObjCommand),
    /// Create and check the store.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Key(store::KeyCommand),
    /// Grant, delegate, show, verify and revoke signed capabilities.
    #[command(subcommand)]
    Cap(cap::CapCommand),
    /// Store capabilities in a security context (`run --ctx` holds them).
    #[command(subcommand)]
    Ctx(ctx::CtxCommand),
}

/// Parses the command line, runs the command, and turns its outcome into the process status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::exec(&cli.globals, args),
        Command::Obj(cmd) => obj::exec(&cli.globals, cmd),
        Command::Store(cmd) => store::exec(&cli.globals, cmd),
        Command::Key(cmd) => store::exec_key(&cli.globals, cmd),
        Command::Cap(cmd) => cap::exec(&cli.globals, cmd),
        Command::Ctx(cmd) => ctx::exec(&cli.globals, cmd),
    };
    match result {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            eprintln!("twz-vmm: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
