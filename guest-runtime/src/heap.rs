//! The heap: power-of-two size classes with one free list each, carved from a bump region.
//!
//! Allocation and free are O(1) and the code is small enough to check by eye. The price is up
//! to 2x internal fragmentation and freed blocks that stay in their class (they are never split
//! or merged), which suits the short-lived unikernel programs this runtime serves.

use core::alloc::Layout;

/// Smallest block: room for the free-list link, and the common allocation alignment.
const MIN_SHIFT: u32 = 4;
/// Number of size classes: 16 B up to 2^63 B (only limited by the region in practice).
const CLASSES: usize = (usize::BITS - MIN_SHIFT) as usize;
/// Fresh blocks are aligned to their size, up to this; bigger blocks are page aligned.
const MAX_NATURAL_ALIGN: usize = 4096;

/// Size class of a request: the index of the smallest power-of-two block that holds `size`
/// bytes aligned to `align`. `None` if no block can.
pub fn class_of(layout: Layout) -> Option<usize> {
    let need = layout.size().max(layout.align()).max(1 << MIN_SHIFT);
    let block = need.checked_next_power_of_two()?;
    Some((block.trailing_zeros() - MIN_SHIFT) as usize)
}

/// Block size of class `c`.
pub const fn block_size(c: usize) -> usize {
    1 << (c as u32 + MIN_SHIFT)
}

const fn align_up(x: usize, a: usize) -> Option<usize> {
    match x.checked_add(a - 1) {
        Some(v) => Some(v & !(a - 1)),
        None => None,
    }
}

/// A heap over one address range. Free blocks hold the address of the next free block of their
/// class in their first word (0 ends a list).
#[derive(Debug)]
pub struct Heap {
    next: usize,
    end: usize,
    free: [usize; CLASSES],
}

impl Heap {
    /// A heap with no memory: every allocation fails until [`Heap::init`].
    pub const fn empty() -> Heap {
        Heap {
            next: 0,
            end: 0,
            free: [0; CLASSES],
        }
    }

    /// Hands the range `[start, end)` to the heap.
    ///
    /// # Safety
    /// The range must be memory that is readable and writable, used by nothing else, for as long
    /// as the heap is used.
    pub unsafe fn init(&mut self, start: usize, end: usize) {
        *self = Heap::empty();
        self.next = start.max(1 << MIN_SHIFT);
        self.end = end.max(self.next);
    }

    /// Bytes never handed out yet.
    pub fn untouched(&self) -> usize {
        self.end - self.next
    }

    /// Allocates a block for `layout`, or returns null.
    pub fn alloc(&mut self, layout: Layout) -> *mut u8 {
        let Some(c) = class_of(layout) else {
            return core::ptr::null_mut();
        };
        let head = self.free[c];
        if head != 0 && head & (layout.align() - 1) == 0 {
            // SAFETY: `head` is a free block of this class (put there by `dealloc`), whose first
            // word holds the next link.
            self.free[c] = unsafe { *(head as *const usize) };
            return head as *mut u8;
        }
        let size = block_size(c);
        let align = size.min(MAX_NATURAL_ALIGN).max(layout.align());
        let Some(start) = align_up(self.next, align) else {
            return core::ptr::null_mut();
        };
        match start.checked_add(size) {
            Some(end) if end <= self.end => {
                self.next = end;
                start as *mut u8
            }
            _ => core::ptr::null_mut(),
        }
    }

    /// Takes `size` bytes (aligned to `align`, a power of two) from the untouched region for good:
    /// no size class, never freed. For one big long-lived region, such as SQLite's own heap,
    /// which a size class would round up to the next power of two. Null if it does not fit.
    pub fn carve(&mut self, size: usize, align: usize) -> *mut u8 {
        if !align.is_power_of_two() {
            return core::ptr::null_mut();
        }
        let Some(start) = align_up(self.next, align) else {
            return core::ptr::null_mut();
        };
        match start.checked_add(size) {
            Some(end) if end <= self.end => {
                self.next = end;
                start as *mut u8
            }
            _ => core::ptr::null_mut(),
        }
    }

    /// Returns a block to its class's free list.
    ///
    /// # Safety
    /// `ptr` must come from [`Heap::alloc`] on this heap with the same `layout`, and not be freed
    /// already.
    pub unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        let Some(c) = class_of(layout) else { return };
        // SAFETY: the block is ours again and at least 16 bytes, aligned for a usize.
        unsafe { *(ptr as *mut usize) = self.free[c] };
        self.free[c] = ptr as usize;
    }

    /// True when a block allocated for `old` also fits `new_size` bytes (same class).
    pub fn fits_in_place(old: Layout, new_size: usize) -> bool {
        match Layout::from_size_align(new_size, old.align()) {
            Ok(new) => class_of(new) == class_of(old),
            Err(_) => false,
        }
    }
}

/// The `#[global_allocator]` of guest images.
#[cfg(feature = "guest")]
pub(crate) mod global {
    use core::alloc::{GlobalAlloc, Layout};

