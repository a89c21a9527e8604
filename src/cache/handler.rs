//! [`Cached`]: a handler (the proxy, usually) behind a cache zone, as
//! nginx's `proxy_cache` puts a `location` behind a `keys_zone`.
//!
//! ```text
//! GET/HEAD → key (template) → memory tier
//!   fresh variant           → hit (answered at once, no future boxed)
//!   stale variant, and stale-while-revalidate or `Updating`
//!                           → served stale; one refresh in the background
//!   stale variant           → revalidate: our validators upstream;
//!                             304 refreshes it; an error may serve it
//!                             (stale-if-error, `use_stale`)
//!   nothing (or no variant) → fill: the first request goes upstream and
//!                             stores what may be stored (tee.rs); the
//!                             others wait for it (fill.rs)
//! other methods             → passed on (fwd=bypass)
//! ```
//!
//! Every answer carries `Cache-Status` (status.rs). A hit answers a
//! conditional request with 304 itself, and a GET's `Range` with 206 cut
//! from the stored body. A miss with `Range` asks the upstream for the
//! whole, stores it, and sends its client the part (partial.rs), as
//! nginx's cache does.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_cache_semantics::{AfterResponse, BeforeRequest};

use super::{
    entry::{Asked, Stored},
    fill::{self, Turn, Writer},
    partial,
    status::{CACHE_STATUS, CacheStatus, Fwd},
    tee::{Pending, Recorded},
    zone::{CacheZone, Lookup},
};
use crate::{
    error::HttpError,
    handler::{Handler, HandlerFuture, HandlerResult, Response},
    handlers::template::Template,
    kept::Named as _,
    pipeline::{
        body::Body,
        conditional,
        range::{self, Part},
        request::Request,
    },
};

/// When a stale entry may be served instead of the upstream's answer
/// (nginx `proxy_cache_use_stale`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UseStale {
    /// While another request refreshes it (and then refresh it in the
    /// background, as `proxy_cache_background_update` does).
    pub updating: bool,
    /// When the upstream cannot be reached or answers 502.
    pub error: bool,
    /// When the upstream times out (504).
    pub timeout: bool,
    /// When the upstream answers 500.
    pub http_500: bool,
    /// When the upstream answers 503.
    pub http_503: bool,
}

impl UseStale {
    fn on(&self, status: StatusCode) -> bool {
        match status.as_u16() {
            500 => self.http_500,
            502 => self.error,
            503 => self.http_503,
            504 => self.timeout,
            _ => false,
        }
    }
}

/// How a route uses its zone.
#[derive(Debug)]
pub struct Rules {
    /// The key of a request (nginx `proxy_cache_key`).
    pub key: Template,
    /// How long a request waits for another's fill before it goes
    /// upstream itself (nginx `proxy_cache_lock_timeout`).
    pub lock_timeout: Duration,
    /// When stale entries are served.
    pub use_stale: UseStale,
}

/// A handler whose GET and HEAD answers a cache zone keeps.
#[derive(Clone)]
pub struct Cached(Arc<Inner>);

struct Inner {
    handler: Arc<dyn Handler>,
    zone: Arc<super::CacheZone>,
    rules: Rules,
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached")
            .field("zone", &self.0.zone.name())
            .field("rules", &self.0.rules)
            .finish()
    }
}

impl Cached {
    /// `handler`, behind `zone`.
    pub fn new(handler: Arc<dyn Handler>, zone: Arc<CacheZone>, rules: Rules) -> Self {
        Self(Arc::new(Inner {
            handler,
            zone,
            rules,
        }))
    }
}

impl Handler for Cached {
    fn call(&self, req: Request) -> HandlerFuture {
        let inner = &self.0;
        let series = &inner.zone.series;
        // An upgrade (WebSocket) is a connection, not a response to keep.
        if !matches!(*req.method(), Method::GET | Method::HEAD)
            || req.headers().contains_key(header::UPGRADE)
        {
            series.bypass.inc();
            return with_status(inner.handler.call(req), CacheStatus::fwd(Fwd::Bypass));
        }
        let key: Arc<str> = inner.rules.key.render(&req).into();
        match inner.zone.lookup(&key, req.headers()) {
            None if inner.zone.on_disk(&key) => {
                let inner = self.0.clone();
                HandlerFuture::new(async move {
                    let found = inner.zone.load(&key, req.headers()).await;
                    answer(&inner, found, key, req).await
                })
            }
            found => answer(&self.0, found, key, req),
        }
    }

