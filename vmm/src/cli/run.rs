//! `twz-vmm run`: placeholder until the run path lands.

use super::Globals;

/// Arguments of `twz-vmm run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// A built-in image name or an ELF path.
    pub image: String,
}

/// Runs a guest and returns the process exit status.
pub fn exec(_globals: &Globals, _args: RunArgs) -> anyhow::Result<u8> {
    anyhow::bail!("run is not implemented yet")
}
