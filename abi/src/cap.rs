//! Signed capabilities: the on-media format of one link of a capability chain.
//!
//! A capability file is 1..=[`MAX_CHAIN`] links of exactly [`CAP_SIZE`] bytes, nothing else.
//! The first link is signed by the target object's owner key; each next one by the previous
//! link's `delegate` key. Signatures (Ed25519, `verify_strict`) are checked by the host's
//! object store; this module only encodes and decodes, so it needs no crypto.
//!
//! ```text
//! off  len  field
//!   0    8  magic "TWZCAP\0\x01"
//!   8    2  version (1)
//!  10    2  flags (none defined; must be 0)
//!  12    4  perms (fot::perms bits; non-zero, no unknown bits)
//!  16   16  target object ID
//!  32   16  accessor security-context ID
//!  48    8  expires_ns (Unix ns; 0 = never)
//!  56   16  revocation reference (random)
//!  72   32  signer public key
//! 104   32  delegate public key (all zero: may not be delegated)
//! 136   64  signature over bytes 0..136
//! ```
//! All integers are little-endian.

use crate::fot::perms;
use crate::id::ObjId;

/// The first 8 bytes of every capability.
pub const CAP_MAGIC: [u8; 8] = *b"TWZCAP\0\x01";
/// The layout version this build reads and writes.
pub const CAP_VERSION: u16 = 1;
/// Bytes of one link.
pub const CAP_SIZE: usize = 200;
/// Bytes covered by the signature: everything before it.
pub const SIGNED_LEN: usize = 136;
/// Most links in one chain.
pub const MAX_CHAIN: usize = 8;
/// Domain prefix of a named security context's ID: the first 16 bytes of
/// `SHA-512(CTX_ID_DOMAIN || name)`.
pub const CTX_ID_DOMAIN: &[u8] = b"twz-ctx-v1";

/// One decoded link. Field meanings are in the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    /// Layout version.
    pub version: u16,
    /// Flags; none are defined.
    pub flags: u16,
    /// Granted rights, [`perms`] bits.
    pub perms: u32,
    /// The object the rights are on.
    pub target: ObjId,
    /// The security context that may use them.
    pub accessor: [u8; 16],
    /// Expiry in Unix nanoseconds; 0 = never.
    pub expires_ns: u64,
    /// Random reference naming this link in the store's revocation list.
    pub revocation: [u8; 16],
    /// Public key that signed this link.
    pub signer: [u8; 32],
    /// Public key that may sign the next link; all zero when delegation is not allowed.
    pub delegate: [u8; 32],
    /// Ed25519 signature over the first [`SIGNED_LEN`] encoded bytes.
    pub signature: [u8; 64],
}

/// Why bytes are not a well-formed capability chain (signatures aside).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapFormatError {
    /// The file is empty.
    Empty,
    /// The length is not a whole number of links.
    Truncated(usize),
    /// More than [`MAX_CHAIN`] links.
    TooLong(usize),
    /// Link `n` does not start with [`CAP_MAGIC`].
    BadMagic(usize),
    /// Link `n` has an unknown version.
    UnknownVersion(usize, u16),
    /// Link `n` sets flags this version does not know.
    UnknownFlags(usize, u16),
    /// Link `n` grants no rights or unknown ones.
    BadPerms(usize, u32),
    /// Link `n` names the null object.
    NullTarget(usize),
}

impl core::fmt::Display for CapFormatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Empty => write!(f, "empty capability file"),
            Self::Truncated(n) => write!(
                f,
                "truncated or oversized capability file: {n} bytes is not a multiple of {CAP_SIZE}"
            ),
            Self::TooLong(n) => write!(f, "chain of {n} links exceeds the limit of {MAX_CHAIN}"),
            Self::BadMagic(i) => write!(f, "link {i}: not a twz capability (bad magic)"),
            Self::UnknownVersion(i, v) => write!(
                f,
                "link {i}: unknown capability version {v} (this build reads {CAP_VERSION})"
            ),
            Self::UnknownFlags(i, v) => write!(f, "link {i}: unknown flags {v:#x}"),
            Self::BadPerms(i, p) => write!(f, "link {i}: invalid permissions {p:#x}"),
            Self::NullTarget(i) => write!(f, "link {i}: target is the null object"),
        }
    }
}

