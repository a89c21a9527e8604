//! HTTPS on the request path: what differs between a server's plain and
//! TLS requests, decided once the server is picked.
//!
//! - A plain request for a server with `redirect_http` gets 308 to the
//!   same URL on `https://` (the TLS listen port; omitted when 443).
//! - A TLS request whose `Host` (HTTP/2: `:authority`) picks a different
//!   server than the SNI of its handshake did gets 421 Misdirected Request
//!   (RFC 9110 §15.5.20): the connection was set up with the other
//!   server's certificate and client-certificate rule, so serving it would
//!   let a client skip a client-certificate check by naming one server in
//!   SNI and another in `Host`, and it is what a browser that coalesced an
//!   HTTP/2 connection needs to hear to open a new one. A request without
//!   a host goes to the SNI's server.
//! - A TLS answer of a server with `hsts` carries
//!   `Strict-Transport-Security` (answers the handler made, not the
//!   server's error pages: nginx's `add_header` without `always`).
//!
//! Plain connections only ever read `redirect` (one branch on the server
//! already picked); the rest runs for TLS connections alone.

use http::{HeaderValue, StatusCode, header, request::Parts};

use super::vhost::{Server, Servers, strip_port};
use crate::{
    error::HttpError,
    handler::{HandlerFuture, HandlerResult},
    pipeline::body::Body,
    tls::Session,
};

/// A server's HTTPS settings, compiled from its `tls` block.
#[derive(Debug, Default)]
pub struct Https {
    /// Plain-HTTP requests are redirected to HTTPS on this port.
    pub redirect: Option<u16>,
    /// The `Strict-Transport-Security` value for its TLS answers.
    pub hsts: Option<HeaderValue>,
}

/// The server a TLS request goes to: the one its host picks, which must
/// be the one its SNI picks; without a host, the SNI's.
#[inline]
pub(super) fn tls_server<'s>(
    servers: &'s Servers,
    by_host: &'s Server,
    has_host: bool,
    session: &Session,
) -> Result<&'s Server, HttpError> {
    let by_sni = servers.select(|| session.sni());
    if !has_host || std::ptr::eq(by_host, by_sni) {
        Ok(by_sni)
    } else {
        Err(HttpError::Misdirected)
    }
}

/// The answer to an ACME HTTP-01 challenge: the key authorization, as
/// `application/octet-stream` (RFC 8555 §8.3).
pub(super) fn acme_http01(answer: String) -> HandlerFuture {
    let mut resp = http::Response::new(Body::full(answer));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    HandlerFuture::ready(Ok(resp))
}

/// 308 to the request's URL on HTTPS at `port`.
pub(super) fn redirect(head: &Parts, host: Option<&str>, port: u16) -> HandlerFuture {
    let Some(host) = host.map(strip_port).filter(|h| is_host(h)) else {
        return HandlerFuture::ready(Err(HttpError::BadRequest("no host to redirect to")));
    };
    let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
    let location = if port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{port}{path}")
    };
    HandlerFuture::ready(
        HeaderValue::try_from(location)
            .map_err(|_| HttpError::BadRequest("redirect target is not a valid header"))
            .map(|location| {
                let mut resp = http::Response::new(Body::Empty);
                *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
                resp.headers_mut().insert(header::LOCATION, location);
                resp
            }),
    )
}

/// Adds `Strict-Transport-Security` to the handler's answer.
pub(super) fn with_hsts(chain: HandlerFuture, value: HeaderValue) -> HandlerFuture {
    chain.map(move |result: HandlerResult| {
        result.map(|mut resp| {
            resp.headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, value);
            resp
        })
    })
}

/// A host name or an IP literal, nothing that could bend the URL
/// (a client's `Host` goes into `Location`).
fn is_host(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !v6.is_empty()
            && v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(uri: &str, host: Option<&str>, port: u16) -> Option<String> {
        let (head, ()) = http::Request::get(uri)
            .body(())
            .expect("request")
            .into_parts();
        let mut fut = redirect(&head, host, port);
        let resp = fut.take_ready()?.ok()?;
        assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
        resp.headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    #[test]
    fn a_redirect_keeps_the_host_and_uri_and_names_the_port_unless_443() {
        assert_eq!(
            location("/a/b?c=d", Some("example.com:8080"), 8443).as_deref(),
            Some("https://example.com:8443/a/b?c=d")
        );
        assert_eq!(
            location("/", Some("example.com"), 443).as_deref(),
            Some("https://example.com/")
        );
        assert_eq!(
            location("/x", Some("[::1]:80"), 443).as_deref(),
            Some("https://[::1]/x")
        );
    }

    #[test]
    fn a_host_that_could_bend_the_url_is_refused() {
        for bad in ["evil.com/path", "a@b", "", "[zz]", "x y"] {
            assert_eq!(location("/", Some(bad), 443), None, "{bad}");
        }
        assert_eq!(location("/", None, 443), None);
    }
}
