//! `Compress`: gzip, brotli and zstd on the fly, for a route or a whole
//! server (`compression:` in `config.ron`; the rules are in
//! `docs/compression.md`).
//!
//! The decision reads the request and the response head only, never
//! buffers the body: the coding is negotiated from `Accept-Encoding`
//! (`negotiate.rs`) before the handler runs, and the response is then
//! encoded as it streams (`body.rs`) unless it is one that must not be
//! (already encoded, a range, HEAD, 1xx/204/206/304, `no-transform`, a
//! WebSocket upgrade, too small, a type not on the list). The compiled
//! route puts it first in its chain, so it sees what every other
//! middleware answered. A route without compression has no such entry and
//! pays nothing.

mod body;
pub mod negotiate;
#[cfg(feature = "handler-static")]
mod precompress;
mod types;

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

pub use negotiate::Encoding;
#[cfg(feature = "handler-static")]
pub(crate) use precompress::sibling;
#[cfg(feature = "handler-static")]
pub use precompress::{Summary, precompress};
pub use types::TypeList;

use crate::{
    handler::{HandlerFuture, Middleware, Next, Response},
    pipeline::request::Request,
};

/// Levels per coding, as given to the encoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    /// 1–9.
    pub gzip: u32,
    /// 0–9 on the fly (11 is offline only: ~60× the cost of 4, docs/compression.md).
    pub brotli: u32,
    /// 1–19.
    pub zstd: u32,
}

/// A route's compression, compiled.
#[derive(Debug)]
pub struct Settings {
    /// The codings offered, most preferred first.
    pub offered: Vec<Encoding>,
    /// Levels per coding.
    pub levels: Levels,
    /// Bodies known to be smaller than this are sent as they are.
    pub min_length: u64,
    /// The media types worth compressing.
    pub types: TypeList,
}

/// The compression middleware: one per route that compresses, sharing its
/// server's settings when they are the server's.
#[derive(Debug, Clone)]
pub struct Compress(pub Arc<Settings>);

/// What the request says about compressing its answer, read before the
/// handler takes the request.
struct Asked {
    /// The coding negotiated; `None` for identity.
    coding: Option<Encoding>,
    /// HEAD, a `Range` or a WebSocket handshake (`Sec-WebSocket-Key`, or
    /// HTTP/2's extended CONNECT): the body is never encoded.
    never: bool,
    /// The client's `If-None-Match` holds a weak tag, as we send with an
    /// encoded body: its 304 carries the tag weakened too.
    conditional: bool,
}

impl Middleware for Compress {
    fn call(&self, req: Request, next: Next) -> HandlerFuture {
        let headers = req.headers();
        let asked = Asked {
            coding: negotiate::choose(headers.get(header::ACCEPT_ENCODING), &self.0.offered),
            never: req.method() == Method::HEAD
                || req.method() == Method::CONNECT
                || headers.contains_key(header::RANGE)
                || headers.contains_key(header::SEC_WEBSOCKET_KEY),
            conditional: headers
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| v.as_bytes().windows(2).any(|w| w == b"W/")),
        };
        let settings = self.0.clone();
        next.run(req)
            .map(move |result| result.map(|resp| settings.apply(resp, &asked)))
    }
}

impl Settings {
    /// The response, encoded if it should be, with its caching headers.
    fn apply(&self, mut resp: Response, asked: &Asked) -> Response {
        let status = resp.status();
        let h = resp.headers();
        // Already encoded (an upstream's gzip, a precompressed file), a
        // 101 or 1xx, or `no-transform`: not ours to touch, not even Vary.
        if h.contains_key(header::CONTENT_ENCODING) || status.is_informational() || no_transform(h)
        {
            return resp;
        }
        if status == StatusCode::NOT_MODIFIED {
            // The 200 it stands for could have been encoded: it varies,
            // and its tag is the one the client holds.
            vary(resp.headers_mut());
            if asked.coding.is_some() && asked.conditional {
                weaken_etag(resp.headers_mut());
            }
            return resp;
        }
        if !self.types.allows(h.get(header::CONTENT_TYPE)) {
            return resp;
        }
        vary(resp.headers_mut());
        let Some(coding) = asked.coding else {
            return resp;
        };
        let h = resp.headers();
        if asked.never
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::PARTIAL_CONTENT
            || h.contains_key(header::CONTENT_RANGE)
            || self.too_small(&resp)
        {
            return resp;
        }
        let (mut parts, body) = resp.into_parts();
        let h = &mut parts.headers;
        h.remove(header::CONTENT_LENGTH);
        h.remove(header::ACCEPT_RANGES);
        h.insert(header::CONTENT_ENCODING, coding.header());
        weaken_etag(h);
        Response::from_parts(parts, body::encode(body, coding, &self.levels))
    }

    /// Whether the body is known to be under `min_length`: from
    /// `Content-Length`, else the body's exact size. A stream of unknown
    /// length is compressed: waiting for its first chunk to decide would
    /// hold back the headers of a server-sent event stream until its first
    /// event.
    fn too_small(&self, resp: &Response) -> bool {
        let declared = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let len = declared.or_else(|| http_body::Body::size_hint(resp.body()).exact());
        len.is_some_and(|n| n < self.min_length)
    }
}

/// `Cache-Control: no-transform` (RFC 9111 §5.2.2.6) forbids changing the
/// coding.
fn no_transform(h: &HeaderMap) -> bool {
    h.get_all(header::CACHE_CONTROL).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
        })
    })
}

/// Adds `Accept-Encoding` to `Vary`, keeping what is there.
fn vary(h: &mut HeaderMap) {
    let mut listed = false;
    for v in h.get_all(header::VARY) {
        if let Ok(v) = v.to_str()
            && v.split(',').any(|f| {
                let f = f.trim();
                f == "*" || f.eq_ignore_ascii_case("accept-encoding")
            })
        {
            listed = true;
        }
    }
    if !listed {
        h.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// A strong `ETag` names the bytes sent; an encoded body has other bytes,
/// so its tag becomes weak (`W/"…"`), as nginx does.
fn weaken_etag(h: &mut HeaderMap) {
    if let Some(tag) = h.get(header::ETAG)
        && tag.as_bytes().first() == Some(&b'"')
    {
        let mut weak = Vec::with_capacity(tag.len() + 2);
        weak.extend_from_slice(b"W/");
        weak.extend_from_slice(tag.as_bytes());
        if let Ok(weak) = HeaderValue::from_bytes(&weak) {
            h.insert(header::ETAG, weak);
        }
    }
}