impl Capability {
    /// Encodes the link, signature included.
    pub fn to_bytes(&self) -> [u8; CAP_SIZE] {
        let mut b = [0u8; CAP_SIZE];
        b[0..8].copy_from_slice(&CAP_MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[10..12].copy_from_slice(&self.flags.to_le_bytes());
        b[12..16].copy_from_slice(&self.perms.to_le_bytes());
        b[16..32].copy_from_slice(&self.target.0);
        b[32..48].copy_from_slice(&self.accessor);
        b[48..56].copy_from_slice(&self.expires_ns.to_le_bytes());
        b[56..72].copy_from_slice(&self.revocation);
        b[72..104].copy_from_slice(&self.signer);
        b[104..136].copy_from_slice(&self.delegate);
        b[136..200].copy_from_slice(&self.signature);
        b
    }

    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> [u8; SIGNED_LEN] {
        let mut out = [0u8; SIGNED_LEN];
        out.copy_from_slice(&self.to_bytes()[..SIGNED_LEN]);
        out
    }

    /// Decodes link number `index` (for error messages) and checks its fixed fields.
    pub fn from_bytes(index: usize, b: &[u8; CAP_SIZE]) -> Result<Self, CapFormatError> {
        let arr = |r: core::ops::Range<usize>| &b[r];
        let mut c = Capability {
            version: u16::from_le_bytes([b[8], b[9]]),
            flags: u16::from_le_bytes([b[10], b[11]]),
            perms: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
            target: ObjId([0; 16]),
            accessor: [0; 16],
            expires_ns: 0,
            revocation: [0; 16],
            signer: [0; 32],
            delegate: [0; 32],
            signature: [0; 64],
        };
        if arr(0..8) != CAP_MAGIC {
            return Err(CapFormatError::BadMagic(index));
        }
        if c.version != CAP_VERSION {
            return Err(CapFormatError::UnknownVersion(index, c.version));
        }
        if c.flags != 0 {
            return Err(CapFormatError::UnknownFlags(index, c.flags));
        }
        if c.perms == 0 || c.perms & !perms::ALL != 0 {
            return Err(CapFormatError::BadPerms(index, c.perms));
        }
        c.target.0.copy_from_slice(arr(16..32));
        c.accessor.copy_from_slice(arr(32..48));
        let mut exp = [0u8; 8];
        exp.copy_from_slice(arr(48..56));
        c.expires_ns = u64::from_le_bytes(exp);
        c.revocation.copy_from_slice(arr(56..72));
        c.signer.copy_from_slice(arr(72..104));
        c.delegate.copy_from_slice(arr(104..136));
        c.signature.copy_from_slice(arr(136..200));
        if c.target.is_null() {
            return Err(CapFormatError::NullTarget(index));
        }
        Ok(c)
    }

    /// Whether the holder may sign a further link.
    pub fn may_delegate(&self) -> bool {
        self.delegate != [0; 32]
    }
}

/// Checks a chain file's length; returns its number of links.
pub fn chain_len(total: usize) -> Result<usize, CapFormatError> {
    if total == 0 {
        return Err(CapFormatError::Empty);
    }
    let n = total / CAP_SIZE;
    if n * CAP_SIZE != total {
        return Err(CapFormatError::Truncated(total));
    }
    if n > MAX_CHAIN {
        return Err(CapFormatError::TooLong(n));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Capability {
        Capability {
            version: CAP_VERSION,
            flags: 0,
            perms: perms::READ | perms::WRITE,
            target: ObjId::from_u128(7),
            accessor: [3; 16],
            expires_ns: 0x0102_0304_0506_0708,
            revocation: [9; 16],
            signer: [1; 32],
            delegate: [2; 32],
            signature: [5; 64],
        }
    }

    #[test]
    fn round_trips_and_places_fields_as_documented() {
        let c = sample();
        let b = c.to_bytes();
        assert_eq!(&b[0..8], b"TWZCAP\0\x01");
        assert_eq!(&b[12..16], &3u32.to_le_bytes());
        assert_eq!(&b[48..56], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&b[136..], &[5; 64]);
        assert_eq!(Capability::from_bytes(0, &b), Ok(c));
        assert_eq!(&c.signed_bytes()[..], &b[..SIGNED_LEN]);
    }

    #[test]
    fn rejects_bad_fixed_fields() {
        let mut b = sample().to_bytes();
        b[8] = 2;
        assert_eq!(
            Capability::from_bytes(1, &b),
            Err(CapFormatError::UnknownVersion(1, 2))
        );
        let mut b = sample().to_bytes();
        b[12..16].copy_from_slice(&0x10u32.to_le_bytes());
        assert!(matches!(
            Capability::from_bytes(0, &b),
            Err(CapFormatError::BadPerms(0, 0x10))
        ));
        let mut b = sample().to_bytes();
        b[0] = b'X';
        assert_eq!(
            Capability::from_bytes(0, &b),
            Err(CapFormatError::BadMagic(0))
        );
    }

    #[test]
    fn chain_length_limits() {
        assert_eq!(chain_len(0), Err(CapFormatError::Empty));
        assert_eq!(chain_len(199), Err(CapFormatError::Truncated(199)));
        assert_eq!(chain_len(201), Err(CapFormatError::Truncated(201)));
        assert_eq!(chain_len(CAP_SIZE * 8), Ok(8));
        assert_eq!(chain_len(CAP_SIZE * 9), Err(CapFormatError::TooLong(9)));
    }
}
