//! THE HOT PATH: one request, from hyper's parsed head to our response,
//! in one pass.
//!
//! ```text
//! serve:  down the built-in layers (layers/: smuggling, keep-alive,
//!           Server header, access log, metrics)
//!         route: [plain: an ACME HTTP-01 token → its answer]
//!           load the generation → normalize the path (400) → pick
//!           the server → [TLS: 421 if SNI picked another, HSTS; plain:
//!           redirect to HTTPS] → [its module log hooks] → match the route
//!           (404/405) → [its rate limits: 429, or wait for its turn]
//!           → body? buffer it (413/408) : call now → chain (its
//!           middleware, [its zones keyed by `Module`: after_filters.rs],
//!           its handler)
//!         the answer (an error becomes its page) back up the layers
//! ```
//!
//! `conn` calls `serve` synchronously inside hyper's service call, so a
//! chain that answers at once leaves hyper nothing to store but the
//! response (`respond.rs`). No actor is awaited: the generation is read
//! from an `ArcSwap`.

pub mod after_filters;
pub mod body;
pub mod codes;
pub(crate) mod collect;
pub mod conditional;
pub mod https;
pub mod internal;
pub(crate) mod layers;
pub mod log_hook;
pub mod path;
pub mod range;
pub mod request;
mod respond;
pub mod rewrite;
pub mod routes;
pub mod server_routing;
pub mod snapshot;
pub mod tunnels;
pub mod vhost;

use std::{borrow::Cow, net::SocketAddr, sync::Arc};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header;
use http_body_util::Limited;
use hyper::body::Incoming;

use crate::limit::Verdict;
use crate::{
    error::HttpError,
    generation::Generation,
    handler::{HandlerFuture, Next},
    observe::{
        access_log::AccessLog,
        metrics::{HttpMetrics, RouteMetrics},
    },
    tls::acme::{Challenges, HTTP01_PREFIX},
};
use layers::{Builtins, Connection, Exchange, Layer};
use request::Request;
pub(crate) use respond::Respond;
use routes::Match;
use snapshot::RequestLimits;

/// A request on its way to its route: the head, the body not read yet,
/// the path if normalizing changed it, and the client.
pub(crate) struct Routing {
    head: http::request::Parts,
    body: Incoming,
    normalized: Option<String>,
    peer: SocketAddr,
    tls: bool,
}

impl Routing {
    /// The path routes match: normalized, decoded.
    pub(crate) fn path(&self) -> &str {
        self.normalized
            .as_deref()
            .unwrap_or_else(|| self.head.uri.path())
    }

    /// The head.
    pub(crate) fn head(&self) -> &http::request::Parts {
        &self.head
    }

    /// The client.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }
}

/// Turns requests into responses, reading the published generation.
#[derive(Debug)]
pub struct Pipeline {
    generation: Arc<ArcSwap<Generation>>,
    layers: Builtins,
    metrics: HttpMetrics,
    /// HTTP-01 answers the ACME side publishes.
    challenges: Arc<Challenges>,
}

impl Pipeline {
    /// A pipeline over the published generation, writing `access` (if
    /// the log is on) and counting into `metrics`.
    pub fn new(
        generation: Arc<ArcSwap<Generation>>,
        access: Option<AccessLog>,
        metrics: HttpMetrics,
        challenges: Arc<Challenges>,
    ) -> Self {
        Self {
            generation,
            layers: layers::builtins(access, &metrics),
            metrics,
            challenges,
        }
    }

    /// The HTTP series.
    pub fn metrics(&self) -> &HttpMetrics {
        &self.metrics
    }

    /// The client of a request from `peer` with `headers` (the peer, or
    /// behind the current config's trusted proxies, whom they forwarded
    /// for), and whether the access log must keep every header (some
    /// server has its own format), with one load.
    pub(crate) fn log_client(
        &self,
        peer: std::net::IpAddr,
        headers: &http::HeaderMap,
    ) -> (std::net::IpAddr, bool) {
        let generation = self.generation.load();
        let snapshot = &generation.snapshot;
        (snapshot.client.of(peer, headers), snapshot.custom_logs)
    }

