//! The `Proxy` handler: one request to a backend of its group and the
//! answer back, with the retries that are safe.
//!
//! ```text
//! call → group: the route's, or one a module chose (choice.rs; unknown: 502)
//!      → head: hop-by-hop out, forwarding headers in, Host, origin-form URI
//!      → upgrade? (upgrade.rs: Upgrade kept, an HTTP/2 CONNECT made a GET)
//!      → body: none | ≤ buffer_bytes by Content-Length: read whole (kept
//!        for a retry) | else streamed as it arrives
//!      → try: pick (balance.rs; tried, out and full ones skipped; all out:
//!        any) → InFlight → pooled connection (ready) or connect →
//!        try_send_request under read_timeout
//!          101 to an upgrade → the client's 101 (or 200), tunnel.rs
//!            joins the two connections
//!          answer → hop-by-hop out, body relayed (body.rs), connection
//!            back to the pool at its end
//!          failure → the backend's failure count (passive health); try
//!            again if safe (retry.rs), tries, time and budget allow;
//!            else 502 (504 on a timeout) with a log line
//! ```
//!
//! Nothing is spawned per request: a client that goes away drops this
//! future, and with it the upstream request (hyper then closes that
//! connection).

use crate::client::Trusted;
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, Uri, Version, header, request::Parts, uri::PathAndQuery};
use http_body::Body as _;

use super::{
    backend::{Backend, InFlight, now_ms},
    balance::Key,
    body::{Lease, Relay, UpstreamBody},
    choice,
    headers::{Forwarding, Hop, add_forwarding, strip_hop_by_hop},
    pool::{ConnectError, Sender},
    retry::{self, Sent},
    transport::Protocol,
    upgrade,
    upstream::Upstream,
};
use crate::{
    error::HttpError,
    handler::{Handler, HandlerFuture, HandlerResult, Response},
    observe::access_log::UpstreamTiming,
    pipeline::{body::Body, request::Request},
};

/// The `Host` a backend sees.
#[derive(Debug, Clone)]
pub enum HostMode {
    /// The client's.
    Pass,
    /// The backend's `host:port` as configured (`ip:port` for an address).
    Backend,
    /// A fixed value.
    Set(HeaderValue),
}

/// A route's reverse proxy to one upstream group.
#[derive(Debug, Clone)]
pub struct Proxy(Arc<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    upstream: Arc<Upstream>,
    host: HostMode,
    trusted: Arc<Trusted>,
    /// The protocols a client may upgrade to (lowercase; `upgrade.rs`).
    upgrades: Arc<[String]>,
    /// The forwarding headers this hop adds.
    forwarding: Forwarding,
    /// Every group of the generation, for a module's choice (`choice.rs`).
    groups: Arc<BTreeMap<String, Arc<Upstream>>>,
    /// The route's pattern, for the log.
    route: Arc<str>,
}

impl Proxy {
    /// A proxy to `upstream`.
    pub fn new(upstream: Arc<Upstream>, host: HostMode, trusted: Arc<Trusted>) -> Self {
        Self(Arc::new(Inner {
            upstream,
            host,
            trusted,
            upgrades: Arc::from([String::from("websocket")]),
            forwarding: Forwarding::ALL,
            groups: Arc::default(),
            route: Arc::from(""),
        }))
    }

    /// The same proxy, letting modules choose any of `groups` for a
    /// request (`UpstreamChoice`); `route` names the route in the log.
    pub fn with_choices(
        mut self,
        groups: Arc<BTreeMap<String, Arc<Upstream>>>,
        route: &str,
    ) -> Self {
        let inner = Arc::make_mut(&mut self.0);
        inner.groups = groups;
        inner.route = Arc::from(route);
        self
    }

    /// The same proxy, passing upgrades to `upgrades` (lowercase tokens;
    /// empty: none).
    pub fn with_upgrades(mut self, upgrades: Vec<String>) -> Self {
        Arc::make_mut(&mut self.0).upgrades = upgrades.into();
        self
    }

    /// The same proxy, adding only the forwarding headers `which` names.
    pub fn with_forwarding(mut self, which: Forwarding) -> Self {
        Arc::make_mut(&mut self.0).forwarding = which;
        self
    }
}

impl Handler for Proxy {
    fn call(&self, req: Request) -> HandlerFuture {
        HandlerFuture::new(forward(self.0.clone(), req))
    }

    fn streams_body(&self) -> bool {
        true
    }
}

/// How the last try failed.
struct Failure {
    error: HttpError,
    addr: SocketAddr,
}