    fn default_methods(&self) -> Option<&'static [Method]> {
        self.0.handler.default_methods()
    }

    fn streams_body(&self) -> bool {
        self.0.handler.streams_body()
    }
}

/// The answer for what the zone holds of `key` (`found`): a hit, stale
/// served at once, or a trip upstream.
fn answer(inner: &Arc<Inner>, found: Option<Lookup>, key: Arc<str>, req: Request) -> HandlerFuture {
    let series = &inner.zone.series;
    let now = SystemTime::now();
    let (stale, why) = match found {
        None => (None, Fwd::UriMiss),
        Some(Lookup::OtherVariant) => (None, Fwd::VaryMiss),
        Some(Lookup::Variant(entry)) => {
            if fresh(&entry, &req, now) {
                series.hit.inc();
                return HandlerFuture::ready(Ok(serve(
                    &entry,
                    req.method(),
                    req.headers(),
                    CacheStatus::hit(entry.ttl(now)),
                    now,
                )));
            }
            let asks_forward = wants_forward(req.headers());
            if !asks_forward
                && (inner.rules.use_stale.updating
                    || entry.staleness(now) <= entry.stale_while_revalidate)
            {
                // Serve it stale, and have it refreshed once.
                if !inner.zone.fills.filling(&key) {
                    refresh_in_background(inner.clone(), key, &req, entry.clone());
                }
                series.stale.inc();
                let status = CacheStatus {
                    detail: Some("stale-while-revalidate"),
                    ..CacheStatus::hit(entry.ttl(now))
                };
                return HandlerFuture::ready(Ok(serve(
                    &entry,
                    req.method(),
                    req.headers(),
                    status,
                    now,
                )));
            }
            let why = if asks_forward {
                Fwd::Request
            } else {
                Fwd::Stale
            };
            (Some(entry), why)
        }
    };
    HandlerFuture::new(fetch(inner.clone(), key, req, stale, why))
}

/// Whether `entry` (the variant `req` selects) answers `req` as it is.
fn fresh(entry: &Stored, req: &Request, now: SystemTime) -> bool {
    let h = req.headers();
    // Without request directives, freshness is the entry's alone; the
    // crate's full check builds a copy of the head, which a hit does not
    // need.
    if !h.contains_key(header::CACHE_CONTROL) && !h.contains_key(header::PRAGMA) {
        return !entry.is_stale(now);
    }
    let asked = Asked {
        method: req.method(),
        uri: req.uri(),
        headers: h,
    };
    entry
        .policy
        .get()
        .is_some_and(|policy| matches!(policy.before_request(&asked, now), BeforeRequest::Fresh(_)))
}

/// Whether the request demands that the upstream be asked
/// (`Cache-Control: no-cache`, `Pragma: no-cache`).
fn wants_forward(h: &HeaderMap) -> bool {
    let has = |name, token: &str| {
        h.get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|d| d.trim().eq_ignore_ascii_case(token)))
    };
    has(header::CACHE_CONTROL, "no-cache") || has(header::PRAGMA, "no-cache")
}

