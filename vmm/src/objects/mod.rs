//! The object mapper: persistent objects from the store, mapped into the guest's object window
//! on the guest's request (host calls `OBJ_*`, ring op `FLUSH`).
//!
//! One [`Objects`] per run, shared by the vCPU thread (host calls, fault reports) and the event
//! loop (asynchronous flushes) behind one lock. Errors come back as negated errno values for the
//! guest; a failure of KVM itself is `-EIO`.

pub mod chunks;
pub mod context;
pub mod flusher;
pub mod populator;
pub mod slots;
pub mod window;

use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use abi::hostcall::errno::{EEXIST, EINVAL, EIO, ENOENT, ENOMEM, ENOSPC};
use abi::hostcall::map_result;
use abi::id::ObjId;
use abi::layout::OBJ_SIZE;
use abi::memmap::{slot_addr, slot_of};
use kvm_ioctls::VmFd;
use object_store::{Access, CreateOptions, MappedObject, Store, StoreError};
use vm_memory::GuestMemoryMmap;

use context::{Denial, SecurityContext};
use slots::{Placement, SlotTable};

/// `KVM_CAP_NR_MEMSLOTS`: how many memslots a VM may have.
const KVM_CAP_NR_MEMSLOTS: u64 = 10;

/// A 2 MiB host page.
const HUGE: u64 = 2 << 20;

/// Default slot budget of a run (`run --slots`).
pub const DEFAULT_SLOTS: u32 = 64;

/// Counters for `--stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ObjectStats {
    /// Distinct objects mapped during the run.
    pub objects: u64,
    /// `OBJ_MAP` calls.
    pub map_calls: u64,
    /// Objects placed in a slot (first maps, remaps after eviction, read-to-write upgrades).
    pub installs: u64,
    /// Slots taken from an object to make room for another.
    pub evictions: u64,
    /// Flushes (host calls and ring).
    pub flushes: u64,
    /// Memslots created (chunks of objects backed, at map time and on demand).
    pub memslots: u64,
    /// Guest touches of a mapped object's chunk that had no memslot yet (exits to the VMM).
    pub chunk_faults: u64,
    /// Ranges the guest asked to have populated ahead of its stores (ring op `POPULATE`).
    pub populates: u64,
    /// The flush journal's counters, if the run took one.
    pub journal: Option<object_store::JournalStats>,
}

/// What a guest access that exited to the VMM wants done (an emulated load or store).
#[derive(Debug)]
pub enum WindowAccess<'a> {
    /// A load: fill the buffer.
    Read(&'a mut [u8]),
    /// A store of these bytes.
    Write(&'a [u8]),
}

/// What occupies a slot, for fault reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occupant {
    /// The object.
    pub id: ObjId,
    /// Whether it is mapped writable.
    pub writable: bool,
}

struct State {
    table: SlotTable<MappedObject>,
    window: window::HostWindow,
    seen: HashSet<ObjId>,
    /// The flush worker's handle on each mapped writable object that has been flushed, dropped
    /// when the object leaves its slot.
    flush_files: HashMap<ObjId, Arc<flusher::FlushFile>>,
    /// Per slot, how often its occupant changed (for queued populate jobs).
    occupancy: Arc<populator::Occupancy>,
    stats: ObjectStats,
    security: SecurityContext,
    /// Why the most recent refused call was refused (`ERR_REASON`).
    last_refusal: Option<String>,
    /// The run's flush journal (see `Objects::with_journal`): fences go through it, and it is
    /// told when an object leaves.
    journal: Option<Arc<flusher::JournalSlot>>,
}

impl State {
    /// Empties `slot` (its host mapping already removed) and forgets what hung on its object.
    fn vacate(&mut self, slot: u32) {
        self.occupancy.vacated(slot);
        if let Some(old) = self.table.remove(slot) {
            let file = self.flush_files.remove(&old.id);
            if let (Some(j), Some(f)) = (&self.journal, file) {
                if let Err(e) = j.release(old.id, &f) {
                    // Its records stay; the run's checkpoint or the next opener syncs it.
                    eprintln!("twz-vmm: flush journal: giving up object {}: {e}", old.id);
                }
            }
        }
    }
}

