//! Built-in guest images: placeholder until the guest build lands.

/// Built-in images by name.
pub fn builtin(_name: &str) -> Option<&'static [u8]> {
    None
}
