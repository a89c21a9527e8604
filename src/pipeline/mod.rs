//! THE HOT PATH: one request, from hyper's parsed head to our response.
//!
//! ```text
//! load snapshot → refuse smuggling → normalize path → pick server
//!   → match route (404/405) → buffer body (413/408) → middleware… → handler
//!   → error → status (error.rs) → Server header → access log
//! ```
//!
//! No actor is awaited here: the snapshot is read from an `ArcSwap`.

pub mod body;
pub mod path;
pub mod request;
pub mod routes;
pub mod snapshot;
pub mod vhost;

use std::{net::SocketAddr, sync::Arc};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::{
    error::HttpError,
    handler::{Next, Response},
    observe::access_log::{AccessLog, Entry},
};
use request::Request;
use routes::Match;
use snapshot::{RequestLimits, Snapshot};

const SERVER: HeaderValue = HeaderValue::from_static("troupe");

/// Turns requests into responses, reading the current snapshot.
#[derive(Debug)]
pub struct Pipeline {
    slot: Arc<ArcSwap<Snapshot>>,
    access: Option<AccessLog>,
}

impl Pipeline {
    /// A pipeline over a published snapshot slot.
    pub fn new(slot: Arc<ArcSwap<Snapshot>>, access: Option<AccessLog>) -> Self {
        Self { slot, access }
    }

    /// Answers one request. Never fails: every error becomes a response.
    pub async fn handle(&self, req: hyper::Request<Incoming>, peer: SocketAddr) -> Response {
        let started = self.access.as_ref().map(|_| std::time::Instant::now());
        let logged = self.access.as_ref().map(|_| Entry::capture(&req, peer));
        let snapshot = self.slot.load_full();
        let mut resp = match self.route(&snapshot, req, peer).await {
            Ok(resp) => resp,
            Err(err) => {
                match err.side() {
                    crate::error::Side::Server => tracing::warn!(%err, "request failed"),
                    crate::error::Side::Client => tracing::debug!(%err, "request refused"),
                }
                err.into_response()
            }
        };
        resp.headers_mut().insert(header::SERVER, SERVER);
        if let (Some(log), Some(entry), Some(t0)) = (&self.access, logged, started) {
            log.write(&entry, &resp, t0.elapsed());
        }
        resp
    }

    async fn route(
        &self,
        snapshot: &Snapshot,
        req: hyper::Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response, HttpError> {
        let (head, body) = req.into_parts();
        // Request smuggling: a length and a chunked encoding together mean
        // two parsers can disagree on where the body ends (RFC 9112 §6.3).
        // hyper hides the length when both come over HTTP/1 (conn/activity.rs
        // catches that case); this catches any other way they arrive.
        if head.headers.contains_key(header::TRANSFER_ENCODING)
            && head.headers.contains_key(header::CONTENT_LENGTH)
        {
            return Err(HttpError::BadRequest(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        let normalized = match path::normalize(head.uri.path()) {
            Ok(p) => match p {
                std::borrow::Cow::Borrowed(_) => None,
                std::borrow::Cow::Owned(p) => Some(p),
            },
            Err(e) => {
                tracing::debug!(error = %e, path = head.uri.path(), "hostile path refused");
                return Err(HttpError::BadRequest("invalid path"));
            }
        };
        let path = normalized.as_deref().unwrap_or_else(|| head.uri.path());
        let host = head
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| head.headers.get(header::HOST).and_then(|h| h.to_str().ok()));
        let server = snapshot.servers.select(host);
        let (route, params) = match server.routes.lookup(&head.method, path) {
            Match::Found { route, params } => (route, params),
            Match::WrongMethod { allow } => return Err(HttpError::MethodNotAllowed { allow }),
            Match::NotFound => return Err(HttpError::NotFound),
        };
        let body = read_body(body, snapshot.limits).await?;
        let req = Request::new(head, normalized, params, body, peer);
        Next::new(&route.middleware, &*route.handler).run(req).await
    }
}

/// Buffers the request body within the size and time limits.
async fn read_body(body: Incoming, limits: RequestLimits) -> Result<Bytes, HttpError> {
    use http_body::Body as _;
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
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
