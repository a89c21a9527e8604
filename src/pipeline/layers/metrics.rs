//! Request metrics (P6.3) as a layer: the clock starts on the way down;
//! on the way up the answer is counted under its route (or under the
//! unrouted series, for 400, 404 and 405) by status class, and its latency
//! observed. The route's handles are made once, on its first request
//! (`pipeline/mod.rs`), and reach this layer through the [`Exchange`].

use std::{sync::Arc, time::Instant};

use http::request::Parts;

use super::{Connection, Exchange, Layer};
use crate::{
    handler::Response,
    observe::metrics::{HttpMetrics, RouteMetrics},
};

/// The layer.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// Where requests no route took are counted.
    unrouted: Arc<RouteMetrics>,
}

impl Metrics {
    /// The layer over the server's series.
    pub(crate) fn new(http: &HttpMetrics) -> Self {
        Self {
            unrouted: Arc::new(http.route("", "", None)),
        }
    }
}

impl<C: Connection> Layer<C> for Metrics {
    /// When the request started.
    type Trail = Instant;

    #[inline(always)]
    fn down(&self, _req: &Parts, _ex: &mut Exchange, _conn: &C) -> Instant {
        Instant::now()
    }

    #[inline(always)]
    fn up(&self, started: Instant, resp: &mut Response, ex: &Exchange, _conn: &C) {
        let route = ex.route.as_ref().unwrap_or(&self.unrouted);
        route.record(resp.status(), started.elapsed());
    }
}
