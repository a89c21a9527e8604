//! The request as handlers and middleware see it (P1.3, P4.4).
//!
//! It owns the parsed head, the buffered body and the route parameters, and
//! offers small helpers for the common questions: the decoded path, one
//! query parameter, one header.

use std::{borrow::Cow, net::SocketAddr};

use bytes::Bytes;
use http::{HeaderMap, Method, Uri, Version, request::Parts};
use http_body_util::Limited;
use hyper::body::Incoming;

/// A request body not read yet, capped at `max_body_bytes` (reading past
/// it fails with `http_body_util::LengthLimitError`).
pub type BodyStream = Limited<Incoming>;

/// One HTTP request, after routing.
#[derive(Debug)]
pub struct Request {
    head: Parts,
    /// The normalized path when it differs from the raw one.
    normalized: Option<String>,
    params: Vec<(String, String)>,
    body: Bytes,
    peer: SocketAddr,
    /// The body, unread, for a handler that streams it (boxed: most
    /// requests have none, and the request is moved around whole).
    stream: Option<Box<BodyStream>>,
    /// Whether it came over TLS.
    tls: bool,
}

impl Request {
    /// Builds a request; the pipeline does this once routing is done.
    pub fn new(
        head: Parts,
        normalized: Option<String>,
        params: Vec<(String, String)>,
        body: Bytes,
        peer: SocketAddr,
    ) -> Self {
        Self {
            head,
            normalized,
            params,
            body,
            peer,
            stream: None,
            tls: false,
        }
    }

    /// Hands over the unread body (for handlers that stream it) and marks
    /// a request that came over TLS; the pipeline calls it on every
    /// request it routes.
    pub(crate) fn with_stream(mut self, stream: Option<BodyStream>, tls: bool) -> Self {
        self.stream = stream.map(Box::new);
        self.tls = tls;
        self
    }

    /// The same request with another URI, routed again (`internal.rs`):
    /// its normalized path and the new route's parameters.
    pub(crate) fn reroute(
        mut self,
        uri: Uri,
        normalized: String,
        params: Vec<(String, String)>,
    ) -> Self {
        self.head.uri = uri;
        self.normalized = Some(normalized);
        self.params = params;
        self
    }

    /// The body, unread, when the route's handler streams it
    /// ([`crate::Handler::streams_body`]): taken once. `None` when the
    /// request has no body or it was buffered (see [`Request::body`]).
    pub fn take_body_stream(&mut self) -> Option<BodyStream> {
        self.stream.take().map(|b| *b)
    }

    /// Whether the request came over TLS (the proxy's `X-Forwarded-Proto`).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// A request for tests and benches: `GET`-style, no body, loopback peer.
    pub fn from_parts(head: Parts) -> Self {
        Self::new(
            head,
            None,
            Vec::new(),
            Bytes::new(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
    }

    /// The headers, to change before the request is handed on (the cache
    /// puts its validators in place of the client's).
    pub(crate) fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.head.headers
    }

    /// The head and the body, for a handler that hands the request on
    /// whole (a WebAssembly component).
    pub fn into_parts(self) -> (Parts, Bytes) {
        (self.head, self.body)
    }

    /// Replaces the route parameters (for tests and benches).
    pub fn set_params(&mut self, params: Vec<(String, String)>) {
        self.params = params;
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.head.method
    }

    /// The request target as received.
    pub fn uri(&self) -> &Uri {
        &self.head.uri
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.head.version
    }

    /// The decoded, normalized path (`/a/%2e%2e/b` arrives as `/b`).
    pub fn path(&self) -> &str {
        self.normalized
            .as_deref()
            .unwrap_or_else(|| self.head.uri.path())
    }

    /// The raw query string, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.head.uri.query()
    }

    /// Every query parameter, decoded (`+` is a space), in order.
    pub fn query_pairs(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
        form_urlencoded::parse(self.query().unwrap_or("").as_bytes())
    }

    /// The first value of one query parameter, decoded (see [`query_param`]).
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        query_param(self.query().unwrap_or("").as_bytes(), name)
    }

    /// All headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.head.headers
    }

    /// The first value of a header, if it is visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A route parameter: `{id}` in `/users/{id}`, `path` in `{*path}`, or
    /// `1`…`9` for the captures of a regex route.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every route parameter, in pattern order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The request body (buffered up to `max_body_bytes`); empty when the
    /// route's handler streams it instead.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The parsed head, for handlers that need everything.
    pub fn head(&self) -> &Parts {
        &self.head
    }

    /// Typed values that travel with the request from middleware to the
    /// handler (a module's `proxy::UpstreamChoice`).
    pub fn extensions(&self) -> &http::Extensions {
        &self.head.extensions
    }

    /// The request's extensions, to add to.
    pub fn extensions_mut(&mut self) -> &mut http::Extensions {
        &mut self.head.extensions
    }
}

/// Whether the comma-separated field `name` (in any of its lines) lists
/// `token`, case-insensitively: `Connection: keep-alive, Upgrade`.
pub fn lists_token(headers: &HeaderMap, name: http::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The first value of the parameter `name` in `query` (raw, without `?`),
/// decoded: `+` is a space, `%XX` a byte, any other `%` kept as it is,
/// ill-formed UTF-8 replaced by U+FFFD; a piece without `=` has the empty
/// value, empty pieces are skipped, names match after decoding.
///
/// This is the one decoder behind every module language's query helper on
/// the host side ([`Request::query_param`], Lua's `req:query_param` and
/// `troupe.query_param`, WebAssembly's `troupe:host/api` `query-param`).
/// The C header (`troupe_query_param`) and the Rust SDK
/// (`troupe_module::query_param`) carry copies of the same rules for
/// modules with no host call to make; `tests/it/query_params.rs` checks
/// that all four languages agree.
pub fn query_param<'q>(query: &'q [u8], name: &str) -> Option<Cow<'q, str>> {
    form_urlencoded::parse(query)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str) -> Request {
        let (head, ()) = http::Request::builder()
            .uri(uri)
            .header("x-a", "1")
            .body(())
            .unwrap()
            .into_parts();
        Request::from_parts(head)
    }

    #[test]
    fn query_is_decoded() {
        let r = req("/p?name=J%C3%BCrgen+X&empty=&name=second");
        assert_eq!(r.query_param("name").as_deref(), Some("Jürgen X"));
        assert_eq!(r.query_param("empty").as_deref(), Some(""));
        assert_eq!(r.query_param("missing"), None);
        assert_eq!(r.query_pairs().count(), 3);
        assert_eq!(r.header("X-A"), Some("1"));
    }
}
