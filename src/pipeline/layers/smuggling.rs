//! Request smuggling: a head with both `Content-Length` and
//! `Transfer-Encoding` means two parsers can disagree on where the body
//! ends (RFC 9112 §6.3), so it is refused with 400.
//!
//! hyper follows the RFC for such a head: it drops the length, uses
//! chunked, and closes the connection afterwards, so the service never
//! sees both headers. The socket therefore shows each read to a [`Sniff`]
//! (the one hook this layer has in the connection), which marks a head
//! that carried both; the layer refuses the request that head became.

use std::sync::{
    LazyLock,
    atomic::{AtomicBool, Ordering},
};

use http::header;
use http::request::Parts;
use memchr::memmem;

use super::{Connection, Exchange, Layer};
use crate::{error::HttpError, handler::Response};

/// What one connection's socket saw: set by a read, taken by the request.
#[derive(Debug, Default)]
pub(crate) struct Sniff {
    length_and_chunked: AtomicBool,
}

impl Sniff {
    /// Looks at bytes just read from the socket. The common case costs
    /// one SIMD substring search per read; lines are only examined when a
    /// transfer coding appears. A head split across reads escapes the
    /// sniff, and then hyper's own handling (chunked wins, the connection
    /// closes) still applies.
    pub(crate) fn read(&self, bytes: &[u8]) {
        if sniff(bytes) {
            self.length_and_chunked.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the head just read declared both; clears the mark.
    fn take(&self) -> bool {
        self.length_and_chunked.load(Ordering::Relaxed)
            && self.length_and_chunked.swap(false, Ordering::Relaxed)
    }

    /// The request was answered: reads up to here were its own, and a
    /// mark set by them (say, by header-like lines in its body) must not
    /// refuse the next request.
    pub(crate) fn answered(&self) {
        if self.length_and_chunked.load(Ordering::Relaxed) {
            self.length_and_chunked.store(false, Ordering::Relaxed);
        }
    }
}

/// The layer: refuses the request whose head was marked.
#[derive(Debug)]
pub(crate) struct Smuggling;

impl<C: Connection> Layer<C> for Smuggling {
    type Trail = ();

    #[inline(always)]
    fn down(&self, req: &Parts, ex: &mut Exchange, conn: &C) {
        if conn.sniff().take() && req.headers.contains_key(header::TRANSFER_ENCODING) {
            ex.refused = Some(HttpError::BadRequest(
                "both Content-Length and Transfer-Encoding",
            ));
        }
    }

    #[inline(always)]
    fn up(&self, (): (), _resp: &mut Response, _ex: &Exchange, _conn: &C) {}
}

/// Whether `bytes` hold a head with both header lines.
pub(crate) fn sniff(bytes: &[u8]) -> bool {
    // Building a searcher costs more than searching a request head.
    static TRANSFER: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"ransfer-"));
    if TRANSFER.find(bytes).is_none() {
        return false;
    }
    let mut te = false;
    let mut cl = false;
    for line in bytes.split(|&b| b == b'\n') {
        if line.len() >= 18 && line[..18].eq_ignore_ascii_case(b"transfer-encoding:") {
            te = true;
        } else if line.len() >= 15 && line[..15].eq_ignore_ascii_case(b"content-length:") {
            cl = true;
        } else if line == b"\r" || line.is_empty() {
            // End of a head: a length and a coding must be in the same one.
            if te && cl {
                return true;
            }
            te = false;
            cl = false;
        }
    }
    te && cl
}

#[cfg(test)]
mod tests {
    use http::Version;

    use super::{Smuggling, sniff};
    use crate::pipeline::layers::{
        Layer,
        testing::{conn, exchange, head},
    };

    #[test]
    fn a_marked_head_with_a_transfer_coding_is_refused_once() {
        let c = conn(100);
        c.sniff
            .read(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        let te = head(Version::HTTP_11, &[("transfer-encoding", "chunked")]);
        let mut ex = exchange(Version::HTTP_11);
        Smuggling.down(&te, &mut ex, &c);
        assert_eq!(ex.refused.map(|e| e.status().as_u16()), Some(400));
        let mut next = exchange(Version::HTTP_11);
        Smuggling.down(&te, &mut next, &c);
        assert!(
            next.refused.is_none(),
            "the mark is taken by the request it was for"
        );
    }

    #[test]
    fn sniffs_length_with_chunked_in_one_head_only() {
        assert!(sniff(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(sniff(
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-LENGTH: 5\r\n\r\n"
        ));
        assert!(!sniff(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(!sniff(b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde"));
        assert!(!sniff(
            b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
    }

    #[test]
    fn a_mark_is_taken_once_and_cleared_by_an_answer() {
        let s = super::Sniff::default();
        s.read(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(s.take());
        assert!(!s.take());
        s.read(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        s.answered();
        assert!(!s.take());
    }
}
