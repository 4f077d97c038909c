//! Capability chains: every refusal issue 5 lists has its own reason, every single-byte change
//! of a capability file is refused, the parser never panics, and the per-VM cache skips
//! signatures but not revocation or expiry.

use abi::cap::{Capability, CAP_SIZE, MAX_CHAIN};
use abi::fot::perms::{EXEC, READ, USE, WRITE};
use abi::id::ObjId;
use ed25519_dalek::{Signer, SigningKey};
use object_store::{
    context_id, CapCache, CapChain, CapError, CreateOptions, Grant, Store, DEFAULT_KEY,
};
use proptest::prelude::*;

const NOW: u64 = 1_000_000_000_000;
const HOUR: u64 = 3_600_000_000_000;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    id: ObjId,
    owner: SigningKey,
    alice: SigningKey,
    ctx: [u8; 16],
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let id = store.create(&CreateOptions::default()).unwrap();
    store.generate_key("alice").unwrap();
    Fixture {
        owner: store.signing_key(DEFAULT_KEY).unwrap(),
        alice: store.signing_key("alice").unwrap(),
        ctx: context_id("reader-ctx"),
        _dir: dir,
        store,
        id,
    }
}

impl Fixture {
    fn grant(&self, perms: u32, expires_ns: u64, delegate: Option<&SigningKey>) -> Grant {
        Grant {
            target: self.id,
            accessor: self.ctx,
            perms,
            expires_ns,
            delegate: delegate.map(|k| k.verifying_key()),
        }
    }

    fn root(&self, perms: u32, expires_ns: u64) -> CapChain {
        CapChain::sign_root(
            &self.grant(perms, expires_ns, Some(&self.alice)),
            &self.owner,
        )
        .unwrap()
    }

    fn verify(&self, bytes: &[u8]) -> Result<u32, CapError> {
        self.store.verify_for_map(bytes, self.id, &self.ctx, NOW)
    }
}

/// Re-signs a hand-edited link with `key`, bypassing the checks `CapChain::delegate` makes.
fn resign(mut c: Capability, key: &SigningKey) -> Capability {
    c.signer = key.verifying_key().to_bytes();
    c.signature = key.sign(&c.signed_bytes()).to_bytes();
    c
}

fn chain_bytes(links: &[Capability]) -> Vec<u8> {
    links.iter().flat_map(|l| l.to_bytes()).collect()
}

#[test]
fn owner_grant_and_delegation_verify() {
    let f = fixture();
    let root = f.root(READ | WRITE, NOW + HOUR);
    assert_eq!(f.verify(&root.to_bytes()).unwrap(), READ | WRITE);
    let d = root
        .delegate(&f.grant(READ, NOW + HOUR / 2, None), &f.alice)
        .unwrap();
    assert_eq!(d.links().len(), 2);
    assert_eq!(f.verify(&d.to_bytes()).unwrap(), READ);
    assert_eq!(context_id("reader-ctx"), f.ctx);
    assert_ne!(context_id("reader-ctx2"), f.ctx);
}

#[test]
fn every_single_byte_change_is_refused() {
    let f = fixture();
    let good = f.root(READ, 0).to_bytes();
    assert_eq!(good.len(), CAP_SIZE);
    for pos in 0..good.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = good.clone();
            b[pos] ^= flip;
            let r = f.verify(&b);
            assert!(r.is_err(), "byte {pos} ^ {flip:#x} was accepted");
        }
    }
}

