//! A cache zone (nginx `proxy_cache_path … keys_zone=`): the memory tier,
//! its disk tier if it has one (`disk.rs`), its fills in progress, purge,
//! and its series.
//!
//! Entries live in a `quick_cache` weighed by bytes (S3-FIFO: a key seen
//! once is the first to go, so one scan cannot flush the hot set). A key
//! holds its variants (one per `Vary` selection), replaced whole on
//! every store: readers never lock more than a shard for a lookup.

use std::{io, sync::Arc};

use http::HeaderMap;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use quick_cache::{Lifecycle, Weighter, sync::Cache};

use super::{
    disk::{DiskParams, DiskSeries, DiskTier, OnDisk},
    entry::Stored,
    fill::Fills,
};
use crate::kept::{Kept, Named};

/// Variants kept per key at most; a new one past it replaces the oldest.
pub(super) const MAX_VARIANTS: usize = 8;

/// A zone's settings: a zone in force is kept across a reload that keeps
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneParams {
    /// Bytes the memory tier holds at most.
    pub memory_bytes: u64,
    /// A response larger than this is passed on, not stored.
    pub max_entry_bytes: u64,
    /// Its disk tier, if it has one.
    pub disk: Option<DiskParams>,
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
    disk: Option<Arc<DiskTier>>,
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
    fn new(
        name: &str,
        params: ZoneParams,
        disk: Option<Arc<DiskTier>>,
        series: ZoneSeries,
        evictions: IntCounter,
    ) -> Self {
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
            disk,
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

    /// Whether a memory miss for `key` is worth a read from the disk tier.
    pub(super) fn on_disk(&self, key: &str) -> bool {
        self.disk.as_ref().is_some_and(|d| d.knows(key))
    }

    /// What the disk tier holds of `key` for `headers`; a variant read is
    /// put back in memory.
    pub(super) async fn load(&self, key: &Arc<str>, headers: &HeaderMap) -> Option<Lookup> {
        let disk = self.disk.as_ref()?;
        let found = match disk.find(key, headers) {
            OnDisk::Nothing => return None,
            OnDisk::OtherVariant => return Some(Lookup::OtherVariant),
            OnDisk::File(found) => found,
        };
        let entry = Arc::new(disk.read(key.clone(), found).await?);
        self.keep(key, entry.clone());
        Some(Lookup::Variant(entry))
    }

    /// Stores `entry` under `key`, replacing the variant it selects, in
    /// memory and on disk.
    pub(super) fn store(&self, key: &Arc<str>, entry: Arc<Stored>) {
        if entry.weight() > self.params.max_entry_bytes.max(1) + 4096 {
            return;
        }
        if let Some(disk) = &self.disk {
            disk.write(key.clone(), entry.clone());
        }
        self.keep(key, entry);
        self.series.stored.inc();
    }

    /// Puts `entry` in the memory tier under `key`.
    fn keep(&self, key: &Arc<str>, entry: Arc<Stored>) {
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
        self.refresh_gauges();
    }

    /// Removes `key` from both tiers; whether it was stored.
    pub fn purge_key(&self, key: &str) -> bool {
        let in_memory = self.memory.remove(key).is_some();
        let on_disk = self.disk.as_ref().is_some_and(|d| d.purge_key(key));
        self.refresh_gauges();
        in_memory || on_disk
    }

    /// Removes every key that starts with `prefix`; how many.
    pub fn purge_prefix(&self, prefix: &str) -> usize {
        let on_disk = self.disk.as_ref().map(|d| d.purge_prefix(prefix));
        self.purge_where(|key, _| key.starts_with(prefix), on_disk)
    }

    /// Removes every key with a variant tagged `tag`; how many.
    pub fn purge_tag(&self, tag: &str) -> usize {
        let on_disk = self.disk.as_ref().map(|d| d.purge_tag(tag));
        self.purge_where(
            |_, variants| variants.iter().any(|v| v.tags.iter().any(|t| &**t == tag)),
            on_disk,
        )
    }

    /// Removes the memory tier's `doomed` keys; how many keys went from
    /// either tier (`on_disk`: those the disk tier removed).
    fn purge_where(
        &self,
        doomed: impl Fn(&str, &Variants) -> bool,
        on_disk: Option<Vec<Arc<str>>>,
    ) -> usize {
        // quick_cache's `retain` takes a `Fn`.
        let gone: std::cell::RefCell<std::collections::HashSet<Arc<str>>> =
            std::cell::RefCell::new(on_disk.into_iter().flatten().collect());
        self.memory.retain(|key, variants| {
            let go = doomed(key, variants);
            if go {
                gone.borrow_mut().insert(key.clone());
            }
            !go
        });
        self.refresh_gauges();
        gone.into_inner().len()
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
    disks: Kept<DiskTier>,
    requests: IntCounterVec,
    bytes: IntGaugeVec,
    entries: IntGaugeVec,
    evictions: IntCounterVec,
    disk_bytes: IntGaugeVec,
    disk_files: IntGaugeVec,
    disk_reads: IntCounterVec,
    disk_removed: IntCounterVec,
    disk_dropped: IntCounterVec,
}

impl Default for CacheZones {
    /// Zones whose series are exported once [`CacheZones::register`]ed:
    /// `troupe_cache_requests_total{zone, status}` (`hit`, `stale`,
    /// `miss`, `revalidated`, `bypass`, `stored`),
    /// `troupe_cache_bytes{zone}`, `troupe_cache_entries{zone}`,
    /// `troupe_cache_evictions_total{zone}`, and for disk tiers
    /// `troupe_cache_disk_bytes{zone}`, `troupe_cache_disk_files{zone}`,
    /// `troupe_cache_disk_reads_total{zone}` and
    /// `troupe_cache_disk_removed_total{zone, why}` (`corrupt`,
    /// `inactive`, `size`) and `troupe_cache_disk_writes_dropped_total{zone}`.
    fn default() -> Self {
        let opts = |n: &str, h: &str| Opts::new(n, h);
        let gauge =
            |n: &str, h: &str| IntGaugeVec::new(opts(n, h), &["zone"]).expect("valid series");
        Self {
            live: Kept::default(),
            disks: Kept::default(),
            disk_bytes: gauge("troupe_cache_disk_bytes", "Bytes of a cache zone's files"),
            disk_files: gauge(
                "troupe_cache_disk_files",
                "Files a cache zone holds on disk",
            ),
            disk_reads: IntCounterVec::new(
                opts(
                    "troupe_cache_disk_reads_total",
                    "Entries a cache zone read back from disk",
                ),
                &["zone"],
            )
            .expect("valid series"),
            disk_removed: IntCounterVec::new(
                opts(
                    "troupe_cache_disk_removed_total",
                    "Files a cache zone removed, by why",
                ),
                &["zone", "why"],
            )
            .expect("valid series"),
            disk_dropped: IntCounterVec::new(
                opts(
                    "troupe_cache_disk_writes_dropped_total",
                    "Entries a cache zone kept in memory only, its disk writes too far behind",
                ),
                &["zone"],
            )
            .expect("valid series"),
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
        registry.register(Box::new(self.evictions.clone()))?;
        registry.register(Box::new(self.disk_bytes.clone()))?;
        registry.register(Box::new(self.disk_files.clone()))?;
        registry.register(Box::new(self.disk_reads.clone()))?;
        registry.register(Box::new(self.disk_removed.clone()))?;
        registry.register(Box::new(self.disk_dropped.clone()))
    }

    /// The zone `name` with `params`: the one in force if it has them,
    /// else a new one, empty in memory (its disk tier, found by its path,
    /// keeps its files and index).
    pub fn zone(&self, name: &str, params: ZoneParams) -> io::Result<Arc<CacheZone>> {
        let disk = params
            .disk
            .as_ref()
            .map(|d| self.disk(name, d))
            .transpose()?;
        Ok(self.live.get_or(name, &params, || {
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
            CacheZone::new(name, params.clone(), disk, series, evictions)
        }))
    }

    /// The disk tier at `params.path` (made if missing), with `params`'
    /// bounds.
    fn disk(&self, zone: &str, params: &DiskParams) -> io::Result<Arc<DiskTier>> {
        std::fs::create_dir_all(&params.path)?;
        let root = super::file::Root::open(&params.path)?;
        let tier = self.disks.get_or(&params.path.to_string_lossy(), &(), || {
            let removed = |why: &str| self.disk_removed.with_label_values(&[zone, why]);
            let series = DiskSeries {
                bytes: self.disk_bytes.with_label_values(&[zone]),
                files: self.disk_files.with_label_values(&[zone]),
                reads: self.disk_reads.with_label_values(&[zone]),
                removed_corrupt: removed("corrupt"),
                removed_inactive: removed("inactive"),
                removed_size: removed("size"),
                dropped: self.disk_dropped.with_label_values(&[zone]),
            };
            DiskTier::new(root, params, series)
        });
        tier.set_bounds(params);
        Ok(tier)
    }

    /// The zones in force.
    pub fn live(&self) -> Vec<Arc<CacheZone>> {
        self.live.live()
    }
}

/// The `cache` actor sweeps the disk tiers through this seam: it loads
/// each one's index, then keeps it within its bounds.
impl troupe_actors::Sweep for CacheZones {
    fn every(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    fn sweep(&self) {
        for disk in self.disks.live() {
            disk.sweep();
        }
    }

    fn blocks(&self) -> bool {
        !self.disks.live().is_empty()
    }
}
