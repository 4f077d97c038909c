//! Transaction recovery on the host: the store's side of [`abi::txlog`].
//!
//! [`Store::open_object`] for writing takes the object's liveness lock ([`crate::liveness`]).
//! If it got the lock exclusively (nobody else has the object open for writing), it rolls back
//! an unfinished transaction anchored in the object, and follows the object's
//! pending-transaction marker to the anchor of an unfinished transaction that touched it
//! (recovered only if that anchor is not open for writing elsewhere), before letting other
//! writers in. [`Store::recover`] does the same on request; [`Store::tx_view`] only looks.

use std::collections::HashMap;
use std::fs::File;

use abi::id::ObjId;
use abi::txlog::{self, Marker, MarkerOutcome, ObjectMemory, TxError};
use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::liveness::{self, Hold};
use crate::mapped::{Access, MappedObject, Want};
use crate::object::ObjectFile;
use crate::store::Store;

/// Turns a log error into a one-line store error about object `id`.
fn tx_err(id: ObjId) -> impl Fn(TxError<StoreError>) -> StoreError {
    move |e| match e {
        TxError::Memory(e) => e,
        other => StoreError::corrupt(id, other.to_string()),
    }
}

/// Mapped objects of one store, opened on demand, as transaction memory.
struct Mapped<'a> {
    store: &'a Store,
    first: &'a MappedObject,
    /// `None`: the object does not exist (undo into a deleted object is moot).
    others: HashMap<ObjId, Option<MappedObject>>,
}

impl Mapped<'_> {
    fn get(&mut self, obj: ObjId) -> Result<Option<&MappedObject>> {
        if obj == self.first.id() {
            return Ok(Some(self.first));
        }
        if !self.others.contains_key(&obj) {
            let o = match self.store.map_object(obj, Access::ReadWrite, Want::Any) {
                Ok(Some(o)) => Some(o),
                Ok(None) => return Err(StoreError::InUse(obj)),
                Err(StoreError::NoSuchObject(_)) => None,
                Err(e) => return Err(e),
            };
            self.others.insert(obj, o);
        }
        Ok(self.others.get(&obj).and_then(Option::as_ref))
    }
}

impl ObjectMemory for Mapped<'_> {
    type Error = StoreError;
    fn read(&mut self, obj: ObjId, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.get(obj)?
            .ok_or(StoreError::NoSuchObject(obj))?
            .read_at(offset, buf)
    }
    fn write(&mut self, obj: ObjId, offset: u64, data: &[u8]) -> Result<()> {
        match self.get(obj)? {
            Some(o) => o.write_at(offset, data),
            None => Ok(()),
        }
    }
    fn flush(&mut self, obj: ObjId, offset: u64, len: u64) -> Result<()> {
        match self.get(obj)? {
            Some(o) => o.flush(offset, len),
            None => Ok(()),
        }
    }
    fn fence(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Object files read with `pread`, as read-only transaction memory (inspection).
struct Files<'a> {
    store: &'a Store,
    files: HashMap<ObjId, ObjectFile>,
}

impl ObjectMemory for Files<'_> {
    type Error = StoreError;
    fn read(&mut self, obj: ObjId, offset: u64, buf: &mut [u8]) -> Result<()> {
        if !self.files.contains_key(&obj) {
            let f = ObjectFile::open(&self.store.object_path(obj), obj)?;
            self.files.insert(obj, f);
        }
        match self.files.get(&obj) {
            Some(f) => f.read_into(offset, buf),
            None => Err(StoreError::NoSuchObject(obj)),
        }
    }
    fn write(&mut self, obj: ObjId, _: u64, _: &[u8]) -> Result<()> {
        Err(StoreError::ReadOnly(obj))
    }
    fn flush(&mut self, obj: ObjId, _: u64, _: u64) -> Result<()> {
        Err(StoreError::ReadOnly(obj))
    }
    fn fence(&mut self) -> Result<()> {
        Ok(())
    }
}

/// What recovery did to one object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// The object.
    pub id: String,
    /// Its own unfinished transaction that was rolled back: (sequence number, entries undone).
    pub rolled_back: Option<(u64, u32)>,
    /// Its own transaction that had committed but whose finished mark a power loss took: marked
    /// finished, nothing undone.
    pub completed: Option<u64>,
    /// What its pending-transaction marker led to, if it had one.
    pub marker: Option<MarkerReport>,
}

impl RecoveryReport {
    /// True when recovery changed anything but a stale marker.
    pub fn changed_data(&self) -> bool {
        self.rolled_back.is_some()
            || matches!(&self.marker, Some(m) if m.outcome == MarkerAction::AnchorRecovered)
    }
}

