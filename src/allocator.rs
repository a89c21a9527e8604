//! The binary's global allocator: mimalloc, asked through its plain
//! entry points wherever the alignment allows.
//!
//! The `mimalloc` crate's `GlobalAlloc` sends every allocation to
//! `mi_malloc_aligned`, whose fast path covers small blocks only: past
//! 1 KiB (hyper's buffers, a header map's entries) it falls to a generic
//! path, sometimes over-allocating to align, at about 250 instructions
//! a call; `mi_malloc` serves the same sizes from its size classes. Its
//! blocks are 8-aligned at least (16 for sizes that are multiples of
//! 16), which is what a layout of alignment 8 or less asks.

#![allow(unsafe_code)]

use std::{
    alloc::{GlobalAlloc, Layout},
    ffi::c_void,
};

use libmimalloc_sys as mi;

/// What `mi_malloc` aligns every block to.
const PLAIN_ALIGN: usize = 8;

/// mimalloc, through `mi_malloc` where the alignment allows.
#[derive(Debug)]
pub struct Allocator;

// SAFETY: every path returns mimalloc memory of at least `layout.size()`
// bytes aligned to `layout.align()` (plain calls only for alignments
// mimalloc always gives), or null; `mi_free` frees either kind.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain FFI calls into mimalloc.
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from one of the calls above.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from one of the calls above, with `layout`.
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi::mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}