#[test]
fn each_bad_input_has_its_own_reason() {
    let f = fixture();
    let root = f.root(READ | WRITE, NOW + HOUR);
    let r0 = root.links()[0];
    let msg = |r: Result<u32, CapError>| r.unwrap_err().to_string();

    // Forged: content changed after signing.
    let mut forged = r0;
    forged.perms = READ | WRITE | EXEC;
    assert!(msg(f.verify(&forged.to_bytes())).contains("signature does not verify"));

    // Signed by a key other than the owner's (validly signed, wrong key).
    let by_alice = resign(r0, &f.alice);
    assert!(msg(f.verify(&by_alice.to_bytes())).contains("not by the owner key"));

    // Wrong target: the map asks for another object; the chain names a missing object.
    let other = f.store.create(&CreateOptions::default()).unwrap();
    let e = f.store.verify_for_map(&root.to_bytes(), other, &f.ctx, NOW);
    assert!(matches!(e, Err(CapError::WrongTarget { .. })), "{e:?}");
    let mut missing = r0;
    missing.target = ObjId::from_u128(0x77);
    let missing = resign(missing, &f.owner);
    let e = f
        .store
        .verify_for_map(&missing.to_bytes(), missing.target, &f.ctx, NOW);
    assert!(matches!(e, Err(CapError::NoSuchTarget(_))), "{e:?}");

    // Wrong accessor.
    let e = f
        .store
        .verify_for_map(&root.to_bytes(), f.id, &context_id("other"), NOW);
    assert!(matches!(e, Err(CapError::WrongAccessor { .. })), "{e:?}");

    // Expired.
    let e = f
        .store
        .verify_for_map(&root.to_bytes(), f.id, &f.ctx, NOW + 2 * HOUR);
    assert!(matches!(e, Err(CapError::Expired { link: 0, .. })), "{e:?}");

    // Revoked: every chain containing the reference.
    let d = root
        .delegate(&f.grant(READ, NOW + HOUR, None), &f.alice)
        .unwrap();
    f.store.revoke(&r0.revocation).unwrap();
    assert!(matches!(f.verify(&d.to_bytes()), Err(CapError::Revoked(0))));
    assert!(matches!(
        f.verify(&root.to_bytes()),
        Err(CapError::Revoked(0))
    ));

    // Truncated, oversized, unknown version, too many links.
    let fresh = f.root(READ, 0).to_bytes();
    assert!(msg(f.verify(&fresh[..CAP_SIZE - 1])).contains("truncated or oversized"));
    let mut big = fresh.clone();
    big.push(0);
    assert!(msg(f.verify(&big)).contains("truncated or oversized"));
    assert!(msg(f.verify(&[])).contains("empty"));
    let mut v2 = fresh.clone();
    v2[8] = 2;
    assert!(msg(f.verify(&v2)).contains("unknown capability version 2"));
    let mut magic = fresh.clone();
    magic[0] = b'X';
    assert!(msg(f.verify(&magic)).contains("bad magic"));
    let nine = fresh.repeat(MAX_CHAIN + 1);
    assert!(msg(f.verify(&nine)).contains("exceeds the limit of 8"));
}

#[test]
fn invalid_delegations_are_refused() {
    let f = fixture();
    let root = f.root(READ | WRITE, NOW + HOUR);
    let r0 = root.links()[0];
    let child = |perms: u32, expires_ns: u64, key: &SigningKey| {
        let mut c = r0;
        c.perms = perms;
        c.expires_ns = expires_ns;
        c.delegate = [0; 32];
        resign(c, key)
    };
    let reason = |links: &[Capability]| match f.verify(&chain_bytes(links)) {
        Err(CapError::BadDelegation { link: 1, reason }) => reason,
        other => panic!("expected a bad delegation, got {other:?}"),
    };
    assert!(reason(&[r0, child(READ, NOW, &f.owner)]).contains("delegate key"));
    assert!(reason(&[r0, child(READ | USE, NOW, &f.alice)]).contains("rights"));
    assert!(reason(&[r0, child(READ, NOW + 2 * HOUR, &f.alice)]).contains("outlives"));
    assert!(reason(&[r0, child(READ, 0, &f.alice)]).contains("outlives"));
    // A link that may not be delegated cannot be extended.
    let leaf = child(READ, NOW, &f.alice);
    assert!(reason(&[
        CapChain::sign_root(&f.grant(READ, 0, None), &f.owner)
            .unwrap()
            .links()[0],
        leaf
    ])
    .contains("does not allow"));
    // Links disagreeing on target or accessor.
    let mut t = child(READ, NOW, &f.alice);
    t.target = ObjId::from_u128(5);
    let t = resign(t, &f.alice);
    assert!(matches!(
        f.verify(&chain_bytes(&[r0, t])),
        Err(CapError::TargetMismatch(1))
    ));
    let mut a = child(READ, NOW, &f.alice);
    a.accessor = context_id("x");
    let a = resign(a, &f.alice);
    assert!(matches!(
        f.verify(&chain_bytes(&[r0, a])),
        Err(CapError::AccessorMismatch(1))
    ));
    // The builder refuses the same things before signing anything useful.
    assert!(root
        .delegate(&f.grant(READ | EXEC, 0, None), &f.alice)
        .is_err());
    assert!(root.delegate(&f.grant(READ, NOW, None), &f.owner).is_err());
}

