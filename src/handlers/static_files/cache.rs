//! The file cache: metadata for every file served, bodies for small ones.
//!
//! Measured here, `tokio::fs` per request reached about 25k req/s and an
//! in-memory `Bytes` cache about 91k (nginx: 64k). An entry is trusted for
//! [`REVALIDATE`] and then looked up again, so an edited file is served
//! fresh within a second, at the cost of one `stat` per file per second.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, UNIX_EPOCH},
};

use bytes::Bytes;
use dashmap::DashMap;
use http::HeaderValue;

use super::resolve::FileMeta;
use crate::error::HttpError;

/// How long a cache entry is trusted before its file is stat'ed again.
pub const REVALIDATE: Duration = Duration::from_secs(1);

/// Bounds on what the cache holds.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// Files up to this size keep their body in memory.
    pub max_file_bytes: u64,
    /// Total bytes of bodies kept.
    pub total_bytes: u64,
    /// Entries kept; past this, files are served uncached.
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
}

#[derive(Debug)]
pub(super) struct FileCache {
    map: DashMap<String, Arc<CachedFile>>,
    limits: CacheLimits,
    used: AtomicU64,
    epoch: Instant,
}

impl FileCache {
    pub fn new(limits: CacheLimits) -> Self {
        Self {
            map: DashMap::new(),
            limits,
            used: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A fresh entry for `rel`, or `None` when absent or due for a re-check.
    pub fn get(&self, rel: &str) -> Option<Arc<CachedFile>> {
        let entry = self.map.get(rel)?;
        let age = self
            .now_ms()
            .saturating_sub(entry.checked_ms.load(Ordering::Relaxed));
        (age < REVALIDATE.as_millis() as u64).then(|| entry.clone())
    }

    /// Records a freshly resolved file, reusing the cached body when the
    /// file has not changed, and returns the entry to serve.
    pub async fn insert(&self, rel: &str, meta: FileMeta) -> Result<Arc<CachedFile>, HttpError> {
        let now = self.now_ms();
        if let Some(old) = self.map.get(rel)
            && old.meta.path == meta.path
            && old.meta.len == meta.len
            && old.meta.modified == meta.modified
        {
            old.checked_ms.store(now, Ordering::Relaxed);
            return Ok(old.clone());
        }
        let keep_body = meta.len <= self.limits.max_file_bytes
            && self.used.load(Ordering::Relaxed) + meta.len <= self.limits.total_bytes;
        let body = if keep_body {
            let path = meta.path.clone();
            let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
                .await
                .map_err(|e| HttpError::Internal(e.to_string()))?
                .map_err(|e| HttpError::Internal(e.to_string()))?;
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
        if self.map.len() < self.limits.max_entries || self.map.contains_key(rel) {
            let added = entry.body.as_ref().map_or(0, |b| b.len() as u64);
            self.used.fetch_add(added, Ordering::Relaxed);
            if let Some(old) = self.map.insert(rel.to_owned(), entry.clone()) {
                let freed = old.body.as_ref().map_or(0, |b| b.len() as u64);
                self.used.fetch_sub(freed, Ordering::Relaxed);
            }
        }
        Ok(entry)
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
        }
    }
}
