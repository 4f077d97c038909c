//! `twz-vmm obj ...`: list, inspect, dump, create, write, link, remove, import and export
//! objects on the host, without running a guest.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use object_store::{
    Access, CreateOptions, FotRow, ImportOptions, Imported, MarkerAction, ObjectInfo, ObjectReport,
    RecoveryReport, Store,
};

use super::Globals;

#[derive(clap::Subcommand, Debug)]
pub enum ObjCommand {
    /// List objects: ID, names, size in use, owner key, creation time.
    Ls {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show an object's metadata, FOT entries with their targets, and integrity.
    Show {
        /// Object ID (32 hex digits) or name.
        obj: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Hexdump an object's bytes (like `hexdump -C`).
    Dump {
        /// Object ID or name.
        obj: String,
        /// First byte (decimal or 0x hex); the data region starts at 0x1000.
        #[arg(long, default_value = "0x1000", value_parser = parse_num)]
        offset: u64,
        /// Number of bytes (decimal or 0x hex).
        #[arg(long, default_value = "256", value_parser = parse_num)]
        len: u64,
    },
    /// Print an object's Foreign Object Table.
    Fot {
        /// Object ID or name.
        obj: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete an object and the names bound to it.
    Rm {
        /// Object ID or name.
        obj: String,
    },
    /// Create an empty object bound to NAME; prints its ID.
    Create {
        /// Name to bind.
        name: String,
        /// Owner key.
        #[arg(long, default_value = object_store::DEFAULT_KEY)]
        key: String,
    },
    /// Write a file's bytes into an object's data region (raises its allocation top).
    Write {
        /// Object ID or name.
        obj: String,
        /// Where to write (decimal or 0x hex, at least 0x1000).
        #[arg(long, value_parser = parse_num)]
        offset: u64,
        /// The file to copy in.
        file: PathBuf,
    },
    /// Write a raw (byte-stream) object's bytes to FILE, such as a SQLite database the guest
    /// made; `-` writes to stdout. FILE is replaced atomically.
    Export {
        /// Object ID or name.
        obj: String,
        /// Destination file, or `-`.
        file: PathBuf,
    },
    /// Create a raw (byte-stream) object bound to NAME holding FILE's bytes (`-`: stdin);
    /// prints its ID.
    Import {
        /// Name to bind.
        name: String,
        /// Source file, or `-`.
        file: PathBuf,
        /// Rebind NAME if it is bound, then remove the object it named.
        #[arg(long)]
        replace: bool,
        /// Owner key.
        #[arg(long, default_value = object_store::DEFAULT_KEY)]
        key: String,
    },
    /// Roll back an unfinished transaction in the object (and in the object whose transaction
    /// touched it); refuses while another process has it open for writing.
    Recover {
        /// Object ID or name.
        obj: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a FOT entry by hand.
    Link {
        /// Object ID or name whose FOT is changed.
        obj: String,
        /// FOT index (1..=8191).
        #[arg(long = "fot", value_name = "INDEX")]
        index: u32,
        /// Target object ID or name.
        target: String,
        /// Rights the entry asks for, letters of `rwxu`.
        #[arg(long, default_value = "rw")]
        perms: String,
        /// Store TARGET as a name resolved on use, instead of the ID it names now.
        #[arg(long)]
        by_name: bool,
    },
}

pub fn exec(globals: &Globals, cmd: ObjCommand) -> anyhow::Result<u8> {
    let store = open_store(globals)?;
    match cmd {
        ObjCommand::Ls { json } => {
            let list = store.list_objects()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", ls_table(&list));
            }
        }
        ObjCommand::Show { obj, json } => {
            let report = store.show(store.resolve(&obj)?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", show_text(&report));
            }
            integrity_verdict(&report.info.id, &report.problems)?;
        }
        ObjCommand::Fot { obj, json } => {
            let id = store.resolve(&obj)?;
            let rows = store.fot(id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", fot_table(&rows));
            }
            let problems: Vec<String> = rows
                .iter()
                .filter_map(|r| {
                    r.problem
                        .as_ref()
                        .map(|p| format!("FOT entry {}: {p}", r.index))
                })
                .collect();
            integrity_verdict(&id.to_string(), &problems)?;
        }
        ObjCommand::Dump { obj, offset, len } => {
            let bytes = store.dump(store.resolve(&obj)?, offset, len)?;
            print!("{}", hexdump(offset, &bytes));
        }
        ObjCommand::Rm { obj } => {
            let id = store.resolve(&obj)?;
            let names = store.remove(id)?;
            if names.is_empty() {
                println!("removed object {id}");
            } else {
                println!("removed object {id} (unbound: {})", names.join(", "));
            }
        }
        ObjCommand::Create { name, key } => {
            let id = store.create(&CreateOptions::default().named(&name).owner(&key))?;
            println!("{id}");
        }
        ObjCommand::Write { obj, offset, file } => {
            let id = store.resolve(&obj)?;
            let data =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let o = store.open_object(id, Access::ReadWrite)?;
            o.write_data(offset, &data)?;
            o.flush(offset, data.len() as u64)?;
            o.flush(abi::layout::META_OFFSET, abi::layout::PAGE_SIZE)?;
            println!("wrote {} bytes at {offset:#x} of object {id}", data.len());
        }
        ObjCommand::Export { obj, file } => {
            let id = store.resolve(&obj)?;
            if file.as_os_str() == "-" {
                store.export_raw(id, &mut std::io::stdout().lock())?;
            } else {
                let n = store.export_raw_file(id, &file)?;
                eprintln!("exported {n} bytes of object {id} to {}", file.display());
            }
        }
        ObjCommand::Import {
            name,
            file,
            replace,
            key,
        } => {
            let opts = ImportOptions { name, key, replace };
            let done = store.import_raw_file(&opts, &file)?;
            println!("{}", done.id);
            eprintln!("{}", import_text(&opts.name, &done));
        }
        ObjCommand::Recover { obj, json } => {
            let report = store.recover(store.resolve(&obj)?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", recovery_text(&report));
            }
        }
        ObjCommand::Link {
            obj,
            index,
            target,
            perms,
            by_name,
        } => {
            let id = store.resolve(&obj)?;
            let mask = object_store::parse_perms(&perms).ok_or_else(|| {
                anyhow!("bad --perms {perms:?}: use letters of rwxu (read, write, exec, use)")
            })?;
            let (entry, shown) = if by_name {
                object_store::validate_name(&target)?;
                let e = abi::fot::FotEntry::by_name(&target, mask)
                    .ok_or_else(|| anyhow!("bad name {target:?}"))?;
                (e, format!("name {target:?}"))
            } else {
                let t = store.resolve(&target)?;
                (abi::fot::FotEntry::by_id(t, mask), t.to_string())
            };
            let o = store.open_object(id, Access::ReadWrite)?;
            o.set_fot_entry(index, &entry)?;
            let off = abi::layout::fot_entry_offset(index).unwrap_or(abi::layout::FOT_OFFSET);
            o.flush(off, abi::layout::FOT_ENTRY_SIZE)?;
            o.flush(abi::layout::META_OFFSET, abi::layout::PAGE_SIZE)?;
            println!(
                "object {id}: FOT entry {index} -> {shown} ({})",
                object_store::perms_string(mask)
            );
        }
    }
    Ok(0)
}

/// Opens (creating on first use) the store the command line selects.
pub(super) fn open_store(globals: &Globals) -> anyhow::Result<Store> {
    Ok(match &globals.pmem {
        Some(dir) => Store::open_pmem(dir)?,
        None => Store::open(globals.store_dir())?,
    })
}

/// Fails with one line naming the object and its first problem when there are any.
fn integrity_verdict(id: &str, problems: &[String]) -> anyhow::Result<()> {
    match problems {
        [] => Ok(()),
        [one] => bail!("object {id}: {one}"),
        [first, rest @ ..] => bail!(
            "object {id}: {first} (and {} more integrity problems)",
            rest.len()
        ),
    }
}

/// One line saying what an import made and what it replaced.
fn import_text(name: &str, done: &Imported) -> String {
    let mut s = format!(
        "imported {} bytes as raw object {} named {name:?}",
        done.len, done.id
    );
    match done.replaced {
        Some((old, true)) => {
            let _ = write!(s, "; removed the object it replaced, {old}");
        }
        Some((old, false)) => {
            let _ = write!(
                s,
                "; kept the object it replaced, {old}, which other names still refer to"
            );
        }
        None => {}
    }
    s
}

/// One line saying what recovery did to an object.
pub(super) fn recovery_text(r: &RecoveryReport) -> String {
    let mut parts = Vec::new();
    if let Some(seq) = r.completed {
        parts.push(format!(
            "finished committed transaction {seq} (its commit entry and every range were durable)"
        ));
    }
    if let Some((seq, n)) = r.rolled_back {
        parts.push(format!(
            "rolled back unfinished transaction {seq} ({n} entries)"
        ));
    }
    if let Some(m) = &r.marker {
        parts.push(match m.outcome {
            MarkerAction::AnchorRecovered => format!(
                "rolled back unfinished transaction {} of object {} that touched it",
                m.seq, m.anchor
            ),
            MarkerAction::Stale => format!("cleared a stale marker of object {}", m.anchor),
            MarkerAction::AnchorMissing => {
                format!("cleared a marker naming missing object {}", m.anchor)
            }
            MarkerAction::InProgress => format!(
                "transaction {} of object {} that touched it is in progress elsewhere; left alone",
                m.seq, m.anchor
            ),
        });
    }
    if parts.is_empty() {
        parts.push("nothing to recover".into());
    }
    format!("object {}: {}", r.id, parts.join("; "))
}

/// Parses a decimal or `0x` hexadecimal number.
pub(super) fn parse_num(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse::<u64>(),
    };
    r.map_err(|_| format!("{s:?} is not a number (decimal or 0x hex)"))
}

/// Lines of left-aligned columns, each as wide as its widest cell.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for r in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(&widths).enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn ls_table(list: &[ObjectInfo]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|i| {
            vec![
                i.id.clone(),
                if i.names.is_empty() {
                    "-".into()
                } else {
                    i.names.join(",")
                },
                i.size_in_use.map(human_size).unwrap_or_else(|| "-".into()),
                i.kind.unwrap_or("-").into(),
                owner(i),
                i.created_ns.map(utc_time).unwrap_or_else(|| "-".into()),
                i.problem
                    .as_ref()
                    .map(|p| format!("DAMAGED: {p}"))
                    .unwrap_or_else(|| "ok".into()),
            ]
        })
        .collect();
    table(
        &["ID", "NAMES", "SIZE", "KIND", "OWNER", "CREATED", "STATUS"],
        &rows,
    )
}

