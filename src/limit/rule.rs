//! [`Limit`]: one zone applied to a route (nginx `limit_req zone=… burst=…
//! [nodelay | delay=…]`), and [`check`], which runs a route's limits before
//! its body is read.
//!
//! nginx's semantics, as a GCRA: a key may be `burst` requests ahead of
//! the zone's rate. The first `delay` of those excess requests are served
//! at once, the rest wait until the rate allows them (so a burst is spread
//! out, not refused), and a request beyond `burst` is refused at once with
//! `Retry-After`. `nodelay` is `delay = burst`; the default `delay = 0`
//! delays every excess request. In a dry run nothing is delayed or
//! refused, but the zone counts and logs what would have been.

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use http::{HeaderMap, StatusCode};

use super::{
    gcra::Decision,
    zone::{Key, KeyKind, Zone},
};
use crate::{client::ClientAddr, kept::Named as _};

/// The key a module's request filter chose for a request (the last filter
/// to choose wins), in the request's extensions: what a zone keyed by
/// [`KeyKind::Module`] counts it under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleKey(pub Box<[u8]>);

/// One zone as a route applies it.
#[derive(Debug)]
pub struct Limit {
    zone: Arc<Zone>,
    /// Requests served at once: 1 + `delay`.
    at_once: u32,
    /// How long a request may wait for its turn: (`burst` − `delay`)
    /// periods.
    max_wait: Duration,
    dry_run: bool,
    status: StatusCode,
    /// The key of a zone keyed by route or server, made once.
    fixed: Option<Key>,
    client: Arc<ClientAddr>,
}

/// How a route applies a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    /// Requests a key may be ahead of the rate.
    pub burst: u32,
    /// How many of those are served without waiting (≤ `burst`).
    pub delay: u32,
    /// Count and log, but never delay or refuse.
    pub dry_run: bool,
    /// The status of a refusal.
    pub status: StatusCode,
}

impl Limit {
    /// `zone` applied with `terms` on the route `route` of the server
    /// `server`; `client` finds the client's address.
    pub fn new(
        zone: Arc<Zone>,
        terms: Terms,
        route: &str,
        server: &str,
        client: Arc<ClientAddr>,
    ) -> Self {
        let delay = terms.delay.min(terms.burst);
        let fixed = match zone.params().key {
            KeyKind::Route => Some(Key::Name(format!("{server} {route}").into())),
            KeyKind::Server => Some(Key::Name(server.into())),
            _ => None,
        };
        Self {
            at_once: delay + 1,
            max_wait: zone.period().saturating_mul(terms.burst - delay),
            zone,
            dry_run: terms.dry_run,
            status: terms.status,
            fixed,
            client,
        }
    }

    /// Whether the zone keys by what a module chose, so the limit runs
    /// after the route's module filters (`pipeline::after_filters`).
    pub fn keyed_by_modules(&self) -> bool {
        self.zone.params().key == KeyKind::Module
    }

    fn key(&self, peer: IpAddr, headers: &HeaderMap, chosen: Option<&[u8]>) -> Option<Key> {
        if let Some(key) = &self.fixed {
            return Some(key.clone());
        }
        match &self.zone.params().key {
            KeyKind::Client { ipv6_prefix } => {
                Some(Key::addr(self.client.of(peer, headers), *ipv6_prefix))
            }
            KeyKind::Header(name) => headers
                .get(name)
                .filter(|v| !v.is_empty())
                .map(|v| Key::Bytes(v.as_bytes().into())),
            KeyKind::Module => chosen
                .filter(|k| !k.is_empty())
                .map(|k| Key::Bytes(k.into())),
            KeyKind::Route | KeyKind::Server => None,
        }
    }
}

/// What a route's limits decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve now.
    Go,
    /// Serve after this long.
    Wait(Duration),
    /// Refuse with this status; the client may try again after this many
    /// seconds.
    Refuse {
        /// The status (429 unless configured).
        status: StatusCode,
        /// Whole seconds, at least 1.
        retry_after: u64,
    },
}

/// Runs `limits` in order for a request from `peer` with `headers`: the
/// longest wait wins, and the first refusal ends the check (the zones
/// before it keep their count, unlike nginx, which counts only requests
/// every zone accepts).
pub fn check(limits: &[Limit], peer: IpAddr, headers: &HeaderMap) -> Verdict {
    check_keyed(limits, peer, headers, None)
}

/// [`check`], with the key the route's module filters chose (`None`: none
/// did), for zones keyed by `Module`.
pub fn check_keyed(
    limits: &[Limit],
    peer: IpAddr,
    headers: &HeaderMap,
    chosen: Option<&[u8]>,
) -> Verdict {
    let now = Instant::now();
    let mut wait = Duration::ZERO;
    for limit in limits {
        let Some(key) = limit.key(peer, headers, chosen) else {
            continue;
        };
        let zone = &limit.zone;
        // A refusal is logged once per second per zone, so a flood
        // cannot turn into a flood of log lines.
        let display = || zone.log_now(now).then(|| key.to_string());
        match zone.take(&key, now, limit.at_once, limit.max_wait) {
            Decision::Now => {}
            Decision::After(_) if limit.dry_run => {}
            Decision::After(d) => {
                zone.series.delayed.inc();
                wait = wait.max(d);
            }
            Decision::Refused(d) if limit.dry_run => {
                zone.series.dry_run.inc();
                if let Some(key) = display() {
                    tracing::info!(
                        zone = zone.name(),
                        key,
                        wait_ms = d.as_millis() as u64,
                        "rate limit (dry run): would refuse (one line per second per zone)"
                    );
                }
            }
            Decision::Refused(d) => {
                zone.series.refused.inc();
                if let Some(key) = display() {
                    tracing::warn!(
                        zone = zone.name(),
                        key,
                        "rate limit: refusing (one line per second per zone)"
                    );
                }
                // The next request is accepted (queued) once its wait is
                // within what the route allows.
                let until = d.saturating_sub(limit.max_wait);
                let retry_after = until.as_secs() + u64::from(until.subsec_nanos() > 0);
                return Verdict::Refuse {
                    status: limit.status,
                    retry_after: retry_after.max(1),
                };
            }
        }
    }
    if wait.is_zero() {
        Verdict::Go
    } else {
        Verdict::Wait(wait)
    }
}