    /// Routes the request on the current generation and starts its chain;
    /// refusals (400, 404, 405…) come back as a ready error. `route` gets
    /// the matched route's series.
    ///
    /// The chain's future owns what it needs, so the generation is only
    /// borrowed while routing: a reload swaps it without waiting for
    /// requests in flight, which keep their handler alive by `Arc`.
    fn route<C: Connection>(
        &self,
        mut head: http::request::Parts,
        body: Incoming,
        conn: &C,
        route: &mut Option<Arc<RouteMetrics>>,
        log: &mut Option<Arc<crate::observe::log_format::ServerLog>>,
    ) -> Result<HandlerFuture, HttpError> {
        let peer = conn.peer();
        // An ACME CA fetching an HTTP-01 token: answered before routing,
        // whatever the server (a redirect to HTTPS or a catch-all route
        // must not take it). Plain connections only (RFC 8555 §8.3).
        if conn.tls().is_none()
            && let Some(token) = head.uri.path().strip_prefix(HTTP01_PREFIX)
            && let Some(answer) = self.challenges.http01(token)
        {
            return Ok(https::acme_http01(answer));
        }
        let generation = self.generation.load();
        let snapshot = &generation.snapshot;
        let normalized = match path::normalize(head.uri.path()) {
            Ok(Cow::Borrowed(_)) => None,
            Ok(Cow::Owned(p)) => Some(p),
            Err(e) => {
                tracing::debug!(error = %e, path = head.uri.path(), "hostile path refused");
                return Err(HttpError::BadRequest("invalid path"));
            }
        };
        let host = || {
            head.uri
                .authority()
                .map(|a| a.host())
                .or_else(|| head.headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        };
        let server = snapshot.servers.select(host);
        let limits = snapshot.limits;
        // `None` on a plain connection, known at compile time: the TLS
        // branch compiles away for it, and its path keeps the shape it had
        // before TLS, plus the one redirect check.
        let Some(session) = conn.tls() else {
            if let Some(port) = server.https.redirect {
                return Ok(https::redirect(&head, host(), port));
            }
            enter(&generation, server, &mut head, log);
            let req = Routing {
                head,
                body,
                normalized,
                peer,
                tls: false,
            };
            return self.dispatch(limits, server, req, route);
        };
        let server = https::tls_server(&snapshot.servers, server, host().is_some(), session)?;
        let hsts = server.https.hsts.clone();
        enter(&generation, server, &mut head, log);
        let req = Routing {
            head,
            body,
            normalized,
            peer,
            tls: true,
        };
        let chain = self.dispatch(limits, server, req, route)?;
        Ok(match hsts {
            Some(value) => https::with_hsts(chain, value),
            None => chain,
        })
    }

    /// Runs the server's route, inside its log hooks when it has some.
    #[inline(always)]
    fn dispatch(
        &self,
        limits: RequestLimits,
        server: &vhost::Server,
        req: Routing,
        route: &mut Option<Arc<RouteMetrics>>,
    ) -> Result<HandlerFuture, HttpError> {
        if !server.loggers.is_empty() {
            return Ok(layers::log_hooks::wrap(server, req, |req| {
                self.run_route(limits, server, req, route)
            }));
        }
        self.run_route(limits, server, req, route)
    }

    /// Matches the route and starts its chain.
    // Inlined so the hot path (no log hooks) does not copy the request head.
    #[inline(always)]
    fn run_route(
        &self,
        limits: RequestLimits,
        server: &vhost::Server,
        req: Routing,
        counted: &mut Option<Arc<RouteMetrics>>,
    ) -> Result<HandlerFuture, HttpError> {
        let Routing {
            mut head,
            body,
            mut normalized,
            peer,
            tls,
        } = req;
        // The server's rewrites (nginx's `rewrite … last` in a `server`).
        let path = normalized.as_deref().unwrap_or_else(|| head.uri.path());
        if let Some(rewritten) = server.routing.rewrite(path, head.uri.query()) {
            let (uri, path) = rewritten?;
            head.uri = uri;
            normalized = Some(path);
        }
        let path = normalized.as_deref().unwrap_or_else(|| head.uri.path());
        // A WebSocket over HTTP/2 (RFC 8441) is a CONNECT that stands for
        // the GET an HTTP/1.1 client sends: routed as one.
        let method = if head.method == http::Method::CONNECT
            && head.extensions.get::<hyper::ext::Protocol>().is_some()
        {
            &http::Method::GET
        } else {
            &head.method
        };
        let (route, params) = match server.routes.lookup(method, path) {
            Match::Found { route, params } => (route, params),
            Match::WrongMethod { allow } => {
                return recover(
                    server,
                    head,
                    (peer, tls),
                    HttpError::MethodNotAllowed { allow },
                );
            }
            Match::NotFound => return recover(server, head, (peer, tls), HttpError::NotFound),
        };
        *counted = Some(
            route
                .metrics
                .get_or_init(|| {
                    let module = route.module.as_ref().and_then(|s| s.metrics().cloned());
                    Arc::new(self.metrics.route(server.label(), &route.pattern, module))
                })
                .clone(),
        );
        if !route.limits.is_empty() {
            // Counted here: a route it is re-routed to does not count it again.
            if let Some(internal) = head.extensions.get_mut::<internal::Internal>() {
                internal.limited = true;
            }
            match crate::limit::check(&route.limits, peer.ip(), &head.headers) {
                Verdict::Go => {}
                Verdict::Refuse {
                    status,
                    retry_after,
                } => {
                    let refused = HttpError::RateLimited {
                        status,
                        retry_after,
                    };
                    return recover(server, head, (peer, tls), refused);
                }
                // Its turn comes later: the body is read (and the handler
                // called) only then, as nginx delays before reading it.
                Verdict::Wait(wait) => {
                    let chain = Next::new(route.middleware.clone(), route.handler.clone());
                    let streams = route.handler.streams_body();
                    return Ok(HandlerFuture::new(async move {
                        tokio::time::sleep(wait).await;
                        let (body, stream) = if streams {
                            (Bytes::new(), Some(stream_body(body, limits)?))
                        } else {
                            (read_body(body, limits).await?, None)
                        };
                        let req = Request::new(head, normalized, params, body, peer);
                        chain.run(req.with_stream(stream, tls)).await
                    }));
                }
            }
        }
        if http_body::Body::is_end_stream(&body) {
            let req =
                Request::new(head, normalized, params, Bytes::new(), peer).with_stream(None, tls);
            // Without middleware, skip building the chain (two Arc clones).
            if route.middleware.is_empty() {
                return Ok(route.handler.call(req));
            }
            return Ok(Next::new(route.middleware.clone(), route.handler.clone()).run(req));
        }
        let chain = Next::new(route.middleware.clone(), route.handler.clone());
        if route.handler.streams_body() {
            let stream = stream_body(body, limits)?;
            let req = Request::new(head, normalized, params, Bytes::new(), peer);
            return Ok(chain.run(req.with_stream(Some(stream), tls)));
        }
        Ok(HandlerFuture::new(async move {
            let body = read_body(body, limits).await?;
            chain
                .run(Request::new(head, normalized, params, body, peer).with_stream(None, tls))
                .await
        }))
    }
}

/// What `server`'s own routing puts on each request routed to it: the
/// re-routing context (only when it re-routes) and its access-log format.
fn enter(
    generation: &Arc<crate::generation::Generation>,
    server: &vhost::Server,
    head: &mut http::request::Parts,
    log: &mut Option<Arc<crate::observe::log_format::ServerLog>>,
) {
    if server.routing.reroutes {
        internal::mark(generation, server, head);
    }
    if let Some(own) = &server.routing.log {
        *log = Some(own.clone());
    }
}

/// A refusal before any route ran, or its server's error page.
fn recover(
    server: &vhost::Server,
    head: http::request::Parts,
    (peer, tls): (SocketAddr, bool),
    err: HttpError,
) -> Result<HandlerFuture, HttpError> {
    match &server.routing.error_pages {
        Some(pages) => Ok(pages.recover(head, peer, tls, Err(err))),
        None => Err(err),
    }
}

/// Serves one request of the connection `conn`: down the layers, to the
/// route, and (now if the chain answered at once, else when it does)
/// back up.
pub(crate) fn serve<C: Connection>(conn: &Arc<C>, req: hyper::Request<Incoming>) -> Respond<C> {
    let pipeline = conn.pipeline();
    let (head, body) = req.into_parts();
    let mut ex = Exchange {
        version: head.version,
        no_body: http_body::Body::is_end_stream(&body),
        refused: None,
        route: None,
        log: None,
    };
    let trail = pipeline.layers.down(&head, &mut ex, &**conn);
    let chain = match ex.refused.take() {
        Some(refused) => HandlerFuture::ready(Err(refused)),
        None => match pipeline.route(head, body, &**conn, &mut ex.route, &mut ex.log) {
            Ok(chain) => chain,
            Err(err) => HandlerFuture::ready(Err(err)),
        },
    };
    Respond::new(conn, chain, trail, ex)
}

/// The body as a stream a handler reads itself, capped at
/// `max_body_bytes`; a declared length past it is refused up front, as
/// `read_body` does.
fn stream_body(body: Incoming, limits: RequestLimits) -> Result<request::BodyStream, HttpError> {
    if http_body::Body::size_hint(&body).lower() > limits.max_body_bytes {
        return Err(HttpError::BodyTooLarge);
    }
    Ok(Limited::new(body, limits.max_body_bytes as usize))
}

/// Buffers the request body within the size and time limits.
async fn read_body(body: Incoming, limits: RequestLimits) -> Result<Bytes, HttpError> {
    use http_body::Body as _;
    // Refuse a declared length up front, before reading (or 100-continue).
    if body.size_hint().lower() > limits.max_body_bytes {
        return Err(HttpError::BodyTooLarge);
    }
    let limited = Limited::new(body, limits.max_body_bytes as usize);
    match tokio::time::timeout(limits.body_timeout, collect::collect(limited)).await {
        Err(_) => Err(HttpError::BodyTimeout),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(HttpError::BodyTooLarge),
        Ok(Err(_)) => Err(HttpError::BadRequest("request body was cut off")),
    }
}
