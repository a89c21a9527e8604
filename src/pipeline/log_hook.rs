//! What a server's `loggers` see: a [`LogLine`] per finished request,
//! handed to each [`LogHook`] after the answer. The pipeline defines the
//! hook; modules implement it (`modules/route.rs`).

use std::{net::SocketAddr, sync::Arc, time::Duration};

/// A finished request, as log hooks see it.
#[derive(Debug)]
pub struct LogLine {
    /// The method.
    pub method: http::Method,
    /// The decoded path.
    pub path: String,
    /// The raw query.
    pub query: String,
    /// The client.
    pub peer: SocketAddr,
    /// The status.
    pub status: u16,
    /// Body bytes, when known up front.
    pub bytes: u64,
    /// Time to the response head.
    pub duration: Duration,
}

/// Something that sees every finished request of a server.
pub trait LogHook: Send + Sync + std::fmt::Debug + 'static {
    /// Takes one line; it never fails the request.
    fn log(&self, line: &LogLine);
}

/// A server's log hooks, in order.
pub type LogHooks = Arc<[Arc<dyn LogHook>]>;
