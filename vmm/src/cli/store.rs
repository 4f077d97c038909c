//! `twz-vmm store ...` (create and check the store) and `twz-vmm key ...` (signing keys).

use anyhow::bail;
use object_store::FsckReport;
use serde::Serialize;

use super::obj::{open_store, table};
use super::Globals;

#[derive(clap::Subcommand, Debug)]
pub enum StoreCommand {
    /// Create the store (any command does this on first use); prints where it is.
    Init,
    /// Roll back every unfinished transaction nobody is running (objects open for writing in
    /// another process are left alone and reported), and remove the temp files interrupted
    /// writes left (those of processes that no longer run).
    Recover {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every object, name and key; exits non-zero if anything is damaged.
    Fsck {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum KeyCommand {
    /// Generate a new Ed25519 signing key.
    Gen {
        /// Key name (A-Z a-z 0-9 _ - .).
        name: String,
    },
    /// List keys.
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `fsck --json` output: the report plus the verdict.
#[derive(Serialize)]
struct FsckJson<'a> {
    store: String,
    clean: bool,
    #[serde(flatten)]
    report: &'a FsckReport,
}

/// `key ls --json` output.
#[derive(Serialize)]
struct KeyJson {
    name: String,
    public_key: Option<String>,
    has_secret: bool,
    problem: Option<String>,
}

pub fn exec(globals: &Globals, cmd: StoreCommand) -> anyhow::Result<u8> {
    let dir = globals.store_dir();
    match cmd {
        StoreCommand::Init => {
            let store = open_store(globals)?;
            let what = if store.was_created() {
                "created store"
            } else {
                "store already initialised"
            };
            println!(
                "{what}: {} (format version {}{})",
                store.root().display(),
                object_store::STORE_VERSION,
                if store.is_pmem() {
                    ", persistent memory: MAP_SYNC"
                } else {
                    ""
                }
            );
        }
        StoreCommand::Recover { json } => {
            let store = open_store(globals)?;
            let mut reports = Vec::new();
            let mut busy = Vec::new();
            for (id, _) in store.scan_objects()?.objects {
                match store.recover(id) {
                    Ok(r) => reports.push(r),
                    Err(object_store::StoreError::InUse(id)) => busy.push(id.to_string()),
                    Err(e) => return Err(e.into()),
                }
            }
            let temps = store.remove_stray_temps()?;
            let acted: Vec<_> = reports
                .iter()
                .filter(|r| r.rolled_back.is_some() || r.completed.is_some() || r.marker.is_some())
                .collect();
            if json {
                let removed: Vec<_> = temps.iter().map(|p| p.display().to_string()).collect();
                let out = serde_json::json!({
                    "recovered": acted,
                    "in_use": busy,
                    "removed_temp_files": removed,
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                for r in &acted {
                    println!("{}", super::obj::recovery_text(r));
                }
                for id in &busy {
                    println!("object {id}: open for writing in another process; left alone");
                }
                for p in &temps {
                    println!("removed {}: left by an interrupted write", p.display());
                }
                println!(
                    "checked {} objects: {} recovered, {} in use; {} stray temp files removed",
                    reports.len() + busy.len(),
                    acted.iter().filter(|r| r.changed_data()).count(),
                    busy.len(),
                    temps.len()
                );
            }
        }
        StoreCommand::Fsck { json } => {
            let store = open_store(globals)?;
            let report = store.fsck()?;
            if json {
                let out = FsckJson {
                    store: dir.display().to_string(),
                    clean: report.is_clean(),
                    report: &report,
                };
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                for p in &report.problems {
                    println!("{p}");
                }
                println!(
                    "checked {} objects, {} names, {} keys: {}",
                    report.objects_checked,
                    report.names_checked,
                    report.keys_checked,
                    match report.problems.len() {
                        0 => "no problems".to_string(),
                        n => format!("{n} problem(s)"),
                    }
                );
            }
            if !report.is_clean() {
                bail!(
                    "store {}: fsck found {} problem(s)",
                    dir.display(),
                    report.problems.len()
                );
            }
        }
    }
    Ok(0)
}

pub fn exec_key(globals: &Globals, cmd: KeyCommand) -> anyhow::Result<u8> {
    let store = open_store(globals)?;
    match cmd {
        KeyCommand::Gen { name } => {
            let pk = store.generate_key(&name)?;
            println!("key {name}: {}", hex(pk.as_bytes()));
        }
        KeyCommand::Ls { json } => {
            let keys: Vec<KeyJson> = store
                .list_keys()?
                .into_iter()
                .map(|k| KeyJson {
                    name: k.name,
                    public_key: k.public.as_ref().ok().map(|p| hex(p)),
                    has_secret: k.has_secret,
                    problem: k.public.err(),
                })
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        vec![
                            k.name.clone(),
                            k.public_key.clone().unwrap_or_else(|| "-".into()),
                            if k.has_secret { "yes" } else { "no" }.into(),
                            k.problem
                                .as_ref()
                                .map(|p| format!("DAMAGED: {p}"))
                                .unwrap_or_else(|| "ok".into()),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["NAME", "PUBLIC KEY", "SECRET", "STATUS"], &rows)
                );
            }
        }
    }
    Ok(0)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
