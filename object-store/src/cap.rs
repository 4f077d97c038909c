//! Signed capabilities on the host: parse, sign, delegate, verify, revoke, and a per-VM cache of
//! verified results so a second map of the same object checks no signature.
//!
//! The format is [`abi::cap`]. Revoked references live in `<store>/revoked/<32 hex>` (empty
//! files written crash-safely); a chain with any revoked link is refused.
//!
//! A capability *file* holds one chain, or a bundle of chains (one per object, so that one file
//! can grant a whole structure, for example a list head and its nodes). A bundle never reaches a
//! guest; it is the host's container:
//!
//! A security context's capabilities can also be stored in the store, as the raw object named
//! `ctx:<context name>` holding one such file ([`Store::add_context_caps`], `twz-vmm ctx add`);
//! a guest run in that context holds them. The file is a bearer list: every chain in it is
//! still verified at map time.
//!
//! ```text
//! off  len  field
//!   0    8  magic "TWZCAPS\x01"
//!   8    4  number of chains n (1..=MAX_BUNDLE)
//!  12    4  reserved, 0
//!  16   ..  n times: u32 number of links k (1..=abi::cap::MAX_CHAIN), then k links of 200 bytes
//! ```
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

pub(crate) const REVOKED_DIR: &str = "revoked";
/// Context objects are named this followed by the context's name.
const CONTEXT_PREFIX: &str = "ctx:";

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
    /// A bundle file's framing is wrong.
    #[error("truncated or oversized capability bundle: {0}")]
    Bundle(String),
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CapFormatError> for CapError {
    fn from(e: CapFormatError) -> Self {
        CapError::Format(e)
    }
}

/// The first 8 bytes of a capability bundle file.
pub const BUNDLE_MAGIC: [u8; 8] = *b"TWZCAPS\x01";
/// Most chains in one bundle file.
pub const MAX_BUNDLE: usize = 4096;
const BUNDLE_HEADER: usize = 16;

