//! The `Host` field (RFC 9112 §3.2): a server MUST answer 400 to an
//! HTTP/1.1 request without one, and to any request with more than one
//! or with an invalid value. hyper passes all three through; a handler
//! that trusted `Host` (a virtual host, a module, the proxy's
//! `X-Forwarded-Host`) would then see whatever the client chose.
//!
//! Valid is what RFC 3986 allows in `uri-host [":" port]`: letters,
//! digits, `-._~`, `%` escapes, the sub-delims, `:` and the brackets of
//! an IPv6 literal. Empty is valid too (a target with no authority).
//! HTTP/2 carries `:authority` instead, so there only a `Host` that is
//! present is checked.

use http::{HeaderValue, Version, header, request::Parts};

use super::{Connection, Exchange, Layer};
use crate::{error::HttpError, handler::Response};

/// The layer.
#[derive(Debug)]
pub(crate) struct HostCheck;

impl<C: Connection> Layer<C> for HostCheck {
    type Trail = ();

    #[inline(always)]
    fn down(&self, req: &Parts, ex: &mut Exchange, _conn: &C) {
        if let Err(why) = check(req) {
            ex.refused = Some(HttpError::BadRequest(why));
        }
    }

    #[inline(always)]
    fn up(&self, (): (), _resp: &mut Response, _ex: &Exchange, _conn: &C) {}
}

/// Why `req`'s `Host` fields are refused, if they are.
pub(crate) fn check(req: &Parts) -> Result<(), &'static str> {
    let mut hosts = req.headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if req.version == Version::HTTP_11 => Err("an HTTP/1.1 request needs a Host"),
        (None, _) => Ok(()),
        (Some(_), Some(_)) => Err("more than one Host"),
        (Some(host), None) if !valid(host) => Err("an invalid Host"),
        (Some(_), None) => Ok(()),
    }
}

fn valid(host: &HeaderValue) -> bool {
    host.as_bytes().iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
            )
    })
}

#[cfg(test)]
mod tests {
    use http::Version;

    use super::HostCheck;
    use crate::pipeline::layers::testing::{head, refused};

    fn status(version: Version, headers: &[(&str, &str)]) -> Option<u16> {
        refused(&HostCheck, &head(version, headers))
    }

    #[test]
    fn host_is_required_once_and_valid() {
        use Version as V;
        assert_eq!(status(V::HTTP_11, &[("host", "example.com:8080")]), None);
        assert_eq!(status(V::HTTP_11, &[("host", "[::1]:80")]), None);
        assert_eq!(status(V::HTTP_11, &[("host", "")]), None);
        assert_eq!(status(V::HTTP_10, &[]), None);
        assert_eq!(status(V::HTTP_2, &[]), None);
        assert_eq!(status(V::HTTP_11, &[]), Some(400));
        assert_eq!(
            status(V::HTTP_11, &[("host", "a"), ("host", "a")]),
            Some(400)
        );
        assert_eq!(
            status(V::HTTP_10, &[("host", "a"), ("host", "b")]),
            Some(400)
        );
        for bad in ["a b", "a/b", "user@a", "a\\b", "a\"b", "a\tb"] {
            assert_eq!(status(V::HTTP_11, &[("host", bad)]), Some(400), "{bad}");
        }
        assert_eq!(status(V::HTTP_2, &[("host", "a/b")]), Some(400));
    }
}
