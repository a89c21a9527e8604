//! `upstreams` and `trusted_proxies` → the generation's [`Upstreams`],
//! checking meaning on the way; each backend's state comes from the
//! registry, so a reload that keeps a backend keeps its state.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use http::{HeaderName, HeaderValue};

use super::{
    health::compile_check,
    locate::{Anchor, CompileError, err, unknown},
    schema::{Config, ForwardedSpec, HashKeySpec, HostSpec, PolicySpec, ProxySpec, UpstreamSpec},
};
use crate::proxy::{
    HostMode, Proxy, Registry, Settings, Trusted, Upstream, Upstreams,
    balance::{Balancer, HashKey},
    headers::Forwarding,
};

/// Compiles every group, taking backends from `registry`.
pub(super) fn compile_upstreams(
    cfg: &Config,
    base: &Path,
    registry: &Arc<Registry>,
) -> Result<Upstreams, CompileError> {
    let trusted = Trusted::parse(&cfg.trusted_proxies).map_err(|message| {
        let bad = cfg
            .trusted_proxies
            .iter()
            .find(|t| Trusted::parse(&[t.as_str()]).is_err())
            .map_or_else(
                || Anchor::Key {
                    key: "trusted_proxies",
                    nth: 0,
                },
                |t| Anchor::str(t),
            );
        CompileError {
            message,
            anchor: bad,
        }
    })?;
    let groups = cfg
        .upstreams
        .iter()
        .map(|(name, spec)| {
            Ok((
                name.clone(),
                Arc::new(compile_one(name, spec, base, registry)?),
            ))
        })
        .collect::<Result<BTreeMap<_, _>, CompileError>>()?;
    Ok(Upstreams {
        groups: Arc::new(groups),
        trusted: Arc::new(trusted),
        registry: registry.clone(),
    })
}

fn compile_one(
    name: &str,
    spec: &UpstreamSpec,
    base: &Path,
    registry: &Registry,
) -> Result<Upstream, CompileError> {
    let at = Anchor::str(name);
    let resolved = super::backends::resolve(name, &spec.backends)?;
    let r = &spec.retry;
    if !(0.0..=1.0).contains(&r.budget) {
        return err(
            at,
            format!(
                "upstream `{name}`: retry budget {} is not a share (expected 0.0 to 1.0)",
                r.budget
            ),
        );
    }
    if r.tries == 0 {
        return err(
            at,
            format!(
                "upstream `{name}`: retry tries is 0 (expected 1 or more; 1 turns retries off)"
            ),
        );
    }
    let transport = super::upstream_tls::compile_transport(name, spec, base)?;
    let check = compile_check(name, spec.health.check.as_ref())?;
    let name: Arc<str> = name.into();
    let backends: Box<[_]> = resolved
        .iter()
        .map(|b| registry.backend(&name, b.addr, b.host.clone()))
        .collect();
    let weights: Box<[u32]> = resolved.iter().map(|b| b.weight).collect();
    let balancer = match &spec.policy {
        PolicySpec::RoundRobin => Balancer::round_robin(&weights),
        PolicySpec::LeastConn => Balancer::least_conn(),
        PolicySpec::PeakEwma => Balancer::PeakEwma,
        PolicySpec::Hash(key) => {
            let key = match key {
                HashKeySpec::RemoteAddr => HashKey::RemoteAddr,
                HashKeySpec::Uri => HashKey::Uri,
                HashKeySpec::Header(h) => {
                    HashKey::Header(HeaderName::try_from(h.as_str()).map_err(|_| CompileError {
                        message: format!(
                            "invalid header name `{h}` (expected a token such as `x-user`)"
                        ),
                        anchor: Anchor::str(h),
                    })?)
                }
            };
            let addrs: Vec<_> = resolved.iter().map(|b| b.addr).collect();
            Balancer::hash(key, &addrs, &weights)
        }
    };
    Ok(Upstream {
        name,
        backends,
        weights,
        balancer,
        settings: Settings {
            connect_timeout: spec.connect_timeout,
            read_timeout: spec.read_timeout,
            tunnel_idle_timeout: spec.tunnel_idle_timeout,
            max_idle: spec.pool.max_idle,
            max_total: spec.pool.max_total,
            idle_timeout: spec.pool.idle_timeout,
            tries: r.tries,
            retry_timeout: r.timeout,
            retry_budget: r.budget,
            min_retries: r.min_retries,
            buffer_bytes: r.buffer_bytes,
            max_fails: spec.health.max_fails,
            fail_timeout: spec.health.fail_timeout,
            transport,
            check,
        },
        budget: Default::default(),
    })
}

/// A `Proxy(..)` route's handler.
pub(super) fn compile_proxy(
    spec: &ProxySpec,
    upstreams: &Upstreams,
    route: &str,
) -> Result<Proxy, CompileError> {
    let upstream = upstreams.groups.get(&spec.upstream).ok_or_else(|| {
        unknown(
            "upstream",
            &spec.upstream,
            "upstreams",
            upstreams.groups.keys(),
        )
    })?;
    let host = match &spec.host {
        HostSpec::Pass => HostMode::Pass,
        HostSpec::Backend => HostMode::Backend,
        HostSpec::Set(v) => {
            HostMode::Set(HeaderValue::try_from(v.as_str()).map_err(|_| CompileError {
                message: format!("invalid Host `{v}` (expected visible ASCII)"),
                anchor: Anchor::str(v),
            })?)
        }
    };
    for token in &spec.upgrades {
        // RFC 9110 §5.6.2: a token; `websocket`, `h2c`, `foo/2`.
        let ok = !token.is_empty()
            && token.bytes().all(|b| {
                b == b'/' || (b.is_ascii_graphic() && !b"\"(),:;<=>?@[\\]{}".contains(&b))
            });
        if !ok {
            return err(
                Anchor::str(token),
                format!(
                    "invalid upgrade protocol `{token}` (expected a token such as `websocket`)"
                ),
            );
        }
    }
    let upgrades = spec
        .upgrades
        .iter()
        .map(|t| t.to_ascii_lowercase())
        .collect();
    let forwarding = Forwarding {
        x_forwarded: matches!(
            spec.forwarded,
            ForwardedSpec::All | ForwardedSpec::XForwarded
        ),
        rfc7239: matches!(spec.forwarded, ForwardedSpec::All | ForwardedSpec::Rfc7239),
    };
    Ok(
        Proxy::new(upstream.clone(), host, upstreams.trusted.clone())
            .with_upgrades(upgrades)
            .with_forwarding(forwarding)
            .with_choices(upstreams.groups.clone(), route),
    )
}