/// The object store, opened on the guest's first object call, so a run that never uses objects
/// does not pay for opening (or creating) it.
pub struct LazyStore {
    dir: PathBuf,
    opened: OnceLock<Option<Store>>,
}

impl LazyStore {
    /// The store in `dir`, to be opened (or created) when first needed.
    pub fn new(dir: PathBuf) -> Self {
        LazyStore {
            dir,
            opened: OnceLock::new(),
        }
    }

    /// A store opened already (for example one whose persistent memory was checked up front).
    pub fn opened(store: Store) -> Self {
        let dir = store.root().to_path_buf();
        LazyStore {
            dir,
            opened: OnceLock::from(Some(store)),
        }
    }

    /// The open store; `-EIO` (reported once on stderr) if it cannot be opened.
    fn get(&self) -> Result<&Store, i64> {
        self.opened
            .get_or_init(|| match Store::open(&self.dir) {
                Ok(store) => Some(store),
                Err(e) => {
                    eprintln!(
                        "twz-vmm: cannot open the object store {}: {e}",
                        self.dir.display()
                    );
                    None
                }
            })
            .as_ref()
            .ok_or(-EIO)
    }
}

/// The store and the guest's object window.
pub struct Objects {
    // Fields drop in order: the VM handle before the host mappings its memslots point at, the
    // populate worker (joined) before the window it populates.
    vm: Arc<VmFd>,
    populator: OnceLock<Option<populator::Populator>>,
    /// Regions populated on request are backed with 2 MiB folios (see `with_huge_growth`).
    huge_growth: bool,
    store: LazyStore,
    mem: GuestMemoryMmap,
    state: Mutex<State>,
}

/// The errno the guest gets for a store error.
pub fn errno_of(e: &StoreError) -> i64 {
    -match e {
        StoreError::NoSuchObject(_) | StoreError::NoSuchName(_) | StoreError::NoSuchKey(_) => {
            ENOENT
        }
        StoreError::NameTaken { .. } => EEXIST,
        StoreError::InvalidName { .. } | StoreError::OutOfBounds { .. } => EINVAL,
        StoreError::ReadOnly(_) => abi::hostcall::errno::EACCES,
        StoreError::Busy(_) => abi::hostcall::errno::EBUSY,
        StoreError::Io { error, .. }
            if matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) =>
        {
            ENOSPC
        }
        _ => EIO,
    }
}

impl Objects {
    /// A mapper over `store` for the VM `vm` with guest RAM `mem` and `budget` slots
    /// (clamped to what the page-directory pool holds).
    pub fn new(store: LazyStore, vm: Arc<VmFd>, mem: GuestMemoryMmap, budget: u32) -> Self {
        let mut budget = budget.clamp(1, crate::arch::layout::OBJ_PD_COUNT as u32);
        let nr_memslots = vm.check_extension_raw(KVM_CAP_NR_MEMSLOTS);
        if let Ok(nr) = u32::try_from(nr_memslots) {
            budget = budget.min(window::slots_for_memslots(nr).max(1));
        }
        Objects {
            vm,
            populator: OnceLock::new(),
            huge_growth: false,
            store,
            mem,
            state: Mutex::new(State {
                table: SlotTable::new(budget),
                occupancy: populator::Occupancy::new(budget),
                window: window::HostWindow::default(),
                seen: HashSet::new(),
                flush_files: HashMap::new(),
                stats: ObjectStats::default(),
                security: SecurityContext::ceremony_free(),
                last_refusal: None,
                journal: None,
            }),
        }
    }

    /// This mapper with the guest's security context (without one:
    /// [`SecurityContext::ceremony_free`]).
    pub fn with_security(self, security: SecurityContext) -> Self {
        self.state().security = security;
        self
    }

