//! Signed capabilities on the host: parse, sign, delegate, verify, revoke, and a per-VM cache of
//! verified results so a second map of the same object checks no signature.
//!
//! The format is [`abi::cap`]. Revoked references live in `<store>/revoked/<32 hex>` (empty
//! files written crash-safely); a chain with any revoked link is refused.
//!
//! ```
//! use abi::fot::perms::{READ, WRITE};
//! use object_store::{context_id, CapCache, CapChain, CreateOptions, Grant, Store, DEFAULT_KEY};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path().join("store"))?;
//! let id = store.create(&CreateOptions::default())?;          // owned by the key `default`
//! let ctx = context_id("reader-ctx");
//! let grant = Grant { target: id, accessor: ctx, perms: READ, expires_ns: 0, delegate: None };
//! let file = CapChain::sign_root(&grant, &store.signing_key(DEFAULT_KEY)?)?.to_bytes();
//!
//! // The VMM, per VM: the first map verifies signatures, later ones hit the cache.
//! let mut cache = CapCache::new();
//! let now = 1;
//! assert_eq!(cache.verify_for_map(&store, &file, id, &ctx, now)?, READ);
//! assert_eq!(cache.verify_for_map(&store, &file, id, &ctx, now)? & WRITE, 0); // map read-only
//! assert!(cache.verify_for_map(&store, &file, id, &context_id("other"), now).is_err());
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::path::PathBuf;

use abi::cap::{self, CapFormatError, Capability, CAP_SIZE, CAP_VERSION};
use abi::fot::perms;
use abi::id::ObjId;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256, Sha512};

use crate::error::StoreError;
use crate::fsutil::{self, hex};
use crate::object::ObjectFile;
use crate::store::Store;

const REVOKED_DIR: &str = "revoked";