/// Why a bundle's framing is unusable (each chain in it is then parsed as usual).
fn bad_bundle(reason: String) -> CapError {
    CapError::Bundle(reason)
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

    /// Parses a capability file: one chain, or a bundle of chains; never panics.
    pub fn parse_file(bytes: &[u8]) -> Result<Vec<CapChain>, CapError> {
        let Some(mut rest) = bytes.strip_prefix(&BUNDLE_MAGIC[..]) else {
            return Ok(vec![CapChain::parse(bytes)?]);
        };
        let word = |b: &[u8], at: usize| -> Option<u32> {
            let w: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
            Some(u32::from_le_bytes(w))
        };
        let (Some(n), Some(reserved)) = (word(rest, 0), word(rest, 4)) else {
            return Err(bad_bundle(format!(
                "{} bytes is shorter than its header",
                bytes.len()
            )));
        };
        if reserved != 0 {
            return Err(bad_bundle(format!(
                "reserved header word is {reserved:#x}, not 0"
            )));
        }
        let n = n as usize;
        if n == 0 || n > MAX_BUNDLE {
            return Err(bad_bundle(format!(
                "{n} chains (must be 1 to {MAX_BUNDLE})"
            )));
        }
        rest = &rest[BUNDLE_HEADER - BUNDLE_MAGIC.len()..];
        let mut chains = Vec::with_capacity(n);
        for i in 0..n {
            let k = word(rest, 0)
                .ok_or_else(|| bad_bundle(format!("chain {i} of {n} is missing")))?
                as usize;
            if k == 0 || k > cap::MAX_CHAIN {
                return Err(bad_bundle(format!("chain {i} claims {k} links")));
            }
            let body = rest
                .get(4..4 + k * CAP_SIZE)
                .ok_or_else(|| bad_bundle(format!("chain {i} of {n} is cut short")))?;
            chains.push(CapChain::parse(body)?);
            rest = &rest[4 + k * CAP_SIZE..];
        }
        if !rest.is_empty() {
            return Err(bad_bundle(format!(
                "{} bytes after the last chain",
                rest.len()
            )));
        }
        Ok(chains)
    }

    /// Encodes chains as a capability file: the plain chain for one, a bundle for several.
    pub fn encode_file(chains: &[CapChain]) -> Vec<u8> {
        if let [one] = chains {
            return one.to_bytes();
        }
        let mut out = BUNDLE_MAGIC.to_vec();
        out.extend_from_slice(&(chains.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        for c in chains {
            out.extend_from_slice(&(c.links.len() as u32).to_le_bytes());
            out.extend_from_slice(&c.to_bytes());
        }
        out
    }

    /// The object the chain grants rights on.
    pub fn target(&self) -> ObjId {
        self.links[0].target
    }

    /// The security context the chain is for.
    pub fn accessor(&self) -> [u8; 16] {
        self.links[0].accessor
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
                out.push((ent.path(), crate::fsck::STRAY_TEMP));
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

    /// The name of the object holding security context `ctx`'s stored capabilities.
    pub fn context_object_name(ctx: &str) -> String {
        format!("{CONTEXT_PREFIX}{ctx}")
    }

    /// The capability chains stored in context `ctx`'s object (a raw object holding one
    /// capability file; see the module documentation), none if it has no object.
    pub fn context_caps(&self, ctx: &str) -> Result<Vec<CapChain>, CapError> {
        let name = Self::context_object_name(ctx);
        crate::names::validate_name(&name)?;
        let Some(id) = self.lookup(&name)? else {
            return Ok(Vec::new());
        };
        let mut bytes = Vec::new();
        self.export_raw(id, &mut bytes)?;
        CapChain::parse_file(&bytes)
    }

    /// Adds `chains` to context `ctx`'s object (created on first use, replaced atomically);
    /// chains it holds already are skipped. Returns how many were added.
    pub fn add_context_caps(&self, ctx: &str, chains: &[CapChain]) -> Result<usize, CapError> {
        let name = Self::context_object_name(ctx);
        let mut held = self.context_caps(ctx)?;
        let before = held.len();
        for c in chains {
            if !held.contains(c) {
                held.push(c.clone());
            }
        }
        if held.len() > MAX_BUNDLE {
            return Err(bad_bundle(format!(
                "context {ctx:?} would hold {} chains (at most {MAX_BUNDLE})",
                held.len()
            )));
        }
        let added = held.len() - before;
        if added > 0 {
            let bytes = CapChain::encode_file(&held);
            let opts = crate::ImportOptions {
                replace: true,
                ..crate::ImportOptions::named(&name)
            };
            let label = PathBuf::from(format!("context {ctx}"));
            self.import_raw(
                &opts,
                &mut bytes.as_slice(),
                Some(bytes.len() as u64),
                &label,
            )?;
        }
        Ok(added)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u128) -> CapChain {
        let key = SigningKey::from_bytes(&[7; 32]);
        let grant = Grant {
            target: ObjId::from_u128(n),
            accessor: context_id("t"),
            perms: perms::READ,
            expires_ns: 0,
            delegate: None,
        };
        CapChain::sign_root(&grant, &key).expect("sign")
    }

    #[test]
    fn files_hold_one_chain_or_a_bundle() {
        let one = CapChain::encode_file(&[chain(1)]);
        assert_eq!(
            one.len(),
            CAP_SIZE,
            "a single chain stays in the abi format"
        );
        assert_eq!(
            CapChain::parse_file(&one).expect("one"),
            vec![chain_of(&one)]
        );
        let chains = vec![chain(1), chain(2), chain(3)];
        let file = CapChain::encode_file(&chains);
        let back = CapChain::parse_file(&file).expect("bundle");
        assert_eq!(back.iter().map(CapChain::target).collect::<Vec<_>>(), {
            chains.iter().map(CapChain::target).collect::<Vec<_>>()
        });
    }

    fn chain_of(bytes: &[u8]) -> CapChain {
        CapChain::parse(bytes).expect("parse")
    }

    #[test]
    fn bad_bundles_are_refused_with_a_reason() {
        let file = CapChain::encode_file(&[chain(1), chain(2)]);
        for cut in [9, 16, 20, file.len() - 1] {
            let e = CapChain::parse_file(&file[..cut]).expect_err("cut");
            assert!(
                e.to_string().starts_with("truncated or oversized"),
                "{cut}: {e}"
            );
        }
        let mut longer = file.clone();
        longer.push(0);
        assert!(CapChain::parse_file(&longer).is_err());
        let mut zero = file.clone();
        zero[8..12].copy_from_slice(&0u32.to_le_bytes());
        assert!(CapChain::parse_file(&zero).is_err());
        let mut many_links = file.clone();
        many_links[16..20].copy_from_slice(&9u32.to_le_bytes());
        assert!(CapChain::parse_file(&many_links).is_err());
        let mut bad_version = file;
        bad_version[20 + 8] = 9;
        let e = CapChain::parse_file(&bad_version).expect_err("version");
        assert!(
            e.to_string().contains("unknown capability version 9"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod context_tests {
    use super::*;
    use crate::CreateOptions;

    #[test]
    fn contexts_store_their_capabilities_in_an_object() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path().join("store")).expect("store");
        assert_eq!(store.context_caps("reader").expect("none"), vec![]);
        let key = store.signing_key(crate::DEFAULT_KEY).expect("key");
        let chains: Vec<CapChain> = (0..2)
            .map(|_| {
                let target = store.create(&CreateOptions::default()).expect("create");
                let g = Grant {
                    target,
                    accessor: context_id("reader"),
                    perms: perms::READ,
                    expires_ns: 0,
                    delegate: None,
                };
                CapChain::sign_root(&g, &key).expect("sign")
            })
            .collect();
        assert_eq!(
            store.add_context_caps("reader", &chains[..1]).expect("add"),
            1
        );
        assert_eq!(
            store.add_context_caps("reader", &chains).expect("add"),
            1,
            "dedup"
        );
        assert_eq!(store.context_caps("reader").expect("read"), chains);
        assert!(store.lookup("ctx:reader").expect("lookup").is_some());
        assert!(
            store.context_caps("a/b").is_err(),
            "not a valid object name"
        );
    }
}
