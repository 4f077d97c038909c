//! The store: a directory of objects, names and keys, opened (and created on first use) here.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use abi::id::ObjId;
use abi::meta::ObjMeta;
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::error::{Result, StoreError};
use crate::format::{self, FORMAT_FILE};
use crate::fsutil::{self, TEMP_PREFIX};
use crate::keys::{KeyEntry, Keys, DEFAULT_KEY};
use crate::lock::{LockMode, StoreLock};
use crate::mapped::{Access, MappedObject, Want};
use crate::mapping::{MapError, MapSync, Mapping};
use crate::names::{self, NameEntry, Names};
use crate::object::{self, derive_id, object_path, OBJ_EXT};

const LOCK_FILE: &str = "lock";
pub(crate) const OBJECTS_DIR: &str = "objects";
const NAMES_DIR: &str = "names";
const KEYS_DIR: &str = "keys";

/// An open store. Cheap to hold; takes the store lock only around metadata changes.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    names: Names,
    keys: Keys,
    created: bool,
    /// Every mapping must be `MAP_SYNC` ([`Store::open_pmem`]).
    pmem: bool,
    /// The filesystem refused `MAP_SYNC` once: don't ask again (one syscall per open saved).
    sync_refused: AtomicBool,
}

/// What [`Store::create`] makes.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    /// A name to bind to the new object.
    pub name: Option<String>,
    /// The owner key (by name in this store).
    pub key: String,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            name: None,
            key: DEFAULT_KEY.into(),
        }
    }
}

impl CreateOptions {
    /// Binds `name` to the new object.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Owns the new object with key `key`.
    pub fn owner(mut self, key: &str) -> Self {
        self.key = key.into();
        self
    }
}

/// What a scan of `objects/` found.
#[derive(Clone, Debug, Default)]
pub struct ObjectScan {
    /// Object files, by the ID their name claims, sorted by ID.
    pub objects: Vec<(ObjId, PathBuf)>,
    /// Files that are not object files.
    pub foreign: Vec<PathBuf>,
    /// Temp files left by an interrupted write.
    pub temps: Vec<PathBuf>,
}