/// The answer from a stored entry: 304 when the request already has it,
/// the part a GET's `Range` asks of a stored 200 (206, or 416), as nginx's
/// range filter answers from its cache.
fn serve(
    entry: &Stored,
    method: &Method,
    req: &HeaderMap,
    status: CacheStatus,
    now: SystemTime,
) -> Response {
    let (code, mut headers) = entry.head(now);
    headers.append(CACHE_STATUS, status.value());
    let modified = headers
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let unchanged = code == StatusCode::OK
        && conditional::not_modified(req, headers.get(header::ETAG), modified);
    let part = if code == StatusCode::OK && *method == Method::GET && !unchanged {
        let len = entry.body.len() as u64;
        let (etag, lm) = (
            headers.get(header::ETAG),
            headers.get(header::LAST_MODIFIED),
        );
        range::requested(req, len, etag, lm)
    } else {
        Ok(Part::Whole)
    };
    let (code, body) = match part {
        _ if unchanged => (StatusCode::NOT_MODIFIED, Body::Empty),
        Ok(Part::Whole) => (code, Body::full(entry.body.clone())),
        Ok(Part::Range(start, end)) => {
            let len = entry.body.len() as u64;
            headers.insert(header::CONTENT_RANGE, range::content_range(start, end, len));
            headers.insert(header::CONTENT_LENGTH, (end - start + 1).into());
            let body = entry.body.slice(start as usize..=end as usize);
            (StatusCode::PARTIAL_CONTENT, Body::full(body))
        }
        Err(refused) => {
            let mut resp = refused.into_response();
            resp.headers_mut().append(CACHE_STATUS, status.value());
            return resp;
        }
    };
    if code == StatusCode::OK && !headers.contains_key(header::ACCEPT_RANGES) {
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    let mut resp = http::Response::new(body);
    *resp.status_mut() = code;
    *resp.headers_mut() = headers;
    resp
}

/// Adds `status` to whatever `answer` turns out to be.
fn with_status(answer: HandlerFuture, status: CacheStatus) -> HandlerFuture {
    answer.map(move |r| {
        let mut resp = r.unwrap_or_else(HttpError::into_response);
        resp.headers_mut().append(CACHE_STATUS, status.value());
        Ok(resp)
    })
}

/// A miss or a stale entry: fill the key (or wait for its fill).
async fn fetch(
    inner: Arc<Inner>,
    key: Arc<str>,
    req: Request,
    stale: Option<Arc<Stored>>,
    why: Fwd,
) -> HandlerResult {
    let series = &inner.zone.series;
    let writer = match inner.zone.fills.join(&key) {
        Turn::Write(w) => w,
        Turn::Wait(rx) => {
            let waited = tokio::time::timeout(inner.rules.lock_timeout, fill::outcome(rx)).await;
            if let Ok(Some(entry)) = waited
                && entry.vary_matches(req.headers())
            {
                series.hit.inc();
                let status = CacheStatus {
                    collapsed: true,
                    ..CacheStatus::fwd(why)
                };
                return Ok(serve(
                    &entry,
                    req.method(),
                    req.headers(),
                    status,
                    SystemTime::now(),
                ));
            }
            // No entry to share (or too long a wait): go on our own, and
            // store nothing (the fill has a writer, or had one).
            series.miss.inc();
            return with_status(inner.handler.call(req), CacheStatus::fwd(why)).await;
        }
    };
    forward(inner, key, req, stale, why, writer).await
}

/// The writer's trip upstream, and what it stores.
async fn forward(
    inner: Arc<Inner>,
    key: Arc<str>,
    mut req: Request,
    stale: Option<Arc<Stored>>,
    why: Fwd,
    writer: Writer,
) -> HandlerResult {
    let series = &inner.zone.series;
    // A GET's `Range` is not sent upstream: the whole response fills the
    // entry, and the client's part is cut from it (`partial.rs`).
    let ranged = *req.method() == Method::GET && req.headers().contains_key(header::RANGE);
    // What the client asked, for answering its own conditionals and
    // range from the entry (or the answer) once ours have replaced them
    // upstream.
    let client = (stale.is_some() || ranged).then(|| req.headers().clone());
    if let Some(entry) = &stale {
        revalidate_with(req.headers_mut(), entry);
    }
    if ranged {
        req.headers_mut().remove(header::RANGE);
        req.headers_mut().remove(header::IF_RANGE);
    }
    let cut_for_client = |resp: Response, drain: bool| match &client {
        Some(theirs) if ranged => partial::cut(resp, theirs, drain),
        _ => resp,
    };
    let asked_method = req.method().clone();
    let asked_uri = req.uri().clone();
    let asked_headers = req.headers().clone();
    let answer = inner
        .handler
        .call(req)
        .await
        .unwrap_or_else(HttpError::into_response);
    let now = SystemTime::now();
    let asked = Asked {
        method: &asked_method,
        uri: &asked_uri,
        headers: &asked_headers,
    };
    let code = answer.status();

    if let Some(entry) = &stale {
        if code == StatusCode::NOT_MODIFIED {
            let Some(AfterResponse::NotModified(policy, parts)) = entry
                .policy
                .get()
                .map(|policy| policy.after_response(&asked, &answer, now))
            else {
                // A 304 for other validators than ours: pass it on.
                series.miss.inc();
                return Ok(stamp(answer, CacheStatus::fwd(why)));
            };
            let refreshed =
                Arc::new(entry.refreshed(policy, merge(&entry.headers, parts.headers), now));
            inner.zone.store(&key, refreshed.clone());
            writer.stored(refreshed.clone());
            series.revalidated.inc();
            let status = CacheStatus {
                fwd_status: Some(StatusCode::NOT_MODIFIED),
                ttl: Some(refreshed.ttl(now)),
                ..CacheStatus::fwd(why)
            };
            return Ok(serve(
                &refreshed,
                &asked_method,
                client.as_ref().unwrap_or(&asked_headers),
                status,
                now,
            ));
        }
        if code.is_server_error()
            && (inner.rules.use_stale.on(code) || entry.staleness(now) <= entry.stale_if_error)
        {
            series.stale.inc();
            let status = CacheStatus {
                hit: true,
                fwd_status: Some(code),
                ttl: Some(entry.ttl(now)),
                detail: Some("stale-if-error"),
                ..CacheStatus::fwd(why)
            };
            return Ok(serve(
                entry,
                &asked_method,
                client.as_ref().unwrap_or(&asked_headers),
                status,
                now,
            ));
        }
    }

    series.miss.inc();
    let policy = match Stored::policy(&asked, code, answer.headers(), now) {
        Ok(p) if !too_large(&answer, &inner.zone) => p,
        // Not stored: the waiters are released as `writer` drops.
        _ => return Ok(cut_for_client(stamp(answer, CacheStatus::fwd(why)), false)),
    };
    let (mut parts, body) = answer.into_parts();
    parts
        .headers
        .append(CACHE_STATUS, stored_status(why).value());
    let mut kept = parts.headers.clone();
    for name in [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        CACHE_STATUS,
    ] {
        kept.remove(name);
    }
    let pending = Pending {
        zone: inner.zone.clone(),
        key,
        writer,
        make: Box::new(move |bytes: Bytes| {
            let asked = Asked {
                method: &asked_method,
                uri: &asked_uri,
                headers: &asked_headers,
            };
            Stored::new(policy, &asked, code, kept, bytes, now)
        }),
    };
    let resp = http::Response::from_parts(parts, Body::stream(Recorded::new(body, pending)));
    Ok(cut_for_client(resp, true))
}

fn stored_status(why: Fwd) -> CacheStatus {
    CacheStatus {
        stored: true,
        ..CacheStatus::fwd(why)
    }
}

fn stamp(mut resp: Response, status: CacheStatus) -> Response {
    resp.headers_mut().append(CACHE_STATUS, status.value());
    resp
}

/// Whether the answer says up front that it is larger than an entry may be.
fn too_large(resp: &Response, zone: &CacheZone) -> bool {
    use http_body::Body as _;
    resp.body()
        .size_hint()
        .exact()
        .is_some_and(|n| n > zone.params().max_entry_bytes)
}

/// Asks the upstream whether `entry` is still good: our validators in place
/// of the client's (the client's are answered from the entry afterwards).
fn revalidate_with(h: &mut HeaderMap, entry: &Stored) {
    for name in [
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
        header::IF_RANGE,
    ] {
        h.remove(name);
    }
    if let Some(etag) = entry.headers.get(header::ETAG) {
        h.insert(header::IF_NONE_MATCH, etag.clone());
    }
    if let Some(lm) = entry.headers.get(header::LAST_MODIFIED) {
        h.insert(header::IF_MODIFIED_SINCE, lm.clone());
    }
}

/// The stored head updated by a 304's (RFC 9111 §3.2: its fields replace
/// the stored ones of the same name; the rest stay).
fn merge(stored: &HeaderMap, update: HeaderMap) -> HeaderMap {
    let mut out = stored.clone();
    let mut last = None;
    for (name, value) in update {
        match name {
            Some(n) => {
                out.remove(&n);
                out.append(n.clone(), value);
                last = Some(n);
            }
            None => {
                if let Some(n) = &last {
                    out.append(n.clone(), value);
                }
            }
        }
    }
    for name in [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        CACHE_STATUS,
    ] {
        out.remove(name);
    }
    out
}

/// Refreshes `entry` off the request path: the request's head is sent
/// again, and the answer read to its end so that it is stored.
fn refresh_in_background(inner: Arc<Inner>, key: Arc<str>, req: &Request, entry: Arc<Stored>) {
    let Turn::Write(writer) = inner.zone.fills.join(&key) else {
        return;
    };
    let mut head = req.head().clone();
    head.method = Method::GET;
    let again = Request::new(head, None, Vec::new(), Bytes::new(), req.peer())
        .with_stream(None, req.is_tls());
    tokio::spawn(async move {
        if let Ok(resp) = forward(inner, key, again, Some(entry), Fwd::Stale, writer).await {
            use http_body_util::BodyExt as _;
            let _ = resp.into_body().collect().await;
        }
    });
}