async fn forward(inner: Arc<Inner>, mut req: Request) -> HandlerResult {
    let up = match choice::group(&req, &inner.upstream, &inner.groups, &inner.route) {
        Ok(up) => up,
        Err(refused) => return Ok(refused.into_response()),
    };
    let s = &up.settings;
    let started = Instant::now();
    up.budget.request();
    let stream = req.take_body_stream();
    let (peer, tls) = (req.peer(), req.is_tls());
    // A request routed here again (a `Rewrite` route, a `try_files`
    // fallback) had its body read whole by the first route's rules: it is
    // sent as it was read.
    let (mut head, buffered) = req.into_parts();
    let mut upgrade = upgrade::wanted(&mut head, &inner.upgrades)?;
    if upgrade.is_some() && s.transport.protocol != Protocol::Http1 {
        // HTTP/2 has no Upgrade, and an `Auto` group cannot promise an
        // HTTP/1.1 connection: say so rather than send what cannot work.
        tracing::warn!(
            upstream = &*up.name,
            "an upgrade cannot go to an HTTP/2 upstream group (set `protocol: Http1`)"
        );
        return Ok(HttpError::BadGateway("upgrade to an HTTP/2 upstream").into_response());
    }

    // The body: kept whole when small enough to send again, else streamed.
    let (kept, mut stream) = match stream {
        None => (Some(buffered), None),
        Some(body)
            if body
                .size_hint()
                .exact()
                .is_some_and(|n| n <= s.buffer_bytes) =>
        {
            (Some(read_whole(body, s.read_timeout).await?), None)
        }
        Some(body) => (None, Some(body)),
    };

    prepare_head(&mut head, &inner, peer.ip(), tls);
    if let Some(u) = &upgrade {
        u.apply(&mut head);
    }
    let idempotent = head.method.is_idempotent();
    let uri = origin_form(&head.uri);

    let mut tried = 0u64;
    // After a pooled connection failed under a request: a new one.
    let mut fresh = false;
    let mut attempt = 0;
    let mut unsent: Option<http::Request<UpstreamBody>> = None;
    let mut last: Option<Failure> = None;
    loop {
        attempt += 1;
        let key = Key {
            peer: peer.ip(),
            head: &head,
        };
        let Some(i) = pick(up, key, tried) else {
            return Ok(match last {
                Some(f) => failed(f, started),
                None => {
                    tracing::warn!(upstream = &*up.name, "no upstream backend available");
                    HttpError::Unavailable("no upstream backend available").into_response()
                }
            });
        };
        tried |= 1 << i;
        let backend = &up.backends[i];
        let addr = backend.addr;
        let inflight = InFlight::start(backend);
        // Whether this try's failure was logged at debug only (a pooled
        // connection); warned about if it is the last.
        let quiet: bool;
        let sent = match connection(backend, up, std::mem::take(&mut fresh)).await {
            Err(e) => {
                quiet = false;
                backend.failed(s.max_fails, s.fail_timeout);
                tracing::warn!(upstream = &*up.name, backend = %addr, error = %e, "upstream connect failed");
                last = Some(Failure {
                    error: match e {
                        ConnectError::Timeout => {
                            HttpError::GatewayTimeout("upstream connect timed out")
                        }
                        _ => HttpError::BadGateway("upstream connect failed"),
                    },
                    addr,
                });
                Sent::No
            }
            Ok((mut sender, reused)) => {
                let request = match unsent.take() {
                    Some(mut r) => {
                        set_host(&mut r, &inner.host, backend);
                        r
                    }
                    None => {
                        let body = match (&kept, stream.take()) {
                            (Some(b), _) => UpstreamBody::Full((!b.is_empty()).then(|| b.clone())),
                            (None, Some(s)) => UpstreamBody::Stream(s),
                            // A streamed body is never tried twice once sent.
                            (None, None) => UpstreamBody::Full(None),
                        };
                        build(&head, &uri, &inner.host, backend, body)
                    }
                };
                match tokio::time::timeout(s.read_timeout, sender.try_send_request(request)).await {
                    Ok(Ok(resp)) => {
                        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                            return Ok(match upgrade.take() {
                                Some(u) => {
                                    u.switched(resp, inflight, s.tunnel_idle_timeout, started)
                                }
                                None => {
                                    tracing::warn!(upstream = &*up.name, backend = %addr, "upstream switched protocols unasked");
                                    failed(
                                        Failure {
                                            error: HttpError::BadGateway(
                                                "upstream switched protocols unasked",
                                            ),
                                            addr,
                                        },
                                        started,
                                    )
                                }
                            });
                        }
                        return Ok(relay(resp, sender, inflight, up, started));
                    }
                    Ok(Err((error, given_back))) => {
                        if let Some(refused) = client_side(&error) {
                            return Err(refused);
                        }
                        let sent = match given_back {
                            // The connection died before it took the request:
                            // safe to send again.
                            Some(r) => {
                                unsent = Some(r);
                                Sent::No
                            }
                            // HTTP/2 says the backend did not process it; a
                            // kept body can make it again.
                            None if kept.is_some() && retry::unprocessed(&error) => Sent::No,
                            None => Sent::Maybe,
                        };
                        // A stream of a shared HTTP/2 connection that is
                        // still open failed on its own: the backend's doing.
                        if reused && !sender.is_open_h2() {
                            // Most likely the backend closed it as we took
                            // it (the keep-alive race), not a sign of its
                            // health: the same backend may be tried again,
                            // on a new connection (Pingora's `ReusedOnly`).
                            tried &= !(1 << i);
                            fresh = true;
                            quiet = true;
                            tracing::debug!(upstream = &*up.name, backend = %addr, error = %error, "pooled upstream connection failed");
                        } else {
                            quiet = false;
                            if sent == Sent::Maybe {
                                backend.failed(s.max_fails, s.fail_timeout);
                            }
                            tracing::warn!(upstream = &*up.name, backend = %addr, error = %error, "upstream request failed");
                        }
                        last = Some(Failure {
                            error: HttpError::BadGateway("upstream request failed"),
                            addr,
                        });
                        sent
                    }
                    Err(_) => {
                        // Dropping the request closes the connection.
                        quiet = false;
                        backend.failed(s.max_fails, s.fail_timeout);
                        tracing::warn!(upstream = &*up.name, backend = %addr, timeout = ?s.read_timeout, "upstream timed out");
                        last = Some(Failure {
                            error: HttpError::GatewayTimeout("upstream timed out"),
                            addr,
                        });
                        Sent::Maybe
                    }
                }
            }
        };
        drop(inflight);
        let replayable = kept.is_some() || unsent.is_some() || stream.is_some();
        let again = attempt < s.tries
            && started.elapsed() < s.retry_timeout
            && retry::safe(sent, idempotent, replayable)
            && up.budget.try_retry(s.retry_budget, s.min_retries);
        if !again {
            if quiet && let Some(f) = &last {
                tracing::warn!(upstream = &*up.name, backend = %f.addr, "upstream request failed on a pooled connection, not retried");
            }
            let f = last.take().expect("a failed try sets `last`");
            return Ok(failed(f, started));
        }
    }
}