/// A marker and what became of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MarkerReport {
    /// The anchor it names.
    pub anchor: String,
    /// The transaction's sequence number.
    pub seq: u64,
    /// What recovery did.
    pub outcome: MarkerAction,
}

/// What recovery did about a marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MarkerAction {
    /// The anchor's transaction had finished; the marker was cleared.
    Stale,
    /// The anchor's unfinished transaction was rolled back, then the marker cleared.
    AnchorRecovered,
    /// The anchor no longer exists; the marker was cleared.
    AnchorMissing,
    /// The anchor is open for writing elsewhere: its transaction may be live; left alone.
    InProgress,
}

/// The transaction state of an object, read without changing anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TxView {
    /// The log's last finished sequence number (absent if the log is damaged).
    pub finished_seq: Option<u64>,
    /// Its unfinished transaction: (sequence number, entries, log bytes).
    pub pending: Option<(u64, u32, u64)>,
    /// That transaction had committed (a durable commit entry matches its ranges); recovery
    /// only marks it finished.
    pub pending_committed: bool,
    /// The pending-transaction marker, if set: (anchor, sequence number, still pending).
    pub marker: Option<(String, u64, bool)>,
    /// Some process has the object open for writing (its transaction may be live).
    pub in_use: bool,
    /// Some process has the marker's anchor open for writing.
    pub anchor_in_use: bool,
    /// What is wrong with the log, if anything.
    pub problem: Option<String>,
}

impl TxView {
    /// An unfinished transaction (its own, or one that touched it) that nobody is running.
    pub fn needs_recovery(&self) -> bool {
        (self.pending.is_some() && !self.in_use)
            || matches!(self.marker, Some((_, _, true)) if !self.anchor_in_use)
    }

    /// One line for people: idle, in progress, or needs recovery.
    pub fn summary(&self) -> String {
        if let Some(p) = &self.problem {
            return format!("DAMAGED: {p}");
        }
        let mut parts = Vec::new();
        match self.pending {
            Some((seq, _, _)) if self.pending_committed => parts.push(format!(
                "transaction {seq} committed but not marked finished, {}",
                if self.in_use {
                    "transaction in progress"
                } else {
                    "needs recovery (which keeps it)"
                }
            )),
            Some((seq, n, bytes)) => parts.push(format!(
                "unfinished transaction {seq}: {n} entr{} ({bytes} bytes), {}",
                if n == 1 { "y" } else { "ies" },
                if self.in_use {
                    "transaction in progress"
                } else {
                    "needs recovery"
                }
            )),
            None => parts.push(format!(
                "idle (last finished transaction {})",
                self.finished_seq.unwrap_or(0)
            )),
        }
        if let Some((anchor, seq, true)) = &self.marker {
            parts.push(format!(
                "touched by unfinished transaction {seq} of object {anchor}, {}",
                if self.anchor_in_use {
                    "transaction in progress"
                } else {
                    "needs recovery"
                }
            ));
        }
        parts.join("; ")
    }
}

impl Store {
    /// Opens and maps object `id`. A writable open holds the object's liveness lock while the
    /// mapping lives and, if nobody else has the object open for writing, first recovers any
    /// unfinished transaction (see [`crate::recovery`]). A read-only open that finds one
    /// recovers it the same way when it may (the object is not open for writing elsewhere and
    /// its file is writable); the shared mapping then sees the rolled-back bytes.
    pub fn open_object(&self, id: ObjId, access: Access) -> Result<MappedObject> {
        let mut obj = self
            .map_object(id, access, Want::Any)?
            .ok_or(StoreError::InUse(id))?;
        if !obj.may_need_recovery() {
            // The header and log read at open show nothing unfinished: the common path.
            if obj.hold() == Some(Hold::Exclusive) {
                obj.downgrade()?;
            }
            return Ok(obj);
        }
        match (access, obj.hold()) {
            (Access::ReadWrite, Some(Hold::Exclusive)) => {
                self.recover_locked(&obj)?;
                obj.downgrade()?;
            }
            (Access::ReadOnly, _) if self.unfinished(&obj) => match self.recover(id) {
                // A live writer owns it, or we may not write the file: read what is there.
                Ok(_) | Err(StoreError::InUse(_)) | Err(StoreError::Io { .. }) => {}
                Err(e) => return Err(e),
            },
            _ => {}
        }
        Ok(obj)
    }

    /// Whether `obj`'s log, or the anchor its marker names, holds an unfinished transaction
    /// (read through the object files; a damaged log is left to inspection).
    fn unfinished(&self, obj: &MappedObject) -> bool {
        let id = obj.id();
        // Through the files, not `obj` alone: a commit's checksum may cover ranges it recorded
        // or listed in other objects, and a plan that cannot read them would say "nothing".
        let mut files = Files {
            store: self,
            files: HashMap::new(),
        };
        if matches!(txlog::plan(&mut files, id), Ok(st) if st.pending.is_some()) {
            return true;
        }
        let marker = obj.meta().tx_marker();
        if marker.is_clear() || marker.anchor == id {
            return false;
        }
        matches!(txlog::plan(&mut files, marker.anchor), Ok(st) if marker.is_pending(&st))
    }

