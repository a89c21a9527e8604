//! A zone's disk tier (nginx `proxy_cache_path` with `max_size` and
//! `inactive`): every stored entry is also written to a file
//! (`file.rs`), so the cache outlives the memory tier's evictions and the
//! process.
//!
//! The index (key → its variants' files, sizes, tags and last use) is in
//! memory; the bodies are not. A memory miss that the index knows reads
//! the file (a small one on the request's thread, a large one on a
//! blocking thread) and puts the entry back in memory; the variant then
//! holds the file open for its next hits ([`Open`]).
//!
//! The `cache` sweeper actor does the rest through [`DiskTier::sweep`]:
//! its first sweep rebuilds the index from the files (nginx's cache
//! loader: requests meanwhile are misses, never errors), and every sweep
//! then removes the files unused for `inactive`, and the least recently
//! used ones while the tier holds more than `max_bytes` (nginx's cache
//! manager). A file that is not whole or not ours is removed, never
//! served: at load, or when a hit reads it.

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use dashmap::DashMap;
use http::HeaderMap;
use prometheus::{IntCounter, IntGauge};

use super::{
    entry::{Selection, Stored, selects},
    file,
    zone::MAX_VARIANTS,
};
use crate::{held::Held, kept::Named};

/// A disk tier's bounds, which a reload may change in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskParams {
    /// The directory (created if missing).
    pub path: PathBuf,
    /// Bytes of files kept at most; past it the least recently used go.
    pub max_bytes: u64,
    /// A file unused this long is removed, fresh or not.
    pub inactive: Duration,
}

/// A disk tier's series.
#[derive(Debug)]
pub(super) struct DiskSeries {
    pub bytes: IntGauge,
    pub files: IntGauge,
    pub reads: IntCounter,
    pub removed_corrupt: IntCounter,
    pub removed_inactive: IntCounter,
    pub removed_size: IntCounter,
    /// Entries kept in memory only: the writes were too far behind.
    pub dropped: IntCounter,
}

/// One variant's file, as the index knows it.
#[derive(Debug)]
struct Variant {
    name: Box<str>,
    selection: Selection,
    tags: Box<[Box<str>]>,
    bytes: u64,
    /// Milliseconds since the epoch of its last store or hit.
    used: AtomicU64,
    /// Its file, once a hit has read it whole and the budget had room.
    open: Arc<OnceLock<Open>>,
}

impl Variant {
    /// A file just written or found, used now.
    fn new(name: Box<str>, selection: Selection, tags: Box<[Box<str>]>, bytes: u64) -> Self {
        Self {
            name,
            selection,
            tags,
            bytes,
            used: AtomicU64::new(now_ms()),
            open: Arc::default(),
        }
    }
}

/// A variant's file held open ([`crate::held`], nginx's
/// `open_file_cache`): its hits skip `open`, the path walk and `close`,
/// which were a fifth of a disk hit's CPU (`BENCHMARKS.md`). It is the
/// variant's own, so a store that replaces the file (a rename over the
/// path) replaces the variant, and with it the file held. A file
/// unlinked (by hand, or by a store racing the hit) is seen within
/// [`RECHECK`] by its link count, and then the path is opened again.
#[derive(Debug)]
struct Open {
    file: Held<fs::File>,
    /// Milliseconds since the epoch when its link count was last seen.
    checked: AtomicU64,
}

/// How long a held file is read without looking at its link count.
const RECHECK: Duration = Duration::from_secs(1);

impl Open {
    /// The file, unless it has been unlinked: then `None`, and what is
    /// at the path now, if anything, is another file.
    fn live(&self) -> io::Result<Option<&fs::File>> {
        let now = now_ms();
        if now.saturating_sub(self.checked.load(Ordering::Relaxed)) >= RECHECK.as_millis() as u64 {
            if rustix::fs::fstat(&*self.file)?.st_nlink == 0 {
                return Ok(None);
            }
            self.checked.store(now, Ordering::Relaxed);
        }
        Ok(Some(&self.file))
    }
}

