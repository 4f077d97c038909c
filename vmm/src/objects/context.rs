//! The guest's security context: which objects it may map, and with what rights.
//!
//! Built before boot from `run --ctx CTX --cap FILE... --key NAME`, consulted by
//! [`super::Objects::map`] on every map that is not already satisfied by the slot table:
//!
//! - Objects the guest created during the run are its own (read and write), in any context.
//! - Default context (no `--ctx`, named [`DEFAULT_CONTEXT`]): the guest runs as the owner of the
//!   run's key (`--key`, default the store's default key) and maps any object owned by that
//!   key. No signature is checked for this: an object's ID binds its owner key (the store checks
//!   `derive_id(nonce, owner key) == id` when it opens the object), so comparing the header's
//!   owner key with the run's public key is the proof.
//! - `--ctx CTX`: every other map needs a capability for the context `context_id(CTX)`.
//!
//! Capabilities (`--cap`, one chain or a bundle of chains per file) are parsed and checked for
//! the accessor before boot; signatures, owner keys, expiry and revocation are verified at map
//! time, once per (object, chain) for the run ([`CapCache`]: a later map of the same object
//! checks expiry and revocation but no signature). Several chains for one object add up.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use abi::fot::perms;
use abi::hostcall::errno::{EACCES, EIO, ENOENT};
use abi::id::ObjId;
use object_store::{context_id, perms_string, CapCache, CapChain, CapError, Store, StoreError};

/// The name of the context a guest runs in without `--ctx`.
pub const DEFAULT_CONTEXT: &str = "default";

/// Why the context cannot be built (the run does not start).
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// A capability file cannot be read.
    #[error("cannot read capability file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// A capability file is malformed.
    #[error("capability file {path}: {error}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        error: CapError,
    },
    /// The context object in the store cannot be read.
    #[error("cannot read the capabilities stored for context {ctx:?}: {error}")]
    Stored {
        /// The context.
        ctx: String,
        /// What is wrong.
        error: CapError,
    },
    /// A capability is for another context.
    #[error(
        "capability file {path}: chain {chain} is for context {found}, not {ctx:?} ({wanted})"
    )]
    WrongAccessor {
        /// The file (or the context object).
        path: PathBuf,
        /// The chain within the file.
        chain: usize,
        /// The context name the guest runs in.
        ctx: String,
        /// Hex of its ID.
        wanted: String,
        /// Hex of the ID the chain names.
        found: String,
    },
}

/// A map refusal: the errno for the guest and the reason it can read with `ERR_REASON`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// Negated errno.
    pub errno: i64,
    /// Readable reason, without the "cannot map object ..." prefix the runtime adds.
    pub reason: String,
}

impl Denial {
    fn access(reason: String) -> Self {
        Denial {
            errno: -EACCES,
            reason,
        }
    }
}

/// One capability chain the context holds.
#[derive(Debug)]
struct Held {
    /// The file it came from (for reasons).
    file: String,
    /// The chain's encoded bytes (the cache key).
    bytes: Vec<u8>,
    target: ObjId,
}

/// The security context of one run.
#[derive(Debug)]
pub struct SecurityContext {
    name: String,
    explicit: bool,
    accessor: [u8; 16],
    key: String,
    key_public: Option<[u8; 32]>,
    held: Vec<Held>,
    created: HashSet<ObjId>,
    owners: HashMap<ObjId, [u8; 32]>,
    cache: CapCache,
}

impl SecurityContext {
    /// The context `ctx` (`None`: the default one) holding the capability files `caps`,
    /// creating objects owned by `key` (`None`: the store's default key). Reads and parses
    /// every file and checks its accessor; signatures are checked at map time.
    pub fn load(
        ctx: Option<&str>,
        caps: &[PathBuf],
        key: Option<&str>,
    ) -> Result<Self, ContextError> {
        let name = ctx.unwrap_or(DEFAULT_CONTEXT).to_string();
        let accessor = context_id(&name);
        let mut held = Vec::new();
        for path in caps {
            held.extend(read_caps(path, &name, &accessor)?);
        }
        Ok(SecurityContext {
            name,
            explicit: ctx.is_some(),
            accessor,
            key: key.unwrap_or(object_store::DEFAULT_KEY).to_string(),
            key_public: None,
            held,
            created: HashSet::new(),
            owners: HashMap::new(),
            cache: CapCache::new(),
        })
    }

