//! `rate_zones` and `rate_limits` → [`crate::limit`]: zones taken from the
//! registry (kept across a reload that keeps them), and each route's
//! limits, its server's first.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use http::{HeaderName, StatusCode};

use super::{
    limit_schema::{RateKeySpec, RateLimitSpec, RateZoneSpec},
    locate::{Anchor, CompileError, err, unknown},
    schema::Config,
};
use crate::{
    client::ClientAddr,
    handler::Middleware,
    kept::Named as _,
    limit::{KeyKind, Limit, Terms, Zone, ZoneParams, Zones},
    pipeline::after_filters::AfterFilters,
};

/// The zones of a config, by name.
pub(super) type ZoneMap = BTreeMap<String, Arc<Zone>>;

/// Compiles every zone, taking those in force from `registry`.
pub(super) fn compile_zones(cfg: &Config, registry: &Zones) -> Result<ZoneMap, CompileError> {
    cfg.rate_zones
        .iter()
        .map(|(name, spec)| Ok((name.clone(), registry.zone(name, params(name, spec)?))))
        .collect()
}

fn params(name: &str, spec: &RateZoneSpec) -> Result<ZoneParams, CompileError> {
    let period = parse_rate(&spec.rate).ok_or_else(|| CompileError {
        message: format!(
            "invalid rate `{}` for zone `{name}` (expected requests per second or minute, e.g. \"10r/s\" or \"30r/m\")",
            spec.rate
        ),
        anchor: Anchor::str(&spec.rate),
    })?;
    let key = match &spec.key {
        RateKeySpec::Client => {
            if spec.ipv6_prefix == 0 || spec.ipv6_prefix > 128 {
                return err(
                    Anchor::str(name),
                    format!(
                        "zone `{name}`: `ipv6_prefix` is {} (expected 1 to 128)",
                        spec.ipv6_prefix
                    ),
                );
            }
            KeyKind::Client {
                ipv6_prefix: spec.ipv6_prefix,
            }
        }
        RateKeySpec::Route => KeyKind::Route,
        RateKeySpec::Server => KeyKind::Server,
        RateKeySpec::Module => KeyKind::Module,
        RateKeySpec::Header(h) => {
            KeyKind::Header(HeaderName::try_from(h.as_str()).map_err(|_| CompileError {
                message: format!("zone `{name}`: `{h}` is not a header name"),
                anchor: Anchor::str(h),
            })?)
        }
    };
    if spec.max_keys == 0 {
        return err(
            Anchor::str(name),
            format!("zone `{name}`: `max_keys` is 0 (expected at least 1)"),
        );
    }
    Ok(ZoneParams {
        period,
        key,
        max_keys: spec.max_keys,
    })
}

/// `"10r/s"` → 100 ms; `"30r/m"` → 2 s. Zero or junk is `None`.
fn parse_rate(rate: &str) -> Option<Duration> {
    let (n, unit) = rate.trim().split_once("r/")?;
    let n: u32 = n.trim().parse().ok().filter(|&n| n > 0)?;
    let per = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        _ => return None,
    };
    Some(per / n)
}

/// A route's limits checked before its body is read, and the step that
/// checks those keyed by a module's choice, if it has any.
pub(super) type RouteLimits = (Box<[Limit]>, Option<Arc<dyn Middleware>>);

/// The limits of one route, split by when they run: those checked before
/// its body is read, and those keyed by a module's choice, as the step
/// that checks them after its module filters (`None`: no such zone, and
/// nothing added to the chain). `filtered` says whether the route has a
/// `Module(..)` middleware that could choose a key: without one, its own
/// limit on such a zone is an error (pointing at `at`, the route), and
/// its server's is left out, as it would never apply.
#[allow(clippy::too_many_arguments)]
pub(super) fn route_limits(
    server: &[RateLimitSpec],
    own: &[RateLimitSpec],
    zones: &ZoneMap,
    route: &str,
    server_name: &str,
    client: &Arc<ClientAddr>,
    filtered: bool,
    at: &Anchor,
) -> Result<RouteLimits, CompileError> {
    let all = compile_limits(server, own, zones, route, server_name, client)?;
    let (after, before): (Vec<Limit>, Vec<Limit>) = all
        .into_vec()
        .into_iter()
        .partition(Limit::keyed_by_modules);
    if after.is_empty() {
        return Ok((before.into(), None));
    }
    if !filtered {
        if let Some(spec) = own.iter().find(|s| {
            zones
                .get(&s.zone)
                .is_some_and(|z| z.params().key == KeyKind::Module)
        }) {
            return err(
                at.clone(),
                format!(
                    "route `{route}` applies the rate zone `{}`, keyed by `Module`, but has no `Module(..)` middleware to choose the key (expected a module in its `middleware` whose request filter calls set_rate_key)",
                    spec.zone
                ),
            );
        }
        return Ok((before.into(), None));
    }
    let step: Arc<dyn Middleware> = Arc::new(AfterFilters::new(after));
    Ok((before.into(), Some(step)))
}

/// The limits of one route: its server's, then its own.
fn compile_limits(
    server: &[RateLimitSpec],
    own: &[RateLimitSpec],
    zones: &ZoneMap,
    route: &str,
    server_name: &str,
    client: &Arc<ClientAddr>,
) -> Result<Box<[Limit]>, CompileError> {
    server
        .iter()
        .chain(own)
        .map(|spec| {
            let zone = zones
                .get(&spec.zone)
                .ok_or_else(|| unknown("rate zone", &spec.zone, "rate_zones", zones.keys()))?;
            Ok(Limit::new(
                zone.clone(),
                terms(spec)?,
                route,
                server_name,
                client.clone(),
            ))
        })
        .collect()
}

fn terms(spec: &RateLimitSpec) -> Result<Terms, CompileError> {
    let at = || Anchor::str(&spec.zone);
    if spec.nodelay && spec.delay > 0 {
        return err(
            at(),
            "a rate limit has both `nodelay` and `delay` (expected one: `nodelay` serves the whole burst at once)",
        );
    }
    if spec.delay > spec.burst {
        return err(
            at(),
            format!(
                "`delay` is {} but `burst` is {} (expected delay ≤ burst)",
                spec.delay, spec.burst
            ),
        );
    }
    let status = StatusCode::from_u16(spec.status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .ok_or_else(|| CompileError {
            message: format!(
                "a rate limit's `status` is {} (expected a 4xx or 5xx status, e.g. 429 or 503)",
                spec.status
            ),
            anchor: at(),
        })?;
    Ok(Terms {
        burst: spec.burst,
        delay: if spec.nodelay { spec.burst } else { spec.delay },
        dry_run: spec.dry_run,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_nginx_writes_them() {
        assert_eq!(parse_rate("10r/s"), Some(Duration::from_millis(100)));
        assert_eq!(parse_rate("30r/m"), Some(Duration::from_secs(2)));
        assert_eq!(parse_rate("1r/s"), Some(Duration::from_secs(1)));
        for bad in ["0r/s", "10r/h", "ten r/s", "10", "-1r/s", ""] {
            assert_eq!(parse_rate(bad), None, "{bad}");
        }
    }
}
