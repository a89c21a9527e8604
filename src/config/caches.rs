//! `cache_zones` and a route's `cache` → [`crate::cache`]: zones taken
//! from the registry (kept, entries and all, across a reload that keeps
//! them), and each cached route's handler wrapped in [`Cached`].

use std::{collections::BTreeMap, sync::Arc};

use super::{
    cache_schema::{CacheZoneSpec, RouteCacheSpec, StaleSpec},
    locate::{Anchor, CompileError, err, unknown},
    schema::Config,
};
use crate::{
    cache::{CacheZone, CacheZones, Cached, Rules, UseStale, ZoneParams},
    handler::Handler,
    handlers::template::Template,
};

/// The cache zones of a config, by name.
pub(super) type CacheMap = BTreeMap<String, Arc<CacheZone>>;

/// Compiles every zone, taking those in force from `registry`.
pub(super) fn compile_cache_zones(
    cfg: &Config,
    registry: &CacheZones,
) -> Result<CacheMap, CompileError> {
    cfg.cache_zones
        .iter()
        .map(|(name, spec)| Ok((name.clone(), registry.zone(name, params(name, spec)?))))
        .collect()
}

fn params(name: &str, spec: &CacheZoneSpec) -> Result<ZoneParams, CompileError> {
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
    Ok(ZoneParams {
        memory_bytes: spec.memory_bytes,
        max_entry_bytes: spec.max_entry_bytes,
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
