//! ELF loading that checks every bound before it copies a byte (as Solo5 does).
//!
//! Guests are static x86-64 `ET_EXEC` images linked between `IMAGE_BASE` and `IMAGE_LIMIT`.
//! Segments are loaded at their virtual address (guest virtual = guest physical). BSS needs no
//! copy: guest RAM is fresh anonymous memory, so the bytes past `p_filesz` are zero already.

use abi::memmap::{IMAGE_BASE, IMAGE_LIMIT};
use linux_loader::elf::{
    Elf64_Ehdr, Elf64_Phdr, EI_CLASS, EI_DATA, ELFCLASS64, ELFDATA2LSB, ELFMAG0, ELFMAG1, ELFMAG2,
    ELFMAG3, EM_X86_64, ET_EXEC, PF_X, PT_INTERP, PT_LOAD,
};
use vm_memory::{ByteValued, Bytes, GuestAddress, GuestMemoryMmap};

const EHDR_SIZE: usize = std::mem::size_of::<Elf64_Ehdr>();
const PHDR_SIZE: usize = std::mem::size_of::<Elf64_Phdr>();

/// Why an image was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoaderError {
    /// Shorter than an ELF header or without the ELF magic.
    #[error("not an ELF file")]
    NotElf,
    /// ELFCLASS32.
    #[error("32-bit ELF: guests must be 64-bit x86-64 images")]
    Not64Bit,
    /// Big-endian.
    #[error("big-endian ELF: guests must be little-endian x86-64 images")]
    BigEndian,
    /// Another machine.
    #[error("ELF for machine {0}, not x86-64")]
    WrongMachine(u16),
    /// Not `ET_EXEC` (e.g. a PIE or a relocatable object).
    #[error("ELF type {0} is not a static executable (link with -static -no-pie)")]
    NotExecutable(u16),
    /// Needs a dynamic loader.
    #[error("dynamically linked ELF (has an interpreter): guests must be static")]
    Dynamic,
    /// Program headers outside the file or of an unexpected size.
    #[error("program header table out of bounds or malformed")]
    BadProgramHeaders,
    /// Nothing to load.
    #[error("no loadable segment")]
    NoSegments,
    /// File range of a segment outside the file.
    #[error(
        "segment {index}: file range {offset:#x}+{size:#x} lies outside the {file_len}-byte file"
    )]
    SegmentPastFile {
        index: usize,
        offset: u64,
        size: u64,
        file_len: usize,
    },
    /// `p_filesz > p_memsz`.
    #[error("segment {index}: file size {filesz:#x} exceeds memory size {memsz:#x}")]
    FileLargerThanMemory {
        index: usize,
        filesz: u64,
        memsz: u64,
    },
    /// A segment outside `[IMAGE_BASE, IMAGE_LIMIT)`.
    #[error("segment {index}: [{start:#x}, {end:#x}) overlaps a reserved range (images must lie in [{IMAGE_BASE:#x}, {IMAGE_LIMIT:#x}))")]
    Reserved { index: usize, start: u64, end: u64 },
    /// Two segments share addresses.
    #[error("segments {a} and {b} overlap")]
    Overlap { a: usize, b: usize },
    /// Entry point not inside an executable segment.
    #[error("entry point {0:#x} is not inside an executable segment")]
    BadEntry(u64),
    /// The image leaves no room for heap, stack guard and stack.
    #[error("image ends at {end:#x}, but only {limit:#x} bytes of guest memory are left for it beside the stack (raise --mem)")]
    TooLarge { end: u64, limit: u64 },
    /// Copy into guest memory failed (should not happen after validation).
    #[error("cannot copy the image into guest memory: {0}")]
    Copy(String),
}

/// One segment to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Guest address.
    pub addr: u64,
    /// Offset in the file.
    pub offset: u64,
    /// Bytes copied from the file.
    pub filesz: u64,
    /// Bytes occupied in memory (the rest is zero).
    pub memsz: u64,
    /// Executable.
    pub exec: bool,
}

