//! [`Global`]: a `static` that the kernel mutates under a discipline the type system cannot see
//! (written only by the BSP before any AP runs, or only by the CPU that won a claim).

use core::cell::UnsafeCell;

/// Interior-mutable storage for a `static`. Every access goes through the raw pointer from
/// [`Global::get`] and documents, in its `SAFETY:` comment, why no other CPU or code path
/// accesses the same bytes at the same time.
#[repr(transparent)]
pub(crate) struct Global<T>(UnsafeCell<T>);

// SAFETY: `Global` hands out only raw pointers; each user justifies its exclusive access.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    /// Wraps an initial value.
    pub(crate) const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    /// A raw pointer to the value.
    pub(crate) const fn get(&self) -> *mut T {
        self.0.get()
    }
}
