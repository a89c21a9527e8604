//! Coalescing: one request per key goes upstream, the others wait for it.
//!
//! The first miss for a key becomes the key's *writer* and holds a
//! [`Writer`] while its response comes in; later misses are *waiters*
//! and watch the writer's outcome. A writer that stores its response
//! hands every waiter the entry at once. One that finds its response
//! uncacheable, fails, or is dropped (its client left) lets every waiter
//! go upstream on its own at once, rather than one after another, as a
//! cache whose waiters take turns would. A waiter that waits past the
//! route's `lock_timeout` goes upstream too (nginx's
//! `proxy_cache_lock_timeout`).

use std::sync::Arc;

use dashmap::{DashMap, mapref::entry::Entry};
use tokio::sync::watch;

use super::entry::Stored;

/// How a fill ended, as its waiters see it.
#[derive(Debug, Clone)]
pub(super) enum Outcome {
    /// Still coming.
    Pending,
    /// Stored: serve it.
    Stored(Arc<Stored>),
    /// Nothing stored: go upstream yourself.
    GaveUp,
}

/// The fills in progress, by key.
#[derive(Debug, Default)]
pub(super) struct Fills {
    map: DashMap<Arc<str>, watch::Receiver<Outcome>>,
}

/// A request's place in a key's fill.
pub(super) enum Turn {
    /// Go upstream, and report through this.
    Write(Writer),
    /// Another request is filling the key: wait for it.
    Wait(watch::Receiver<Outcome>),
}

impl Fills {
    /// Joins the fill of `key`, starting it when none is in progress.
    pub fn join(self: &Arc<Self>, key: &Arc<str>) -> Turn {
        match self.map.entry(key.clone()) {
            Entry::Occupied(e) => Turn::Wait(e.get().clone()),
            Entry::Vacant(e) => {
                let (tx, rx) = watch::channel(Outcome::Pending);
                e.insert(rx);
                Turn::Write(Writer {
                    tx,
                    key: key.clone(),
                    fills: self.clone(),
                })
            }
        }
    }

    /// Whether a fill of `key` is in progress.
    pub fn filling(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }
}

/// The one request filling a key. Dropped without [`Writer::stored`], it
/// releases the waiters to go upstream themselves.
#[derive(Debug)]
pub(super) struct Writer {
    tx: watch::Sender<Outcome>,
    key: Arc<str>,
    fills: Arc<Fills>,
}

impl Writer {
    /// Hands `entry` to every waiter.
    pub fn stored(self, entry: Arc<Stored>) {
        self.tx.send_replace(Outcome::Stored(entry));
        // Drop runs next: the key is free, and GaveUp is not sent over
        // the stored entry (`send_if_modified` below keeps it).
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.fills.map.remove(&self.key);
        self.tx.send_if_modified(|o| {
            let pending = matches!(o, Outcome::Pending);
            if pending {
                *o = Outcome::GaveUp;
            }
            pending
        });
    }
}

/// Waits for a fill's outcome: the stored entry, or `None` (go upstream).
pub(super) async fn outcome(mut rx: watch::Receiver<Outcome>) -> Option<Arc<Stored>> {
    match rx.wait_for(|o| !matches!(o, Outcome::Pending)).await {
        Ok(o) => match &*o {
            Outcome::Stored(entry) => Some(entry.clone()),
            _ => None,
        },
        // The writer is gone without a word: nothing to wait for.
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dropped_writer_releases_every_waiter_at_once() {
        let fills = Arc::new(Fills::default());
        let key: Arc<str> = Arc::from("k");
        let Turn::Write(writer) = fills.join(&key) else {
            panic!("the first request writes");
        };
        let waiters: Vec<_> = (0..3)
            .map(|_| match fills.join(&key) {
                Turn::Wait(rx) => tokio::spawn(outcome(rx)),
                Turn::Write(_) => panic!("a second writer"),
            })
            .collect();
        assert!(fills.filling("k"));
        drop(writer);
        assert!(!fills.filling("k"));
        for w in waiters {
            assert!(w.await.unwrap().is_none());
        }
        // The key is free again.
        assert!(matches!(fills.join(&key), Turn::Write(_)));
    }
}
