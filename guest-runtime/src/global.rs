//! A cell for the runtime's global state.

use core::cell::{RefCell, RefMut};

/// Global mutable state of the single-vCPU guest. Borrows are checked, so a re-entrant use (for
/// example a panic raised while the console is borrowed) is refused instead of aliasing.
pub struct Global<T>(RefCell<T>);

// SAFETY: guest programs run on one vCPU, and CPL3 code is never interrupted by other guest code
// (exceptions end the run), so the cell is never accessed from two threads at once. On the host,
// unit tests never touch the runtime's globals.
unsafe impl<T: Send> Sync for Global<T> {}

impl<T> Global<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Global(RefCell::new(value))
    }

    /// Borrows the state, or `None` if it is already borrowed further up the stack.
    pub fn try_lock(&self) -> Option<RefMut<'_, T>> {
        self.0.try_borrow_mut().ok()
    }
}