#[test]
fn eight_links_verify_and_a_ninth_is_refused() {
    let f = fixture();
    let mut chain = f.root(READ, 0);
    for _ in 1..MAX_CHAIN {
        chain = chain
            .delegate(&f.grant(READ, 0, Some(&f.alice)), &f.alice)
            .unwrap();
    }
    assert_eq!(f.verify(&chain.to_bytes()).unwrap(), READ);
    assert!(chain.delegate(&f.grant(READ, 0, None), &f.alice).is_err());
}

#[test]
fn cache_skips_signatures_but_not_revocation_or_expiry() {
    let f = fixture();
    let root = f.root(READ, NOW + HOUR);
    let bytes = root.to_bytes();
    let mut cache = CapCache::new();
    assert_eq!(
        cache
            .verify_for_map(&f.store, &bytes, f.id, &f.ctx, NOW)
            .unwrap(),
        READ
    );
    assert!(cache.lookup(&bytes, f.id, &f.ctx, NOW).is_some());
    assert!(cache.lookup(&bytes, f.id, &f.ctx, NOW + HOUR).is_none());
    assert!(cache
        .verify_for_map(&f.store, &bytes, f.id, &context_id("other"), NOW)
        .is_err());
    assert!(cache
        .verify_for_map(&f.store, &bytes, f.id, &f.ctx, NOW + HOUR)
        .is_err());
    f.store.revoke(&root.links()[0].revocation).unwrap();
    assert!(matches!(
        cache.verify_for_map(&f.store, &bytes, f.id, &f.ctx, NOW),
        Err(CapError::Revoked(0))
    ));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_parser(b in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = CapChain::parse(&b);
    }

    #[test]
    fn mutated_valid_chains_never_panic(pos in 0usize..CAP_SIZE * 2, val in any::<u8>()) {
        let mut b = vec![0u8; CAP_SIZE * 2];
        b[..8].copy_from_slice(b"TWZCAP\0\x01");
        b[CAP_SIZE..CAP_SIZE + 8].copy_from_slice(b"TWZCAP\0\x01");
        b[8] = 1;
        b[CAP_SIZE + 8] = 1;
        b[pos] = val;
        if let Ok(c) = CapChain::parse(&b) {
            let _ = c.verify(&[0; 32], NOW, |_| false);
        }
    }
}

#[test]
fn fsck_reports_foreign_files_in_the_revocation_list() {
    let f = fixture();
    f.store.revoke(&[7; 16]).unwrap();
    assert!(f.store.is_revoked(&[7; 16]));
    assert!(f.store.fsck().unwrap().is_clean());
    std::fs::write(f.store.root().join("revoked/junk"), b"").unwrap();
    let report = f.store.fsck().unwrap();
    assert!(!report.is_clean());
    assert!(report.problems[0].to_string().contains("revocation list"));
}
