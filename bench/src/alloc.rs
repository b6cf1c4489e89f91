//! A counting global allocator.
//!
//! Counters are thread-local (no atomics, so counting does not add cache-line traffic between the
//! client and the server thread). Each bench thread reads its own counters before and after the
//! measured section.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Forwards to the system allocator and counts, per thread, allocations, allocated bytes and live
/// bytes. `realloc` counts as one allocation of the new size.
pub struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static ALLOC_BYTES: Cell<u64> = const { Cell::new(0) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

#[inline]
fn on_alloc(size: usize) {
    // `try_with` so that the allocator can never panic, not even during thread teardown.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
    let _ = ALLOC_BYTES.try_with(|c| c.set(c.get() + size as u64));
    let _ = LIVE.try_with(|c| c.set(c.get() + size as i64));
}

#[inline]
fn on_free(size: usize) {
    let _ = LIVE.try_with(|c| c.set(c.get() - size as i64));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// bookkeeping touches only const-initialised thread-locals without destructors, which never
// allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_free(layout.size());
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            on_free(layout.size());
            on_alloc(new_size);
        }
        p
    }
}

/// This thread's counters at one point in time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    /// Number of allocations (including reallocations).
    pub allocs: u64,
    /// Bytes requested by those allocations.
    pub bytes: u64,
    /// Bytes allocated and not yet freed by this thread (can be negative in a delta).
    pub live: i64,
}

impl Snapshot {
    /// The counters of the calling thread.
    pub fn now() -> Self {
        Self {
            allocs: ALLOCS.with(Cell::get),
            bytes: ALLOC_BYTES.with(Cell::get),
            live: LIVE.with(Cell::get),
        }
    }

    /// What happened on this thread since `earlier`.
    pub fn since(self, earlier: Snapshot) -> Snapshot {
        Snapshot {
            allocs: self.allocs - earlier.allocs,
            bytes: self.bytes - earlier.bytes,
            live: self.live - earlier.live,
        }
    }

    /// Counters of this thread since `earlier`.
    pub fn elapsed(earlier: Snapshot) -> Snapshot {
        Self::now().since(earlier)
    }
}
