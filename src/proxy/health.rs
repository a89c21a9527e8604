//! Active health checks and upkeep of a group's backends, as the
//! supervision tree drives them ([`GroupHealth`], the root crate's
//! `troupe_actors::UpstreamGroup`).
//!
//! The group's actor (`upstream.<name>`, under the `upstreams`
//! supervisor) calls [`GroupHealth::check`] every interval: each backend
//! is probed at once, on a connection of its own (a probe never takes a
//! pooled connection nor counts against `max_total`), and the outcome is
//! folded into the backend's [`Verdict`] (rise and fall counts). The
//! verdict sits in the shared `Backend`, so a reload that keeps the
//! backend keeps it, and requests read it with one load (`pick` in
//! `forward.rs` skips a backend that is down, with the same panic
//! routing as passive ejection). The supervisor's upkeep
//! ([`GroupHealth::maintain`], every second) closes idle connections
//! past their idle timeout and refreshes `troupe_upstream_backend_up`.

use std::{sync::Arc, time::Duration};

use http::{HeaderValue, Request, header};
use tokio::net::TcpStream;
use troupe_actors::{BoxFuture, UpstreamGroup};

use super::{
    backend::{Backend, now_ms},
    body::UpstreamBody,
    pool::to_h2,
    transport::{self, Opened, Transport},
    upstream::{Probe, Upstream, Upstreams},
    verdict::Turn,
};
use crate::observe::metrics::{BackendLabels, UpstreamMetrics};

/// One group of the generation in force, as the tree keeps it.
pub struct GroupHealth {
    upstream: Arc<Upstream>,
    metrics: UpstreamMetrics,
    /// Every (group, backend) of its generation: the upkeep drops the
    /// series of the others (backends a reload removed).
    live: Arc<BackendLabels>,
}

/// Every group of `upstreams`, for the `upstreams` supervisor.
pub fn groups(upstreams: &Upstreams, metrics: &UpstreamMetrics) -> Vec<Arc<dyn UpstreamGroup>> {
    let live: Arc<BackendLabels> = Arc::new(
        upstreams
            .groups
            .values()
            .flat_map(|up| {
                up.backends
                    .iter()
                    .map(|b| (up.name.to_string(), b.addr.to_string()))
            })
            .collect(),
    );
    upstreams
        .groups
        .values()
        .map(|up| {
            Arc::new(GroupHealth {
                upstream: up.clone(),
                metrics: metrics.clone(),
                live: live.clone(),
            }) as Arc<dyn UpstreamGroup>
        })
        .collect()
}

impl UpstreamGroup for GroupHealth {
    fn name(&self) -> &str {
        &self.upstream.name
    }

    fn interval(&self) -> Option<Duration> {
        self.upstream.settings.check.as_ref().map(|c| c.interval)
    }

    fn check(&self) -> BoxFuture<'static, ()> {
        let (up, metrics) = (self.upstream.clone(), self.metrics.clone());
        Box::pin(async move {
            let Some(check) = up.settings.check.clone() else {
                return;
            };
            let transport = &up.settings.transport;
            let probes = up.backends.iter().map(|b| {
                let check = check.clone();
                async move {
                    let outcome = tokio::time::timeout(
                        check.timeout,
                        probe(b, &check.probe, transport, check.timeout),
                    )
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {:?}", check.timeout)));
                    (b, outcome)
                }
            });
            for (b, outcome) in futures_util::future::join_all(probes).await {
                let why = outcome.as_ref().err().cloned();
                let turn = b.verdict.record(outcome, check.rise, check.fall);
                let addr = b.addr.to_string();
                match turn {
                    Some(Turn::Down) => {
                        tracing::warn!(upstream = %up.name, backend = %addr, reason = why.as_deref().unwrap_or(""), fall = check.fall, "upstream backend down: its health checks failed");
                        metrics.turned(&up.name, &addr, false);
                    }
                    Some(Turn::Up) => {
                        b.forgive();
                        tracing::info!(upstream = %up.name, backend = %addr, rise = check.rise, "upstream backend up: its health checks pass again");
                        metrics.turned(&up.name, &addr, true);
                    }
                    None => {}
                }
                metrics.set_up(&up.name, &addr, b.usable(now_ms(), true));
            }
        })
    }

    fn maintain(&self) {
        // Only the groups in force get their upkeep, so once a reload is
        // in force its backends' series are the ones left.
        self.metrics.retain(&self.live);
        let up = &self.upstream;
        let (now, checked) = (now_ms(), up.settings.check.is_some());
        for b in up.backends.iter() {
            b.pool.reap(up.settings.idle_timeout);
            self.metrics
                .set_up(&up.name, &b.addr.to_string(), b.usable(now, checked));
        }
    }
}

/// One probe of `backend`; `Err` says why it failed. An HTTP probe goes
/// the way requests go (`transport`: TLS, HTTP/2, SNI), so what it checks
/// is what requests would meet.
async fn probe(
    backend: &Backend,
    probe: &Probe,
    transport: &Transport,
    timeout: Duration,
) -> Result<(), String> {
    let addr = backend.addr;
    let Probe::Http { uri, status, host } = probe else {
        return TcpStream::connect(addr)
            .await
            .map(drop)
            .map_err(|e| format!("connect: {e}"));
    };
    // The driver ends with the connection: `Connection: close` for
    // HTTP/1.1, the dropped sender for HTTP/2, or the probe abandoned at
    // its deadline.
    let opened = transport::open(backend, transport, timeout, || {})
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let host = host.clone().unwrap_or_else(|| backend.authority.clone());
    let mut req = Request::get(uri.clone())
        .header(header::HOST, host)
        .header(header::USER_AGENT, "troupe-health-check")
        .body(UpstreamBody::Full(None))
        .map_err(|e| e.to_string())?;
    let resp = match opened {
        Opened::H1(mut send) => {
            req.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            send.send_request(req).await
        }
        Opened::H2(mut send) => {
            to_h2(&mut req, transport.tls.is_some());
            send.send_request(req).await
        }
    }
    .map_err(|e| format!("HTTP: {e}"))?;
    let code = resp.status();
    if status.contains(&code.as_u16()) {
        Ok(())
    } else {
        Err(format!(
            "status {code} (expected {} to {})",
            status.start(),
            status.end()
        ))
    }
}

/// Each backend of `up` as the admin API's `GET /upstreams` shows it:
/// whether it takes requests, and why not.
pub fn status(up: &Upstream) -> serde_json::Value {
    let (now, check) = (now_ms(), up.settings.check.as_ref());
    let backends: Vec<_> = up
        .backends
        .iter()
        .zip(up.weights.iter())
        .map(|(b, weight)| {
            serde_json::json!({
                "addr": b.addr.to_string(),
                "host": b.host.as_deref(),
                "weight": weight,
                "up": b.usable(now, check.is_some()),
                "down_by_check": check.is_some() && b.down(),
                "ejected": b.ejected(now),
                "last_check_error": check.and_then(|_| b.verdict.last_error()),
                "in_flight": b.inflight(),
                "requests": b.served(),
                "open_connections": b.pool.total(),
            })
        })
        .collect();
    let check = check.map(|c| {
        let probe = match &c.probe {
            Probe::Http { uri, .. } => format!("HTTP GET {uri}"),
            Probe::Tcp => "TCP connect".to_owned(),
        };
        serde_json::json!({
            "probe": probe,
            "interval_ms": c.interval.as_millis() as u64,
            "rise": c.rise,
            "fall": c.fall,
        })
    });
    serde_json::json!({"check": check, "backends": backends})
}
