//! THE HOT PATH: one request, from hyper's parsed head to our response.
//!
//! ```text
//! begin:    capture access-log fields (only when the log is on)
//! dispatch: load snapshot → normalize path → pick server → match route
//!           (404/405) → body? buffer it (413/408) : call now → chain
//! finish:   error → status (error.rs) → Server header → access log → metrics
//! ```
//!
//! `conn::respond` calls the three steps synchronously inside hyper's
//! service call (request smuggling is refused before, in `conn`). No actor
//! is awaited: the snapshot is read from an `ArcSwap`.

pub mod body;
pub mod log_hook;
pub mod path;
pub mod request;
pub mod routes;
pub mod snapshot;
pub mod vhost;

use std::{borrow::Cow, net::SocketAddr, sync::Arc};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::{
    error::HttpError,
    handler::{HandlerFuture, HandlerResult, Next, Response},
    observe::{
        access_log::{AccessLog, Entry},
        metrics::{HttpMetrics, RouteMetrics},
    },
};
use log_hook::LogLine;
use request::Request;
use routes::Match;
use snapshot::{RequestLimits, Snapshot};

use crate::generation::Generation;

const SERVER: HeaderValue = HeaderValue::from_static("troupe");

/// A request's access-log fields and start time, boxed so that requests
/// with the log off carry one null pointer.
pub type Logged = Box<(Entry, std::time::Instant)>;

/// What a request is counted under, and since when; from `dispatch` to
/// `finish`.
#[derive(Debug)]
pub struct Tally {
    route: Arc<RouteMetrics>,
    started: std::time::Instant,
}

/// Turns requests into responses, reading the current snapshot.
#[derive(Debug)]
pub struct Pipeline {
    generation: Arc<ArcSwap<Generation>>,
    access: Option<AccessLog>,
    metrics: HttpMetrics,
    /// Where requests no route took (400, 404, 405) are counted.
    unrouted: Arc<RouteMetrics>,
}

impl Pipeline {
    /// A pipeline over the published generation.
    pub fn new(
        generation: Arc<ArcSwap<Generation>>,
        access: Option<AccessLog>,
        metrics: HttpMetrics,
    ) -> Self {
        let unrouted = Arc::new(metrics.route("", "", None));
        Self {
            generation,
            access,
            metrics,
            unrouted,
        }
    }

    /// The HTTP series.
    pub fn metrics(&self) -> &HttpMetrics {
        &self.metrics
    }

    /// What the access log needs of the request, taken before it moves on
    /// (`None` when the access log is off).
    pub fn begin(&self, req: &hyper::Request<Incoming>, peer: SocketAddr) -> Option<Logged> {
        self.access
            .as_ref()
            .map(|_| Box::new((Entry::capture(req, peer), std::time::Instant::now())))
    }

    /// Routes the request on the current snapshot and starts its chain.
    /// Refusals (400, 404, 405…) come back as a ready error.
    ///
    /// The chain's future owns what it needs, so the snapshot is only
    /// borrowed while routing: a reload swaps it without waiting for
    /// requests in flight, which keep their handler alive by `Arc`.
    pub fn dispatch(
        &self,
        req: hyper::Request<Incoming>,
        peer: SocketAddr,
    ) -> (HandlerFuture, Tally) {
        let started = std::time::Instant::now();
        let generation = self.generation.load();
        let mut counted = None;
        let chain = match self.route(&generation.snapshot, req, peer, &mut counted) {
            Ok(chain) => chain,
            Err(err) => HandlerFuture::ready(Err(err)),
        };
        let route = counted.unwrap_or_else(|| self.unrouted.clone());
        (chain, Tally { route, started })
    }

    /// Turns the chain's result into the response: errors get their page,
    /// every response gets `Server`, and the access log gets its line.
    pub fn finish(&self, result: HandlerResult, logged: Option<Logged>, tally: Tally) -> Response {
        let mut resp = result.unwrap_or_else(|err| {
            match err.side() {
                crate::error::Side::Server => tracing::warn!(%err, "request failed"),
                crate::error::Side::Client => tracing::debug!(%err, "request refused"),
            }
            err.into_response()
        });
        resp.headers_mut().insert(header::SERVER, SERVER);
        if let (Some(log), Some(entry)) = (&self.access, logged) {
            log.write(&entry.0, &resp, entry.1.elapsed());
        }
        tally.route.record(resp.status(), tally.started.elapsed());
        resp
    }

