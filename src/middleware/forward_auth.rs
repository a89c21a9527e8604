//! `ForwardAuth`: an auth service decides (nginx `auth_request`, Caddy
//! `forward_auth`, Traefik `ForwardAuth`).
//!
//! Each request is first asked of the auth service as a `GET` of the
//! configured URI, through the proxy's own handler ([`Proxy`]) to an
//! upstream group, so the group's balancing, pools, TLS, timeouts and
//! passive health apply. The subrequest carries the client's headers
//! (cookies, `Authorization`), without a body, and says what was asked
//! in `X-Forwarded-Method` and `X-Forwarded-Uri` (the proxy adds
//! `X-Forwarded-For`, `-Proto` and `-Host` as for any request, the
//! client's own replaced unless it is a trusted proxy).
//!
//! | the auth service answers | the client gets |
//! |---|---|
//! | 2xx | the route's answer; `copy_headers` of the auth answer are put on the request first (the client's own of those names always removed) |
//! | 401, 403, 3xx | the auth service's answer as it is (its `WWW-Authenticate`, its login redirect) |
//! | anything else | 500 (its body is not shown) |
//! | nothing (refused, timed out) | the proxy's 502, 503 or 504: never let through |

use std::sync::Arc;

use bytes::Bytes;
use http::{
    HeaderName, HeaderValue, Method, StatusCode, Uri, header, request::Parts, uri::PathAndQuery,
};
use http_body_util::BodyExt as _;

use crate::{
    error::error_page,
    handler::{Handler, HandlerFuture, Middleware, Next},
    pipeline::request::Request,
    proxy::Proxy,
};

static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");

/// What is read of a 2xx answer's body before it is let go (so the
/// connection can go back to the pool); past it, the connection is closed.
const DRAIN_BYTES: usize = 64 * 1024;

/// A route's forward authentication.
#[derive(Debug, Clone)]
pub struct ForwardAuth(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    proxy: Proxy,
    uri: PathAndQuery,
    copy: Box<[HeaderName]>,
    /// The group's name, for the log.
    upstream: Arc<str>,
}

impl ForwardAuth {
    /// Asks `uri` through `proxy`; copies `copy` from a 2xx answer.
    pub fn new(proxy: Proxy, uri: PathAndQuery, copy: Vec<HeaderName>, upstream: &str) -> Self {
        Self(Arc::new(Inner {
            proxy,
            uri,
            copy: copy.into(),
            upstream: upstream.into(),
        }))
    }
}

/// The subrequest for `req`: a GET of `uri` with the client's headers,
/// no body, and what the client asked.
fn subrequest(req: &Request, uri: &PathAndQuery) -> Request {
    let mut head = http::Request::new(()).into_parts().0;
    head.method = Method::GET;
    head.uri = Uri::from(uri.clone());
    head.version = req.version();
    head.headers = req.headers().clone();
    let h = &mut head.headers;
    for name in [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::EXPECT,
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
    ] {
        h.remove(name);
    }
    // HTTP/2 names the host in :authority only; the proxy reads `Host`.
    if !h.contains_key(header::HOST)
        && let Some(v) = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        h.insert(header::HOST, v);
    }
    h.insert(
        X_FORWARDED_METHOD.clone(),
        HeaderValue::from_str(req.method().as_str()).unwrap_or(HeaderValue::from_static("GET")),
    );
    let target = req.uri().path_and_query().map_or("/", PathAndQuery::as_str);
    if let Ok(v) = HeaderValue::from_str(target) {
        h.insert(X_FORWARDED_URI.clone(), v);
    }
    sub(head, req)
}

fn sub(head: Parts, req: &Request) -> Request {
    Request::new(head, None, Vec::new(), Bytes::new(), req.peer()).with_stream(None, req.is_tls())
}

impl Middleware for ForwardAuth {
    fn call(&self, mut req: Request, next: Next) -> HandlerFuture {
        let inner = self.0.clone();
        HandlerFuture::new(async move {
            let asked = subrequest(&req, &inner.uri);
            let answer = match inner.proxy.call(asked).await {
                Ok(answer) => answer,
                Err(e) => e.into_response(),
            };
            let status = answer.status();
            if status.is_success() {
                let (parts, body) = answer.into_parts();
                let headers = req.headers_mut();
                for name in inner.copy.iter() {
                    headers.remove(name);
                    for v in parts.headers.get_all(name) {
                        headers.append(name.clone(), v.clone());
                    }
                }
                let _ = http_body_util::Limited::new(body, DRAIN_BYTES)
                    .collect()
                    .await;
                return next.run(req).await;
            }
            if status == StatusCode::UNAUTHORIZED
                || status == StatusCode::FORBIDDEN
                || status.is_redirection()
            {
                return Ok(answer);
            }
            // A 5xx (the proxy's own page for an auth service it could not
            // reach, or the service's error) keeps its status; any other
            // answer is the service's mistake. Neither body is shown.
            let upstream = &*inner.upstream;
            if status.is_server_error() {
                tracing::warn!(upstream, %status, "forward auth: no verdict from the auth service; refused");
                return Ok(error_page(status));
            }
            tracing::warn!(upstream, %status, "forward auth: the auth service answered neither 2xx, 401, 403 nor a redirect; refused with 500");
            Ok(error_page(StatusCode::INTERNAL_SERVER_ERROR))
        })
    }
}
