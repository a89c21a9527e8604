//! The built-in layers: the concerns every request passes on its way down
//! to its route and back up, one file each, in this order:
//!
//! | layer              | on the way down                              | on the way up                         |
//! |--------------------|----------------------------------------------|---------------------------------------|
//! | `host.rs`          | refuse a missing (HTTP/1.1), repeated or invalid `Host` (400) | —                    |
//! | `smuggling.rs`     | refuse a head with a length and a chunked coding (400) | —                           |
//! | `transfer_coding.rs` | refuse any coding but one `chunked` (400)  | —                                     |
//! | `h2_fields.rs`     | refuse what RFC 9113 §8 calls malformed and h2 lets by (400) | —                    |
//! | `keep_alive.rs`    | count the request on its connection          | close after `keepalive_requests`      |
//! | `server_header.rs` | —                                            | `Server: troupe`                      |
//! | `access_log.rs`    | keep the request line (when the log is on)   | write the line                        |
//! | `metrics.rs`       | start the clock                              | count by route and status, latency    |
//!
//! Then the pipeline routes the request (`pipeline/mod.rs`); a server with
//! `loggers` wraps its route's chain in `log_hooks.rs`; the route's
//! middleware and handler answer; an error becomes its page
//! (`error.rs`); and the response goes back up through the layers above,
//! last first.
//!
//! The stack is a tuple of plain structs ([`Builtins`]), so the pass is
//! monomorphized: no boxing and no dynamic call per layer. What a layer
//! keeps between its two halves (its `Trail`) is stored inline in the
//! request's future.

mod access_log;
mod h2_fields;
pub(crate) mod host;
mod keep_alive;
pub(crate) mod log_hooks;
mod metrics;
mod server_header;
pub(crate) mod smuggling;
mod transfer_coding;

use std::{net::SocketAddr, sync::Arc};

use http::Version;
use http::request::Parts;

use crate::{
    error::HttpError,
    handler::Response,
    observe::{
        access_log::AccessLog,
        metrics::{HttpMetrics, RouteMetrics},
    },
};

/// What the layers ask of the connection a request came on (the conn
/// module implements it; the pipeline never sees a socket).
pub(crate) trait Connection: Send + Sync + 'static {
    /// The pipeline its requests go through.
    fn pipeline(&self) -> &crate::pipeline::Pipeline;
    /// The client.
    fn peer(&self) -> SocketAddr;
    /// A request has to wait for its answer (counted as in flight until
    /// [`Connection::done_waiting`]).
    fn waiting(&self);
    /// A waiting request is answered, or its client left; may run on any
    /// thread.
    fn done_waiting(&self);
    /// A request's answer is ready to go out.
    fn answered(&self);
    /// Counts a request in; returns how many this connection has served.
    fn dispatched(&self, http2: bool) -> u64;
    /// Requests one connection may serve.
    fn max_requests(&self) -> u64;
    /// Asks an HTTP/2 connection to finish its streams and close.
    fn close_gracefully(&self);
    /// What the socket saw of request smuggling.
    fn sniff(&self) -> &smuggling::Sniff;
    /// The TLS session, on a TLS connection. Plain connections answer a
    /// constant `None`, so what depends on it compiles away for them.
    #[inline(always)]
    fn tls(&self) -> Option<&crate::tls::Session> {
        None
    }
    /// Where a file body's mappings go when the connection sends them with
    /// `sendfile` (plain HTTP/1.1); `None` elsewhere.
    #[inline(always)]
    fn file_regions(&self) -> Option<&std::sync::Arc<crate::sendfile::FileRegions>> {
        None
    }
}

/// One request as the layers see it between their two halves.
#[derive(Debug)]
pub(crate) struct Exchange {
    /// The request's HTTP version.
    pub version: Version,
    /// hyper framed no body for it: no `Content-Length` above 0 and no
    /// `Transfer-Encoding` (which hyper reads as a body to come).
    pub no_body: bool,
    /// A layer refused the request on the way down: it is answered with
    /// this, without routing.
    pub refused: Option<HttpError>,
    /// The route's series, once routing chose one.
    pub route: Option<Arc<RouteMetrics>>,
    /// The server's own access log settings, if it has some.
    pub log: Option<Arc<crate::observe::log_format::ServerLog>>,
}

/// One built-in concern around every request.
pub(crate) trait Layer<C: Connection> {
    /// What it keeps from the way down to the way up.
    type Trail: Send + 'static;

    /// On the way down, before routing: looks at the request head, and
    /// may refuse it by setting `ex.refused`.
    fn down(&self, req: &Parts, ex: &mut Exchange, conn: &C) -> Self::Trail;

    /// On the way up: adjusts or records the response.
    fn up(&self, trail: Self::Trail, resp: &mut Response, ex: &Exchange, conn: &C);
}

