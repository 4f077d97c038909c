//! How a slot's 1 GiB is cut into memslot-sized chunks.
//!
//! KVM's cost of adding a memslot, and of any change to the host mapping under one, grows with
//! the memslot's size, so an object is backed by small memslots created where the guest touches
//! it. The chunks grow geometrically from both ends toward the middle: 2, 2, 4, 8 ... 256 MiB
//! from offset 0 up, and the mirror image from the top down. The low end (null page, base, data)
//! and the top end (metadata, FOT, log) are where objects are used, so those chunks are small;
//! the whole object takes at most [`CHUNKS`] memslots.

use abi::layout::OBJ_SIZE;
use abi::memmap::LARGE_PAGE_SIZE;

/// Chunks per half (2 MiB, 2 MiB, 4 MiB ... 256 MiB = 512 MiB).
const PER_HALF: u32 = 9;
/// Chunks per slot (and memslots an object can take).
pub const CHUNKS: u32 = 2 * PER_HALF;
/// Size of one half of the object.
const HALF: u64 = OBJ_SIZE / 2;

/// One chunk of a slot: offsets `start..start + len` of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Index `0..CHUNKS` (low half first, then the top half from the top down).
    pub index: u32,
    /// First byte, as an offset into the object.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

/// The chunk of the low half holding offset `off` (`off < HALF`): (index, start, len).
fn low(off: u64) -> (u32, u64, u64) {
    let pages = off / LARGE_PAGE_SIZE;
    if pages == 0 {
        return (0, 0, LARGE_PAGE_SIZE);
    }
    let order = 63 - pages.leading_zeros();
    let start = LARGE_PAGE_SIZE << order;
    (order + 1, start, start)
}

/// The chunk holding offset `off` of an object; `None` beyond the object.
pub fn chunk_of(off: u64) -> Option<Chunk> {
    if off >= OBJ_SIZE {
        return None;
    }
    Some(if off < HALF {
        let (index, start, len) = low(off);
        Chunk { index, start, len }
    } else {
        // Mirror: distance from the top, and the low chunk of that distance flipped back.
        let (index, start, len) = low(OBJ_SIZE - 1 - off);
        Chunk {
            index: PER_HALF + index,
            start: OBJ_SIZE - start - len,
            len,
        }
    })
}

/// The chunks to back at map time: from offset 0 up to `alloc_top` (at least the first chunk),
/// and the top chunk (metadata page and FOT).
pub fn initial(alloc_top: u64) -> Vec<Chunk> {
    let top = alloc_top.clamp(1, HALF);
    let mut out = Vec::new();
    let mut off = 0;
    while off < top {
        let Some(c) = chunk_of(off) else { break };
        off = c.start + c.len;
        out.push(c);
    }
    out.extend(chunk_of(OBJ_SIZE - 1));
    out
}

/// Every chunk of a slot.
pub fn all() -> impl Iterator<Item = Chunk> {
    (0..PER_HALF).flat_map(|i| {
        let low_start = if i == 0 {
            0
        } else {
            LARGE_PAGE_SIZE << (i - 1)
        };
        [low_start, OBJ_SIZE - 1 - low_start]
            .into_iter()
            .filter_map(chunk_of)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::layout::{FOT_OFFSET, LOG_OFFSET, META_OFFSET};

    const MIB: u64 = 1 << 20;

    #[test]
    fn chunks_tile_the_object_and_grow_toward_the_middle() {
        let mut chunks: Vec<Chunk> = all().collect();
        assert_eq!(chunks.len(), CHUNKS as usize);
        chunks.sort_by_key(|c| c.start);
        let mut next = 0;
        for c in &chunks {
            assert_eq!(c.start, next, "no gap or overlap at {c:?}");
            assert_eq!(c.start % LARGE_PAGE_SIZE, 0);
            assert_eq!(c.start % c.len, 0, "aligned to its size: {c:?}");
            assert_eq!(chunk_of(c.start), Some(*c));
            assert_eq!(chunk_of(c.start + c.len - 1), Some(*c));
            next = c.start + c.len;
        }
        assert_eq!(next, OBJ_SIZE);
        let mut indices: Vec<u32> = chunks.iter().map(|c| c.index).collect();
        indices.sort_unstable();
        assert_eq!(indices, (0..CHUNKS).collect::<Vec<_>>());
        assert_eq!(chunk_of(OBJ_SIZE), None);
        assert_eq!(
            chunk_of(3 * MIB).map(|c| (c.start, c.len)),
            Some((2 * MIB, 2 * MIB))
        );
        assert_eq!(
            chunk_of(300 * MIB).map(|c| (c.start, c.len)),
            Some((256 * MIB, 256 * MIB))
        );
    }

    #[test]
    fn map_time_chunks_cover_data_metadata_and_fot() {
        let top = chunk_of(META_OFFSET).unwrap();
        assert_eq!(top.len, 2 * MIB);
        assert_eq!(chunk_of(FOT_OFFSET), Some(top));
        assert_ne!(chunk_of(LOG_OFFSET), Some(top), "the log is on demand");
        let fresh = initial(4096);
        assert_eq!(fresh, vec![chunk_of(0).unwrap(), top]);
        let grown = initial(5 * MIB);
        let starts: Vec<u64> = grown.iter().map(|c| c.start).collect();
        assert_eq!(starts, vec![0, 2 * MIB, 4 * MIB, OBJ_SIZE - 2 * MIB]);
        assert_eq!(initial(u64::MAX).len(), CHUNKS as usize / 2 + 1, "clamped");
    }
}
