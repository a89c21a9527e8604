//! What RFC 9113 §8 says makes an HTTP/2 request malformed, beyond what
//! the h2 crate checks itself (pseudo-headers, connection-specific
//! fields, names, CR/LF/NUL in values, `content-length` against the
//! data, all answered with a stream reset):
//! - a field value that starts or ends with SP or HTAB (§8.2.1, MUST);
//! - an `http`/`https` request with neither `:authority` nor `Host`
//!   (§8.3.1, MUST);
//! - a `Host` naming another host than `:authority` (§8.3.1, SHOULD):
//!   the route is chosen by `:authority`, a handler or backend may read
//!   `Host`, and the two must not tell different stories.
//!
//! Each gets 400 (§8.1.1 lets a server answer before it resets the
//! stream). HTTP/1 has its own rules for these in hyper and `host.rs`.

use http::{Version, header, request::Parts};

use super::{Connection, Exchange, Layer};
use crate::{error::HttpError, handler::Response};

/// The layer.
#[derive(Debug)]
pub(crate) struct H2Fields;

impl<C: Connection> Layer<C> for H2Fields {
    type Trail = ();

    #[inline(always)]
    fn down(&self, req: &Parts, ex: &mut Exchange, _conn: &C) {
        if req.version == Version::HTTP_2
            && let Err(why) = check(req)
        {
            ex.refused = Some(HttpError::BadRequest(why));
        }
    }

    #[inline(always)]
    fn up(&self, (): (), _resp: &mut Response, _ex: &Exchange, _conn: &C) {}
}

fn check(req: &Parts) -> Result<(), &'static str> {
    let padded = |v: &[u8]| {
        matches!(v.first(), Some(b' ' | b'\t')) || matches!(v.last(), Some(b' ' | b'\t'))
    };
    if req.headers.values().any(|v| padded(v.as_bytes())) {
        return Err("a field value with whitespace at either end");
    }
    let authority = req.uri.authority().map(|a| a.as_str().as_bytes());
    let host = req.headers.get(header::HOST).map(|h| h.as_bytes());
    match (authority, host) {
        (None, None) => Err("an HTTP/2 request needs :authority or Host"),
        (Some(a), Some(h)) if !a.eq_ignore_ascii_case(h) => Err("Host differs from :authority"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use http::Version;

    use super::H2Fields;
    use crate::pipeline::layers::testing::{head_for, refused};

    fn status(uri: &str, headers: &[(&str, &str)]) -> Option<u16> {
        refused(&H2Fields, &head_for(uri, Version::HTTP_2, headers))
    }

    #[test]
    fn malformed_http2_requests_are_refused() {
        assert_eq!(status("http://a/x", &[]), None);
        assert_eq!(status("http://a/x", &[("host", "A")]), None);
        assert_eq!(status("http://a/x", &[("x-a", "b c")]), None);
        assert_eq!(status("/x", &[("host", "a")]), None);
        assert_eq!(status("/x", &[]), Some(400));
        assert_eq!(status("http://a/x", &[("x-a", " b")]), Some(400));
        assert_eq!(status("http://a/x", &[("x-a", "b\t")]), Some(400));
        assert_eq!(status("http://a/x", &[("host", "b")]), Some(400));
    }
}