    /// Recovers object `id` now; fails with [`StoreError::InUse`] if another process has it
    /// open for writing.
    pub fn recover(&self, id: ObjId) -> Result<RecoveryReport> {
        let obj = self
            .map_object(id, Access::ReadWrite, Want::Exclusive)?
            .ok_or(StoreError::InUse(id))?;
        self.recover_locked(&obj)
    }

    /// The recovery itself; the caller holds `obj`'s liveness lock exclusively.
    fn recover_locked(&self, obj: &MappedObject) -> Result<RecoveryReport> {
        let id = obj.id();
        let mut report = RecoveryReport {
            id: id.to_string(),
            ..Default::default()
        };
        let mut mem = Mapped {
            store: self,
            first: obj,
            others: HashMap::new(),
        };
        let state = txlog::plan(&mut mem, id).map_err(tx_err(id))?;
        if let Some(p) = state.pending {
            let n = txlog::rollback(&mut mem, id, &state, true).map_err(tx_err(id))?;
            if p.committed {
                report.completed = Some(p.seq);
            } else {
                report.rolled_back = Some((p.seq, n));
            }
        }
        let marker = obj.meta().tx_marker();
        if marker.is_clear() {
            return Ok(report);
        }
        let action = if marker.anchor == id {
            MarkerAction::Stale
        } else {
            self.follow_marker(&mut mem, marker)?
        };
        if action != MarkerAction::InProgress {
            txlog::clear_marker(&mut mem, id, true)?;
        }
        report.marker = Some(MarkerReport {
            anchor: marker.anchor.to_string(),
            seq: marker.seq,
            outcome: action,
        });
        Ok(report)
    }

    /// Recovers the anchor a marker names, if its transaction is unfinished and not live.
    fn follow_marker(&self, mem: &mut Mapped<'_>, marker: Marker) -> Result<MarkerAction> {
        let a = marker.anchor;
        let anchor = match self.map_object(a, Access::ReadWrite, Want::Exclusive) {
            Err(StoreError::NoSuchObject(_)) => return Ok(MarkerAction::AnchorMissing),
            Err(e) => return Err(e),
            Ok(None) => {
                let mut files = Files {
                    store: self,
                    files: HashMap::new(),
                };
                let st = txlog::plan(&mut files, a).map_err(tx_err(a))?;
                return Ok(if marker.is_pending(&st) {
                    MarkerAction::InProgress
                } else {
                    MarkerAction::Stale
                });
            }
            Ok(Some(o)) => o,
        };
        mem.others.insert(a, Some(anchor));
        let id = mem.first.id();
        // Clearing is done by the caller; recover_marker's own clear is harmless.
        let out = txlog::recover_marker(mem, id, true).map_err(tx_err(a))?;
        Ok(match out {
            MarkerOutcome::Recovered { .. } => MarkerAction::AnchorRecovered,
            MarkerOutcome::Stale(_) | MarkerOutcome::Clear => MarkerAction::Stale,
        })
    }

    /// The transaction state of object `id`, read with `pread`; changes nothing.
    pub fn tx_view(&self, id: ObjId) -> Result<TxView> {
        let obj = ObjectFile::open(&self.object_path(id), id)?;
        let mut view = TxView {
            in_use: liveness::is_held(obj.file()),
            ..Default::default()
        };
        let marker = obj.meta().tx_marker();
        let mut files = Files {
            store: self,
            files: HashMap::from([(id, obj)]),
        };
        match txlog::plan(&mut files, id) {
            Ok(st) => {
                view.finished_seq = Some(st.finished_seq);
                view.pending = st.pending.map(|p| (p.seq, p.entries, p.bytes));
                view.pending_committed = st.pending.is_some_and(|p| p.committed);
            }
            Err(TxError::Memory(e)) => return Err(e),
            Err(e) => view.problem = Some(e.to_string()),
        }
        if !marker.is_clear() && marker.anchor != id {
            let pending = match txlog::plan(&mut files, marker.anchor) {
                Ok(st) => marker.is_pending(&st),
                // A missing or damaged anchor cannot be recovered; the marker only needs
                // clearing, which any writable open does.
                Err(_) => false,
            };
            view.anchor_in_use = File::open(self.object_path(marker.anchor))
                .map(|f| liveness::is_held(&f))
                .unwrap_or(false);
            view.marker = Some((marker.anchor.to_string(), marker.seq, pending));
        }
        Ok(view)
    }
}
