//! A cache zone (nginx `proxy_cache_path … keys_zone=`): the memory tier,
//! its fills in progress, purge, and its series.
//!
//! Entries live in a `quick_cache` weighed by bytes (S3-FIFO: a key seen
//! once is the first to go, so one scan cannot flush the hot set). A key
//! holds its variants (one per `Vary` selection), replaced whole on
//! every store: readers never lock more than a shard for a lookup.

use std::sync::Arc;

use http::HeaderMap;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use quick_cache::{Lifecycle, Weighter, sync::Cache};

use super::{entry::Stored, fill::Fills};
use crate::kept::{Kept, Named};

/// Variants kept per key at most; a new one past it replaces the oldest.
const MAX_VARIANTS: usize = 8;

/// A zone's settings: a zone in force is kept across a reload that keeps
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneParams {
    /// Bytes the memory tier holds at most.
    pub memory_bytes: u64,
    /// A response larger than this is passed on, not stored.
    pub max_entry_bytes: u64,
}

/// The variants stored under one key.
type Variants = Arc<[Arc<Stored>]>;

#[derive(Debug, Clone)]
struct ByBytes;

impl Weighter<Arc<str>, Variants> for ByBytes {
    fn weight(&self, key: &Arc<str>, val: &Variants) -> u64 {
        key.len() as u64 + val.iter().map(|v| v.weight()).sum::<u64>()
    }
}

/// Counts what the memory tier evicts.
#[derive(Debug, Clone)]
struct Evictions(IntCounter);

impl Lifecycle<Arc<str>, Variants> for Evictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: Arc<str>, _val: Variants) {
        self.0.inc();
    }
}

/// One zone.
#[derive(Debug)]
pub struct CacheZone {
    name: Box<str>,
    params: ZoneParams,
    memory: Cache<Arc<str>, Variants, ByBytes, quick_cache::DefaultHashBuilder, Evictions>,
    pub(super) fills: Arc<Fills>,
    pub(super) series: ZoneSeries,
}

/// A zone's series, resolved once.
#[derive(Debug)]
pub(super) struct ZoneSeries {
    pub hit: IntCounter,
    pub stale: IntCounter,
    pub miss: IntCounter,
    pub revalidated: IntCounter,
    pub bypass: IntCounter,
    pub stored: IntCounter,
    bytes: IntGauge,
    entries: IntGauge,
}

impl CacheZone {
    fn new(name: &str, params: ZoneParams, series: ZoneSeries, evictions: IntCounter) -> Self {
        // A guess at entries for quick_cache's sizing: 8 KiB each.
        let items = (params.memory_bytes / 8192).clamp(16, 1 << 20) as usize;
        let memory = Cache::with(
            items,
            params.memory_bytes,
            ByBytes,
            quick_cache::DefaultHashBuilder::default(),
            Evictions(evictions),
        );
        Self {
            name: name.into(),
            params,
            memory,
            fills: Arc::default(),
            series,
        }
    }

    /// The variant of `key` that `headers` select, or, failing that, any
    /// variant of it (`None`: nothing stored under the key).
    pub(super) fn lookup(&self, key: &str, headers: &HeaderMap) -> Option<Lookup> {
        let variants = self.memory.get(key)?;
        Some(match variants.iter().find(|v| v.vary_matches(headers)) {
            Some(v) => Lookup::Variant(v.clone()),
            None => Lookup::OtherVariant,
        })
    }

