//! `fsck`: checks every object file, name and key, and reports every problem it finds,
//! including transaction logs that need recovery (a transaction open in a live process is not
//! a problem) and damaged persistent allocators (free lists, block headers). It holds the
//! store lock shared (so no create or remove is half done while it looks) and never modifies
//! anything.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::fsutil::TEMP_PREFIX;
use crate::inspect::{fot_problems, problem_text, Directory};
use crate::lock::LockMode;
use crate::names::validate_name;
use crate::object::ObjectFile;
use crate::store::Store;

/// What a problem is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    /// An object (subject: its ID).
    Object,
    /// A file that is not what the store expects where it is (subject: its path in the store).
    File,
    /// A name binding (subject: the name).
    Name,
    /// A key (subject: its name).
    Key,
}

/// One problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What kind of thing is affected.
    pub kind: Subject,
    /// Which one.
    pub subject: String,
    /// What is wrong, as a sentence.
    pub problem: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Subject::Object => write!(f, "object {}: {}", self.subject, self.problem),
            Subject::File => write!(f, "file {}: {}", self.subject, self.problem),
            Subject::Name => write!(f, "name {:?}: {}", self.subject, self.problem),
            Subject::Key => write!(f, "key {:?}: {}", self.subject, self.problem),
        }
    }
}

/// The outcome of [`Store::fsck`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FsckReport {
    /// Object files examined.
    pub objects_checked: usize,
    /// Name bindings examined.
    pub names_checked: usize,
    /// Keys examined.
    pub keys_checked: usize,
    /// Every problem found, objects first.
    pub problems: Vec<Problem>,
}

impl FsckReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    fn add(&mut self, kind: Subject, subject: impl ToString, problem: impl ToString) {
        self.problems.push(Problem {
            kind,
            subject: subject.to_string(),
            problem: problem.to_string(),
        });
    }
}

/// What `fsck` says of a temp file: a write was interrupted (a crash, a kill) before its rename.
pub const STRAY_TEMP: &str =
    "stray temp file left by an interrupted write (`store recover` removes it once its writer is gone)";

impl Store {
    /// Checks the whole store and lists every problem; changes nothing.
    pub fn fsck(&self) -> Result<FsckReport> {
        let _lock = self.lock(LockMode::Shared)?;
        let dir = Directory::load(self)?;
        let mut report = FsckReport::default();
        let scan = self.scan_objects()?;
        let mut damaged = HashSet::new();
        for (id, path) in &scan.objects {
            report.objects_checked += 1;
            match ObjectFile::open(path, *id) {
                Ok(obj) => {
                    let rows = dir.fot_rows(self, &obj)?;
                    for p in fot_problems(&rows) {
                        report.add(Subject::Object, id, p);
                    }
                    let log = self.tx_view(*id)?;
                    if log.problem.is_some() || log.needs_recovery() {
                        report.add(Subject::Object, id, log.summary());
                    } else if log.pending.is_none() && !crate::raw::is_raw(obj.meta()) {
                        // Mid-transaction metadata may be half updated; check only at rest.
                        // Raw objects (byte streams) have no allocator to check.
                        if let Some(p) = crate::heap::heap_view(&obj, *id)?.problem {
                            report.add(Subject::Object, id, p);
                        }
                    }
                }
                Err(e) => {
                    damaged.insert(*id);
                    report.add(Subject::Object, id, problem_text(e));
                }
            }
        }
        for p in &scan.foreign {
            report.add(
                Subject::File,
                self.relative(p),
                "foreign file in the objects directory (not objects/<2 hex>/<32 hex>.obj)",
            );
        }
        for p in &scan.temps {
            report.add(Subject::File, self.relative(p), STRAY_TEMP);
        }
        self.check_names(&mut report, &damaged)?;
        self.check_keys(&mut report)?;
        for (path, problem) in self.revocation_problems()? {
            report.add(Subject::File, self.relative(&path), problem);
        }
        Ok(report)
    }

    fn check_names(
        &self,
        report: &mut FsckReport,
        damaged: &HashSet<abi::id::ObjId>,
    ) -> Result<()> {
        let names_dir = self.names().dir();
        for ent in fs::read_dir(names_dir).map_err(StoreError::io(names_dir))? {
            let ent = ent.map_err(StoreError::io(names_dir))?;
            let file = ent.file_name().to_string_lossy().into_owned();
            if file.starts_with(TEMP_PREFIX) {
                report.add(Subject::File, self.relative(&ent.path()), STRAY_TEMP);
            } else if validate_name(&file).is_err() {
                report.add(
                    Subject::File,
                    self.relative(&ent.path()),
                    "foreign file in the names directory (not a valid name)",
                );
            }
        }
        for e in self.list_names()? {
            report.names_checked += 1;
            match e.target {
                Err(p) => report.add(Subject::Name, &e.name, p),
                Ok(id) if !self.contains(id) => report.add(
                    Subject::Name,
                    &e.name,
                    format!("bound to missing object {id}"),
                ),
                Ok(id) if damaged.contains(&id) => report.add(
                    Subject::Name,
                    &e.name,
                    format!("bound to damaged object {id}"),
                ),
                Ok(_) => {}
            }
        }
        Ok(())
    }

    fn check_keys(&self, report: &mut FsckReport) -> Result<()> {
        for k in self.list_keys()? {
            report.keys_checked += 1;
            if let Err(p) = k.public {
                report.add(Subject::Key, &k.name, p);
            }
        }
        Ok(())
    }

    fn relative(&self, p: &Path) -> String {
        p.strip_prefix(self.root())
            .unwrap_or(p)
            .display()
            .to_string()
    }
}
