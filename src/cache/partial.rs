//! A range cut from a whole upstream answer as it streams, so that a
//! miss asked with `Range` fills the cache with the whole response and
//! its client still gets only its part, as nginx's cache does (it drops
//! `Range` from the request upstream and lets its range filter cut the
//! answer).
//!
//! The upstream's bytes past the part are still read, on a task of their
//! own, when the body is being recorded for the cache: the entry is the
//! whole response or nothing.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt as _;

use crate::{
    handler::Response,
    pipeline::{
        body::Body,
        range::{self, Part},
    },
};

/// `resp` (a whole 200 of known length) cut to what `client` (the
/// client's request headers, `Range` and `If-Range`) asks: a 206, a 416,
/// or `resp` itself. `drain`: read the rest of the body after the part
/// (it is being recorded).
pub(super) fn cut(resp: Response, client: &HeaderMap, drain: bool) -> Response {
    let len = resp.body().size_hint().exact();
    let (Some(len), StatusCode::OK) = (len, resp.status()) else {
        // Unknown length: the whole, which RFC 9110 allows.
        return resp;
    };
    let h = resp.headers();
    let part = range::requested(
        client,
        len,
        h.get(header::ETAG),
        h.get(header::LAST_MODIFIED),
    );
    let (mut parts, body) = resp.into_parts();
    match part {
        Ok(Part::Whole) => Response::from_parts(parts, body),
        Ok(Part::Range(start, end)) => {
            parts.status = StatusCode::PARTIAL_CONTENT;
            let h = &mut parts.headers;
            h.insert(header::CONTENT_RANGE, range::content_range(start, end, len));
            h.insert(header::CONTENT_LENGTH, (end - start + 1).into());
            let cut = Cut {
                inner: Some(body),
                skip: start,
                left: end - start + 1,
                drain,
            };
            Response::from_parts(parts, Body::stream(cut))
        }
        Err(refused) => {
            if drain {
                finish(body);
            }
            let mut out = refused.into_response();
            for (name, value) in &parts.headers {
                if name == super::status::CACHE_STATUS {
                    out.headers_mut().append(name, value.clone());
                }
            }
            out
        }
    }
}

/// Reads what is left of `body` to its end, off the request, for the
/// recording it feeds.
fn finish(body: Body) {
    if body.is_end_stream() {
        return;
    }
    tokio::spawn(async move {
        let _ = body.collect().await;
    });
}

/// The bytes `skip..skip + left` of `inner`.
struct Cut {
    inner: Option<Body>,
    skip: u64,
    left: u64,
    drain: bool,
}

impl Cut {
    /// The part is sent: the rest is drained, or dropped.
    fn done(&mut self) {
        if let Some(body) = self.inner.take()
            && self.drain
        {
            finish(body);
        }
    }
}

impl http_body::Body for Cut {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            if this.left == 0 {
                this.done();
                return Poll::Ready(None);
            }
            let Some(inner) = this.inner.as_mut() else {
                return Poll::Ready(None);
            };
            let Some(frame) = ready!(Pin::new(inner).poll_frame(cx)) else {
                // Shorter than it said: the connection layer sees the
                // length fall short and ends the response as cut.
                this.inner = None;
                return Poll::Ready(None);
            };
            let data = match frame.map(|f| f.into_data()) {
                Ok(Ok(data)) => data,
                // Trailers belong to the whole, not to a part.
                Ok(Err(_)) => continue,
                Err(e) => return Poll::Ready(Some(Err(e))),
            };
            let n = data.len() as u64;
            if this.skip >= n {
                this.skip -= n;
                continue;
            }
            let from = this.skip as usize;
            let to = (this.skip + this.left).min(n) as usize;
            this.skip = 0;
            this.left -= (to - from) as u64;
            if this.left == 0 {
                this.done();
            }
            return Poll::Ready(Some(Ok(Frame::data(data.slice(from..to)))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use http::HeaderValue;

    use super::*;

    /// A body of `chunks`, which says when it was read to its end.
    struct Chunks {
        chunks: Vec<&'static str>,
        ended: Arc<AtomicBool>,
    }

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.chunks.is_empty() {
                self.ended.store(true, Ordering::SeqCst);
                return Poll::Ready(None);
            }
            let c = self.chunks.remove(0);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(c.as_bytes())))))
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
        }
    }

    async fn ask(range: &str, drain: bool) -> (StatusCode, String, Option<String>, bool) {
        let ended = Arc::new(AtomicBool::new(false));
        let body = Chunks {
            chunks: vec!["0123", "4567", "89ab", "cdef"],
            ended: ended.clone(),
        };
        let resp = http::Response::new(Body::stream(body));
        let mut client = HeaderMap::new();
        client.insert(header::RANGE, HeaderValue::from_str(range).unwrap());
        let out = cut(resp, &client, drain);
        let status = out.status();
        let cr = out
            .headers()
            .get(header::CONTENT_RANGE)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = out.into_body().collect().await.unwrap().to_bytes();
        // The drain runs on a task of its own.
        for _ in 0..100 {
            if ended.load(Ordering::SeqCst) {
                break;
            }
            tokio::task::yield_now().await;
        }
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        (status, text, cr, ended.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_part_across_chunks_is_cut_and_the_rest_drained_only_when_recorded() {
        let (status, text, cr, ended) = ask("bytes=2-9", true).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(text, "23456789");
        assert_eq!(cr.as_deref(), Some("bytes 2-9/16"));
        assert!(ended, "a recorded body is read to its end");
        let (_, text, _, ended) = ask("bytes=4-7", false).await;
        assert_eq!(text, "4567");
        assert!(!ended, "a body no one records is let go");
        assert_eq!(ask("bytes=-3", true).await.1, "def");
        assert_eq!(ask("bytes=15-", true).await.1, "f");
    }

    #[tokio::test]
    async fn past_the_end_is_416_and_still_drained_and_no_range_is_whole() {
        let (status, _, cr, ended) = ask("bytes=16-", true).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(cr.as_deref(), Some("bytes */16"));
        assert!(ended);
        let (status, text, _, _) = ask("bytes=0-1,4-5", true).await;
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::OK, "0123456789abcdef")
        );
    }
}
