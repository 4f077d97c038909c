//! Built-in guest images: the programs in `examples/`, built and embedded by `vmm/build.rs`, so
//! `twz-vmm run hello` works right after `cargo build`.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/images.rs"));
}

/// The ELF bytes of built-in image `name`, if there is one.
pub fn builtin(name: &str) -> Option<&'static [u8]> {
    generated::IMAGES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, elf)| *elf)
}

/// Names of all built-in images.
pub fn names() -> &'static [&'static str] {
    generated::NAMES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_a_static_x86_64_elf_at_the_image_base() {
        assert!(names().contains(&"hello"));
        for name in names() {
            let elf = builtin(name).unwrap_or_else(|| panic!("{name} is listed but not embedded"));
            assert_eq!(&elf[..4], b"\x7fELF", "{name}");
            assert_eq!(elf[4], 2, "{name} is 64-bit");
            assert_eq!(
                u16::from_le_bytes([elf[18], elf[19]]),
                62,
                "{name} is x86_64"
            );
            let entry = u64::from_le_bytes(elf[24..32].try_into().unwrap_or_default());
            assert!(
                (abi::memmap::IMAGE_BASE..abi::memmap::IMAGE_LIMIT).contains(&entry),
                "{name} entry {entry:#x}"
            );
        }
        assert_eq!(builtin("no-such-image"), None);
    }
}