/// A validated image: what to copy where, and where it starts and ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Entry point.
    pub entry: u64,
    /// Segments in address order.
    pub segments: Vec<Segment>,
    /// Lowest segment address.
    pub start: u64,
    /// End of the highest segment (exclusive, including BSS).
    pub end: u64,
}

/// Copies a header out of `b` (which the caller checked is long enough; the file need not be
/// aligned for `T`, so it is copied rather than borrowed). x86-64 hosts are little-endian, like
/// the images accepted.
fn header<T: ByteValued + Default>(b: &[u8]) -> T {
    let mut h = T::default();
    let n = std::mem::size_of::<T>();
    h.as_mut_slice().copy_from_slice(&b[..n]);
    h
}

/// Parses and validates `file` for a guest whose image must end at or below `limit`
/// (guest RAM minus heap rounding, stack guard and stack).
pub fn parse(file: &[u8], limit: u64) -> Result<Image, LoaderError> {
    if file.len() < EHDR_SIZE || file[..4] != [ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3] {
        return Err(LoaderError::NotElf);
    }
    let ehdr: Elf64_Ehdr = header(file);
    if ehdr.e_ident[EI_CLASS] != ELFCLASS64 {
        return Err(LoaderError::Not64Bit);
    }
    if ehdr.e_ident[EI_DATA] != ELFDATA2LSB {
        return Err(LoaderError::BigEndian);
    }
    if ehdr.e_machine != EM_X86_64 {
        return Err(LoaderError::WrongMachine(ehdr.e_machine));
    }
    if ehdr.e_type != ET_EXEC {
        return Err(LoaderError::NotExecutable(ehdr.e_type));
    }
    let entry = ehdr.e_entry;
    let phoff = ehdr.e_phoff;
    let phentsize = usize::from(ehdr.e_phentsize);
    let phnum = usize::from(ehdr.e_phnum);
    if phnum > 0 && phentsize != PHDR_SIZE {
        return Err(LoaderError::BadProgramHeaders);
    }
    let table_end = usize::try_from(phoff)
        .ok()
        .and_then(|o| o.checked_add(phnum * PHDR_SIZE))
        .filter(|end| *end <= file.len())
        .ok_or(LoaderError::BadProgramHeaders)?;
    let table = &file[table_end - phnum * PHDR_SIZE..table_end];

    let mut segments = Vec::new();
    for (index, ph) in table.chunks_exact(PHDR_SIZE).enumerate() {
        let phdr: Elf64_Phdr = header(ph);
        let p_type = phdr.p_type;
        if p_type == PT_INTERP {
            return Err(LoaderError::Dynamic);
        }
        let (flags, offset, addr) = (phdr.p_flags, phdr.p_offset, phdr.p_vaddr);
        let (filesz, memsz) = (phdr.p_filesz, phdr.p_memsz);
        if p_type != PT_LOAD || memsz == 0 {
            continue;
        }
        if filesz > memsz {
            return Err(LoaderError::FileLargerThanMemory {
                index,
                filesz,
                memsz,
            });
        }
        let past_file = LoaderError::SegmentPastFile {
            index,
            offset,
            size: filesz,
            file_len: file.len(),
        };
        match offset.checked_add(filesz) {
            Some(end) if end <= file.len() as u64 => {}
            _ => return Err(past_file),
        }
        let end = addr.checked_add(memsz).ok_or(LoaderError::Reserved {
            index,
            start: addr,
            end: u64::MAX,
        })?;
        if addr < IMAGE_BASE || end > IMAGE_LIMIT {
            return Err(LoaderError::Reserved {
                index,
                start: addr,
                end,
            });
        }
        segments.push((
            index,
            Segment {
                addr,
                offset,
                filesz,
                memsz,
                exec: flags & PF_X != 0,
            },
        ));
    }
    if segments.is_empty() {
        return Err(LoaderError::NoSegments);
    }
    segments.sort_by_key(|(_, s)| s.addr);
    for pair in segments.windows(2) {
        let ((a, first), (b, second)) = (&pair[0], &pair[1]);
        if first.addr + first.memsz > second.addr {
            return Err(LoaderError::Overlap {
                a: *a.min(b),
                b: *a.max(b),
            });
        }
    }
    let segments: Vec<Segment> = segments.into_iter().map(|(_, s)| s).collect();
    let start = segments[0].addr;
    let end = segments
        .iter()
        .map(|s| s.addr + s.memsz)
        .max()
        .unwrap_or(start);
    if !segments
        .iter()
        .any(|s| s.exec && entry >= s.addr && entry < s.addr + s.memsz)
    {
        return Err(LoaderError::BadEntry(entry));
    }
    if end > limit {
        return Err(LoaderError::TooLarge { end, limit });
    }
    Ok(Image {
        entry,
        segments,
        start,
        end,
    })
}

