//! Guest backtraces: walk the `rbp` chain in guest memory and symbolize with the image's DWARF.
//!
//! Guest images are built with frame pointers, so each frame starts with `[rbp] = caller's rbp,
//! [rbp + 8] = return address`. The walk trusts nothing: each frame must be 8-byte aligned,
//! readable by the guest, strictly above the previous one, and the walk stops after
//! [`MAX_FRAMES`].

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::hostcall::access::GuestAccess;

/// Deepest backtrace printed.
pub const MAX_FRAMES: usize = 64;

/// The guest image, for symbols.
#[derive(Debug, Clone)]
pub struct GuestImage {
    /// Name shown to the user and passed as `argv[0]`.
    pub name: String,
    /// The ELF bytes.
    pub bytes: Cow<'static, [u8]>,
    /// Where it was read from, if from a file.
    pub path: Option<PathBuf>,
}

/// Program counters of the guest's call stack, innermost first: `rip`, then return addresses.
pub fn walk(mem: &GuestMemoryMmap, access: &GuestAccess, rip: u64, mut rbp: u64) -> Vec<u64> {
    let mut pcs = vec![rip];
    while pcs.len() < MAX_FRAMES {
        if !rbp.is_multiple_of(8) || access.check(rbp, 16, false).is_err() {
            break;
        }
        let (Ok(next), Ok(ret)) = (
            mem.read_obj::<u64>(GuestAddress(rbp)),
            mem.read_obj::<u64>(GuestAddress(rbp + 8)),
        ) else {
            break;
        };
        if ret == 0 {
            break;
        }
        pcs.push(ret);
        if next <= rbp {
            break;
        }
        rbp = next;
    }
    pcs
}

/// Symbolizes program counters against the image's debug info. For return addresses the
/// call instruction (`pc - 1`) is looked up. Each entry is one line per (inlined) function.
pub fn symbolize(image: &GuestImage, pcs: &[u64]) -> Vec<Vec<String>> {
    let temp;
    let path: &Path = match &image.path {
        Some(p) => p,
        None => {
            temp = std::env::temp_dir().join(format!(
                "twz-vmm-{}-{}.elf",
                std::process::id(),
                image.name
            ));
            if std::fs::write(&temp, &image.bytes).is_err() {
                return vec![Vec::new(); pcs.len()];
            }
            &temp
        }
    };
    let loader = addr2line::Loader::new(path).ok();
    if image.path.is_none() {
        let _ = std::fs::remove_file(path);
    }
    let mut seen: std::collections::HashMap<u64, Vec<String>> = std::collections::HashMap::new();
    pcs.iter()
        .enumerate()
        .map(|(i, &pc)| {
            let probe = if i == 0 { pc } else { pc.saturating_sub(1) };
            seen.entry(probe)
                .or_insert_with(|| {
                    loader
                        .as_ref()
                        .map_or_else(Vec::new, |l| describe(l, probe))
                })
                .clone()
        })
        .collect()
}

fn describe(loader: &addr2line::Loader, probe: u64) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(mut frames) = loader.find_frames(probe) {
        while let Ok(Some(frame)) = frames.next() {
            let name = frame
                .function
                .as_ref()
                .and_then(|f| f.demangle().ok().map(|n| n.into_owned()))
                .or_else(|| loader.find_symbol(probe).map(demangle))
                .unwrap_or_else(|| "??".into());
            let mut line = name;
            if let Some(loc) = frame.location {
                let _ = write!(line, " at {}", loc.file.unwrap_or("??"));
                if let Some(l) = loc.line {
                    let _ = write!(line, ":{l}");
                    if let Some(c) = loc.column {
                        let _ = write!(line, ":{c}");
                    }
                }
            }
            out.push(line);
        }
    }
    if out.is_empty() {
        if let Some(sym) = loader.find_symbol(probe) {
            out.push(demangle(sym));
        }
    }
    out
}