impl Store {
    /// Opens the store at `dir`, creating it (with the `default` key) on first use.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        let root = dir.as_ref().to_path_buf();
        match fs::metadata(&root) {
            Ok(m) if !m.is_dir() => return Err(StoreError::NotADirectory(root)),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(&root).map_err(StoreError::io(&root))?;
            }
            Err(e) => {
                return Err(StoreError::Io {
                    path: root,
                    error: e,
                })
            }
        }
        let mut store = Store {
            names: Names::new(root.join(NAMES_DIR)),
            keys: Keys::new(root.join(KEYS_DIR)),
            root,
            created: false,
            pmem: false,
            sync_refused: AtomicBool::new(false),
        };
        if !store.check_marker()? {
            // Checked before the lock file is made, so a foreign directory is left untouched.
            store.check_only_ours()?;
            let _lock = store.lock(LockMode::Exclusive)?;
            // Another process may have finished initialising while we waited.
            if !store.check_marker()? {
                store.initialise()?;
                store.created = true;
            }
        }
        // Journals a writer left (it exited or was killed, or the machine lost power) are
        // settled before anything maps an object.
        crate::journal::settle(&store.root)?;
        Ok(store)
    }

    /// Opens (creating on first use) a store that must live on persistent memory: a DAX
    /// filesystem (`mount -o dax`) where every object mapping is `MAP_SHARED_VALIDATE |
    /// MAP_SYNC`, so guests make stores durable with `clwb` + `sfence` and never ask the VMM to
    /// `msync`. Fails with [`StoreError::NotPmem`] (and creates nothing) where the kernel
    /// refuses `MAP_SYNC`.
    pub fn open_pmem(dir: impl AsRef<Path>) -> Result<Store> {
        let root = dir.as_ref();
        let existed = root.exists();
        if !existed {
            fs::create_dir_all(root).map_err(StoreError::io(root))?;
        }
        if let Err(e) = probe_map_sync(root) {
            if !existed {
                let _ = fs::remove_dir(root);
            }
            return Err(e);
        }
        let mut store = Self::open(root)?;
        store.pmem = true;
        Ok(store)
    }

    /// True for a store opened with [`Store::open_pmem`]: every mapping is synchronous.
    pub fn is_pmem(&self) -> bool {
        self.pmem
    }

    /// How this store maps objects.
    fn map_sync(&self) -> MapSync {
        if self.pmem {
            MapSync::Require
        } else if self.sync_refused.load(Ordering::Relaxed) {
            MapSync::Never
        } else {
            MapSync::Try
        }
    }

    /// Opens and maps object `id` with this store's `MAP_SYNC` policy (no recovery).
    pub(crate) fn map_object(
        &self,
        id: ObjId,
        access: Access,
        want: Want,
    ) -> Result<Option<MappedObject>> {
        let sync = self.map_sync();
        let obj = MappedObject::open_with(&self.object_path(id), id, access, want, sync)?;
        if let Some(o) = &obj {
            if sync == MapSync::Try && o.is_writable() && !o.is_synchronous() {
                self.sync_refused.store(true, Ordering::Relaxed);
            }
        }
        Ok(obj)
    }

    /// Same as [`Store::open`]; named for callers that create a store on purpose.
    pub fn init(dir: impl AsRef<Path>) -> Result<Store> {
        Self::open(dir)
    }

    /// True if this call created the store.
    pub fn was_created(&self) -> bool {
        self.created
    }

    /// `Ok(true)` if the marker is present and valid, `Ok(false)` if missing.
    fn check_marker(&self) -> Result<bool> {
        let path = self.root.join(FORMAT_FILE);
        match fs::read(&path) {
            Ok(bytes) => format::check_marker(&self.root, &bytes).map(|()| true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::Io { path, error: e }),
        }
    }

    /// Lays out a new store; the marker goes last so a crash leaves an unmarked, resumable one.
    fn initialise(&self) -> Result<()> {
        self.check_only_ours()?;
        fsutil::ensure_dir(&self.objects_dir(), 0o755)?;
        fsutil::ensure_dir(self.names.dir(), 0o755)?;
        fsutil::ensure_dir(self.keys.dir(), 0o700)?;
        match self.keys.generate(DEFAULT_KEY) {
            // (A generation an earlier, interrupted initialisation began is finished.)
            Ok(_) | Err(StoreError::KeyExists(_)) => {}
            Err(e) => return Err(e),
        }
        fsutil::write_atomic(&self.root, FORMAT_FILE, &format::marker_bytes(), 0o644)
    }

    /// Refuses a directory that holds anything a (partly initialised) store would not.
    fn check_only_ours(&self) -> Result<()> {
        for ent in fs::read_dir(&self.root).map_err(StoreError::io(&self.root))? {
            let ent = ent.map_err(StoreError::io(&self.root))?;
            let name = ent.file_name();
            let name = name.to_string_lossy();
            let ours = [
                LOCK_FILE,
                OBJECTS_DIR,
                NAMES_DIR,
                KEYS_DIR,
                crate::JOURNAL_DIR,
            ]
            .contains(&name.as_ref())
                || name.starts_with(TEMP_PREFIX);
            if !ours {
                return Err(StoreError::NotAStore(self.root.clone()));
            }
        }
        Ok(())
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of object files.
    pub fn objects_dir(&self) -> PathBuf {
        self.root.join(OBJECTS_DIR)
    }

    /// The name namespace (read it freely; change it through [`Store::bind`]/[`Store::unbind`]).
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Takes the store lock; metadata changes take it exclusively, consistent reads shared.
    pub fn lock(&self, mode: LockMode) -> Result<StoreLock> {
        StoreLock::acquire(&self.root.join(LOCK_FILE), mode)
    }

    /// Takes the store lock only if it is free now.
    pub fn try_lock(&self, mode: LockMode) -> Result<StoreLock> {
        StoreLock::try_acquire(&self.root.join(LOCK_FILE), mode)
    }

    /// The file of object `id` (whether or not it exists).
    pub fn object_path(&self, id: ObjId) -> PathBuf {
        object_path(&self.objects_dir(), id)
    }

    /// True if object `id` has a file in the store.
    pub fn contains(&self, id: ObjId) -> bool {
        self.object_path(id).exists()
    }

    /// Turns `OBJ` (a 32-hex-digit ID or a bound name) into an existing object's ID.
    pub fn resolve(&self, obj: &str) -> Result<ObjId> {
        if let Some(id) = ObjId::parse_hex(obj) {
            return if self.contains(id) {
                Ok(id)
            } else {
                Err(StoreError::NoSuchObject(id))
            };
        }
        names::validate_name(obj)?;
        self.names
            .lookup(obj)?
            .ok_or_else(|| StoreError::NoSuchName(obj.into()))
    }

    /// Creates a new empty object owned by `opts.key`, binding `opts.name` if given.
    /// Nothing is created if the name is taken or the key is missing.
    pub fn create(&self, opts: &CreateOptions) -> Result<ObjId> {
        if let Some(n) = &opts.name {
            names::validate_name(n)?;
        }
        let owner = self.keys.public_key(&opts.key)?;
        let _lock = self.lock(LockMode::Exclusive)?;
        if let Some(n) = &opts.name {
            if let Some(id) = self.names.lookup(n)? {
                return Err(StoreError::NameTaken {
                    name: n.clone(),
                    id,
                });
            }
        }
        let (nonce, id) = self.new_identity(&owner)?;
        let meta = ObjMeta::new(id, nonce, owner.to_bytes(), now_ns());
        object::create_file(&self.objects_dir(), &meta)?;
        if let Some(n) = &opts.name {
            self.names.bind(n, id)?;
        }
        Ok(id)
    }

    /// A fresh nonce and the ID it derives for `owner`, not used in this store (reliable only
    /// under the exclusive store lock; without it, a later check must repeat).
    pub(crate) fn new_identity(&self, owner: &VerifyingKey) -> Result<([u8; 16], ObjId)> {
        loop {
            let nonce: [u8; 16] = fsutil::random_bytes().map_err(StoreError::io(&self.root))?;
            let id = derive_id(&nonce, owner.as_bytes());
            if !id.is_null() && !self.contains(id) {
                return Ok((nonce, id));
            }
        }
    }

    /// Deletes object `id` and unbinds every name bound to it; returns those names. Works on
    /// damaged objects too. Processes that have it mapped keep their mapping until they unmap.
    pub fn remove(&self, id: ObjId) -> Result<Vec<String>> {
        let _lock = self.lock(LockMode::Exclusive)?;
        let path = self.object_path(id);
        if !path.exists() {
            return Err(StoreError::NoSuchObject(id));
        }
        let names = self.names.names_of(id)?;
        for n in &names {
            self.names.unbind(n)?;
        }
        self.remove_file_locked(id)?;
        Ok(names)
    }

    /// Deletes object `id` and unbinds every name bound to it, like [`Store::remove`], but only
    /// when no other process has it open for writing (a running guest holds its liveness lock,
    /// see [`crate::liveness`]): [`StoreError::Busy`] then, and nothing changes. A process that
    /// died holds nothing, so its objects can be deleted. The liveness lock is held exclusively
    /// until the file is gone, so a writable open racing with the delete either makes it fail or
    /// waits and then finds the name unbound (it may still map the unlinked file: callers that
    /// care look the name up again after opening). Returns the names unbound.
    pub fn delete(&self, id: ObjId) -> Result<Vec<String>> {
        let _lock = self.lock(LockMode::Exclusive)?;
        let path = self.object_path(id);
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchObject(id))
            }
            Err(e) => return Err(StoreError::Io { path, error: e }),
        };
        if !crate::liveness::try_exclusive(&file).map_err(StoreError::io(&path))? {
            return Err(StoreError::Busy(id));
        }
        let names = self.names.names_of(id)?;
        for n in &names {
            self.names.unbind(n)?;
        }
        self.remove_file_locked(id)?;
        // Closing the file releases the liveness lock, after the unlink.
        drop(file);
        Ok(names)
    }

    /// Unlinks object `id`'s file durably; the caller holds the exclusive store lock.
    pub(crate) fn remove_file_locked(&self, id: ObjId) -> Result<()> {
        let path = self.object_path(id);
        let shard = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.objects_dir());
        fsutil::remove_durably(&shard, &format!("{id}{OBJ_EXT}"))
    }

    /// Binds `name` to the existing object `id`.
    pub fn bind(&self, name: &str, id: ObjId) -> Result<()> {
        names::validate_name(name)?;
        let _lock = self.lock(LockMode::Exclusive)?;
        if !self.contains(id) {
            return Err(StoreError::NoSuchObject(id));
        }
        self.names.bind(name, id)
    }

    /// Removes the binding of `name`.
    pub fn unbind(&self, name: &str) -> Result<()> {
        let _lock = self.lock(LockMode::Exclusive)?;
        self.names.unbind(name)
    }

    /// The ID bound to `name`, if any.
    pub fn lookup(&self, name: &str) -> Result<Option<ObjId>> {
        self.names.lookup(name)
    }

    /// Every name binding, sorted.
    pub fn list_names(&self) -> Result<Vec<NameEntry>> {
        self.names.list()
    }

    /// Generates a new signing key `name`.
    pub fn generate_key(&self, name: &str) -> Result<VerifyingKey> {
        let _lock = self.lock(LockMode::Exclusive)?;
        self.keys.generate(name)
    }

    /// The signing key `name`.
    pub fn signing_key(&self, name: &str) -> Result<SigningKey> {
        self.keys.signing_key(name)
    }

    /// The public key `name`.
    pub fn public_key(&self, name: &str) -> Result<VerifyingKey> {
        self.keys.public_key(name)
    }

    /// Every key, sorted by name.
    pub fn list_keys(&self) -> Result<Vec<KeyEntry>> {
        self.keys.list()
    }

    /// Removes the temp files interrupted writes left anywhere in the store (see
    /// [`fsutil::is_stray_temp`]); returns them.
    pub fn remove_stray_temps(&self) -> Result<Vec<PathBuf>> {
        let _lock = self.lock(LockMode::Exclusive)?;
        let mut temps = self.scan_objects()?.temps;
        for dir in [
            self.root.clone(),
            self.names.dir().to_path_buf(),
            self.keys.dir().to_path_buf(),
            self.root.join(crate::cap::REVOKED_DIR),
        ] {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for ent in entries {
                let ent = ent.map_err(StoreError::io(&dir))?;
                if ent.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                    temps.push(ent.path());
                }
            }
        }
        let mut removed = Vec::new();
        for path in temps.into_iter().filter(|p| fsutil::is_stray_temp(p)) {
            // Regular files only, and none a writer still holds (an import keeps its temp
            // file locked while it reads its source, without the store lock).
            let free = fs::File::open(&path).is_ok_and(|f| {
                f.metadata().is_ok_and(|m| m.is_file())
                    && crate::liveness::try_exclusive(&f).unwrap_or(false)
            });
            // One that cannot be removed stays in fsck's report; the others still go.
            if free && fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
        Ok(removed)
    }

    /// Lists `objects/`: object files, foreign files and temp files.
    pub fn scan_objects(&self) -> Result<ObjectScan> {
        let dir = self.objects_dir();
        let mut scan = ObjectScan::default();
        for shard in fs::read_dir(&dir).map_err(StoreError::io(&dir))? {
            let shard = shard.map_err(StoreError::io(&dir))?;
            let sname = shard.file_name().to_string_lossy().into_owned();
            let is_shard = shard.file_type().map(|t| t.is_dir()).unwrap_or(false)
                && sname.len() == 2
                && sname
                    .bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
            if sname.starts_with(TEMP_PREFIX) {
                scan.temps.push(shard.path());
                continue;
            }
            if !is_shard {
                scan.foreign.push(shard.path());
                continue;
            }
            for ent in fs::read_dir(shard.path()).map_err(StoreError::io(shard.path()))? {
                let ent = ent.map_err(StoreError::io(shard.path()))?;
                let fname = ent.file_name().to_string_lossy().into_owned();
                let id = fname
                    .strip_suffix(OBJ_EXT)
                    .filter(|h| h.bytes().all(|c| !c.is_ascii_uppercase()) && h.starts_with(&sname))
                    .and_then(ObjId::parse_hex);
                match id {
                    Some(id) if ent.file_type().map(|t| t.is_file()).unwrap_or(false) => {
                        scan.objects.push((id, ent.path()))
                    }
                    _ if fname.starts_with(TEMP_PREFIX) => scan.temps.push(ent.path()),
                    _ => scan.foreign.push(ent.path()),
                }
            }
        }
        scan.objects.sort();
        scan.foreign.sort();
        scan.temps.sort();
        Ok(scan)
    }
}

