//! Descriptors that caches keep open between requests (the static-file
//! cache's large files, the proxy cache's disk files), counted against
//! one budget for the whole process.
//!
//! Holding a file open saves each hit its `open` and `close` (nginx's
//! `open_file_cache`), but every held file is a descriptor that a
//! connection cannot have. So at most an eighth of the process's
//! descriptor limit (and never more than 4,096) is held, whoever holds
//! them; past it a cache opens per hit as before. nginx leaves
//! `open_file_cache` off by default for the same reason; here it is
//! bounded instead.

use std::{
    ops::Deref,
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

/// Files held open by caches, in the whole process.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// How many files the caches may hold open.
fn cap() -> usize {
    static CAP: OnceLock<usize> = OnceLock::new();
    *CAP.get_or_init(|| {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        usize::try_from(limit / 8).unwrap_or(usize::MAX).min(4096)
    })
}

/// An open file (or what owns one) that a cache keeps: counted in the
/// budget while it lives.
#[derive(Debug)]
pub(crate) struct Held<T>(T);

impl<T> Held<T> {
    /// Takes a place in the budget for `file`; `None` when it is spent.
    pub(crate) fn new(file: T) -> Option<Self> {
        HELD.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < cap()).then_some(n + 1)
        })
        .ok()?;
        Some(Self(file))
    }
}

impl<T> Deref for Held<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Drop for Held<T> {
    fn drop(&mut self) {
        HELD.fetch_sub(1, Ordering::Relaxed);
    }
}
