//! `cache_zones` and a route's `cache` → [`crate::cache`]: zones taken
//! from the registry (kept, entries and all, across a reload that keeps
//! them), and each cached route's handler wrapped in [`Cached`].

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    cache_schema::{CacheZoneSpec, RouteCacheSpec, StaleSpec},
    locate::{Anchor, CompileError, err, unknown},
    schema::Config,
};
use crate::{
    cache::{CacheZone, CacheZones, Cached, DiskParams, Rules, UseStale, ZoneParams},
    handler::Handler,
    handlers::template::Template,
};

/// The cache zones of a config, by name.
pub(super) type CacheMap = BTreeMap<String, Arc<CacheZone>>;

/// Compiles every zone, taking those in force from `registry`; relative
/// disk paths start at `base`.
pub(super) fn compile_cache_zones(
    cfg: &Config,
    base: &Path,
    registry: &CacheZones,
) -> Result<CacheMap, CompileError> {
    let mut paths: BTreeMap<PathBuf, &str> = BTreeMap::new();
    cfg.cache_zones
        .iter()
        .map(|(name, spec)| {
            let params = params(name, spec, base)?;
            if let (Some(disk), Some(d)) = (&params.disk, &spec.disk)
                && let Some(other) = paths.insert(disk.path.clone(), name)
            {
                return err(
                    Anchor::str(&d.path.to_string_lossy()),
                    format!(
                        "cache zones `{other}` and `{name}` both keep their files in `{}` (expected a directory of its own for each)",
                        d.path.display()
                    ),
                );
            }
            let zone = registry.zone(name, params).map_err(|e| {
                let path = spec.disk.as_ref().map(|d| d.path.to_string_lossy().into_owned());
                CompileError {
                    anchor: Anchor::str(path.as_deref().unwrap_or(name)),
                    message: format!(
                        "cache zone `{name}`: cannot make its directory `{}`: {e}",
                        path.as_deref().unwrap_or_default()
                    ),
                }
            })?;
            Ok((name.clone(), zone))
        })
        .collect()
}

fn params(name: &str, spec: &CacheZoneSpec, base: &Path) -> Result<ZoneParams, CompileError> {
    if spec.memory_bytes == 0 || spec.max_entry_bytes == 0 {
        return err(
            Anchor::str(name),
            format!("cache zone `{name}`: `memory_bytes` and `max_entry_bytes` must be above 0"),
        );
    }
    if spec.max_entry_bytes > spec.memory_bytes {
        return err(
            Anchor::str(name),
            format!(
                "cache zone `{name}`: `max_entry_bytes` ({}) is larger than `memory_bytes` ({}) (expected an entry to fit in the zone)",
                spec.max_entry_bytes, spec.memory_bytes
            ),
        );
    }
    let disk = spec.disk.as_ref().map(|d| DiskParams {
        path: base.join(&d.path),
        max_bytes: d.max_bytes,
        inactive: d.inactive,
    });
    if let Some(d) = &spec.disk
        && d.max_bytes < spec.max_entry_bytes
    {
        return err(
            Anchor::str(&d.path.to_string_lossy()),
            format!(
                "cache zone `{name}`: its disk's `max_bytes` ({}) is smaller than `max_entry_bytes` ({}) (expected an entry to fit on disk)",
                d.max_bytes, spec.max_entry_bytes
            ),
        );
    }
    Ok(ZoneParams {
        memory_bytes: spec.memory_bytes,
        max_entry_bytes: spec.max_entry_bytes,
        disk,
    })
}

/// `handler` behind the zone `spec` names.
pub(super) fn cached(
    handler: Arc<dyn Handler>,
    spec: &RouteCacheSpec,
    zones: &CacheMap,
) -> Result<Arc<dyn Handler>, CompileError> {
    let zone = zones
        .get(&spec.zone)
        .ok_or_else(|| unknown("cache zone", &spec.zone, "cache_zones", zones.keys()))?;
    let key = Template::parse(&spec.key);
    if key.as_static().is_some() {
        return err(
            Anchor::str(&spec.key),
            format!(
                "cache key `{}` has no variable, so every request would share one entry (expected e.g. \"$scheme://$host$request_uri\")",
                spec.key
            ),
        );
    }
    let mut use_stale = UseStale::default();
    for case in &spec.use_stale {
        match case {
            StaleSpec::Updating => use_stale.updating = true,
            StaleSpec::Error => use_stale.error = true,
            StaleSpec::Timeout => use_stale.timeout = true,
            StaleSpec::Http500 => use_stale.http_500 = true,
            StaleSpec::Http503 => use_stale.http_503 = true,
        }
    }
    let rules = Rules {
        key,
        lock_timeout: spec.lock_timeout,
        use_stale,
    };
    Ok(Arc::new(Cached::new(handler, zone.clone(), rules)))
}