    /// Everything up to the handler, synchronously; returns the route's
    /// chain as one boxed future.
    fn route(
        &self,
        snapshot: &Snapshot,
        req: hyper::Request<Incoming>,
        peer: SocketAddr,
        counted: &mut Option<Arc<RouteMetrics>>,
    ) -> Result<HandlerFuture, HttpError> {
        let (head, body) = req.into_parts();
        let normalized = match path::normalize(head.uri.path()) {
            Ok(Cow::Borrowed(_)) => None,
            Ok(Cow::Owned(p)) => Some(p),
            Err(e) => {
                tracing::debug!(error = %e, path = head.uri.path(), "hostile path refused");
                return Err(HttpError::BadRequest("invalid path"));
            }
        };
        let server = snapshot.servers.select(|| {
            head.uri
                .authority()
                .map(|a| a.host())
                .or_else(|| head.headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        });
        if !server.loggers.is_empty() {
            return Ok(log_hooks(
                server,
                head,
                body,
                normalized,
                peer,
                |head, body, normalized| {
                    self.run_route(snapshot, server, head, body, normalized, peer, counted)
                },
            ));
        }
        self.run_route(snapshot, server, head, body, normalized, peer, counted)
    }

    /// Matches the route and starts its chain.
    // Inlined so the hot path (no log hooks) does not copy the request head.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn run_route(
        &self,
        snapshot: &Snapshot,
        server: &vhost::Server,
        head: http::request::Parts,
        body: Incoming,
        normalized: Option<String>,
        peer: SocketAddr,
        counted: &mut Option<Arc<RouteMetrics>>,
    ) -> Result<HandlerFuture, HttpError> {
        let path = normalized.as_deref().unwrap_or_else(|| head.uri.path());
        let (route, params) = match server.routes.lookup(&head.method, path) {
            Match::Found { route, params } => (route, params),
            Match::WrongMethod { allow } => return Err(HttpError::MethodNotAllowed { allow }),
            Match::NotFound => return Err(HttpError::NotFound),
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
        if http_body::Body::is_end_stream(&body) {
            let req = Request::new(head, normalized, params, Bytes::new(), peer);
            // Without middleware, skip building the chain (two Arc clones).
            if route.middleware.is_empty() {
                return Ok(route.handler.call(req));
            }
            return Ok(Next::new(route.middleware.clone(), route.handler.clone()).run(req));
        }
        let chain = Next::new(route.middleware.clone(), route.handler.clone());
        let limits = snapshot.limits;
        Ok(HandlerFuture::new(async move {
            let body = read_body(body, limits).await?;
            chain
                .run(Request::new(head, normalized, params, body, peer))
                .await
        }))
    }
}

/// Buffers the request body within the size and time limits.
async fn read_body(body: Incoming, limits: RequestLimits) -> Result<Bytes, HttpError> {
    use http_body::Body as _;
    // Refuse a declared length up front, before reading (or 100-continue).
    if body.size_hint().lower() > limits.max_body_bytes {
        return Err(HttpError::BodyTooLarge);
    }
    let limited = Limited::new(body, limits.max_body_bytes as usize);
    match tokio::time::timeout(limits.body_timeout, limited.collect()).await {
        Err(_) => Err(HttpError::BodyTimeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(HttpError::BodyTooLarge),
        Ok(Err(_)) => Err(HttpError::BadRequest("request body was cut off")),
    }
}

/// Runs `route` and, once its answer is known (errors included), passes a
/// [`LogLine`] to the server's module log hooks. Only servers with
/// `loggers` pay for the captured fields.
fn log_hooks(
    server: &vhost::Server,
    head: http::request::Parts,
    body: Incoming,
    normalized: Option<String>,
    peer: SocketAddr,
    route: impl FnOnce(
        http::request::Parts,
        Incoming,
        Option<String>,
    ) -> Result<HandlerFuture, HttpError>,
) -> HandlerFuture {
    let start = std::time::Instant::now();
    let method = head.method.clone();
    let path = normalized
        .clone()
        .unwrap_or_else(|| head.uri.path().to_owned());
    let query = head.uri.query().unwrap_or("").to_owned();
    let result = match route(head, body, normalized) {
        Ok(chain) => chain,
        Err(e) => HandlerFuture::ready(Err(e)),
    };
    let hooks = server.loggers.clone();
    result.map(move |result| {
        let (status, bytes) = match &result {
            Ok(resp) => (
                resp.status().as_u16(),
                http_body::Body::size_hint(resp.body()).exact().unwrap_or(0),
            ),
            Err(e) => (e.status().as_u16(), 0),
        };
        let line = LogLine {
            method,
            path,
            query,
            peer,
            status,
            bytes,
            duration: start.elapsed(),
        };
        for hook in hooks.iter() {
            hook.log(&line);
        }
        result
    })
}