    use super::Heap;
    use crate::global::Global;

    pub(crate) static HEAP: Global<Heap> = Global::new(Heap::empty());

    pub(crate) struct GuestAlloc;

    // SAFETY: blocks come from `Heap`, which hands out disjoint, suitably aligned blocks of at
    // least the requested size and only reuses a block after it was freed.
    unsafe impl GlobalAlloc for GuestAlloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            match HEAP.try_lock() {
                Some(mut h) => h.alloc(layout),
                None => core::ptr::null_mut(),
            }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if let Some(mut h) = HEAP.try_lock() {
                // SAFETY: forwarded GlobalAlloc contract.
                unsafe { h.dealloc(ptr, layout) };
            }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if Heap::fits_in_place(layout, new_size) {
                return ptr;
            }
            // SAFETY: GlobalAlloc's contract makes `new_size` with `layout.align()` valid.
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            // SAFETY: forwarded GlobalAlloc contract.
            let new = unsafe { self.alloc(new_layout) };
            if !new.is_null() {
                // SAFETY: both blocks are valid for the smaller of the two sizes, and distinct.
                unsafe {
                    core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
            }
            new
        }
    }

    #[global_allocator]
    static ALLOCATOR: GuestAlloc = GuestAlloc;
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    struct Arena {
        _mem: Vec<u64>,
        heap: Heap,
    }

    fn arena(bytes: usize) -> Arena {
        let mut mem = alloc::vec![0u64; bytes / 8];
        let start = mem.as_mut_ptr() as usize;
        let mut heap = Heap::empty();
        // SAFETY: `mem` is owned by the arena and outlives the heap's use in each test.
        unsafe { heap.init(start, start + bytes) };
        Arena { _mem: mem, heap }
    }

    fn l(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn classes() {
        assert_eq!(class_of(l(1, 1)), Some(0));
        assert_eq!(class_of(l(16, 8)), Some(0));
        assert_eq!(class_of(l(17, 8)), Some(1));
        assert_eq!(class_of(l(8, 64)), Some(2), "alignment raises the class");
        assert_eq!(block_size(2), 64);
        assert_eq!(class_of(l(isize::MAX as usize - 7, 8)), Some(CLASSES - 1));
        assert!(Heap::fits_in_place(l(20, 8), 32));
        assert!(!Heap::fits_in_place(l(20, 8), 33));
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_reused() {
        let mut a = arena(1 << 20);
        let mut blocks = Vec::new();
        for (i, size) in [1usize, 7, 16, 100, 4000, 5000, 70_000]
            .iter()
            .cycle()
            .take(40)
            .enumerate()
        {
            let align = 1 << (i % 7);
            let p = a.heap.alloc(l(*size, align)) as usize;
            assert_ne!(p, 0, "allocation {i} of {size} bytes");
            assert_eq!(p % align, 0);
            blocks.push((p, *size, align));
        }
        let mut sorted = blocks.clone();
        sorted.sort();
        for w in sorted.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "blocks overlap: {w:?}");
        }
        // A freed block is handed out again for the same class.
        let (p, size, align) = blocks[3];
        // SAFETY: `p` came from this heap with this layout and is freed once.
        unsafe { a.heap.dealloc(p as *mut u8, l(size, align)) };
        assert_eq!(a.heap.alloc(l(size, align)) as usize, p);
    }

    #[test]
    fn runs_out_cleanly() {
        let mut a = arena(4096);
        assert!(!a.heap.alloc(l(2048, 8)).is_null());
        assert!(a.heap.alloc(l(4096, 8)).is_null());
        assert!(a.heap.alloc(l(isize::MAX as usize - 7, 8)).is_null());
        let mut e = Heap::empty();
        assert!(e.alloc(l(1, 1)).is_null());
    }

    #[test]
    fn carving_takes_exact_sizes_and_leaves_the_rest() {
        let mut a = arena(1 << 20);
        let before = a.heap.untouched();
        let p = a.heap.carve(600_000, 4096) as usize;
        assert_ne!(p, 0);
        assert_eq!(p % 4096, 0);
        assert!(
            before - a.heap.untouched() < 600_000 + 4096,
            "no rounding to 1 MiB"
        );
        // What is left still serves ordinary allocations, outside the carved range.
        let q = a.heap.alloc(l(100, 8)) as usize;
        assert!(q >= p + 600_000);
        assert!(a.heap.carve(1 << 20, 8).is_null(), "too big");
        assert!(a.heap.carve(8, 3).is_null(), "bad alignment");
    }

    #[test]
    fn large_alignment_skips_misaligned_free_blocks() {
        let mut a = arena(1 << 20);
        let p = a.heap.alloc(l(16384, 4096));
        // SAFETY: freed once, with its layout.
        unsafe { a.heap.dealloc(p, l(16384, 4096)) };
        let q = a.heap.alloc(l(16384, 16384)) as usize;
        assert_eq!(q % 16384, 0);
    }
}
