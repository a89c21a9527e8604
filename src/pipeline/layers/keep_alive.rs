//! The keep-alive cap (`limits.keepalive_requests`): a connection closes
//! after serving that many requests, as nginx's `keepalive_requests` does.
//! HTTP/1 says so with `Connection: close` on the last answer; HTTP/2 gets
//! a graceful GOAWAY once its streams are done.

use http::request::Parts;
use http::{HeaderValue, StatusCode, Version, header};

use super::{Connection, Exchange, Layer};
use crate::handler::Response;

/// The layer.
#[derive(Debug)]
pub(crate) struct KeepAlive;

impl<C: Connection> Layer<C> for KeepAlive {
    /// How many requests the connection has served, this one included.
    type Trail = u64;

    #[inline(always)]
    fn down(&self, _req: &Parts, ex: &mut Exchange, conn: &C) -> u64 {
        conn.dispatched(ex.version == Version::HTTP_2)
    }

    #[inline(always)]
    fn up(&self, served: u64, resp: &mut Response, ex: &Exchange, conn: &C) {
        if served < conn.max_requests() {
            return;
        }
        if ex.version == Version::HTTP_2 {
            conn.close_gracefully();
        } else if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            // (A 101's `Connection: upgrade` stays: the connection becomes
            // a tunnel, whose end closes it anyway.)
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use http::{Version, header};

    use super::KeepAlive;
    use crate::{
        handler::Response,
        pipeline::layers::{
            Layer,
            testing::{conn, exchange, head},
        },
    };

    #[test]
    fn the_last_http1_answer_says_close() {
        let c = conn(2);
        for expect_close in [false, true] {
            let mut ex = exchange(Version::HTTP_11);
            let served = KeepAlive.down(&head(Version::HTTP_11, &[]), &mut ex, &c);
            let mut resp = Response::default();
            KeepAlive.up(served, &mut resp, &ex, &c);
            assert_eq!(
                resp.headers().get(header::CONNECTION).is_some(),
                expect_close
            );
        }
    }

    #[test]
    fn an_http2_connection_at_its_cap_closes_gracefully() {
        let c = conn(1);
        let mut ex = exchange(Version::HTTP_2);
        let served = KeepAlive.down(&head(Version::HTTP_2, &[]), &mut ex, &c);
        let mut resp = Response::default();
        KeepAlive.up(served, &mut resp, &ex, &c);
        assert!(resp.headers().get(header::CONNECTION).is_none());
        assert!(c.closing.load(Ordering::Relaxed));
    }
}
