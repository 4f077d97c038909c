//! The metadata header at the top of every object.

use crate::id::ObjId;
use crate::layout;

/// `b"TWZOBJ\0\x01"` read little-endian.
pub const OBJ_MAGIC: u64 = u64::from_le_bytes(*b"TWZOBJ\0\x01");
/// The object format version this crate describes.
pub const OBJ_VERSION: u32 = 1;

/// Object flags.
pub mod flags {
    /// The object's data is a byte stream (for example an imported file); `alloc_top` is its end.
    pub const RAW: u64 = 1 << 0;
}

/// The metadata header, stored at [`layout::META_OFFSET`], little-endian.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjMeta {
    /// [`OBJ_MAGIC`].
    pub magic: u64,
    /// [`OBJ_VERSION`].
    pub version: u32,
    /// `size_of::<ObjMeta>()`, so readers can tell a newer, larger header.
    pub header_size: u32,
    /// This object's ID; must match the derivation from `nonce` and `owner_key`.
    pub id: ObjId,
    /// Random nonce hashed into the ID.
    pub nonce: [u8; 16],
    /// Ed25519 public key of the owner; capabilities for this object are signed by it.
    pub owner_key: [u8; 32],
    /// See [`flags`].
    pub flags: u64,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_ns: u64,
    /// First offset not yet handed out by the persistent allocator; `BASE_OFFSET..alloc_top` is in use.
    pub alloc_top: u64,
    /// One past the highest FOT index ever used (1 when the FOT is empty).
    pub fot_len: u32,
    /// Reserved, zero.
    pub _pad: u32,
    /// Words 0..3: the pending-transaction marker (`crate::txlog`, `ObjMeta::tx_anchor`); the rest reserved for the guest runtime's allocator and future fields, zero.
    pub reserved: [u64; 18],
}
crate::assert_size!(ObjMeta, 256);

/// What is wrong with a metadata header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaError {
    /// The magic number is not [`OBJ_MAGIC`].
    BadMagic(u64),
    /// The version is not one this code reads.
    BadVersion(u32),
    /// `header_size` is smaller than this version's header.
    BadHeaderSize(u32),
    /// `alloc_top` lies outside the data region.
    BadAllocTop(u64),
    /// `fot_len` is 0 or exceeds the table.
    BadFotLen(u32),
    /// The ID is null.
    NullId,
}

impl core::fmt::Display for MetaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MetaError::BadMagic(m) => write!(f, "bad magic {m:#018x} (not a twz object)"),
            MetaError::BadVersion(v) => write!(f, "unsupported object format version {v}"),
            MetaError::BadHeaderSize(s) => write!(f, "bad metadata header size {s}"),
            MetaError::BadAllocTop(t) => write!(f, "allocation top {t:#x} outside the data region"),
            MetaError::BadFotLen(n) => {
                write!(f, "FOT length {n} outside 1..={}", layout::FOT_SLOTS)
            }
            MetaError::NullId => write!(f, "null object ID"),
        }
    }
}

impl ObjMeta {
    /// A fresh header for a new, empty object.
    pub fn new(id: ObjId, nonce: [u8; 16], owner_key: [u8; 32], created_ns: u64) -> Self {
        ObjMeta {
            magic: OBJ_MAGIC,
            version: OBJ_VERSION,
            header_size: core::mem::size_of::<ObjMeta>() as u32,
            id,
            nonce,
            owner_key,
            flags: 0,
            created_ns,
            alloc_top: layout::BASE_OFFSET,
            fot_len: 1,
            _pad: 0,
            reserved: [0; 18],
        }
    }

    /// Checks the header's own invariants (not the ID derivation, which needs a hash).
    pub fn validate(&self) -> Result<(), MetaError> {
        if self.magic != OBJ_MAGIC {
            return Err(MetaError::BadMagic(self.magic));
        }
        if self.version != OBJ_VERSION {
            return Err(MetaError::BadVersion(self.version));
        }
        if (self.header_size as usize) < core::mem::size_of::<ObjMeta>() {
            return Err(MetaError::BadHeaderSize(self.header_size));
        }
        if self.alloc_top < layout::BASE_OFFSET || self.alloc_top > layout::DATA_END {
            return Err(MetaError::BadAllocTop(self.alloc_top));
        }
        if self.fot_len == 0 || self.fot_len > layout::FOT_SLOTS {
            return Err(MetaError::BadFotLen(self.fot_len));
        }
        if self.id.is_null() {
            return Err(MetaError::NullId);
        }
        Ok(())
    }