fn demangle(sym: &str) -> String {
    addr2line::demangle_auto(Cow::Borrowed(sym), None).into_owned()
}

/// Renders a backtrace block:
/// ```text
/// guest backtrace:
///    0: 0x0000000000201234 - faults::null_deref at src/main.rs:12:5
///    1: 0x0000000000201300 - faults::main at src/main.rs:30:9
/// ```
pub fn render(pcs: &[u64], symbols: &[Vec<String>]) -> String {
    let mut s = String::from("guest backtrace:\n");
    let mut i = 0;
    while i < pcs.len() {
        let pc = pcs[i];
        match symbols.get(i).filter(|n| !n.is_empty()) {
            None => {
                let _ = writeln!(s, "  {i:>2}: {pc:#018x} - ??");
            }
            Some(names) => {
                for (j, n) in names.iter().enumerate() {
                    if j == 0 {
                        let _ = writeln!(s, "  {i:>2}: {pc:#018x} - {n}");
                    } else {
                        let _ = writeln!(s, "      {:18}   (inlined into) {n}", "");
                    }
                }
            }
        }
        let repeats = pcs[i + 1..].iter().take_while(|p| **p == pc).count();
        if repeats > 1 {
            let _ = writeln!(s, "      ... the frame above repeats {repeats} more times");
        } else if repeats == 1 {
            let _ = writeln!(s, "  {:>2}: {pc:#018x} - (same as above)", i + 1);
        }
        i += 1 + repeats;
    }
    if pcs.len() >= MAX_FRAMES {
        let _ = writeln!(s, "      ... deeper frames not shown");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::RamPlan;
    use crate::memory::GuestRam;

    #[test]
    fn walks_a_frame_chain_and_stops_on_garbage() {
        let ram = GuestRam::new(16 << 20).unwrap();
        let plan = RamPlan::new(16 << 20).unwrap();
        let access = GuestAccess::new(&plan);
        let m = ram.mem();
        let f1 = plan.stack_top - 0x100;
        let f2 = plan.stack_top - 0x80;
        m.write_obj(f2, GuestAddress(f1)).unwrap();
        m.write_obj(0x20_1111u64, GuestAddress(f1 + 8)).unwrap();
        m.write_obj(f2 - 0x40, GuestAddress(f2)).unwrap(); // points backwards: stop
        m.write_obj(0x20_2222u64, GuestAddress(f2 + 8)).unwrap();
        assert_eq!(
            walk(m, &access, 0x20_0000, f1),
            vec![0x20_0000, 0x20_1111, 0x20_2222]
        );
        assert_eq!(
            walk(m, &access, 0x20_0000, 0x10_0000),
            vec![0x20_0000],
            "system area"
        );
        assert_eq!(
            walk(m, &access, 0x20_0000, f1 + 1),
            vec![0x20_0000],
            "misaligned"
        );
        // A self-loop stops too.
        m.write_obj(f1, GuestAddress(f1)).unwrap();
        assert_eq!(walk(m, &access, 1, f1).len(), 2);
    }

    #[test]
    fn collapses_recursion() {
        let pcs = [1, 2, 2, 2, 3];
        let syms = vec![
            vec!["a".to_string()],
            vec!["b".into()],
            vec!["b".into()],
            vec!["b".into()],
            vec![],
        ];
        let s = render(&pcs, &syms);
        assert!(s.contains("   1: 0x0000000000000002 - b"), "{s}");
        assert!(s.contains("the frame above repeats 2 more times"), "{s}");
        assert!(s.contains("   4: 0x0000000000000003 - ??"), "{s}");
        assert_eq!(s.matches(" - b").count(), 1, "{s}");
    }

    #[test]
    fn renders_unknown_frames() {
        let s = render(&[0x1234, 0x5678], &[vec!["f at a.rs:1:2".into()], vec![]]);
        assert!(s.contains("   0: 0x0000000000001234 - f at a.rs:1:2"));
        assert!(s.contains("   1: 0x0000000000005678 - ??"));
    }
}