/// Fails with [`StoreError::NotPmem`] unless a file in `dir` can be mapped with `MAP_SYNC`.
fn probe_map_sync(dir: &Path) -> Result<()> {
    let tmp = fsutil::temp_path(dir)?;
    let result = (|| {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(StoreError::io(&tmp))?;
        f.set_len(abi::layout::PAGE_SIZE)
            .map_err(StoreError::io(&tmp))?;
        Mapping::new(&f, abi::layout::PAGE_SIZE as usize, true, MapSync::Require)
            .map(drop)
            .map_err(|e| match e {
                MapError::SyncRefused(e) => StoreError::NotPmem {
                    path: dir.to_path_buf(),
                    reason: e.to_string(),
                },
                MapError::Io(e) => StoreError::Io {
                    path: tmp.clone(),
                    error: e,
                },
            })
    })();
    let _ = fs::remove_file(&tmp);
    result
}

/// Nanoseconds since the Unix epoch (0 if the clock is before it): creation times and
/// capability expiry.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_refuses_an_object_open_for_writing_elsewhere_and_removes_it_once_closed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let id = store
            .create(&CreateOptions::default().named("journal"))
            .unwrap();
        store.bind("alias", id).unwrap();
        // A writable open, as a running guest's mapping holds it. (flock locks belong to the
        // open file, so a second open in this process stands for another process.)
        let writer = store.open_object(id, Access::ReadWrite).unwrap();
        assert!(matches!(store.delete(id), Err(StoreError::Busy(b)) if b == id));
        assert_eq!(
            store.lookup("journal").unwrap(),
            Some(id),
            "nothing changed"
        );
        assert!(store.contains(id));
        drop(writer);
        let mut names = store.delete(id).unwrap();
        names.sort();
        assert_eq!(names, ["alias", "journal"]);
        assert!(!store.contains(id));
        assert_eq!(store.lookup("journal").unwrap(), None);
        assert!(matches!(store.delete(id), Err(StoreError::NoSuchObject(_))));
    }

    #[test]
    fn an_initialisation_killed_between_the_key_halves_is_finished_by_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        let store = Store::open(&root).unwrap();
        let pk = store.public_key(DEFAULT_KEY).unwrap();
        // The state a kill between the secret and public writes leaves: no marker, no `.pub`.
        fs::remove_file(root.join(FORMAT_FILE)).unwrap();
        fs::remove_file(root.join(KEYS_DIR).join("default.pub")).unwrap();
        let store = Store::open(&root).unwrap();
        assert!(store.was_created());
        assert_eq!(store.public_key(DEFAULT_KEY).unwrap(), pk);
        let report = store.fsck().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    #[test]
    fn temp_files_of_writers_that_are_gone_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let id = store
            .create(&CreateOptions::default().named("kept"))
            .unwrap();
        let shard = store.object_path(id).parent().unwrap().to_path_buf();
        // A PID above the kernel's limit (2^22) never runs; this process does.
        let dead = format!("{TEMP_PREFIX}4194305.00");
        let alive = format!("{TEMP_PREFIX}{}.00", std::process::id());
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let mut made = Vec::new();
        let importing = format!("{TEMP_PREFIX}4194305.01");
        for (dir, name, old) in [
            (shard.clone(), &dead, true),
            (store.names().dir().to_path_buf(), &dead, true),
            (shard.clone(), &alive, true),
            (store.root().to_path_buf(), &dead, false),
            (shard.clone(), &importing, true),
        ] {
            let path = dir.join(name);
            let f = fs::File::create(&path).unwrap();
            if old {
                f.set_modified(hour_ago).unwrap();
            }
            made.push(path);
        }
        // A writer in another PID namespace looks gone; its lock on the file says otherwise.
        let held = fs::File::open(&made[4]).unwrap();
        assert!(crate::liveness::try_exclusive(&held).unwrap());
        let mut removed = store.remove_stray_temps().unwrap();
        removed.sort();
        let mut want = vec![made[0].clone(), made[1].clone()];
        want.sort();
        assert_eq!(removed, want, "only old temps of processes that are gone");
        assert!(made[2].exists() && made[3].exists() && made[4].exists());
        assert_eq!(store.lookup("kept").unwrap(), Some(id));
    }

    #[test]
    fn a_read_only_open_does_not_keep_an_object_alive() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let id = store.create(&CreateOptions::default()).unwrap();
        let reader = store.open_object(id, Access::ReadOnly).unwrap();
        assert_eq!(store.delete(id).unwrap(), Vec::<String>::new());
        assert!(!store.contains(id));
        drop(reader);
    }
}