/// Copies a validated image into fresh (zeroed) guest memory.
pub fn load(mem: &GuestMemoryMmap, file: &[u8], image: &Image) -> Result<(), LoaderError> {
    for s in &image.segments {
        // parse() checked offset + filesz <= file.len().
        let bytes = file
            .get(s.offset as usize..(s.offset + s.filesz) as usize)
            .ok_or(LoaderError::Copy("segment outside file".into()))?;
        mem.write_slice(bytes, GuestAddress(s.addr))
            .map_err(|e| LoaderError::Copy(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// (type, flags, offset, vaddr, filesz, memsz)
    pub(crate) type Ph = (u32, u32, u64, u64, u64, u64);

    /// Builds a synthetic ELF: header, program headers at 64, then `payload` at 0x1000.
    pub(crate) fn elf(entry: u64, phdrs: &[Ph], payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 0x1000];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&62u16.to_le_bytes());
        f[24..32].copy_from_slice(&entry.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for (i, (t, fl, off, va, fsz, msz)) in phdrs.iter().enumerate() {
            let p = 64 + i * 56;
            f[p..p + 4].copy_from_slice(&t.to_le_bytes());
            f[p + 4..p + 8].copy_from_slice(&fl.to_le_bytes());
            f[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
            f[p + 16..p + 24].copy_from_slice(&va.to_le_bytes());
            f[p + 24..p + 32].copy_from_slice(&va.to_le_bytes());
            f[p + 32..p + 40].copy_from_slice(&fsz.to_le_bytes());
            f[p + 40..p + 48].copy_from_slice(&msz.to_le_bytes());
        }
        f.extend_from_slice(payload);
        f
    }

    const LIMIT: u64 = 100 << 20;
    const TEXT: Ph = (PT_LOAD, 5, 0x1000, 0x20_0000, 0x10, 0x10);

    fn good() -> Vec<u8> {
        elf(
            0x20_0000,
            &[TEXT, (PT_LOAD, 6, 0x1000, 0x20_1000, 0x10, 0x3000)],
            &[0xAB; 0x10],
        )
    }

    #[test]
    fn accepts_a_static_image_and_loads_it_with_zero_bss() {
        let f = good();
        let img = parse(&f, LIMIT).unwrap();
        assert_eq!(
            (img.entry, img.start, img.end),
            (0x20_0000, 0x20_0000, 0x20_4000)
        );
        let ram = crate::memory::GuestRam::new(16 << 20).unwrap();
        load(ram.mem(), &f, &img).unwrap();
        let m = ram.mem();
        assert_eq!(m.read_obj::<u8>(GuestAddress(0x20_000F)).unwrap(), 0xAB);
        assert_eq!(
            m.read_obj::<u8>(GuestAddress(0x20_1010)).unwrap(),
            0,
            "BSS is zero"
        );
    }

    #[test]
    fn rejects_every_bad_image() {
        let mut cases: Vec<(Vec<u8>, LoaderError)> = vec![
            (b"#!/bin/sh\n".to_vec(), LoaderError::NotElf),
            (vec![0x7f, b'E', b'L'], LoaderError::NotElf),
        ];
        let mut f = good();
        f[4] = 1;
        cases.push((f, LoaderError::Not64Bit));
        let mut f = good();
        f[5] = 2;
        cases.push((f, LoaderError::BigEndian));
        let mut f = good();
        f[18] = 183; // aarch64
        cases.push((f, LoaderError::WrongMachine(183)));
        let mut f = good();
        f[16] = 3; // ET_DYN
        cases.push((f, LoaderError::NotExecutable(3)));
        let mut f = good();
        f[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        cases.push((f, LoaderError::BadProgramHeaders));
        cases.push((
            elf(
                0x20_0000,
                &[(3, 4, 0x1000, 0x20_0000, 1, 1), TEXT],
                &[0; 16],
            ),
            LoaderError::Dynamic,
        ));
        cases.push((elf(0x20_0000, &[], &[]), LoaderError::NoSegments));
        cases.push((
            elf(
                0x20_0000,
                &[(PT_LOAD, 5, 0x1000, 0x20_0000, 0x100, 0x100)],
                &[0; 16],
            ),
            LoaderError::SegmentPastFile {
                index: 0,
                offset: 0x1000,
                size: 0x100,
                file_len: 0x1010,
            },
        ));
        cases.push((
            elf(0x20_0000, &[(PT_LOAD, 5, u64::MAX, 0x20_0000, 2, 2)], &[]),
            LoaderError::SegmentPastFile {
                index: 0,
                offset: u64::MAX,
                size: 2,
                file_len: 0x1000,
            },
        ));
        cases.push((
            elf(
                0x20_0000,
                &[(PT_LOAD, 5, 0x1000, 0x20_0000, 0x20, 0x10)],
                &[0; 0x20],
            ),
            LoaderError::FileLargerThanMemory {
                index: 0,
                filesz: 0x20,
                memsz: 0x10,
            },
        ));
        cases.push((
            elf(
                0x1000,
                &[(PT_LOAD, 5, 0x1000, 0x1000, 0x10, 0x10)],
                &[0; 16],
            ),
            LoaderError::Reserved {
                index: 0,
                start: 0x1000,
                end: 0x1010,
            },
        ));
        cases.push((
            elf(
                0x20_0000,
                &[TEXT, (PT_LOAD, 6, 0x1000, IMAGE_LIMIT - 8, 0x10, 0x10)],
                &[0; 16],
            ),
            LoaderError::Reserved {
                index: 1,
                start: IMAGE_LIMIT - 8,
                end: IMAGE_LIMIT + 8,
            },
        ));
        cases.push((
            elf(
                0x20_0000,
                &[TEXT, (PT_LOAD, 6, 0x1000, u64::MAX - 4, 0x10, 0x10)],
                &[0; 16],
            ),
            LoaderError::Reserved {
                index: 1,
                start: u64::MAX - 4,
                end: u64::MAX,
            },
        ));
        cases.push((
            elf(
                0x20_0000,
                &[TEXT, (PT_LOAD, 6, 0x1000, 0x20_0008, 0x10, 0x10)],
                &[0; 16],
            ),
            LoaderError::Overlap { a: 0, b: 1 },
        ));
        cases.push((
            elf(0x30_0000, &[TEXT], &[0; 16]),
            LoaderError::BadEntry(0x30_0000),
        ));
        cases.push((
            elf(
                0x20_1000,
                &[TEXT, (PT_LOAD, 6, 0x1000, 0x20_1000, 0x10, 0x10)],
                &[0; 16],
            ),
            LoaderError::BadEntry(0x20_1000),
        ));
        cases.push((
            elf(
                0x20_0000,
                &[TEXT, (PT_LOAD, 6, 0x1000, 0x20_1000, 0x10, LIMIT)],
                &[0; 16],
            ),
            LoaderError::TooLarge {
                end: 0x20_1000 + LIMIT,
                limit: LIMIT,
            },
        ));
        for (i, (file, want)) in cases.into_iter().enumerate() {
            assert_eq!(parse(&file, LIMIT), Err(want), "case {i}");
        }
    }

    #[test]
    fn errors_are_one_line() {
        let e = parse(b"nope", LIMIT).unwrap_err().to_string();
        assert_eq!(e, "not an ELF file");
        let e = LoaderError::Reserved {
            index: 0,
            start: 0,
            end: 16,
        }
        .to_string();
        assert!(!e.contains('\n'));
    }
}