/// One disk tier.
#[derive(Debug)]
pub struct DiskTier {
    root: file::Root,
    /// The root as text: what the registry finds it by.
    name: Box<str>,
    max_bytes: AtomicU64,
    inactive_ms: AtomicU64,
    index: DashMap<Arc<str>, Vec<Variant>>,
    bytes: AtomicU64,
    files: AtomicI64,
    loaded: AtomicBool,
    next_inactive_scan: Mutex<Instant>,
    /// Writes handed to blocking threads and not yet done.
    pending: AtomicUsize,
    series: DiskSeries,
}

/// Writes a tier lets queue at most. A flood of storable misses (faster
/// than the disk takes them) would otherwise queue an entry per miss,
/// each holding its body, without bound; past this, an entry stays in
/// memory only (and is counted), as the disk could not have taken it in
/// time anyway.
const MAX_PENDING_WRITES: usize = 64;

/// What the index holds for a request.
pub(super) enum OnDisk {
    /// Nothing under the key.
    Nothing,
    /// Variants, none for this request.
    OtherVariant,
    /// The file of the variant it selects.
    File(Found),
}

/// A variant's file that a request selected.
pub(super) struct Found {
    name: Box<str>,
    /// Its size, as the index knows it.
    bytes: u64,
    open: Arc<OnceLock<Open>>,
}

/// Files up to this size are read on the request's own thread, as nginx
/// reads its cache files (without `aio threads`): from the page cache it
/// is a few microseconds, less than the hand-off to a blocking thread and
/// back. Larger ones are read on a blocking thread.
const READ_INLINE: u64 = 32 * 1024;

impl DiskTier {
    /// A tier over `root` (opened at `params.path`), its index empty
    /// until the first sweep loads it.
    pub(super) fn new(root: file::Root, params: &DiskParams, series: DiskSeries) -> Self {
        let tier = Self {
            root,
            name: params.path.to_string_lossy().into(),
            max_bytes: AtomicU64::new(0),
            inactive_ms: AtomicU64::new(0),
            index: DashMap::new(),
            bytes: AtomicU64::new(0),
            files: AtomicI64::new(0),
            loaded: AtomicBool::new(false),
            next_inactive_scan: Mutex::new(Instant::now()),
            pending: AtomicUsize::new(0),
            series,
        };
        tier.set_bounds(params);
        tier
    }

    /// Takes a reloaded config's bounds.
    pub(super) fn set_bounds(&self, params: &DiskParams) {
        self.max_bytes.store(params.max_bytes, Ordering::Relaxed);
        self.inactive_ms
            .store(params.inactive.as_millis().max(1) as u64, Ordering::Relaxed);
    }