    /// This mapper backing the regions a guest asks to have populated (ring op `POPULATE`,
    /// which the runtime sends only for objects that keep growing) with 2 MiB host pages, or
    /// not. The run turns it on for `--durability none` and for durable runs with a flush
    /// journal: large growing objects then get the speed of `--huge-pages` (one shadow fault
    /// and one TLB entry per 2 MiB), while small objects keep 4 KiB pages and their small disk
    /// footprint. Where fences sync objects in place (no journal could be had), which would
    /// write whole 2 MiB folios, `populate` backs with 4 KiB pages after all.
    pub fn with_huge_growth(mut self, on: bool) -> Self {
        self.huge_growth = on;
        self
    }

    /// This mapper making fences durable through the store's flush journal
    /// ([`object_store::Journal`]), or in place: a durable run on a store that is not persistent
    /// memory turns it on.
    pub fn with_journal(self, on: bool) -> Self {
        let journal = on.then(|| Arc::new(flusher::JournalSlot::new(self.store.dir.clone())));
        self.state().journal = journal;
        self
    }

    /// The run's flush journal, if fences go through one.
    pub fn journal(&self) -> Option<Arc<flusher::JournalSlot>> {
        self.state().journal.clone()
    }

    /// This mapper backing objects with 2 MiB host pages, or not (`run --huge-pages`; see
    /// [`window::HostWindow::set_huge_pages`] for what it costs).
    pub fn with_huge_pages(self, on: bool) -> Self {
        self.state().window.set_huge_pages(on);
        self
    }

    /// Why the most recent refused call was refused, if one was.
    pub fn last_refusal(&self) -> Option<String> {
        self.state().last_refusal.clone()
    }