fn owner(i: &ObjectInfo) -> String {
    match (&i.owner_key_name, &i.owner_key) {
        (Some(n), Some(k)) => format!("{n} ({k})"),
        (None, Some(k)) => k.clone(),
        _ => "-".into(),
    }
}

fn show_text(r: &ObjectReport) -> String {
    let h = &r.header;
    let mut s = String::new();
    let names = if r.info.names.is_empty() {
        "-".into()
    } else {
        r.info.names.join(", ")
    };
    let key_name = r
        .info
        .owner_key_name
        .as_deref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let flags = if h.flag_names.is_empty() {
        String::new()
    } else {
        format!(" ({})", h.flag_names.join(","))
    };
    let _ = writeln!(s, "object      {}", r.info.id);
    let _ = writeln!(s, "names       {names}");
    let _ = writeln!(s, "file        {}", r.path);
    let _ = writeln!(s, "kind        {}", r.info.kind.unwrap_or("-"));
    let _ = writeln!(s, "owner key   {}{key_name}", h.owner_key);
    let _ = writeln!(s, "created     {}", utc_time(h.created_ns));
    let _ = writeln!(
        s,
        "in use      {} (alloc_top {:#x})",
        human_size(h.alloc_top.saturating_sub(abi::layout::BASE_OFFSET)),
        h.alloc_top
    );
    let _ = writeln!(
        s,
        "format      magic {}, version {}, header {} bytes, flags {:#x}{flags}",
        h.magic, h.version, h.header_size, h.flags
    );
    let _ = writeln!(s, "nonce       {}", h.nonce);
    let _ = writeln!(
        s,
        "FOT         {} entr{} (fot_len {})",
        r.fot.len(),
        if r.fot.len() == 1 { "y" } else { "ies" },
        h.fot_len
    );
    if !r.fot.is_empty() {
        for line in fot_table(&r.fot).lines() {
            let _ = writeln!(s, "  {line}");
        }
    }
    let _ = writeln!(s, "log         {}", r.log.summary());
    let _ = writeln!(s, "allocator   {}", r.heap.summary());
    if r.problems.is_empty() {
        let _ = writeln!(s, "integrity   ok");
    } else {
        let _ = writeln!(s, "integrity   {} problem(s)", r.problems.len());
        for p in &r.problems {
            let _ = writeln!(s, "  {p}");
        }
    }
    s
}

