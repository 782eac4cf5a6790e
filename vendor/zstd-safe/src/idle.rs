//! Contexts dropped on a thread, kept there for the next one that thread creates.
//!
//! Creating a context runs zstd's CPU feature check, three CPUID instructions,
//! and on a virtual machine every CPUID traps to the hypervisor: 2 to 5 us
//! each. The parquet crate creates a compression and a decompression context
//! for every column chunk it writes, so a partitioned write of a few thousand
//! chunks spent a fifth of its CPU in CPUID. A context reset with
//! `SessionAndParameters` is what a new one is (zstd.h recommends reuse), so
//! a dropped context is reset and kept instead of freed.

use core::cell::RefCell;
use core::ptr::NonNull;
use std::vec::Vec;

/// Idle contexts kept per thread and kind: a few rows' worth of column
/// chunks of a wide table.
const KEEP: usize = 64;

/// The idle contexts of one kind on this thread; freed when the thread ends.
struct Idle<T> {
    contexts: Vec<NonNull<T>>,
    free: unsafe extern "C" fn(*mut T) -> usize,
}

impl<T> Drop for Idle<T> {
    fn drop(&mut self) {
        for context in self.contexts.drain(..) {
            // Safety: an idle context is owned by this list alone.
            unsafe {
                (self.free)(context.as_ptr());
            }
        }
    }
}

std::thread_local! {
    static IDLE_CCTX: RefCell<Idle<zstd_sys::ZSTD_CCtx>> = RefCell::new(Idle {
        contexts: Vec::new(),
        free: zstd_sys::ZSTD_freeCCtx,
    });
    static IDLE_DCTX: RefCell<Idle<zstd_sys::ZSTD_DCtx>> = RefCell::new(Idle {
        contexts: Vec::new(),
        free: zstd_sys::ZSTD_freeDCtx,
    });
}

type Pool<T> = std::thread::LocalKey<RefCell<Idle<T>>>;

fn take<T>(pool: &'static Pool<T>) -> Option<NonNull<T>> {
    pool.try_with(|idle| idle.try_borrow_mut().ok()?.contexts.pop())
        .ok()
        .flatten()
}

/// Keeps a context that was reset; false when it must be freed instead (the
/// list is full, or the thread is ending).
fn keep<T>(pool: &'static Pool<T>, context: NonNull<T>) -> bool {
    pool.try_with(|idle| match idle.try_borrow_mut() {
        Ok(mut idle) if idle.contexts.len() < KEEP => {
            idle.contexts.push(context);
            true
        }
        _ => false,
    })
    .unwrap_or(false)
}

pub(crate) fn take_cctx() -> Option<NonNull<zstd_sys::ZSTD_CCtx>> {
    take(&IDLE_CCTX)
}

pub(crate) fn keep_cctx(context: NonNull<zstd_sys::ZSTD_CCtx>) -> bool {
    keep(&IDLE_CCTX, context)
}

pub(crate) fn take_dctx() -> Option<NonNull<zstd_sys::ZSTD_DCtx>> {
    take(&IDLE_DCTX)
}

pub(crate) fn keep_dctx(context: NonNull<zstd_sys::ZSTD_DCtx>) -> bool {
    keep(&IDLE_DCTX, context)
}
