//! `twz-vmm ctx ...`: security contexts kept in the store. A context's capabilities live in
//! the raw object `ctx:<CTX>`; `run --ctx CTX` holds them as if they were given with `--cap`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use object_store::{context_id, perms_string, CapChain, Store};

use super::obj::open_store;
use super::Globals;

#[derive(clap::Subcommand, Debug)]
pub enum CtxCommand {
    /// Store capability files in context CTX (each chain must be for CTX).
    Add {
        /// The security context.
        ctx: String,
        /// Capability files (one chain or a bundle each).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the capabilities stored in context CTX, each with its verdict now.
    Show {
        /// The security context.
        ctx: String,
    },
}

pub fn exec(globals: &Globals, cmd: CtxCommand) -> anyhow::Result<u8> {
    let store = open_store(globals)?;
    match cmd {
        CtxCommand::Add { ctx, files } => {
            let accessor = context_id(&ctx);
            let mut chains = Vec::new();
            for f in &files {
                let bytes = std::fs::read(f).with_context(|| format!("{}", f.display()))?;
                let file =
                    CapChain::parse_file(&bytes).with_context(|| format!("{}", f.display()))?;
                if let Some(i) = file.iter().position(|c| c.accessor() != accessor) {
                    bail!(
                        "{}: chain {i} is for another context than {ctx:?}",
                        f.display()
                    );
                }
                chains.extend(file);
            }
            let added = store.add_context_caps(&ctx, &chains)?;
            let total = store.context_caps(&ctx)?.len();
            println!("context {ctx:?}: {added} capabilities added, {total} held");
        }
        CtxCommand::Show { ctx } => show(&store, &ctx)?,
    }
    Ok(0)
}

fn show(store: &Store, ctx: &str) -> anyhow::Result<()> {
    let chains = store.context_caps(ctx)?;
    if chains.is_empty() {
        println!("context {ctx:?} holds no stored capabilities");
        return Ok(());
    }
    let now = super::cap::now_ns();
    println!("{:<32}  {:<5} {:>5}  verdict", "target", "perms", "links");
    for c in &chains {
        let perms = c.links().last().map_or(0, |l| l.perms);
        let verdict = match store.verify_cap(c, now) {
            Ok(_) => "valid".to_string(),
            Err(e) => format!("INVALID: {e}"),
        };
        println!(
            "{:<32}  {:<5} {:>5}  {verdict}",
            c.target().to_string(),
            perms_string(perms),
            c.links().len()
        );
    }
    Ok(())
}
