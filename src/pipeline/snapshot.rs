//! The request-path snapshot: everything a request reads, immutable.
//!
//! The router actor publishes it through an `ArcSwap`; a request loads it
//! once and keeps that generation to the end, so a reload never changes the
//! rules under a request in flight.

use std::{sync::Arc, time::Duration};

use super::vhost::Servers;
use crate::client::ClientAddr;

/// Per-request limits that a config reload may change.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Largest body accepted (413 beyond).
    pub max_body_bytes: u64,
    /// Time allowed to receive the body (408 beyond).
    pub body_timeout: Duration,
}

/// One compiled config generation.
#[derive(Debug)]
pub struct Snapshot {
    /// Virtual hosts and their routes.
    pub servers: Servers,
    /// Body limits.
    pub limits: RequestLimits,
    /// Who the client of a request is (the access log's `$remote_addr`).
    pub client: Arc<ClientAddr>,
    /// Some server has its own access-log format, so the log keeps every
    /// request header (its `$http_…`).
    pub custom_logs: bool,
}