    /// The default context with no capabilities, creating objects with the default key.
    pub fn ceremony_free() -> Self {
        SecurityContext {
            name: DEFAULT_CONTEXT.into(),
            explicit: false,
            accessor: context_id(DEFAULT_CONTEXT),
            key: object_store::DEFAULT_KEY.into(),
            key_public: None,
            held: Vec::new(),
            created: HashSet::new(),
            owners: HashMap::new(),
            cache: CapCache::new(),
        }
    }

    /// Adds the chains stored in the store for this context (`twz-vmm ctx add`); only under
    /// `--ctx`: the default context holds none. Returns how many.
    pub fn hold_stored(&mut self, store: &Store) -> Result<usize, ContextError> {
        if !self.explicit {
            return Ok(0);
        }
        let chains = store
            .context_caps(&self.name)
            .map_err(|error| ContextError::Stored {
                ctx: self.name.clone(),
                error,
            })?;
        let label = PathBuf::from(Store::context_object_name(&self.name));
        let held = check_accessors(chains, &label, &self.name, &self.accessor)?;
        let n = held.len();
        self.held.extend(held);
        Ok(n)
    }

    /// Whether the guest runs in a context named with `--ctx`.
    pub fn is_explicit(&self) -> bool {
        self.explicit
    }

    /// The name of the key that owns what the guest creates.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Capability chains held.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Records an object the guest created: it has full rights on it for the run.
    pub fn created(&mut self, id: ObjId) {
        self.created.insert(id);
    }

    /// The run key's public key (looked up once); a missing key is a refusal.
    fn run_key(&mut self, store: &Store) -> Result<[u8; 32], Denial> {
        if let Some(k) = self.key_public {
            return Ok(k);
        }
        let k = store
            .public_key(&self.key)
            .map_err(|e| Denial {
                errno: -EIO,
                reason: format!("the run's key {:?} is unusable: {e}", self.key),
            })?
            .to_bytes();
        self.key_public = Some(k);
        Ok(k)
    }

    /// The owner key of `id` (looked up once per object).
    fn owner_of(&mut self, store: &Store, id: ObjId) -> Result<[u8; 32], Denial> {
        if let Some(k) = self.owners.get(&id) {
            return Ok(*k);
        }
        let k = store.owner_key(id).map_err(|e| match e {
            StoreError::NoSuchObject(_) => Denial {
                errno: -ENOENT,
                reason: format!("object {id} does not exist"),
            },
            other => Denial {
                errno: -EIO,
                reason: format!("cannot read object {id}: {other}"),
            },
        })?;
        self.owners.insert(id, k);
        Ok(k)
    }

    /// The rights (`perms` bits, READ at least) this context has on `id`, when `write` is
    /// requested or not, at `now_ns`; or why the map is refused.
    pub fn authorize(
        &mut self,
        store: &Store,
        id: ObjId,
        write: bool,
        now_ns: u64,
    ) -> Result<u32, Denial> {
        if self.created.contains(&id) {
            return Ok(perms::READ | perms::WRITE);
        }
        if !self.explicit {
            let owner = self.owner_of(store, id)?;
            if owner == self.run_key(store)? {
                return Ok(perms::ALL);
            }
        }
        let enough = |p: u32| p & perms::READ != 0 && (!write || p & perms::WRITE != 0);
        let mut granted = 0u32;
        let mut first_error: Option<(usize, CapError)> = None;
        let mut grantor: Option<usize> = None;
        for (i, h) in self.held.iter().enumerate() {
            if h.target != id {
                continue;
            }
            match self
                .cache
                .verify_for_map(store, &h.bytes, id, &self.accessor, now_ns)
            {
                Ok(p) => {
                    granted |= p;
                    grantor.get_or_insert(i);
                    if enough(granted) {
                        break;
                    }
                }
                Err(e) => {
                    first_error.get_or_insert((i, e));
                }
            }
        }
        if enough(granted) {
            return Ok(granted);
        }
        if granted != 0 {
            let file = grantor.map_or("?", |i| self.held[i].file.as_str());
            let missing = if granted & perms::READ == 0 {
                "read"
            } else {
                "write"
            };
            return Err(Denial::access(format!(
                "capability {file} grants {} but not {missing}",
                perms_string(granted)
            )));
        }
        if let Some((i, e)) = first_error {
            if let CapError::Store(StoreError::NoSuchObject(_)) | CapError::NoSuchTarget(_) = e {
                return Err(Denial {
                    errno: -ENOENT,
                    reason: format!("object {id} does not exist"),
                });
            }
            return Err(Denial::access(format!(
                "capability {}: {e}",
                self.held[i].file
            )));
        }
        Err(Denial::access(self.no_capability(id)))
    }

