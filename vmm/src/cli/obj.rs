//! `twz-vmm obj ...`: placeholder.

use super::Globals;

#[derive(clap::Subcommand, Debug)]
pub enum ObjCommand {
    /// List objects.
    Ls,
}

pub fn exec(_globals: &Globals, _cmd: ObjCommand) -> anyhow::Result<u8> {
    anyhow::bail!("not implemented yet")
}
