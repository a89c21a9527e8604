//! The file cache: metadata for every file served, bodies for small ones,
//! bounded by bytes.
//!
//! Measured here, `tokio::fs` per request reached about 25k req/s and an
//! in-memory `Bytes` cache about 91k (nginx: 64k). An entry is trusted for
//! [`REVALIDATE`] and then looked up again, so an edited file is served
//! fresh within a second, at the cost of one `stat` per file per second.
//! An entry for a file too large to keep in memory holds it open instead
//! ([`CachedFile::open`], like nginx's `open_file_cache`): each download
//! costs one `fstat` to see that it is unchanged, where opening, mapping,
//! unmapping and closing it on each took Troupe's CPU per 1 MiB answer
//! from 1.08× nginx's to 1.22–1.25× (`BENCHMARKS.md`, static-1m). A file
//! renamed over the path is another inode, and the entry is dropped at
//! its next check.
//!
//! quick_cache (S3-FIFO) holds the entries, each weighed by its body plus
//! a fixed overhead, within `cache_total_bytes`: a file that becomes hot
//! later displaces colder ones instead of never being cached. A hit costs
//! what a `DashMap` hit did: one shard read lock and an `Arc` clone.

use std::{
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, UNIX_EPOCH},
};

use bytes::Bytes;
use http::HeaderValue;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter, sync::Cache};

use super::resolve::FileMeta;
use crate::{
    error::HttpError,
    held::Held,
    observe::metrics::{StaticCacheMetrics, static_cache},
    sendfile::OpenFile,
};

/// How long a cache entry is trusted before its file is stat'ed again.
pub const REVALIDATE: Duration = Duration::from_secs(1);

/// What an entry weighs beyond its body: its path, headers and the map's
/// own bookkeeping, roughly.
const ENTRY_OVERHEAD: u64 = 512;

/// Bounds on what the cache holds.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// Files up to this size keep their body in memory.
    pub max_file_bytes: u64,
    /// Total weight of the entries kept: their bodies plus a small
    /// overhead each. Past it, the coldest entries are evicted.
    pub total_bytes: u64,
    /// About how many entries to expect (sizes the cache's tables).
    pub max_entries: usize,
}

/// One file, with its response headers prepared.
#[derive(Debug)]
pub(super) struct CachedFile {
    pub meta: FileMeta,
    /// The whole file, when small enough to keep.
    pub body: Option<Bytes>,
    pub etag: HeaderValue,
    pub last_modified: HeaderValue,
    pub content_type: HeaderValue,
    /// Milliseconds since the cache's epoch when the file was last stat'ed.
    checked_ms: AtomicU64,
    /// The file kept open for the requests that stream it (large files),
    /// while the entry lives and there is room in the budget ([`crate::held`]).
    held: OnceLock<Held<Arc<OpenFile>>>,
}

/// Weighs an entry by its body and key.
#[derive(Debug, Clone)]
struct ByBytes;

impl Weighter<String, Arc<CachedFile>> for ByBytes {
    fn weight(&self, key: &String, val: &Arc<CachedFile>) -> u64 {
        ENTRY_OVERHEAD + key.len() as u64 + val.body.as_ref().map_or(0, |b| b.len() as u64)
    }
}