    /// The reason for a map of `id` that no held chain names.
    fn no_capability(&self, id: ObjId) -> String {
        let who = if self.explicit {
            format!("context {:?}", self.name)
        } else {
            format!(
                "the default context (the object is not owned by the run's key {:?})",
                self.key
            )
        };
        match self.held.as_slice() {
            [] => format!("no capability for it in {who}"),
            [only] => format!(
                "capability {} is for object {}, not {id}; no capability for it in {who}",
                only.file, only.target
            ),
            many => format!(
                "none of the {} capabilities in {who} is for this object",
                many.len()
            ),
        }
    }
}

/// Reads one capability file and checks every chain's accessor.
fn read_caps(path: &Path, ctx: &str, accessor: &[u8; 16]) -> Result<Vec<Held>, ContextError> {
    let bytes = std::fs::read(path).map_err(|error| ContextError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let chains = CapChain::parse_file(&bytes).map_err(|error| ContextError::Malformed {
        path: path.to_path_buf(),
        error,
    })?;
    check_accessors(chains, path, ctx, accessor)
}

/// The chains from `path` as held capabilities, if every one is for `accessor`.
fn check_accessors(
    chains: Vec<CapChain>,
    path: &Path,
    ctx: &str,
    accessor: &[u8; 16],
) -> Result<Vec<Held>, ContextError> {
    let file = path.display().to_string();
    chains
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            if &c.accessor() != accessor {
                return Err(ContextError::WrongAccessor {
                    path: path.to_path_buf(),
                    chain: i,
                    ctx: ctx.to_string(),
                    wanted: hex(accessor),
                    found: hex(&c.accessor()),
                });
            }
            Ok(Held {
                file: file.clone(),
                bytes: c.to_bytes(),
                target: c.target(),
            })
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Unix time in nanoseconds (expiry checks).
pub use object_store::now_ns;

#[cfg(test)]
mod tests {
    use super::*;
    use abi::fot::perms::{READ, WRITE};
    use object_store::{CreateOptions, Grant, DEFAULT_KEY};

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        caps: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path().join("store")).expect("store");
        let caps = dir.path().join("caps");
        std::fs::create_dir(&caps).expect("caps dir");
        Fixture {
            _dir: dir,
            store,
            caps,
        }
    }

    fn grant(f: &Fixture, file: &str, ids: &[ObjId], ctx: &str, p: u32, exp: u64) -> PathBuf {
        let sk = f.store.signing_key(DEFAULT_KEY).expect("key");
        let chains: Vec<CapChain> = ids
            .iter()
            .map(|&target| {
                let g = Grant {
                    target,
                    accessor: context_id(ctx),
                    perms: p,
                    expires_ns: exp,
                    delegate: None,
                };
                CapChain::sign_root(&g, &sk).expect("sign")
            })
            .collect();
        let path = f.caps.join(file);
        std::fs::write(&path, CapChain::encode_file(&chains)).expect("write");
        path
    }

    #[test]
    fn default_context_maps_what_the_run_key_owns_and_what_it_created() {
        let f = fixture();
        let mine = f.store.create(&CreateOptions::default()).expect("create");
        f.store.generate_key("alice").expect("key");
        let alices = f
            .store
            .create(&CreateOptions::default().owner("alice"))
            .expect("create");
        let mut ctx = SecurityContext::ceremony_free();
        assert_eq!(ctx.authorize(&f.store, mine, true, 1), Ok(perms::ALL));
        let d = ctx
            .authorize(&f.store, alices, false, 1)
            .expect_err("alice's");
        assert_eq!(d.errno, -EACCES);
        assert!(
            d.reason.contains("not owned by the run's key"),
            "{}",
            d.reason
        );
        ctx.created(alices);
        assert!(ctx.authorize(&f.store, alices, true, 1).is_ok(), "creator");
        let mut as_alice = SecurityContext::load(None, &[], Some("alice")).expect("ctx");
        assert!(as_alice.authorize(&f.store, alices, true, 1).is_ok());
        assert!(as_alice.authorize(&f.store, mine, false, 1).is_err());
        let missing = ObjId::from_u128(42);
        assert_eq!(
            ctx.authorize(&f.store, missing, false, 1)
                .map_err(|d| d.errno),
            Err(-ENOENT)
        );
    }

    #[test]
    fn named_context_needs_capabilities_and_honours_their_rights() {
        let f = fixture();
        let a = f.store.create(&CreateOptions::default()).expect("create");
        let b = f.store.create(&CreateOptions::default()).expect("create");
        let c = f.store.create(&CreateOptions::default()).expect("create");
        let ro = grant(&f, "ro.cap", &[a, b], "reader", READ, 0);
        let mut ctx = SecurityContext::load(Some("reader"), &[ro], None).expect("ctx");
        assert_eq!(ctx.held(), 2, "a bundle holds one chain per object");
        assert_eq!(ctx.authorize(&f.store, a, false, 1), Ok(READ));
        assert_eq!(ctx.authorize(&f.store, b, false, 1), Ok(READ));
        let w = ctx.authorize(&f.store, a, true, 1).expect_err("no write");
        assert!(
            w.reason.ends_with("grants r--- but not write"),
            "{}",
            w.reason
        );
        let none = ctx.authorize(&f.store, c, false, 1).expect_err("no cap");
        assert!(
            none.reason.contains("none of the 2 capabilities"),
            "{}",
            none.reason
        );

        let rw = grant(&f, "rw.cap", &[a], "reader", READ | WRITE, 0);
        let ro = f.caps.join("ro.cap");
        let mut ctx = SecurityContext::load(Some("reader"), &[ro, rw], None).expect("ctx");
        assert_eq!(
            ctx.authorize(&f.store, a, true, 1),
            Ok(READ | WRITE),
            "rights add up"
        );

        let soon = grant(&f, "soon.cap", &[a], "reader", READ | WRITE, 100);
        let mut ctx = SecurityContext::load(Some("reader"), &[soon], None).expect("ctx");
        assert!(ctx.authorize(&f.store, a, true, 50).is_ok());
        let e = ctx.authorize(&f.store, a, true, 150).expect_err("expired");
        assert!(e.reason.contains("expired"), "{}", e.reason);
    }

    #[test]
    fn files_for_another_context_or_malformed_are_refused_before_boot() {
        let f = fixture();
        let a = f.store.create(&CreateOptions::default()).expect("create");
        let other = grant(&f, "other.cap", &[a], "writer", READ, 0);
        let e = SecurityContext::load(Some("reader"), &[other], None).expect_err("accessor");
        assert!(e.to_string().contains("not \"reader\""), "{e}");
        let short = f.caps.join("short.cap");
        std::fs::write(&short, [0u8; 150]).expect("write");
        let e = SecurityContext::load(Some("reader"), &[short], None).expect_err("short");
        assert!(e.to_string().contains("truncated or oversized"), "{e}");
        let e = SecurityContext::load(None, &[f.caps.join("nope")], None).expect_err("missing");
        assert!(
            e.to_string().starts_with("cannot read capability file"),
            "{e}"
        );
    }
}
