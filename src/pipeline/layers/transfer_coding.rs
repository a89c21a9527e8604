//! `Transfer-Encoding` (RFC 9112 §6.1, §7): the only coding Troupe
//! decodes is `chunked`, and a sender MUST NOT apply it more than once.
//!
//! hyper refuses a request whose final coding is not `chunked` and one
//! of HTTP/1.0 with any coding, but reads `gzip, chunked` or `chunked,
//! chunked` (in one field or two) as plain chunked, and hands the handler
//! a body still in a coding nobody undid, under a field that says it is.
//! A party behind Troupe that reads the field differently would frame
//! the body differently. So any coding besides one `chunked` is refused
//! with 400 (RFC 9112 §6.1 suggests 501 for a coding the server does not
//! understand; 400 is what hyper already answers to `identity` or `foo`,
//! so every such request gets the same answer), and the connection
//! closes ([`HttpError::closes_connection`]). HTTP/2 has no transfer
//! codings: h2 itself refuses the field there.

use http::{Version, header, request::Parts};

use super::{Connection, Exchange, Layer};
use crate::{error::HttpError, handler::Response};

/// The layer.
#[derive(Debug)]
pub(crate) struct TransferCoding;

impl<C: Connection> Layer<C> for TransferCoding {
    type Trail = ();

    #[inline(always)]
    fn down(&self, req: &Parts, ex: &mut Exchange, _conn: &C) {
        // A coding means a body to hyper: a request framed without one
        // has none, and skips the header lookup (a tenth of a hello's
        // layers).
        if !ex.no_body
            && req.version <= Version::HTTP_11
            && let Err(why) = check(req)
        {
            ex.refused = Some(HttpError::BadRequest(why));
        }
    }

    #[inline(always)]
    fn up(&self, (): (), _resp: &mut Response, _ex: &Exchange, _conn: &C) {}
}

fn check(req: &Parts) -> Result<(), &'static str> {
    let mut chunked = 0;
    for field in req.headers.get_all(header::TRANSFER_ENCODING) {
        // Empty list elements are legal and mean nothing (RFC 9110 §5.6.1).
        for coding in field.as_bytes().split(|&b| b == b',') {
            let coding = coding.trim_ascii();
            if coding.is_empty() {
                continue;
            }
            if !coding.eq_ignore_ascii_case(b"chunked") {
                return Err("a transfer coding other than chunked");
            }
            chunked += 1;
        }
    }
    if chunked > 1 {
        return Err("chunked applied more than once");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use http::Version;

    use super::TransferCoding;
    use crate::pipeline::layers::testing::{head, refused};

    fn status(version: Version, headers: &[(&str, &str)]) -> Option<u16> {
        refused(&TransferCoding, &head(version, headers))
    }

    #[test]
    fn only_one_chunked_passes() {
        use Version as V;
        let te = "transfer-encoding";
        assert_eq!(status(V::HTTP_11, &[]), None);
        assert_eq!(status(V::HTTP_11, &[(te, "chunked")]), None);
        assert_eq!(status(V::HTTP_11, &[(te, "ChUnKeD")]), None);
        assert_eq!(status(V::HTTP_11, &[(te, " , chunked ,")]), None);
        assert_eq!(status(V::HTTP_11, &[(te, "gzip, chunked")]), Some(400));
        assert_eq!(status(V::HTTP_11, &[(te, "chunked, chunked")]), Some(400));
        assert_eq!(
            status(V::HTTP_11, &[(te, "chunked"), (te, "chunked")]),
            Some(400)
        );
        assert_eq!(status(V::HTTP_11, &[(te, "x-chunked")]), Some(400));
    }
}
