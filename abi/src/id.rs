//! 128-bit object identifiers.

use core::fmt;

/// The identity of a persistent object: 128 bits, shown as 32 lowercase hex digits.
///
/// Stored big-endian so that the byte order on media matches the printed order. An ID binds the
/// object's owner key: the object store derives it as the first 16 bytes of
/// `SHA-512("twz-object-id-v1" || nonce || owner public key)`, so a key cannot be swapped under an
/// existing object. The all-zero ID is never a valid object.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ObjId(pub [u8; 16]);
crate::assert_size!(ObjId, 16);

/// Domain separator hashed in front of the nonce and owner key when deriving an [`ObjId`].
pub const ID_DERIVATION_DOMAIN: &[u8] = b"twz-object-id-v1";

impl ObjId {
    /// The null ID: names no object.
    pub const NULL: ObjId = ObjId([0; 16]);

    /// Builds an ID from its numeric value.
    pub const fn from_u128(v: u128) -> Self {
        ObjId(v.to_be_bytes())
    }

    /// The numeric value of the ID.
    pub const fn as_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// True for the null ID.
    pub const fn is_null(self) -> bool {
        self.as_u128() == 0
    }

    /// Parses exactly 32 hex digits (either case). Returns `None` for anything else.
    pub fn parse_hex(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 32 {
            return None;
        }
        let mut v: u128 = 0;
        for &c in b {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return None,
            };
            v = (v << 4) | d as u128;
        }
        Some(ObjId::from_u128(v))
    }
}

impl fmt::Display for ObjId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.as_u128())
    }
}

impl fmt::Debug for ObjId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::string::ToString;

    #[test]
    fn display_is_32_hex_digits() {
        let id = ObjId::from_u128(0xabc);
        assert_eq!(id.to_string(), "00000000000000000000000000000abc");
        assert_eq!(id.0[15], 0xbc);
    }

    #[test]
    fn parse_rejects_bad_input() {
        assert!(ObjId::parse_hex("").is_none());
        assert!(ObjId::parse_hex("0000000000000000000000000000abc").is_none());
        assert!(ObjId::parse_hex("0000000000000000000000000000abcg").is_none());
        assert!(ObjId::parse_hex("+0000000000000000000000000000abc").is_none());
    }

    proptest! {
        #[test]
        fn hex_round_trip(v in any::<u128>()) {
            let id = ObjId::from_u128(v);
            prop_assert_eq!(ObjId::parse_hex(&id.to_string()), Some(id));
            prop_assert_eq!(ObjId::parse_hex(&id.to_string().to_uppercase()), Some(id));
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = ObjId::parse_hex(&s);
        }
    }
}
