//! The access log (P6.1) as a layer: the request line is kept on the way
//! down (only when the log is on, so a server without one carries a null
//! pointer), and the line is written on the way up, when the response head
//! is ready. Formatting and writing are `observe/access_log.rs`'s.

use std::time::Instant;

use http::request::Parts;

use super::{Connection, Exchange, Layer};
use crate::{
    handler::Response,
    observe::access_log::{AccessLog, Entry},
};

/// The layer, over the access log if there is one.
#[derive(Debug)]
pub(crate) struct Logging(pub Option<AccessLog>);

impl<C: Connection> Layer<C> for Logging {
    /// The request's fields and start time, boxed so that requests with
    /// the log off carry one null pointer.
    type Trail = Option<Box<(Entry, Instant)>>;

    #[inline(always)]
    fn down(&self, req: &Parts, _ex: &mut Exchange, conn: &C) -> Self::Trail {
        self.0.as_ref().map(|_| {
            // nginx's realip: behind a trusted proxy, the client it
            // forwarded for is `$remote_addr`.
            let (client, all) = conn.pipeline().log_client(conn.peer().ip(), &req.headers);
            let mut entry = Entry::capture(req, client);
            if all {
                entry = entry.with_headers(req, conn.tls().is_some());
            }
            Box::new((entry, Instant::now()))
        })
    }

    #[inline(always)]
    fn up(&self, trail: Self::Trail, resp: &mut Response, ex: &Exchange, _conn: &C) {
        if let (Some(log), Some(entry)) = (&self.0, trail) {
            log.write(&entry.0, resp, entry.1.elapsed(), ex.log.as_deref());
        }
    }
}