/// Counts evictions in the metrics.
#[derive(Debug, Clone)]
struct Counted(&'static StaticCacheMetrics);

impl Lifecycle<String, Arc<CachedFile>> for Counted {
    type RequestState = ();

    fn on_evict(&self, _: &mut (), _: String, _: Arc<CachedFile>) {
        self.0.evictions.inc();
    }
}

type Map = Cache<String, Arc<CachedFile>, ByBytes, DefaultHashBuilder, Counted>;

#[derive(Debug)]
pub(super) struct FileCache {
    map: Map,
    limits: CacheLimits,
    epoch: Instant,
    metrics: &'static StaticCacheMetrics,
    /// Held across an insert, so the gauges move by exactly what it changed
    /// (misses only; hits never take it).
    inserting: Mutex<()>,
}

impl FileCache {
    pub fn new(limits: CacheLimits) -> Self {
        // Each shard has its own share of the bound: keep shards few enough
        // that the largest body kept still fits in one share.
        let per_shard = limits.max_file_bytes.saturating_add(ENTRY_OVERHEAD) * 4;
        let shards = (limits.total_bytes / per_shard.max(1)).clamp(1, 16) as usize;
        let items = limits.max_entries.max(16);
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity(items)
            .weight_capacity(limits.total_bytes)
            .shards(shards)
            .build()
            .expect("the options are all set");
        let metrics = static_cache();
        Self {
            map: Cache::with_options(
                options,
                ByBytes,
                DefaultHashBuilder::default(),
                Counted(metrics),
            ),
            limits,
            epoch: Instant::now(),
            metrics,
            inserting: Mutex::new(()),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A fresh entry for `rel`, or `None` when absent or due for a re-check.
    pub fn get(&self, rel: &str) -> Option<Arc<CachedFile>> {
        let fresh = self.map.get(rel).filter(|entry| {
            let age = self
                .now_ms()
                .saturating_sub(entry.checked_ms.load(Ordering::Relaxed));
            age < REVALIDATE.as_millis() as u64
        });
        match fresh {
            Some(_) => self.metrics.hits.inc(),
            None => self.metrics.misses.inc(),
        }
        fresh
    }

    /// Records a freshly resolved file, reusing the cached body when the
    /// file has not changed, and returns the entry to serve.
    pub async fn insert(&self, rel: &str, meta: FileMeta) -> Result<Arc<CachedFile>, HttpError> {
        let now = self.now_ms();
        if let Some(old) = self.map.peek(rel)
            && old.meta.path == meta.path
            && old.meta.stamp() == meta.stamp()
        {
            old.checked_ms.store(now, Ordering::Relaxed);
            return Ok(old);
        }
        let keep_body =
            meta.len <= self.limits.max_file_bytes && meta.len < self.limits.total_bytes;
        let body = if keep_body {
            let path = meta.path.clone();
            let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
                .await
                .map_err(|e| HttpError::Internal(e.to_string()))?
                .map_err(super::resolve::io_status)?;
            // The file changed between stat and read: serve what we read,
            // but do not cache a body that disagrees with its metadata.
            if bytes.len() as u64 != meta.len {
                return Ok(Arc::new(CachedFile::new(
                    FileMeta {
                        len: bytes.len() as u64,
                        ..meta
                    },
                    Some(Bytes::from(bytes)),
                    0,
                )));
            }
            Some(Bytes::from(bytes))
        } else {
            None
        };
        let entry = Arc::new(CachedFile::new(meta, body, now));
        let _one = self.inserting.lock().unwrap_or_else(|e| e.into_inner());
        let (weight, len) = (self.map.weight(), self.map.len());
        self.map.insert(rel.to_owned(), entry.clone());
        self.metrics
            .bytes
            .add(self.map.weight() as i64 - weight as i64);
        self.metrics.entries.add(self.map.len() as i64 - len as i64);
        Ok(entry)
    }
}

impl Drop for FileCache {
    /// A generation's handler goes: its share leaves the gauges.
    fn drop(&mut self) {
        self.metrics.bytes.sub(self.map.weight() as i64);
        self.metrics.entries.sub(self.map.len() as i64);
    }
}

impl CachedFile {
    /// An entry for `meta`; `checked_ms` 0 for one that is not cached.
    pub(super) fn new(meta: FileMeta, body: Option<Bytes>, checked_ms: u64) -> Self {
        let secs = meta
            .modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // nginx's format: hex mtime and hex length.
        let etag = HeaderValue::try_from(format!("\"{secs:x}-{:x}\"", meta.len))
            .expect("hex digits and quotes are a valid header value");
        let last_modified = HeaderValue::try_from(httpdate::fmt_http_date(meta.modified))
            .expect("an HTTP date is a valid header value");
        let mime = mime_guess::from_path(&meta.path).first_or_octet_stream();
        let content_type = HeaderValue::try_from(mime.as_ref())
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        Self {
            meta,
            body,
            etag,
            last_modified,
            content_type,
            checked_ms: AtomicU64::new(checked_ms),
            held: OnceLock::new(),
        }
    }

    /// The file opened, for streaming its body: the one the entry holds
    /// while it is still what the entry says (one `fstat`), else opened
    /// now, and held when it matches the entry. The caller compares the
    /// stamp of what it gets with the entry's: a file changed in place
    /// since the entry was made is opened afresh and differs.
    ///
    /// On the calling thread, as nginx opens files on its event loop: the
    /// path was just resolved or found in this cache, so its inode is in
    /// memory and `open` takes microseconds, where a hop to the blocking
    /// pool and back cost two thread wake-ups per download (`BENCHMARKS.md`,
    /// static-1m). A file system that stalls on `open` (a dead network
    /// mount) stalls this worker, as it would nginx's.
    pub(super) fn open(&self) -> std::io::Result<Arc<OpenFile>> {
        if let Some(held) = self.held.get()
            && held.unchanged()?
        {
            return Ok(Arc::clone(held));
        }
        let file = Arc::new(OpenFile::open(&self.meta.path)?);
        // Only an entry in the cache holds (`checked_ms` 0 is one made
        // for a single answer).
        if self.checked_ms.load(Ordering::Relaxed) != 0
            && self.held.get().is_none()
            && file.stamp() == self.meta.stamp()
            && let Some(held) = Held::new(file.clone())
        {
            let _ = self.held.set(held);
        }
        Ok(file)
    }
}