    /// Encodes the header as its on-media bytes.
    pub fn to_bytes(&self) -> [u8; 256] {
        let mut b = [0u8; 256];
        b[0..8].copy_from_slice(&self.magic.to_le_bytes());
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.header_size.to_le_bytes());
        b[16..32].copy_from_slice(&self.id.0);
        b[32..48].copy_from_slice(&self.nonce);
        b[48..80].copy_from_slice(&self.owner_key);
        b[80..88].copy_from_slice(&self.flags.to_le_bytes());
        b[88..96].copy_from_slice(&self.created_ns.to_le_bytes());
        b[96..104].copy_from_slice(&self.alloc_top.to_le_bytes());
        b[104..108].copy_from_slice(&self.fot_len.to_le_bytes());
        b[108..112].copy_from_slice(&self._pad.to_le_bytes());
        for (i, r) in self.reserved.iter().enumerate() {
            b[112 + i * 8..120 + i * 8].copy_from_slice(&r.to_le_bytes());
        }
        b
    }

    /// Decodes a header from its on-media bytes. Never panics; call [`ObjMeta::validate`] next.
    pub fn from_bytes(b: &[u8; 256]) -> Self {
        let u64_at = |o: usize| u64::from_le_bytes(arr(b, o));
        let u32_at = |o: usize| u32::from_le_bytes(arr(b, o));
        let mut reserved = [0u64; 18];
        for (i, r) in reserved.iter_mut().enumerate() {
            *r = u64_at(112 + i * 8);
        }
        ObjMeta {
            magic: u64_at(0),
            version: u32_at(8),
            header_size: u32_at(12),
            id: ObjId(arr(b, 16)),
            nonce: arr(b, 32),
            owner_key: arr(b, 48),
            flags: u64_at(80),
            created_ns: u64_at(88),
            alloc_top: u64_at(96),
            fot_len: u32_at(104),
            _pad: u32_at(108),
            reserved,
        }
    }
}

/// Copies `N` bytes at `off` out of a fixed 256-byte buffer; callers pass in-range constants.
fn arr<const N: usize>(b: &[u8; 256], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[off..off + N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fresh_header_is_valid() {
        let m = ObjMeta::new(ObjId::from_u128(7), [1; 16], [2; 32], 5);
        assert_eq!(m.validate(), Ok(()));
        // The byte encoding matches the in-memory repr(C) layout on little-endian hosts.
        // SAFETY: ObjMeta is repr(C), 256 bytes, with no padding and only integer fields.
        let raw: [u8; 256] = unsafe { core::mem::transmute(m) };
        assert_eq!(raw, m.to_bytes());
    }

    #[test]
    fn validation_names_the_problem() {
        let good = ObjMeta::new(ObjId::from_u128(7), [1; 16], [2; 32], 5);
        let mut m = good;
        m.magic ^= 1;
        assert!(matches!(m.validate(), Err(MetaError::BadMagic(_))));
        let mut m = good;
        m.version = 9;
        assert_eq!(m.validate(), Err(MetaError::BadVersion(9)));
        let mut m = good;
        m.alloc_top = layout::DATA_END + 1;
        assert!(matches!(m.validate(), Err(MetaError::BadAllocTop(_))));
        let mut m = good;
        m.fot_len = 0;
        assert_eq!(m.validate(), Err(MetaError::BadFotLen(0)));
        let mut m = good;
        m.id = ObjId::NULL;
        assert_eq!(m.validate(), Err(MetaError::NullId));
    }

    proptest! {
        #[test]
        fn round_trip(id in any::<u128>(), nonce in any::<[u8; 16]>(), key in any::<[u8; 32]>(),
                      t in any::<u64>(), top in any::<u64>(), fl in any::<u32>(), flags in any::<u64>()) {
            let mut m = ObjMeta::new(ObjId::from_u128(id), nonce, key, t);
            m.alloc_top = top;
            m.fot_len = fl;
            m.flags = flags;
            prop_assert_eq!(ObjMeta::from_bytes(&m.to_bytes()), m);
        }

        #[test]
        fn arbitrary_bytes_never_panic(v in proptest::collection::vec(any::<u8>(), 256)) {
            let mut b = [0u8; 256];
            b.copy_from_slice(&v);
            let _ = ObjMeta::from_bytes(&b).validate();
        }
    }
}