/// A backend for this try: not tried yet, with room, and in (neither
/// ejected by passive health nor down by active checks); when every
/// such one is out, any with room (panic routing, as Envoy does: a group
/// whose backends all failed recently still gets its requests tried).
fn pick(up: &Upstream, key: Key<'_>, tried: u64) -> Option<usize> {
    let now = now_ms();
    let b = &up.backends;
    let max_total = up.settings.max_total;
    let checked = up.settings.check.is_some();
    let open = |i: usize| tried & (1 << i) == 0 && b[i].has_room(max_total);
    up.balancer
        .pick(b, &up.weights, key, |i| {
            open(i) && b[i].usable(now, checked)
        })
        .or_else(|| up.balancer.pick(b, &up.weights, key, open))
}

/// A ready connection to `backend` and whether it was pooled: a pooled
/// one if one is still good (unless `fresh`), else a new one.
async fn connection(
    backend: &Backend,
    up: &Upstream,
    fresh: bool,
) -> Result<(Sender, bool), ConnectError> {
    let s = &up.settings;
    let t = &s.transport;
    let pool = &backend.pool;
    if t.protocol != Protocol::Http1 {
        if !fresh && let Some(sender) = pool.take_h2(t) {
            return Ok((sender, true));
        }
        if pool.opens_h2(t) {
            // One opener at a time; the others share what it opened. The
            // wait counts against connect_timeout, so a backend that does
            // not answer does not make a queue of timeouts end to end.
            let Ok(_turn) = tokio::time::timeout(s.connect_timeout, pool.opening()).await else {
                return Err(ConnectError::Timeout);
            };
            if !fresh && let Some(sender) = pool.take_h2(t) {
                return Ok((sender, true));
            }
            let mut sender = Box::pin(pool.connect(backend, t, s.connect_timeout)).await?;
            sender.ready().await?;
            return Ok((sender, false));
        }
    }
    while !fresh && let Some(mut sender) = pool.take(s.pool()) {
        if sender.ready().await.is_ok() {
            return Ok((sender, true));
        }
    }
    // Boxed: opening a connection (TCP, TLS, an HTTP/2 handshake) is a
    // large future and, with keep-alive, a rare one. Inline, it made the
    // whole request's future that large, and moving it into its box cost
    // a quarter of a proxied request's instructions.
    let mut sender = Box::pin(pool.connect(backend, t, s.connect_timeout)).await?;
    sender.ready().await?;
    Ok((sender, false))
}