    /// Stores `entry` under `key`, replacing the variant it selects.
    pub(super) fn store(&self, key: &Arc<str>, entry: Arc<Stored>) {
        if entry.weight() > self.params.max_entry_bytes.max(1) + 4096 {
            return;
        }
        let mut variants: Vec<Arc<Stored>> = self
            .memory
            .get(&**key)
            .map(|v| {
                v.iter()
                    .filter(|old| !old.same_selection(&entry))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if variants.len() >= MAX_VARIANTS {
            variants.remove(0);
        }
        variants.push(entry);
        self.memory.insert(key.clone(), variants.into());
        self.series.stored.inc();
        self.refresh_gauges();
    }

    /// Removes `key`; whether it was stored.
    pub fn purge_key(&self, key: &str) -> bool {
        let removed = self.memory.remove(key).is_some();
        self.refresh_gauges();
        removed
    }

    /// Removes every key that starts with `prefix`; how many.
    pub fn purge_prefix(&self, prefix: &str) -> usize {
        self.purge_where(|key, _| key.starts_with(prefix))
    }

    /// Removes every key with a variant tagged `tag`; how many.
    pub fn purge_tag(&self, tag: &str) -> usize {
        self.purge_where(|_, variants| variants.iter().any(|v| v.tags.iter().any(|t| &**t == tag)))
    }

    fn purge_where(&self, doomed: impl Fn(&str, &Variants) -> bool) -> usize {
        let before = self.memory.len();
        self.memory.retain(|key, variants| !doomed(key, variants));
        self.refresh_gauges();
        before.saturating_sub(self.memory.len())
    }

    fn refresh_gauges(&self) {
        self.series.bytes.set(self.memory.weight() as i64);
        self.series.entries.set(self.memory.len() as i64);
    }
}

impl Named for CacheZone {
    type Params = ZoneParams;

    fn name(&self) -> &str {
        &self.name
    }

    fn params(&self) -> &ZoneParams {
        &self.params
    }
}

/// What a key holds for a request.
pub(super) enum Lookup {
    /// The variant the request selects.
    Variant(Arc<Stored>),
    /// Variants, none for this request's `Vary` headers.
    OtherVariant,
}

/// Every cache zone in force, carried from one generation to the next, and
/// their series.
#[derive(Debug)]
pub struct CacheZones {
    live: Kept<CacheZone>,
    requests: IntCounterVec,
    bytes: IntGaugeVec,
    entries: IntGaugeVec,
    evictions: IntCounterVec,
}

impl Default for CacheZones {
    /// Zones whose series are exported once [`CacheZones::register`]ed:
    /// `troupe_cache_requests_total{zone, status}` (`hit`, `stale`,
    /// `miss`, `revalidated`, `bypass`, `stored`),
    /// `troupe_cache_bytes{zone}`, `troupe_cache_entries{zone}` and
    /// `troupe_cache_evictions_total{zone}`.
    fn default() -> Self {
        let opts = |n: &str, h: &str| Opts::new(n, h);
        Self {
            live: Kept::default(),
            requests: IntCounterVec::new(
                opts(
                    "troupe_cache_requests_total",
                    "Requests a cache zone answered, by how",
                ),
                &["zone", "status"],
            )
            .expect("valid series"),
            bytes: IntGaugeVec::new(
                opts("troupe_cache_bytes", "Bytes a cache zone holds in memory"),
                &["zone"],
            )
            .expect("valid series"),
            entries: IntGaugeVec::new(
                opts("troupe_cache_entries", "Keys a cache zone holds in memory"),
                &["zone"],
            )
            .expect("valid series"),
            evictions: IntCounterVec::new(
                opts(
                    "troupe_cache_evictions_total",
                    "Keys a cache zone evicted to stay within its size",
                ),
                &["zone"],
            )
            .expect("valid series"),
        }
    }
}

impl CacheZones {
    /// Exports the series from `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.requests.clone()))?;
        registry.register(Box::new(self.bytes.clone()))?;
        registry.register(Box::new(self.entries.clone()))?;
        registry.register(Box::new(self.evictions.clone()))
    }

    /// The zone `name` with `params`: the one in force if it has them,
    /// else a new, empty one.
    pub fn zone(&self, name: &str, params: ZoneParams) -> Arc<CacheZone> {
        self.live.get_or(name, &params, || {
            let status = |s: &str| self.requests.with_label_values(&[name, s]);
            let series = ZoneSeries {
                hit: status("hit"),
                stale: status("stale"),
                miss: status("miss"),
                revalidated: status("revalidated"),
                bypass: status("bypass"),
                stored: status("stored"),
                bytes: self.bytes.with_label_values(&[name]),
                entries: self.entries.with_label_values(&[name]),
            };
            let evictions = self.evictions.with_label_values(&[name]);
            CacheZone::new(name, params.clone(), series, evictions)
        })
    }

    /// The zones in force.
    pub fn live(&self) -> Vec<Arc<CacheZone>> {
        self.live.live()
    }
}
