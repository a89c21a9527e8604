//! The response cache (P8.3): nginx's `proxy_cache`, in front of any
//! handler (the reverse proxy, usually), with RFC 9111 semantics.
//!
//! | file | owns |
//! |---|---|
//! | `zone.rs` | a zone: the memory tier (size-weighted), purge, series; the registry that keeps zones across reloads |
//! | `disk.rs` | a zone's disk tier: the index, reads, background writes, the loader and the janitor's sweep |
//! | `file.rs` | one entry's file: the hashed layout, write-then-rename, the checked format |
//! | `entry.rs` | one stored response: policy (`http-cache-semantics`, decoded lazily), age clock, head, body, `Vary` selection, stale allowances |
//! | `handler.rs` | [`Cached`]: hit, stale, revalidation, fill, bypass for one request |
//! | `fill.rs` | coalescing: one request per key upstream, the others wait |
//! | `tee.rs` | a body passed to its client while it is recorded for storing |
//! | `partial.rs` | a miss's client `Range` cut from the whole answer that fills the entry |
//! | `status.rs` | the `Cache-Status` field (RFC 9211) |
//!
//! `config/caches.rs` compiles `cache_zones` and each route's `cache`.

mod disk;
mod entry;
mod file;
mod fill;
mod handler;
mod partial;
mod status;
mod tee;
mod zone;

pub use disk::DiskParams;
pub use handler::{Cached, Rules, UseStale};
pub use status::CACHE_STATUS;
pub use zone::{CacheZone, CacheZones, ZoneParams};
