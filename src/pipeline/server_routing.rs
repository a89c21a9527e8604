//! What a server adds to routing beyond its route table: its rewrites,
//! its error pages for what no route answers, and whether its requests
//! carry an [`super::internal::Internal`] to be routed again. A server
//! without any of these has the default, and its requests pay nothing.

use std::sync::Arc;

use http::{Uri, request::Parts};

use super::rewrite::Rewrites;
use crate::{
    error::HttpError,
    handler::{HandlerFuture, HandlerResult},
};

/// Error pages as the pipeline sees them (`middleware/error_pages.rs`
/// implements it): given the request head and an answer, the answer or
/// its page.
pub trait Recover: Send + Sync + std::fmt::Debug {
    /// `result`, or the page that replaces it, for the request `head`
    /// from `peer` (over TLS or not).
    fn recover(
        &self,
        head: Parts,
        peer: std::net::SocketAddr,
        tls: bool,
        result: HandlerResult,
    ) -> HandlerFuture;
}

/// A server's routing beyond its routes.
#[derive(Debug, Default)]
pub struct ServerRouting {
    /// Its requests carry an `Internal` (rewrites, error pages or a
    /// route that re-routes need it).
    pub reroutes: bool,
    /// Applied before the route table, first match wins.
    pub rewrites: Rewrites,
    /// Pages for what the route table refuses (404, 405) and rate limits
    /// refuse (429); routes carry their own in their chain.
    pub error_pages: Option<Arc<dyn Recover>>,
    /// Its access-log format and what it leaves out; `None`: the global
    /// format, every request.
    pub log: Option<Arc<crate::observe::log_format::ServerLog>>,
}

impl ServerRouting {
    /// The server's rewrite of `path`, if a rule matches.
    pub(crate) fn rewrite(
        &self,
        path: &str,
        query: Option<&str>,
    ) -> Option<Result<(Uri, String), HttpError>> {
        if self.rewrites.is_empty() {
            return None;
        }
        self.rewrites.apply(path, query)
    }
}