    /// Whether anything is stored under `key` (a memory miss worth a read).
    pub(super) fn knows(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// The file of `key`'s variant that `headers` select.
    pub(super) fn find(&self, key: &str, headers: &HeaderMap) -> OnDisk {
        let Some(variants) = self.index.get(key) else {
            return OnDisk::Nothing;
        };
        match variants.iter().find(|v| selects(&v.selection, headers)) {
            Some(v) => {
                v.used.store(now_ms(), Ordering::Relaxed);
                OnDisk::File(Found {
                    name: v.name.clone(),
                    bytes: v.bytes,
                    open: v.open.clone(),
                })
            }
            None => OnDisk::OtherVariant,
        }
    }

    /// Reads `key`'s file that `found` names (a large one on a blocking
    /// thread). A file that is not whole, or not `key`'s, is removed and
    /// reads as nothing.
    pub(super) async fn read(self: &Arc<Self>, key: Arc<str>, found: Found) -> Option<Stored> {
        if found.bytes <= READ_INLINE {
            return self.read_now(&key, &found);
        }
        let tier = self.clone();
        tokio::task::spawn_blocking(move || tier.read_now(&key, &found))
            .await
            .ok()
            .flatten()
    }

    fn read_now(&self, key: &Arc<str>, found: &Found) -> Option<Stored> {
        let name = &*found.name;
        match self.read_file(key, found) {
            Ok(entry) => {
                self.series.reads.inc();
                Some(entry)
            }
            Err(why) => {
                let path = self.root.file(name);
                tracing::warn!(file = %path.display(), %why, "cache file removed");
                self.series.removed_corrupt.inc();
                self.forget(key, name);
                self.remove(name);
                None
            }
        }
    }

    /// Reads the file through the variant's held descriptor, or opens it
    /// and, once it has read whole, holds it for the next hits. A held
    /// file found unlinked is not trusted: the path decides, as for a
    /// file never held (a store's rename over it is read, a file
    /// removed by hand is gone).
    fn read_file(&self, key: &str, found: &Found) -> Result<Stored, file::Bad> {
        if let Some(open) = found.open.get()
            && let Some(f) = open.live()?
        {
            return file::read(f, key, found.bytes);
        }
        let f = self.root.open_entry(&found.name)?;
        let entry = file::read(&f, key, found.bytes)?;
        if found.open.get().is_none()
            && let Some(file) = Held::new(f)
        {
            let checked = AtomicU64::new(now_ms());
            // A hit racing this one may have set it first: then this
            // descriptor is closed, and its place in the budget given back.
            let _ = found.open.set(Open { file, checked });
        }
        Ok(entry)
    }

    /// Writes `key`'s `entry` to its file in the background (a blocking
    /// thread), then indexes it; unless [`MAX_PENDING_WRITES`] are
    /// queued already.
    pub(super) fn write(self: &Arc<Self>, key: Arc<str>, entry: Arc<Stored>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.pending.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING_WRITES {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            self.series.dropped.inc();
            tracing::debug!(dir = %self.root.path().display(), %key, "cache disk writes behind; entry kept in memory only");
            return;
        }
        /// Gives the place back however the write ends.
        struct Queued(Arc<DiskTier>);
        impl Drop for Queued {
            fn drop(&mut self) {
                self.0.pending.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let queued = Queued(self.clone());
        rt.spawn_blocking(move || queued.0.write_now(key, &entry));
    }

    fn write_now(&self, key: Arc<str>, entry: &Stored) {
        let name = file::name(&key, &entry.vary);
        match file::write(&self.root, &name, &key, entry) {
            Ok(bytes) => {
                let variant =
                    Variant::new(name.into(), entry.vary.clone(), entry.tags.clone(), bytes);
                self.add(key, variant, true);
            }
            Err(e) => {
                tracing::warn!(dir = %self.root.path().display(), error = %e, "cache file not written")
            }
        }
        self.refresh_gauges();
    }

    /// Indexes `variant` under `key`, replacing the one with its name (if
    /// `replace`; the loader never replaces what a store just wrote).
    fn add(&self, key: Arc<str>, variant: Variant, replace: bool) {
        let mut doomed = Vec::new();
        {
            let mut variants = self.index.entry(key).or_default();
            if let Some(i) = variants.iter().position(|v| v.name == variant.name) {
                if !replace {
                    return;
                }
                let old = variants.remove(i);
                self.uncount(&old);
            }
            if variants.len() >= MAX_VARIANTS {
                let old = variants.remove(0);
                self.uncount(&old);
                doomed.push(old.name);
            }
            self.bytes.fetch_add(variant.bytes, Ordering::Relaxed);
            self.files.fetch_add(1, Ordering::Relaxed);
            variants.push(variant);
        }
        for name in doomed {
            self.remove(&name);
        }
    }

    fn uncount(&self, v: &Variant) {
        self.bytes.fetch_sub(v.bytes, Ordering::Relaxed);
        self.files.fetch_sub(1, Ordering::Relaxed);
    }

    /// Drops `key`'s variant `name` from the index (its file is the
    /// caller's to remove).
    fn forget(&self, key: &str, name: &str) {
        let emptied = match self.index.get_mut(key) {
            Some(mut variants) => {
                if let Some(i) = variants.iter().position(|v| &*v.name == name) {
                    let old = variants.remove(i);
                    self.uncount(&old);
                }
                variants.is_empty()
            }
            None => false,
        };
        if emptied {
            self.index.remove_if(key, |_, v| v.is_empty());
        }
    }

    /// Removes `key` and its files; whether it was stored.
    pub(super) fn purge_key(&self, key: &str) -> bool {
        let Some((_, variants)) = self.index.remove(key) else {
            return false;
        };
        self.drop_files(variants);
        true
    }

    /// Removes every key that starts with `prefix`; the keys removed.
    pub(super) fn purge_prefix(&self, prefix: &str) -> Vec<Arc<str>> {
        self.purge_where(|key, _| key.starts_with(prefix))
    }

    /// Removes every key with a variant tagged `tag`; the keys removed.
    pub(super) fn purge_tag(&self, tag: &str) -> Vec<Arc<str>> {
        self.purge_where(|_, variants| variants.iter().any(|v| v.tags.iter().any(|t| &**t == tag)))
    }

    fn purge_where(&self, doomed: impl Fn(&str, &[Variant]) -> bool) -> Vec<Arc<str>> {
        let keys: Vec<Arc<str>> = self
            .index
            .iter()
            .filter(|e| doomed(e.key(), e.value()))
            .map(|e| e.key().clone())
            .collect();
        for key in &keys {
            self.purge_key(key);
        }
        self.refresh_gauges();
        keys
    }

    fn drop_files(&self, variants: Vec<Variant>) {
        for v in variants {
            self.uncount(&v);
            self.remove(&v.name);
        }
    }

    /// Loads the index at the first call; then removes what has been
    /// unused for `inactive`, and the least recently used files while
    /// the tier is over `max_bytes`.
    pub(super) fn sweep(&self) {
        if !self.loaded.swap(true, Ordering::AcqRel) {
            self.load();
        }
        let now = now_ms();
        let inactive = self.inactive_ms.load(Ordering::Relaxed);
        if self.inactive_scan_due(inactive) {
            let idle = self.remove_lru(|v, _| v.used.load(Ordering::Relaxed) + inactive <= now);
            self.series.removed_inactive.inc_by(idle);
        }
        let max = self.max_bytes.load(Ordering::Relaxed);
        if self.bytes.load(Ordering::Relaxed) > max {
            let over = self.remove_lru(|_, bytes| bytes > max);
            self.series.removed_size.inc_by(over);
        }
        self.refresh_gauges();
    }

    /// Whether it is time to look for inactive files: every half of
    /// `inactive`, at most once a minute and at least once a second.
    fn inactive_scan_due(&self, inactive: u64) -> bool {
        let mut next = self
            .next_inactive_scan
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now < *next {
            return false;
        }
        *next = now + Duration::from_millis((inactive / 2).clamp(1000, 60_000));
        true
    }

    /// Removes files, least recently used first, while `doomed` says so
    /// of the next one (given the tier's bytes); how many.
    fn remove_lru(&self, doomed: impl Fn(&Variant, u64) -> bool) -> u64 {
        let mut all: Vec<(u64, Arc<str>, Box<str>)> = self
            .index
            .iter()
            .flat_map(|e| {
                let key = e.key().clone();
                e.value()
                    .iter()
                    .map(|v| (v.used.load(Ordering::Relaxed), key.clone(), v.name.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        all.sort_unstable_by_key(|(used, ..)| *used);
        let mut removed = 0;
        for (_, key, name) in all {
            let go = self.index.get(&key).and_then(|variants| {
                let v = variants.iter().find(|v| v.name == name)?;
                Some(doomed(v, self.bytes.load(Ordering::Relaxed)))
            });
            match go {
                // Purged meanwhile.
                None => continue,
                // The oldest left is kept: so is every newer one.
                Some(false) => break,
                Some(true) => {}
            }
            self.forget(&key, &name);
            self.remove(&name);
            removed += 1;
        }
        removed
    }

    /// Rebuilds the index from the files under the root (nginx's cache
    /// loader). A stray temporary file (a write a crash cut short) and a
    /// file that is not whole are removed; a file whose name is not one
    /// of ours is left alone.
    fn load(&self) {
        let started = Instant::now();
        let mine = format!(".{}.", std::process::id());
        let (mut kept, mut removed) = (0u64, 0u64);
        for path in files_under(self.root.path()) {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.starts_with('.') && name.ends_with(".tmp") {
                // Ours in flight (this process writing) is left to finish.
                if !name.get(65..).is_some_and(|rest| rest.starts_with(&mine)) {
                    remove_path(&path);
                }
                continue;
            }
            if !file::is_name(name) {
                continue;
            }
            match file::read_meta(&path, name) {
                Ok(found) => {
                    let variant =
                        Variant::new(name.into(), found.selection, found.tags, found.bytes);
                    self.add(found.key.into(), variant, false);
                    kept += 1;
                }
                Err(why) => {
                    tracing::warn!(file = %path.display(), %why, "cache file removed");
                    self.series.removed_corrupt.inc();
                    remove_path(&path);
                    removed += 1;
                }
            }
        }
        tracing::info!(
            dir = %self.root.path().display(),
            files = kept,
            removed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "cache index loaded"
        );
    }

    /// Removes the file `name`, logging a failure (a file already gone is
    /// none).
    fn remove(&self, name: &str) {
        if let Err(e) = self.root.remove(name) {
            let file = self.root.file(name);
            tracing::warn!(file = %file.display(), error = %e, "cache file not removed");
        }
    }

    fn refresh_gauges(&self) {
        self.series
            .bytes
            .set(self.bytes.load(Ordering::Relaxed) as i64);
        self.series.files.set(self.files.load(Ordering::Relaxed));
    }
}

impl Named for DiskTier {
    type Params = ();

    fn name(&self) -> &str {
        &self.name
    }

    fn params(&self) -> &() {
        &()
    }
}

/// The files two levels under `root` (`ab/cd/<file>`).
fn files_under(root: &Path) -> impl Iterator<Item = PathBuf> {
    let dirs = |p: &Path| {
        fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect::<Vec<_>>()
    };
    dirs(root)
        .into_iter()
        .filter(|p| p.is_dir())
        .flat_map(move |level1| dirs(&level1))
        .filter(|p| p.is_dir())
        .flat_map(move |level2| dirs(&level2))
        .filter(|p| p.is_file())
}

fn remove_path(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(file = %path.display(), error = %e, "cache file not removed");
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, header};

    use super::*;

    fn series() -> DiskSeries {
        let counter = |n: &str| IntCounter::new(n, n).unwrap();
        let gauge = |n: &str| IntGauge::new(n, n).unwrap();
        DiskSeries {
            bytes: gauge("b"),
            files: gauge("f"),
            reads: counter("r"),
            removed_corrupt: counter("c"),
            removed_inactive: counter("i"),
            removed_size: counter("s"),
            dropped: counter("d"),
        }
    }

    /// A storable entry of a few bytes.
    fn entry() -> Arc<Stored> {
        let mut head = HeaderMap::new();
        head.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=60"),
        );
        Arc::new(crate::cache::entry::for_test(head, b"hello"))
    }

    #[test]
    fn writes_that_fall_behind_are_dropped_and_counted_not_queued() {
        let dir = tempfile::tempdir().unwrap();
        let params = DiskParams {
            path: dir.path().to_owned(),
            max_bytes: 1 << 30,
            inactive: Duration::from_secs(3600),
        };
        let root = file::Root::open(dir.path()).unwrap();
        let tier = Arc::new(DiskTier::new(root, &params, series()));
        // One blocking thread: the writes queue behind it.
        let rt = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let entry = entry();
        rt.block_on(async {
            for i in 0..500 {
                tier.write(format!("key-{i}").into(), entry.clone());
                assert!(tier.pending.load(Ordering::Relaxed) <= MAX_PENDING_WRITES);
            }
            while tier.pending.load(Ordering::Relaxed) > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let dropped = tier.series.dropped.get();
        assert!(dropped > 0, "nothing was dropped");
        assert_eq!(tier.index.len() as u64 + dropped, 500);
    }
}