/// Reads a small body whole (its size is known and within `buffer_bytes`).
async fn read_whole(
    body: crate::pipeline::request::BodyStream,
    timeout: Duration,
) -> Result<Bytes, HttpError> {
    match tokio::time::timeout(timeout, crate::pipeline::collect::collect(body)).await {
        Err(_) => Err(HttpError::BodyTimeout),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(HttpError::BodyTooLarge),
        Ok(Err(_)) => Err(HttpError::BadRequest("request body was cut off")),
    }
}

/// The head every try sends: hop-by-hop headers out, then this hop's
/// forwarding headers, the `Host`, HTTP/1.1.
fn prepare_head(head: &mut Parts, inner: &Inner, peer: std::net::IpAddr, tls: bool) {
    // An HTTP/2 client names the host in :authority, not Host.
    let client_host = head.headers.get(header::HOST).cloned().or_else(|| {
        head.uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    strip_hop_by_hop(&mut head.headers);
    // We answered any `Expect: 100-continue` ourselves by reading the body.
    head.headers.remove(header::EXPECT);
    let hop = Hop {
        peer,
        trusted: inner.trusted.contains(peer),
        tls,
        host: client_host.as_ref(),
    };
    add_forwarding(&mut head.headers, hop, inner.forwarding);
    match (&inner.host, client_host) {
        (HostMode::Pass, Some(host)) => {
            head.headers.insert(header::HOST, host);
        }
        (HostMode::Set(v), _) => {
            head.headers.insert(header::HOST, v.clone());
        }
        _ => {}
    }
    head.version = Version::HTTP_11;
}

fn origin_form(uri: &Uri) -> Uri {
    let pq = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    Uri::from(pq)
}

fn build(
    head: &Parts,
    uri: &Uri,
    host: &HostMode,
    backend: &Backend,
    body: UpstreamBody,
) -> http::Request<UpstreamBody> {
    let mut r = http::Request::new(body);
    *r.method_mut() = head.method.clone();
    *r.uri_mut() = uri.clone();
    *r.version_mut() = Version::HTTP_11;
    *r.headers_mut() = head.headers.clone();
    set_host(&mut r, host, backend);
    r
}

/// `HostMode::Backend` names the backend of this try: `host:port` as
/// configured, or `ip:port`. So does `Pass` when the client sent no host
/// (HTTP/1.0 may leave it out): the backend is spoken to in HTTP/1.1,
/// where a request without `Host` is refused (RFC 9112 §3.2), so it gets
/// the name nginx's default `$proxy_host` would give it.
fn set_host<B>(r: &mut http::Request<B>, host: &HostMode, backend: &Backend) {
    let name = match host {
        HostMode::Backend => true,
        HostMode::Pass => !r.headers().contains_key(header::HOST),
        HostMode::Set(_) => false,
    };
    if name {
        r.headers_mut()
            .insert(header::HOST, backend.authority.clone());
    }
}

/// The client's fault, not the backend's: its body broke off or passed
/// `max_body_bytes` while being streamed.
fn client_side(error: &hyper::Error) -> Option<HttpError> {
    if !error.is_user() && !error.is_body_write_aborted() {
        return None;
    }
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return Some(HttpError::BodyTooLarge);
        }
        source = s.source();
    }
    error
        .is_user()
        .then_some(HttpError::BadRequest("request body was cut off"))
}

/// The backend's answer, on its way to the client.
fn relay(
    resp: http::Response<hyper::body::Incoming>,
    sender: Sender,
    inflight: InFlight,
    up: &Upstream,
    started: Instant,
) -> Response {
    let addr = inflight.backend().addr;
    inflight.answered();
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.version = Version::HTTP_11;
    let lease = Lease {
        sender,
        limits: up.settings.pool(),
        inflight,
    };
    let body = if body.is_end_stream() {
        lease.release();
        Body::Empty
    } else {
        Body::stream(Relay::new(body, lease, up.settings.read_timeout))
    };
    let mut resp = Response::from_parts(parts, body);
    resp.extensions_mut().insert(UpstreamTiming {
        addr,
        time: started.elapsed(),
    });
    resp
}

/// The error page for the last failure, marked for the access log.
fn failed(f: Failure, started: Instant) -> Response {
    let mut resp = f.error.into_response();
    resp.extensions_mut().insert(UpstreamTiming {
        addr: f.addr,
        time: started.elapsed(),
    });
    resp
}
