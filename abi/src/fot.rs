//! Foreign Object Table entries: how an object names the objects its pointers point into.

use crate::id::ObjId;

/// Longest name a FOT entry (and the store's namespace) can hold, in bytes.
pub const MAX_NAME_LEN: usize = 96;

/// FOT entry flags.
pub mod flags {
    /// The entry is in use.
    pub const VALID: u32 = 1 << 0;
    /// The target is named by `name`, resolved through the store's namespace when first
    /// dereferenced (so the entry follows the name if it is later bound to another object).
    pub const NAMED: u32 = 1 << 1;
    /// The entry was deleted; its index must not be reused by pointers still holding it.
    pub const DELETED: u32 = 1 << 2;
    /// All flags this version knows.
    pub const ALL: u32 = VALID | NAMED | DELETED;
}

/// Access rights, used in FOT entries and capabilities.
pub mod perms {
    /// Read.
    pub const READ: u32 = 1 << 0;
    /// Write.
    pub const WRITE: u32 = 1 << 1;
    /// Execute.
    pub const EXEC: u32 = 1 << 2;
    /// Use (hold pointers into it, delegate).
    pub const USE: u32 = 1 << 3;
    /// All rights this version knows.
    pub const ALL: u32 = READ | WRITE | EXEC | USE;
}

/// The name resolver a named entry uses.
pub mod resolver {
    /// The store's name -> ID namespace.
    pub const STORE_NAMESPACE: u16 = 0;
}

/// One FOT entry, 128 bytes, little-endian, at `layout::fot_entry_offset(index)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FotEntry {
    /// Target object (when not [`flags::NAMED`]).
    pub id: ObjId,
    /// See [`flags`].
    pub flags: u32,
    /// Rights a pointer through this entry asks for; see [`perms`].
    pub perms: u32,
    /// Length of `name` in bytes (0 unless [`flags::NAMED`]).
    pub name_len: u16,
    /// See [`resolver`].
    pub resolver: u16,
    /// Reserved, zero.
    pub _rsv: [u8; 4],
    /// Target name, UTF-8, `name_len` bytes, zero padded.
    pub name: [u8; MAX_NAME_LEN],
}
crate::assert_size!(FotEntry, 128);

/// Byte offset of [`FotEntry::flags`] in an entry's encoding. Writers store the flags word last,
/// so an entry a crash interrupted is never live.
pub const FLAGS_OFFSET: usize = 16;

/// What is wrong with a FOT entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FotError {
    /// Flags outside [`flags::ALL`].
    UnknownFlags(u32),
    /// Permissions outside [`perms::ALL`].
    UnknownPerms(u32),
    /// A named entry whose name is empty, too long or not UTF-8.
    BadName,
    /// A by-ID entry whose ID is null.
    NullTarget,
    /// An unknown name resolver.
    UnknownResolver(u16),
}

impl core::fmt::Display for FotError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FotError::UnknownFlags(x) => write!(f, "unknown FOT flags {x:#x}"),
            FotError::UnknownPerms(x) => write!(f, "unknown permission bits {x:#x}"),
            FotError::BadName => write!(f, "named entry with an empty, overlong or non-UTF-8 name"),
            FotError::NullTarget => write!(f, "entry targets the null ID"),
            FotError::UnknownResolver(r) => write!(f, "unknown name resolver {r}"),
        }
    }
}

/// Where a valid entry points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FotTarget<'a> {
    /// A fixed object.
    Id(ObjId),
    /// A name in the store's namespace.
    Name(&'a str),
}

impl FotEntry {
    /// An unused entry.
    pub const EMPTY: FotEntry = FotEntry {
        id: ObjId::NULL,
        flags: 0,
        perms: 0,
        name_len: 0,
        resolver: 0,
        _rsv: [0; 4],
        name: [0; MAX_NAME_LEN],
    };

    /// An entry naming `id` with rights `perms`.
    pub const fn by_id(id: ObjId, perms: u32) -> Self {
        FotEntry {
            id,
            flags: flags::VALID,
            perms,
            ..Self::EMPTY
        }
    }

    /// An entry naming `name` (resolved on first use). `None` if the name is empty or too long.
    pub fn by_name(name: &str, perms: u32) -> Option<Self> {
        let b = name.as_bytes();
        if b.is_empty() || b.len() > MAX_NAME_LEN {
            return None;
        }
        let mut e = FotEntry {
            flags: flags::VALID | flags::NAMED,
            perms,
            name_len: b.len() as u16,
            ..Self::EMPTY
        };
        e.name[..b.len()].copy_from_slice(b);
        Some(e)
    }