/// Two layers: the first runs first on the way down and last on the way
/// up. A stack of any depth nests pairs: `(A, (B, C))`.
impl<C: Connection, A: Layer<C>, B: Layer<C>> Layer<C> for (A, B) {
    type Trail = (A::Trail, B::Trail);

    #[inline(always)]
    fn down(&self, req: &Parts, ex: &mut Exchange, conn: &C) -> Self::Trail {
        let outer = self.0.down(req, ex, conn);
        (outer, self.1.down(req, ex, conn))
    }

    #[inline(always)]
    fn up(&self, (outer, inner): Self::Trail, resp: &mut Response, ex: &Exchange, conn: &C) {
        self.1.up(inner, resp, ex, conn);
        self.0.up(outer, resp, ex, conn);
    }
}

/// Every request's layers, outermost first (the table above).
pub(crate) type Builtins = (
    host::HostCheck,
    (
        smuggling::Smuggling,
        (
            transfer_coding::TransferCoding,
            (
                h2_fields::H2Fields,
                (
                    keep_alive::KeepAlive,
                    (
                        server_header::ServerHeader,
                        (access_log::Logging, metrics::Metrics),
                    ),
                ),
            ),
        ),
    ),
);

/// The built-in stack, over the server's access log and series.
pub(crate) fn builtins(access: Option<AccessLog>, metrics: &HttpMetrics) -> Builtins {
    (
        host::HostCheck,
        (
            smuggling::Smuggling,
            (
                transfer_coding::TransferCoding,
                (
                    h2_fields::H2Fields,
                    (
                        keep_alive::KeepAlive,
                        (
                            server_header::ServerHeader,
                            (access_log::Logging(access), metrics::Metrics::new(metrics)),
                        ),
                    ),
                ),
            ),
        ),
    )
}

/// A connection for the layers' own tests: a real pipeline over a
/// one-route config, recording what the layers asked of it.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    };

    use arc_swap::ArcSwap;
    use http::{Version, request::Parts};

    use super::{Connection, Exchange, smuggling::Sniff};
    use crate::{generation::Generation, observe::metrics::HttpMetrics, pipeline::Pipeline};

    pub(crate) struct TestConn {
        pipeline: Pipeline,
        served: AtomicU64,
        max: u64,
        pub(crate) closing: AtomicBool,
        pub(crate) sniff: Sniff,
    }

    /// A connection that may serve `max` requests.
    pub(crate) fn conn(max: u64) -> TestConn {
        let config = r#"Config(listen: ["127.0.0.1:0"], servers: [(routes: [(path: "/", handler: Return(body: "x"))])])"#;
        let loaded = crate::config::load_str(config, std::path::Path::new("t.ron"))
            .expect("the test config");
        let generation = Arc::new(ArcSwap::from_pointee(Generation::new(loaded)));
        let metrics = HttpMetrics::new(&prometheus::Registry::new()).expect("series");
        TestConn {
            pipeline: Pipeline::new(generation, None, metrics, Arc::default()),
            served: AtomicU64::new(0),
            max,
            closing: AtomicBool::new(false),
            sniff: Sniff::default(),
        }
    }

    /// A request head of `version` with `headers`.
    pub(crate) fn head(version: Version, headers: &[(&str, &str)]) -> Parts {
        head_for("/", version, headers)
    }

    /// A request head for `uri`, of `version`, with `headers`.
    pub(crate) fn head_for(uri: &str, version: Version, headers: &[(&str, &str)]) -> Parts {
        let mut req = http::Request::get(uri).version(version);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(()).expect("a valid request").into_parts().0
    }

    /// The status `layer` refuses `head` with, if it refuses it.
    pub(crate) fn refused<L: super::Layer<TestConn>>(layer: &L, head: &Parts) -> Option<u16> {
        let mut ex = exchange(head.version);
        let _ = layer.down(head, &mut ex, &conn(100));
        ex.refused.map(|e| e.status().as_u16())
    }

    /// A fresh exchange for a request of `version`.
    pub(crate) fn exchange(version: Version) -> Exchange {
        Exchange {
            log: None,
            version,
            no_body: false,
            refused: None,
            route: None,
        }
    }

    impl Connection for TestConn {
        fn pipeline(&self) -> &Pipeline {
            &self.pipeline
        }
        fn peer(&self) -> std::net::SocketAddr {
            ([127, 0, 0, 1], 9).into()
        }
        fn waiting(&self) {}
        fn done_waiting(&self) {}
        fn answered(&self) {
            self.sniff.answered();
        }
        fn dispatched(&self, _http2: bool) -> u64 {
            self.served.fetch_add(1, Ordering::Relaxed) + 1
        }
        fn max_requests(&self) -> u64 {
            self.max
        }
        fn close_gracefully(&self) {
            self.closing.store(true, Ordering::Relaxed);
        }
        fn sniff(&self) -> &Sniff {
            &self.sniff
        }
    }
}
