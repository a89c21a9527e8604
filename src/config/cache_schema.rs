//! The cache part of the schema: `cache_zones` (nginx `proxy_cache_path`)
//! and a route's `cache` (nginx `proxy_cache` and its companions).
//! Compiled by `caches.rs` into `crate::cache`.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

/// A zone: where responses are kept, and how much of them.
///
/// ```ron
/// cache_zones: {
///     "pages": (memory_bytes: 67108864, max_entry_bytes: 8388608,
///               disk: (path: "cache/pages", max_bytes: 1073741824, inactive: "10m")),
/// },
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheZoneSpec {
    /// Bytes of responses kept in memory; past it the least useful go.
    /// Default 64 MiB.
    #[serde(default = "default_memory")]
    pub memory_bytes: u64,
    /// A response larger than this is passed on and not kept. Default
    /// 8 MiB.
    #[serde(default = "default_max_entry")]
    pub max_entry_bytes: u64,
    /// Where responses are also kept on disk, so that they outlive the
    /// memory tier's evictions and restarts. Default none: memory only.
    #[serde(default)]
    pub disk: Option<DiskSpec>,
}

/// A zone's disk tier (nginx `proxy_cache_path`'s path, `max_size` and
/// `inactive`; the layout is its `levels=2:2`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    /// The directory (relative paths start at the config file's); made if
    /// missing. Two zones may not share one.
    pub path: PathBuf,
    /// Bytes of files kept at most; past it the least recently used go.
    /// Default 1 GiB.
    #[serde(default = "default_disk_max")]
    pub max_bytes: u64,
    /// A file unused this long is removed, fresh or not. Default 10 min,
    /// as nginx.
    #[serde(default = "default_inactive", with = "humantime_serde")]
    pub inactive: Duration,
}

fn default_disk_max() -> u64 {
    1024 * 1024 * 1024
}
fn default_inactive() -> Duration {
    Duration::from_secs(600)
}

fn default_memory() -> u64 {
    64 * 1024 * 1024
}
fn default_max_entry() -> u64 {
    8 * 1024 * 1024
}

/// A route's use of a zone.
///
/// ```ron
/// cache: Some((zone: "pages", use_stale: [Error, Timeout, Updating])),
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCacheSpec {
    /// The zone, by its name in `cache_zones`.
    pub zone: String,
    /// The key of a request, a template like `Return` bodies (nginx
    /// `proxy_cache_key`). Default `"$scheme://$host$request_uri"`.
    #[serde(default = "default_key")]
    pub key: String,
    /// How long a request waits for another request's fetch of the same
    /// key before it goes upstream itself (nginx
    /// `proxy_cache_lock_timeout`). Default 5 s.
    #[serde(default = "default_lock_timeout", with = "humantime_serde")]
    pub lock_timeout: Duration,
    /// When a stale response is served rather than the upstream's answer
    /// (nginx `proxy_cache_use_stale`). Default none: only what the
    /// response's own `stale-while-revalidate` and `stale-if-error` allow.
    #[serde(default)]
    pub use_stale: Vec<StaleSpec>,
}

fn default_key() -> String {
    "$scheme://$host$request_uri".into()
}
fn default_lock_timeout() -> Duration {
    Duration::from_secs(5)
}

/// A case in which a stale response is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum StaleSpec {
    /// While it is being refreshed: the refresh runs in the background.
    Updating,
    /// The upstream cannot be reached, or answers 502.
    Error,
    /// The upstream timed out (504).
    Timeout,
    /// The upstream answered 500.
    Http500,
    /// The upstream answered 503.
    Http503,
}