    /// True when the entry is in use and not deleted.
    pub const fn is_live(&self) -> bool {
        self.flags & flags::VALID != 0 && self.flags & flags::DELETED == 0
    }

    /// The target of a live entry, after checking the entry is well formed.
    /// Returns `Ok(None)` for an unused or deleted entry.
    pub fn target(&self) -> Result<Option<FotTarget<'_>>, FotError> {
        if self.flags & !flags::ALL != 0 {
            return Err(FotError::UnknownFlags(self.flags));
        }
        if self.perms & !perms::ALL != 0 {
            return Err(FotError::UnknownPerms(self.perms));
        }
        if !self.is_live() {
            return Ok(None);
        }
        if self.flags & flags::NAMED != 0 {
            if self.resolver != resolver::STORE_NAMESPACE {
                return Err(FotError::UnknownResolver(self.resolver));
            }
            let n = self.name_len as usize;
            if n == 0 || n > MAX_NAME_LEN {
                return Err(FotError::BadName);
            }
            let s = core::str::from_utf8(&self.name[..n]).map_err(|_| FotError::BadName)?;
            Ok(Some(FotTarget::Name(s)))
        } else if self.id.is_null() {
            Err(FotError::NullTarget)
        } else {
            Ok(Some(FotTarget::Id(self.id)))
        }
    }

    /// Encodes the entry as its on-media bytes.
    pub fn to_bytes(&self) -> [u8; 128] {
        let mut b = [0u8; 128];
        b[0..16].copy_from_slice(&self.id.0);
        b[FLAGS_OFFSET..FLAGS_OFFSET + 4].copy_from_slice(&self.flags.to_le_bytes());
        b[20..24].copy_from_slice(&self.perms.to_le_bytes());
        b[24..26].copy_from_slice(&self.name_len.to_le_bytes());
        b[26..28].copy_from_slice(&self.resolver.to_le_bytes());
        b[28..32].copy_from_slice(&self._rsv);
        b[32..128].copy_from_slice(&self.name);
        b
    }

    /// Decodes an entry from its on-media bytes. Never panics; call [`FotEntry::target`] to check it.
    pub fn from_bytes(b: &[u8; 128]) -> Self {
        let mut e = Self::EMPTY;
        e.id.0.copy_from_slice(&b[0..16]);
        e.flags = u32::from_le_bytes([b[16], b[17], b[18], b[19]]);
        e.perms = u32::from_le_bytes([b[20], b[21], b[22], b[23]]);
        e.name_len = u16::from_le_bytes([b[24], b[25]]);
        e.resolver = u16::from_le_bytes([b[26], b[27]]);
        e._rsv.copy_from_slice(&b[28..32]);
        e.name.copy_from_slice(&b[32..128]);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn targets() {
        let id = ObjId::from_u128(42);
        assert_eq!(
            FotEntry::by_id(id, perms::READ).target(),
            Ok(Some(FotTarget::Id(id)))
        );
        let named = FotEntry::by_name("people", perms::READ).unwrap();
        assert_eq!(named.target(), Ok(Some(FotTarget::Name("people"))));
        assert_eq!(FotEntry::EMPTY.target(), Ok(None));
        assert_eq!(
            FotEntry::by_id(ObjId::NULL, 0).target(),
            Err(FotError::NullTarget)
        );
        assert!(FotEntry::by_name("", 0).is_none());
        let mut bad = named;
        bad.name_len = 200;
        assert_eq!(bad.target(), Err(FotError::BadName));
        bad = named;
        bad.flags |= 1 << 9;
        assert!(matches!(bad.target(), Err(FotError::UnknownFlags(_))));
    }

    #[test]
    fn bytes_match_repr_c() {
        let e = FotEntry::by_name("x", perms::ALL).unwrap();
        // SAFETY: FotEntry is repr(C), 128 bytes, integer and byte-array fields, no padding.
        let raw: [u8; 128] = unsafe { core::mem::transmute(e) };
        assert_eq!(raw, e.to_bytes());
    }

    proptest! {
        #[test]
        fn round_trip(v in proptest::collection::vec(any::<u8>(), 128)) {
            let mut b = [0u8; 128];
            b.copy_from_slice(&v);
            let e = FotEntry::from_bytes(&b);
            prop_assert_eq!(e.to_bytes(), b);
            let _ = e.target(); // never panics
        }
    }
}