    /// Records a refusal of `what` for `ERR_REASON` and returns its errno.
    fn refuse(st: &mut State, what: String, d: Denial) -> i64 {
        st.last_refusal = Some(format!("{what}: {}", d.reason));
        d.errno
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent bookkeeping (every change is one
        // assignment after the fallible work), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates an object owned by the run's key, binding `name` if given; the guest has full
    /// rights on it for the run.
    pub fn create(&self, name: Option<&str>) -> Result<ObjId, i64> {
        let store = self.store.get()?;
        let mut st = self.state();
        let mut opts = CreateOptions::default().owner(st.security.key());
        if let Some(n) = name {
            opts = opts.named(n);
        }
        match store.create(&opts) {
            Ok(id) => {
                st.security.created(id);
                Ok(id)
            }
            Err(e) => {
                if let StoreError::NoSuchKey(_) = e {
                    st.last_refusal = Some(format!("cannot create an object: {e}"));
                }
                Err(errno_of(&e))
            }
        }
    }

    /// Whether the guest may write object `id` (for calls that change an object without
    /// mapping it, such as deleting it): `Err` is the errno, with the reason recorded.
    pub fn may_write(&self, id: ObjId) -> Result<(), i64> {
        let store = self.store.get()?;
        let mut st = self.state();
        let st = &mut *st;
        match st.security.authorize(store, id, true, context::now_ns()) {
            Ok(_) => Ok(()),
            Err(d) => Err(Self::refuse(st, format!("may not write object {id}"), d)),
        }
    }

    /// The object bound to `name`.
    pub fn lookup(&self, name: &str) -> Result<ObjId, i64> {
        object_store::validate_name(name).map_err(|e| errno_of(&e))?;
        self.store
            .get()?
            .lookup(name)
            .map_err(|e| errno_of(&e))?
            .ok_or(-ENOENT)
    }

    /// Binds `name` to `id`.
    pub fn bind(&self, name: &str, id: ObjId) -> Result<(), i64> {
        self.store.get()?.bind(name, id).map_err(|e| errno_of(&e))
    }

    /// Maps `id` (writable if `write`) without evicting `keep`; returns the `OBJ_MAP` result
    /// (slot and evicted slot).
    pub fn map(&self, id: ObjId, write: bool, keep: Option<u32>) -> Result<u64, i64> {
        if id.is_null() {
            return Err(-ENOENT);
        }
        let mut st = self.state();
        st.stats.map_calls += 1;
        let (slot, evicted) = match st.table.place(id, write, keep).ok_or(-ENOMEM)? {
            Placement::Hit(s) => {
                st.table.touch(s);
                return Ok(map_result::encode(u64::from(s), None));
            }
            Placement::Free(s) => (s, None),
            Placement::Upgrade(s) => (s, None),
            Placement::Evict(s) => (s, Some(s)),
        };
        let st = &mut *st;
        let store = self.store.get()?;
        // The capability check comes first: an object the guest may not write is never even
        // opened writable (which could run its crash recovery).
        if let Err(d) = st.security.authorize(store, id, write, context::now_ns()) {
            let how = if write { "writable" } else { "read-only" };
            return Err(Self::refuse(st, format!("cannot map object {id} {how}"), d));
        }
        let access = if write {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        };
        // Open before giving anything up, so a missing object costs the guest nothing.
        let obj = store.open_object(id, access).map_err(|e| errno_of(&e))?;
        if st.table.get(slot).is_some() {
            st.window.remove(&self.mem, slot).map_err(|_| -EIO)?;
            st.vacate(slot);
            if evicted.is_some() {
                st.stats.evictions += 1;
            }
        }
        let before = st.window.memslots(slot);
        let installed = st
            .window
            .install(&self.vm, &self.mem, slot, obj.as_fd(), write);
        st.stats.memslots += u64::from(st.window.memslots(slot).saturating_sub(before));
        installed.map_err(|_| -EIO)?;
        st.table.insert(slot, id, write, obj);
        st.stats.installs += 1;
        if st.seen.insert(id) {
            st.stats.objects += 1;
        }
        Ok(map_result::encode(u64::from(slot), evicted.map(u64::from)))
    }

    /// Unmaps `slot`.
    pub fn unmap(&self, slot: u64) -> Result<(), i64> {
        let slot = u32::try_from(slot).map_err(|_| -EINVAL)?;
        let mut st = self.state();
        if st.table.get(slot).is_none() {
            return Err(-EINVAL);
        }
        st.window.remove(&self.mem, slot).map_err(|_| -EIO)?;
        st.vacate(slot);
        Ok(())
    }

    /// Removes the binding of `name` (`OBJ_UNBIND`), which takes the right to write the object
    /// it names; the object stays.
    pub fn unbind(&self, name: &str) -> Result<(), i64> {
        object_store::validate_name(name).map_err(|e| errno_of(&e))?;
        let store = self.store.get()?;
        // Removing a name redirects everyone who follows it (a FOT entry by name, a program
        // opening it), so it takes the right to write the object it names: a reader must not
        // be able to unbind `people` and bind the name to an object of its own.
        // A name left dangling by a deleted object protects nothing.
        if let Some(id) = store.lookup(name).map_err(|e| errno_of(&e))? {
            if store.contains(id) {
                self.may_write(id)?;
            }
        }
        store.unbind(name).map_err(|e| errno_of(&e))
    }

    /// Deletes object `id` and its names from the store (`OBJ_DELETE`), unmapping it from this
    /// guest first (which also drops this run's liveness lock on it); `-EBUSY` while another
    /// process, such as another running guest, has it open for writing. The guest forgets the
    /// slot itself (the call says which object went).
    pub fn delete(&self, id: ObjId) -> Result<(), i64> {
        if id.is_null() {
            return Err(-ENOENT);
        }
        let store = self.store.get()?;
        if !store.contains(id) {
            return Err(-ENOENT);
        }
        self.may_write(id)?;
        let mut st = self.state();
        let st = &mut *st;
        let held: Vec<u32> = (0..st.table.budget())
            .filter(|&s| st.table.get(s).is_some_and(|o| o.id == id))
            .collect();
        for slot in held {
            st.window.remove(&self.mem, slot).map_err(|_| -EIO)?;
            st.vacate(slot);
        }
        store.delete(id).map(drop).map_err(|e| errno_of(&e))
    }

    /// Makes `(slot, offset, len)` ranges durable on the calling thread (host calls
    /// `OBJ_FLUSH`, `OBJ_FLUSH_MANY`): through the run's flush journal if it has one, like the
    /// flush worker. Ranges of read-only slots are skipped.
    pub fn sync(&self, ranges: &[(u64, u64, u64)]) -> Result<(), i64> {
        let targets = self.flush_targets(ranges)?;
        if targets.is_empty() {
            return Ok(());
        }
        let job = flusher::FlushJob {
            user_data: 0,
            targets,
        };
        let journal = self.journal();
        match flusher::sync_batch(std::slice::from_ref(&job), journal.as_deref())
            .completions
            .first()
        {
            Some(&(_, e)) if e != 0 => Err(e),
            _ => Ok(()),
        }
    }

    /// What ring `FLUSH`/`FLUSH_MANY` requests for `(slot, offset, len)` ranges name: each
    /// range with its object and a duplicate of the object's file descriptor (one per object),
    /// for [`flusher`] to sync without this lock. Ranges of read-only slots are left out
    /// (nothing the guest could have written).
    pub fn flush_targets(
        &self,
        ranges: &[(u64, u64, u64)],
    ) -> Result<Vec<flusher::FlushTarget>, i64> {
        let mut st = self.state();
        let st = &mut *st;
        let mut out: Vec<flusher::FlushTarget> = Vec::with_capacity(ranges.len());
        for &(slot, offset, len) in ranges {
            let slot = u32::try_from(slot).map_err(|_| -EINVAL)?;
            let end = offset.checked_add(len).ok_or(-EINVAL)?;
            if end > OBJ_SIZE {
                return Err(-EINVAL);
            }
            let entry = st.table.get(slot).ok_or(-EINVAL)?;
            if !entry.writable {
                continue;
            }
            let id = entry.id;
            let file = match st.flush_files.get(&id) {
                Some(f) => f.clone(),
                None => {
                    let f = flusher::FlushFile::reopen(entry.handle.as_fd()).map_err(|_| -EIO)?;
                    let f = Arc::new(f);
                    st.flush_files.insert(id, f.clone());
                    f
                }
            };
            out.push(flusher::FlushTarget {
                id,
                file,
                offset,
                len,
            });
        }
        st.stats.flushes += out.len() as u64;
        Ok(out)
    }

    /// Allocates the file space behind `len` bytes at `offset` of the writable object in `slot`
    /// (host call `OBJ_RESERVE`): `-ENOSPC` when the filesystem is full.
    pub fn reserve(&self, slot: u64, offset: u64, len: u64) -> Result<(), i64> {
        let slot = u32::try_from(slot).map_err(|_| -EINVAL)?;
        let end = offset.checked_add(len).ok_or(-EINVAL)?;
        if end > OBJ_SIZE {
            return Err(-EINVAL);
        }
        let st = self.state();
        match st.table.get(slot) {
            Some(entry) if entry.writable => {
                entry.handle.reserve(offset, len).map_err(|e| errno_of(&e))
            }
            _ => Err(-EINVAL),
        }
    }

    /// Has `len` bytes at `offset` of the writable object in `slot` faulted in ahead of the
    /// guest's first stores, on the populate worker (ring op `POPULATE`); returns at once, but
    /// for a durable run's first populate, which takes the store's flush journal if no fence
    /// has yet (to know whether 2 MiB pages are cheap).
    pub fn populate(&self, slot: u64, offset: u64, len: u64) -> Result<(), i64> {
        let slot = u32::try_from(slot).map_err(|_| -EINVAL)?;
        let end = offset.checked_add(len).ok_or(-EINVAL)?;
        if end > OBJ_SIZE {
            return Err(-EINVAL);
        }
        let journal;
        let (host, ticket) = {
            let mut st = self.state();
            match st.table.get(slot) {
                Some(entry) if entry.writable => {}
                _ => return Err(-EINVAL),
            }
            st.stats.populates += 1;
            journal = st.journal.clone();
            let ticket = populator::Ticket {
                occupancy: st.occupancy.clone(),
                slot,
                generation: st.occupancy.generation(slot),
            };
            (st.window.host_addr(slot).ok_or(-EINVAL)?, ticket)
        };
        let worker = self
            .populator
            .get_or_init(|| populator::Populator::spawn().ok());
        // In place, a fence would write whole 2 MiB folios: only through the journal are huge
        // pages cheap in a durable run.
        let huge = self.huge_growth && journal.is_none_or(|j| j.journals_fences());
        if let Some(w) = worker {
            let (addr, len) = if huge {
                // Whole 2 MiB units, so every folio of the range can be a huge one.
                let start = offset - offset % HUGE;
                let end = end.next_multiple_of(HUGE).min(OBJ_SIZE);
                (host + start, end - start)
            } else {
                (host + offset, len)
            };
            w.submit(populator::Range {
                addr,
                len,
                huge,
                ticket,
            });
        }
        Ok(())
    }

    /// Serves a guest access at window address `addr` that exited because its chunk has no
    /// memslot: backs the chunk and performs the access on the host mapping. False when the
    /// access is a fault (no object in the slot, a store to a read-only one, KVM refused the
    /// memslot), which the caller reports.
    pub fn back_on_demand(&self, addr: u64, access: WindowAccess<'_>) -> bool {
        let Some(slot) = slot_of(addr).and_then(|s| u32::try_from(s).ok()) else {
            return false;
        };
        let offset = addr - slot_addr(u64::from(slot));
        let Some(chunk) = chunks::chunk_of(offset) else {
            return false;
        };
        let mut st = self.state();
        let st = &mut *st;
        let Some(entry) = st.table.get(slot) else {
            return false;
        };
        if matches!(access, WindowAccess::Write(_)) && !entry.writable {
            return false;
        }
        let done = match access {
            WindowAccess::Read(buf) => entry.handle.read_at(offset, buf),
            WindowAccess::Write(data) => entry.handle.write_at(offset, data),
        };
        if done.is_err() {
            return false;
        }
        st.stats.chunk_faults += 1;
        match st.window.back(&self.vm, slot, chunk) {
            Ok(added) => {
                st.stats.memslots += u64::from(added);
                true
            }
            Err(_) => false,
        }
    }

    /// Backs every chunk of every mapped object (after an access KVM could not emulate, whose
    /// address it does not report); false if nothing was missing, so re-running cannot help.
    pub fn back_everything(&self) -> bool {
        let mut st = self.state();
        let st = &mut *st;
        let before: u32 = (0..st.table.budget()).map(|s| st.window.memslots(s)).sum();
        let ok = st.window.back_all(&self.vm).is_ok();
        let after: u32 = (0..st.table.budget()).map(|s| st.window.memslots(s)).sum();
        st.stats.memslots += u64::from(after.saturating_sub(before));
        st.stats.chunk_faults += 1;
        ok && after > before
    }

    /// What occupies `slot`, if anything.
    pub fn occupant(&self, slot: u64) -> Option<Occupant> {
        let slot = u32::try_from(slot).ok()?;
        let st = self.state();
        st.table.get(slot).map(|s| Occupant {
            id: s.id,
            writable: s.writable,
        })
    }

    /// The slot budget.
    pub fn budget(&self) -> u32 {
        self.state().table.budget()
    }

    /// Counters so far.
    pub fn stats(&self) -> ObjectStats {
        let st = self.state();
        let mut s = st.stats;
        s.journal = st.journal.as_ref().and_then(|j| j.stats());
        s
    }
}
