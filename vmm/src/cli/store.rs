//! `twz-vmm store ...` and `twz-vmm key ...`: placeholder.

use super::Globals;

#[derive(clap::Subcommand, Debug)]
pub enum StoreCommand {
    /// Create the store.
    Init,
}

#[derive(clap::Subcommand, Debug)]
pub enum KeyCommand {
    /// Generate a key.
    Gen { name: String },
}

pub fn exec(_globals: &Globals, _cmd: StoreCommand) -> anyhow::Result<u8> {
    anyhow::bail!("not implemented yet")
}

pub fn exec_key(_globals: &Globals, _cmd: KeyCommand) -> anyhow::Result<u8> {
    anyhow::bail!("not implemented yet")
}