fn fot_table(rows: &[FotRow]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let names = if r.target_names.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.target_names.join(", "))
            };
            let target = match (&r.target_name, &r.target_id) {
                (Some(n), Some(id)) => format!("name {n:?} -> {id}{names}"),
                (Some(n), None) => format!("name {n:?} (unbound)"),
                (None, Some(id)) => format!("{id}{names}"),
                (None, None) => "-".into(),
            };
            let status = match (&r.problem, r.target_exists, &r.target_id) {
                (Some(p), _, _) => format!("BAD: {p}"),
                (None, false, Some(_)) => "target missing".into(),
                _ => "ok".into(),
            };
            vec![
                r.index.to_string(),
                r.perms.clone(),
                r.flags.join(","),
                target,
                status,
            ]
        })
        .collect();
    table(&["INDEX", "PERMS", "FLAGS", "TARGET", "STATUS"], &rows)
}

/// `hexdump -C` style lines; repeated lines collapse into `*`, the last line is the end offset.
pub(super) fn hexdump(base: u64, bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut prev: Option<&[u8]> = None;
    let mut starred = false;
    for (i, chunk) in bytes.chunks(16).enumerate() {
        if prev == Some(chunk) && chunk.len() == 16 {
            if !starred {
                out.push_str("*\n");
                starred = true;
            }
            continue;
        }
        prev = Some(chunk);
        starred = false;
        let _ = write!(out, "{:08x}  ", base + (i * 16) as u64);
        for j in 0..16 {
            match chunk.get(j) {
                Some(b) => {
                    let _ = write!(out, "{b:02x} ");
                }
                None => out.push_str("   "),
            }
            if j == 7 {
                out.push(' ');
            }
        }
        let ascii: String = chunk
            .iter()
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        let _ = writeln!(out, " |{ascii}|");
    }
    let _ = writeln!(out, "{:08x}", base + bytes.len() as u64);
    out
}