/// The ID of the named security context `name`: the first 16 bytes of
/// `SHA-512("twz-ctx-v1" || name)`.
pub fn context_id(name: &str) -> [u8; 16] {
    let mut h = Sha512::new();
    h.update(cap::CTX_ID_DOMAIN);
    h.update(name.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

/// Why a capability chain is refused. Links are numbered from 0 (the owner's grant).
#[derive(Debug, thiserror::Error)]
pub enum CapError {
    /// The bytes are not a well-formed chain.
    #[error("{0}")]
    Format(CapFormatError),
    /// A signature does not verify under the key the link names.
    #[error("link {0}: forged or altered: signature does not verify")]
    BadSignature(usize),
    /// The first link is not signed by the target object's owner key.
    #[error("link 0: signed by key {signer}, not by the owner key of object {target}")]
    NotOwner {
        /// The target object.
        target: ObjId,
        /// Hex of the signing key.
        signer: String,
    },
    /// The target object is not in this store.
    #[error("target object {0} does not exist in this store")]
    NoSuchTarget(ObjId),
    /// The links disagree on the target.
    #[error("link {0}: target differs from link 0's")]
    TargetMismatch(usize),
    /// The links disagree on the accessor.
    #[error("link {0}: accessor differs from link 0's")]
    AccessorMismatch(usize),
    /// The chain grants rights on another object than the one asked for.
    #[error("capability is for object {found}, not {wanted}")]
    WrongTarget {
        /// The object asked for.
        wanted: ObjId,
        /// The object the chain names.
        found: ObjId,
    },
    /// The chain is for another security context.
    #[error("capability is for context {found}, not {wanted}")]
    WrongAccessor {
        /// Hex of the context asked for.
        wanted: String,
        /// Hex of the context the chain names.
        found: String,
    },
    /// A link has expired.
    #[error("link {link}: expired at {expires_ns} ns since the epoch")]
    Expired {
        /// The link.
        link: usize,
        /// Its expiry.
        expires_ns: u64,
    },
    /// A link's revocation reference is in the store's revocation list.
    #[error("link {0}: revoked")]
    Revoked(usize),
    /// A link breaks a delegation rule.
    #[error("link {link}: invalid delegation: {reason}")]
    BadDelegation {
        /// The link.
        link: usize,
        /// The rule broken.
        reason: &'static str,
    },
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CapFormatError> for CapError {
    fn from(e: CapFormatError) -> Self {
        CapError::Format(e)
    }
}

/// A parsed (not yet verified) chain of capabilities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapChain {
    links: Vec<Capability>,
}

/// What a verified chain grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The object.
    pub target: ObjId,
    /// The security context.
    pub accessor: [u8; 16],
    /// Rights of the last link.
    pub perms: u32,
    /// Earliest expiry in the chain (0 = never).
    pub expires_ns: u64,
    /// Every link's revocation reference.
    pub revocations: Vec<[u8; 16]>,
}

/// The rights and constraints of a new link; the signer and revocation reference are added
/// when it is signed.
#[derive(Clone, Debug)]
pub struct Grant {
    /// Object.
    pub target: ObjId,
    /// Security context ID ([`context_id`]).
    pub accessor: [u8; 16],
    /// [`perms`] bits.
    pub perms: u32,
    /// Unix ns, 0 = never.
    pub expires_ns: u64,
    /// Who may delegate further, if anyone.
    pub delegate: Option<VerifyingKey>,
}

impl CapChain {
    /// Parses a capability file's bytes; never panics.
    pub fn parse(bytes: &[u8]) -> Result<CapChain, CapError> {
        let n = cap::chain_len(bytes.len())?;
        let links = bytes
            .chunks_exact(CAP_SIZE)
            .take(n)
            .enumerate()
            .map(|(i, c)| {
                let arr: &[u8; CAP_SIZE] = c
                    .try_into()
                    .map_err(|_| CapFormatError::Truncated(bytes.len()))?;
                Capability::from_bytes(i, arr)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CapChain { links })
    }

    /// The links, owner's grant first.
    pub fn links(&self) -> &[Capability] {
        &self.links
    }

    /// The encoded chain, as written to a file.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.links.iter().flat_map(|l| l.to_bytes()).collect()
    }

    /// A one-link chain: `grant` signed by `key` (which must be the target's owner key to
    /// verify later).
    pub fn sign_root(grant: &Grant, key: &SigningKey) -> Result<CapChain, CapError> {
        Ok(CapChain {
            links: vec![sign_link(grant, key)?],
        })
    }

    /// This chain with `grant` appended, signed by `key`; refuses what verification would.
    pub fn delegate(&self, grant: &Grant, key: &SigningKey) -> Result<CapChain, CapError> {
        let mut links = self.links.clone();
        if links.len() >= cap::MAX_CHAIN {
            return Err(CapFormatError::TooLong(links.len() + 1).into());
        }
        links.push(sign_link(grant, key)?);
        let chain = CapChain { links };
        let i = chain.links.len() - 1;
        check_link(&chain.links[i - 1], &chain.links[i], i)?;
        Ok(chain)
    }

    /// Verifies every signature and delegation rule, the owner key of link 0, expiry at
    /// `now_ns` and revocation; returns what the chain grants.
    pub fn verify(
        &self,
        owner_key: &[u8; 32],
        now_ns: u64,
        is_revoked: impl Fn(&[u8; 16]) -> bool,
    ) -> Result<Verified, CapError> {
        let first = &self.links[0];
        for (i, link) in self.links.iter().enumerate() {
            let vk =
                VerifyingKey::from_bytes(&link.signer).map_err(|_| CapError::BadSignature(i))?;
            let sig = Signature::from_bytes(&link.signature);
            vk.verify_strict(&link.signed_bytes(), &sig)
                .map_err(|_| CapError::BadSignature(i))?;
            if i == 0 {
                if &link.signer != owner_key {
                    return Err(CapError::NotOwner {
                        target: link.target,
                        signer: hex(&link.signer),
                    });
                }
            } else {
                check_link(&self.links[i - 1], link, i)?;
            }
            if link.target != first.target {
                return Err(CapError::TargetMismatch(i));
            }
            if link.accessor != first.accessor {
                return Err(CapError::AccessorMismatch(i));
            }
        }
        for (i, link) in self.links.iter().enumerate() {
            if link.expires_ns != 0 && link.expires_ns <= now_ns {
                return Err(CapError::Expired {
                    link: i,
                    expires_ns: link.expires_ns,
                });
            }
            if is_revoked(&link.revocation) {
                return Err(CapError::Revoked(i));
            }
        }
        let last = &self.links[self.links.len() - 1];
        Ok(Verified {
            target: first.target,
            accessor: first.accessor,
            perms: last.perms,
            expires_ns: last.expires_ns,
            revocations: self.links.iter().map(|l| l.revocation).collect(),
        })
    }
}

/// The delegation rules between a link and the one it extends.
fn check_link(prev: &Capability, next: &Capability, i: usize) -> Result<(), CapError> {
    let bad = |reason| Err(CapError::BadDelegation { link: i, reason });
    if !prev.may_delegate() {
        return bad("the previous link does not allow delegation");
    }
    if next.signer != prev.delegate {
        return bad("not signed by the previous link's delegate key");
    }
    if next.perms & !prev.perms != 0 {
        return bad("grants rights the previous link does not hold");
    }
    if prev.expires_ns != 0 && (next.expires_ns == 0 || next.expires_ns > prev.expires_ns) {
        return bad("outlives the previous link");
    }
    if next.target != prev.target {
        return Err(CapError::TargetMismatch(i));
    }
    if next.accessor != prev.accessor {
        return Err(CapError::AccessorMismatch(i));
    }
    Ok(())
}

fn sign_link(grant: &Grant, key: &SigningKey) -> Result<Capability, CapError> {
    if grant.perms == 0 || grant.perms & !perms::ALL != 0 {
        return Err(CapFormatError::BadPerms(0, grant.perms).into());
    }
    let revocation: [u8; 16] = fsutil::random_bytes().map_err(|e| StoreError::Io {
        path: "/dev/urandom".into(),
        error: e,
    })?;
    let mut c = Capability {
        version: CAP_VERSION,
        flags: 0,
        perms: grant.perms,
        target: grant.target,
        accessor: grant.accessor,
        expires_ns: grant.expires_ns,
        revocation,
        signer: key.verifying_key().to_bytes(),
        delegate: grant.delegate.map(|k| k.to_bytes()).unwrap_or([0; 32]),
        signature: [0; 64],
    };
    c.signature = key.sign(&c.signed_bytes()).to_bytes();
    Ok(c)
}

impl Store {
    /// The owner public key in object `id`'s header (bound to its ID).
    pub fn owner_key(&self, id: ObjId) -> Result<[u8; 32], StoreError> {
        Ok(ObjectFile::open(&self.object_path(id), id)?
            .meta()
            .owner_key)
    }

    /// Whether revocation reference `r` is revoked.
    pub fn is_revoked(&self, r: &[u8; 16]) -> bool {
        self.root().join(REVOKED_DIR).join(hex(r)).exists()
    }

    /// Revokes `r` durably: every chain containing it is refused from now on.
    pub fn revoke(&self, r: &[u8; 16]) -> Result<(), StoreError> {
        let _lock = self.lock(crate::LockMode::Exclusive)?;
        let dir = self.root().join(REVOKED_DIR);
        fsutil::ensure_dir(&dir, 0o755)?;
        fsutil::write_atomic(&dir, &hex(r), b"", 0o644)
    }

    /// Files in `revoked/` that are not a revocation reference (for `fsck`).
    pub(crate) fn revocation_problems(&self) -> Result<Vec<(PathBuf, &'static str)>, StoreError> {
        let dir = self.root().join(REVOKED_DIR);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(StoreError::Io {
                    path: dir,
                    error: e,
                })
            }
        };
        let mut out = Vec::new();
        for ent in entries {
            let ent = ent.map_err(StoreError::io(&dir))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if name.starts_with(fsutil::TEMP_PREFIX) {
                out.push((ent.path(), "stray temp file left by an interrupted write"));
            } else if fsutil::unhex::<16>(&name).map(|r| hex(&r)) != Some(name) {
                out.push((
                    ent.path(),
                    "foreign file in the revocation list (not 32 lowercase hex digits)",
                ));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Verifies a chain against its target's owner key in this store at `now_ns`.
    pub fn verify_cap(&self, chain: &CapChain, now_ns: u64) -> Result<Verified, CapError> {
        let target = chain.links[0].target;
        let owner = self.owner_key(target).map_err(|e| match e {
            StoreError::NoSuchObject(id) => CapError::NoSuchTarget(id),
            other => CapError::Store(other),
        })?;
        chain.verify(&owner, now_ns, |r| self.is_revoked(r))
    }

    /// What the VMM calls when a guest running as `accessor` asks to map `target` with the
    /// capability file `cap_bytes`: the granted rights, or why not. Uncached; see
    /// [`CapCache::verify_for_map`].
    pub fn verify_for_map(
        &self,
        cap_bytes: &[u8],
        target: ObjId,
        accessor: &[u8; 16],
        now_ns: u64,
    ) -> Result<u32, CapError> {
        let chain = CapChain::parse(cap_bytes)?;
        check_subject(
            &chain.links[0].target,
            &chain.links[0].accessor,
            target,
            accessor,
        )?;
        Ok(self.verify_cap(&chain, now_ns)?.perms)
    }
}

fn check_subject(
    found_t: &ObjId,
    found_a: &[u8; 16],
    target: ObjId,
    accessor: &[u8; 16],
) -> Result<(), CapError> {
    if *found_t != target {
        return Err(CapError::WrongTarget {
            wanted: target,
            found: *found_t,
        });
    }
    if found_a != accessor {
        return Err(CapError::WrongAccessor {
            wanted: hex(accessor),
            found: hex(found_a),
        });
    }
    Ok(())
}

/// Verified chains of one VM, keyed by the SHA-256 of the capability file's bytes: a hit
/// checks expiry and revocation (one `stat` per link) but no signature.
#[derive(Default, Debug)]
pub struct CapCache {
    verified: HashMap<[u8; 32], Verified>,
}

impl CapCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached rights for these bytes, target and accessor if verified before and not
    /// expired at `now_ns`; `None` means "verify". Revocation is not checked here.
    pub fn lookup(
        &self,
        cap_bytes: &[u8],
        target: ObjId,
        accessor: &[u8; 16],
        now_ns: u64,
    ) -> Option<&Verified> {
        let key: [u8; 32] = Sha256::digest(cap_bytes).into();
        let v = self.verified.get(&key)?;
        let live = v.expires_ns == 0 || v.expires_ns > now_ns;
        (live && v.target == target && &v.accessor == accessor).then_some(v)
    }

    /// [`Store::verify_for_map`] that verifies signatures only the first time a file is seen.
    pub fn verify_for_map(
        &mut self,
        store: &Store,
        cap_bytes: &[u8],
        target: ObjId,
        accessor: &[u8; 16],
        now_ns: u64,
    ) -> Result<u32, CapError> {
        let key: [u8; 32] = Sha256::digest(cap_bytes).into();
        if let Some(v) = self.verified.get(&key) {
            check_subject(&v.target, &v.accessor, target, accessor)?;
            if v.expires_ns != 0 && v.expires_ns <= now_ns {
                self.verified.remove(&key);
            } else if let Some(i) = v.revocations.iter().position(|r| store.is_revoked(r)) {
                return Err(CapError::Revoked(i));
            } else {
                return Ok(v.perms);
            }
        }
        let chain = CapChain::parse(cap_bytes)?;
        check_subject(
            &chain.links[0].target,
            &chain.links[0].accessor,
            target,
            accessor,
        )?;
        let v = store.verify_cap(&chain, now_ns)?;
        let perms = v.perms;
        self.verified.insert(key, v);
        Ok(perms)
    }
}
