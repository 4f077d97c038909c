//! `twz-vmm cap ...`: grant, delegate, show, verify and revoke signed capabilities.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use abi::id::ObjId;
use anyhow::{anyhow, bail, Context};
use object_store::{context_id, parse_perms, perms_string, CapChain, Grant, Store, DEFAULT_KEY};
use serde::Serialize;

use super::obj::open_store;
use super::Globals;

#[derive(clap::Subcommand, Debug)]
pub enum CapCommand {
    /// Grant rights on objects, signed with their owner key (several targets, or --reachable,
    /// write one file holding a chain per object).
    Grant {
        /// Object name or ID (repeatable).
        #[arg(long, required = true)]
        target: Vec<String>,
        /// Also grant every object reachable from the targets through FOT entries (pointers)
        /// that the signing key owns, for example a list head's nodes.
        #[arg(long)]
        reachable: bool,
        /// Security context name that may use the capability.
        #[arg(long)]
        accessor: String,
        /// Rights: any of r w x u.
        #[arg(long)]
        perms: String,
        /// Lifetime: e.g. 30m, 24h, 7d, 90s, or never.
        #[arg(long, default_value = "never")]
        expires: String,
        /// Signing key (must be the object's owner key).
        #[arg(long, default_value = DEFAULT_KEY)]
        key: String,
        /// Key allowed to delegate this capability further.
        #[arg(long, value_name = "KEYNAME")]
        delegate_to: Option<String>,
        /// Output file.
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
    },
    /// Extend a chain with fewer rights or a shorter life, signed by its delegate key.
    Delegate {
        /// The capability file to extend.
        file: PathBuf,
        /// Rights: a subset of FILE's.
        #[arg(long)]
        perms: String,
        /// Lifetime (default: FILE's expiry).
        #[arg(long)]
        expires: Option<String>,
        /// The holder's key (FILE's delegate key).
        #[arg(long)]
        key: String,
        /// Key allowed to delegate further.
        #[arg(long, value_name = "KEYNAME")]
        delegate_to: Option<String>,
        /// Output file.
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
    },
    /// Print every link of a capability file.
    Show {
        /// Capability file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 when valid for its target's owner key; else print why and exit 1.
    Verify {
        /// Capability file.
        file: PathBuf,
        /// Also require this security context.
        #[arg(long)]
        accessor: Option<String>,
    },
    /// Revoke a capability file's last link: later verifications and maps are refused.
    Revoke {
        /// Capability file.
        file: PathBuf,
    },
}

/// One link in `cap show --json`.
#[derive(Serialize)]
struct LinkJson {
    link: usize,
    target: String,
    accessor: String,
    perms: String,
    expires_ns: u64,
    revocation: String,
    revoked: bool,
    signer: String,
    signer_name: Option<String>,
    delegate: Option<String>,
    delegate_name: Option<String>,
}

pub fn exec(globals: &Globals, cmd: CapCommand) -> anyhow::Result<u8> {
    let store = open_store(globals)?;
    let now = now_ns();
    match cmd {
        CapCommand::Grant {
            target,
            reachable,
            accessor,
            perms,
            expires,
            key,
            delegate_to,
            out,
        } => {
            let sk = store.signing_key(&key)?;
            let mine = sk.verifying_key().to_bytes();
            let mut ids = Vec::new();
            for t in &target {
                let id = store.resolve(t)?;
                if store.owner_key(id)? != mine {
                    bail!("key {key:?} is not the owner key of object {id}; refusing to grant");
                }
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            if reachable {
                ids = reachable_owned(&store, ids, &mine)?;
            }
            let grant = Grant {
                target: ids[0],
                accessor: context_id(&accessor),
                perms: perms_arg(&perms)?,
                expires_ns: expiry_arg(&expires, now)?,
                delegate: delegate_to.map(|k| store.public_key(&k)).transpose()?,
            };
            let chains = ids
                .iter()
                .map(|&id| {
                    CapChain::sign_root(
                        &Grant {
                            target: id,
                            ..grant.clone()
                        },
                        &sk,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            write_caps(&out, &chains)?;
            let what = match ids.as_slice() {
                [one] => one.to_string(),
                many => format!("{} objects", many.len()),
            };
            println!(
                "granted {} on {what} to context {accessor:?}: {}",
                perms_string(grant.perms),
                out.display()
            );
        }
        CapCommand::Delegate {
            file,
            perms,
            expires,
            key,
            delegate_to,
            out,
        } => {
            let chain = read_cap(&file)?;
            let last = chain.links()[chain.links().len() - 1];
            let grant = Grant {
                target: last.target,
                accessor: last.accessor,
                perms: perms_arg(&perms)?,
                expires_ns: match expires {
                    Some(e) => expiry_arg(&e, now)?,
                    None => last.expires_ns,
                },
                delegate: delegate_to.map(|k| store.public_key(&k)).transpose()?,
            };
            let sk = store.signing_key(&key)?;
            let chain = chain
                .delegate(&grant, &sk)
                .with_context(|| format!("cannot delegate {}", file.display()))?;
            write_cap(&out, &chain)?;
            println!(
                "delegated {} on {} ({} links): {}",
                perms_string(grant.perms),
                grant.target,
                chain.links().len(),
                out.display()
            );
        }
        CapCommand::Show { file, json } => {
            let chains = read_caps(&file)?;
            if let [one] = chains.as_slice() {
                show(&store, one, json, now)?;
            } else if json {
                let docs = chains
                    .iter()
                    .map(|c| show_doc(&store, c, now))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let doc = serde_json::json!({ "chains": docs });
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                for (i, c) in chains.iter().enumerate() {
                    println!("chain {i} of {} (object {}):", chains.len(), c.target());
                    show(&store, c, false, now)?;
                }
            }
        }
        CapCommand::Verify { file, accessor } => {
            let chains = read_caps(&file)?;
            let many = chains.len() > 1;
            for (i, chain) in chains.iter().enumerate() {
                let which = if many {
                    format!("chain {i}: ")
                } else {
                    String::new()
                };
                let v = store
                    .verify_cap(chain, now)
                    .with_context(|| format!("{which}{}", file.display()))?;
                if let Some(ctx) = &accessor {
                    if context_id(ctx) != v.accessor {
                        bail!("{which}capability is for another context than {ctx:?}");
                    }
                }
                println!(
                    "{which}valid: {} on {} ({} links, {})",
                    perms_string(v.perms),
                    v.target,
                    chain.links().len(),
                    expiry_text(v.expires_ns, now)
                );
            }
        }
        CapCommand::Revoke { file } => {
            for chain in read_caps(&file)? {
                let n = chain.links().len() - 1;
                let r = chain.links()[n].revocation;
                store.revoke(&r)?;
                println!(
                    "revoked link {n} of {} on {} ({})",
                    file.display(),
                    chain.target(),
                    hex(&r)
                );
            }
        }
    }
    Ok(0)
}

/// The JSON document `cap show --json` prints for one chain.
fn show_doc(store: &Store, chain: &CapChain, now: u64) -> anyhow::Result<serde_json::Value> {
    let (rows, verdict) = link_rows(store, chain, now)?;
    Ok(serde_json::json!({ "links": rows, "verdict": verdict }))
}

fn show(store: &Store, chain: &CapChain, json: bool, now: u64) -> anyhow::Result<()> {
    if json {
        let doc = show_doc(store, chain, now)?;
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let (rows, verdict) = link_rows(store, chain, now)?;
    for (r, l) in rows.iter().zip(chain.links()) {
        println!("link {}:", r.link);
        println!("  target     {}", r.target);
        println!("  accessor   {}", r.accessor);
        println!("  perms      {}", r.perms);
        println!("  expires    {}", expiry_text(l.expires_ns, now));
        let rv = if r.revoked { " (REVOKED)" } else { "" };
        println!("  revocation {}{rv}", r.revocation);
        println!("  signer     {}", named(&r.signer, &r.signer_name));
        match &r.delegate {
            Some(d) => println!("  delegate   {}", named(d, &r.delegate_name)),
            None => println!("  delegate   none (may not be delegated)"),
        }
    }
    println!("verdict: {verdict}");
    Ok(())
}

/// One chain's links as shown, and its verdict.
fn link_rows(store: &Store, chain: &CapChain, now: u64) -> anyhow::Result<(Vec<LinkJson>, String)> {
    let names: HashMap<[u8; 32], String> = store
        .list_keys()?
        .into_iter()
        .filter_map(|k| k.public.ok().map(|p| (p, k.name)))
        .collect();
    let rows: Vec<LinkJson> = chain
        .links()
        .iter()
        .enumerate()
        .map(|(i, l)| LinkJson {
            link: i,
            target: l.target.to_string(),
            accessor: hex(&l.accessor),
            perms: perms_string(l.perms),
            expires_ns: l.expires_ns,
            revocation: hex(&l.revocation),
            revoked: store.is_revoked(&l.revocation),
            signer: hex(&l.signer),
            signer_name: names.get(&l.signer).cloned(),
            delegate: l.may_delegate().then(|| hex(&l.delegate)),
            delegate_name: names.get(&l.delegate).cloned(),
        })
        .collect();
    let verdict = match store.verify_cap(chain, now) {
        Ok(_) => "valid".to_string(),
        Err(e) => format!("INVALID: {e}"),
    };
    Ok((rows, verdict))
}

fn named(key: &str, name: &Option<String>) -> String {
    match name {
        Some(n) => format!("{key} (key {n})"),
        None => format!("{key} (unknown key)"),
    }
}

fn expiry_text(expires_ns: u64, now: u64) -> String {
    if expires_ns == 0 {
        return "never expires".into();
    }
    let secs = |d: u64| d / 1_000_000_000;
    if expires_ns <= now {
        format!("expired {}s ago", secs(now - expires_ns))
    } else {
        format!("expires in {}s", secs(expires_ns - now))
    }
}

fn perms_arg(s: &str) -> anyhow::Result<u32> {
    match parse_perms(s) {
        Some(p) if p != 0 => Ok(p),
        _ => bail!("invalid --perms {s:?}: use a non-empty subset of the letters r w x u"),
    }
}

/// Parses `never` or a number with unit `s`, `m`, `h`, `d` into an absolute expiry.
fn expiry_arg(s: &str, now: u64) -> anyhow::Result<u64> {
    if s == "never" {
        return Ok(0);
    }
    let bad = || anyhow!("invalid --expires {s:?}: use e.g. 90s, 30m, 24h, 7d or never");
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = num.parse().map_err(|_| bad())?;
    let unit_s: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_s)
        .and_then(|secs| secs.checked_mul(1_000_000_000))
        .and_then(|ns| ns.checked_add(now))
        .filter(|_| n > 0)
        .ok_or_else(bad)
}

/// `ids` and every object reachable from them through by-ID or resolvable named FOT entries
/// whose owner key is `owner` (objects of other owners are left out: this key cannot grant
/// them).
fn reachable_owned(store: &Store, ids: Vec<ObjId>, owner: &[u8; 32]) -> anyhow::Result<Vec<ObjId>> {
    let mut seen: HashSet<ObjId> = ids.iter().copied().collect();
    let mut order = ids.clone();
    let mut queue: VecDeque<ObjId> = ids.into();
    while let Some(id) = queue.pop_front() {
        let rows = store
            .fot(id)
            .with_context(|| format!("cannot read the FOT of object {id}"))?;
        for row in rows {
            if row.flags.contains(&"deleted") {
                continue;
            }
            let Some(t) = row.target_id.as_deref().and_then(ObjId::parse_hex) else {
                continue;
            };
            if seen.insert(t) && store.owner_key(t).is_ok_and(|k| &k == owner) {
                order.push(t);
                queue.push_back(t);
            }
        }
    }
    Ok(order)
}

fn read_cap(path: &Path) -> anyhow::Result<CapChain> {
    let mut chains = read_caps(path)?;
    if chains.len() != 1 {
        bail!(
            "{} holds {} chains; delegate one object's chain at a time",
            path.display(),
            chains.len()
        );
    }
    Ok(chains.remove(0))
}

/// Every chain of a capability file (one, or a bundle's).
fn read_caps(path: &Path) -> anyhow::Result<Vec<CapChain>> {
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    CapChain::parse_file(&bytes).with_context(|| format!("{}", path.display()))
}

fn write_cap(path: &Path, chain: &CapChain) -> anyhow::Result<()> {
    std::fs::write(path, chain.to_bytes()).with_context(|| format!("{}", path.display()))
}

/// Writes one chain as a plain capability file, several as a bundle.
fn write_caps(path: &Path, chains: &[CapChain]) -> anyhow::Result<()> {
    std::fs::write(path, CapChain::encode_file(chains))
        .with_context(|| format!("{}", path.display()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(super) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