/// Bytes in binary units: `512 B`, `4.0 KiB`, `1.5 GiB`.
pub(super) fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// `YYYY-MM-DD HH:MM:SS UTC` for nanoseconds since the Unix epoch.
pub(super) fn utc_time(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (proleptic calendar, era arithmetic).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_dates_sizes() {
        assert_eq!(parse_num("0x1000"), Ok(4096));
        assert_eq!(parse_num("256"), Ok(256));
        assert!(parse_num("12k").is_err());
        assert_eq!(utc_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            utc_time(951_782_400 * 1_000_000_000),
            "2000-02-29 00:00:00 UTC"
        );
        assert_eq!(
            utc_time(1_795_000_000 * 1_000_000_000),
            "2026-11-18 11:06:40 UTC"
        );
        assert_eq!(human_size(23), "23 B");
        assert_eq!(human_size(4096), "4.0 KiB");
        assert_eq!(human_size(3 << 29), "1.5 GiB");
    }

    #[test]
    fn hexdump_matches_hexdump_c() {
        let mut b = b"Hello, world!\n".to_vec();
        b.resize(64, 0);
        let d = hexdump(0x1000, &b);
        let lines: Vec<&str> = d.lines().collect();
        assert_eq!(
            lines[0],
            "00001000  48 65 6c 6c 6f 2c 20 77  6f 72 6c 64 21 0a 00 00  |Hello, world!...|"
        );
        assert_eq!(
            lines[1],
            "00001010  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|"
        );
        assert_eq!(lines[2], "*");
        assert_eq!(lines[3], "00001040");
    }
}
