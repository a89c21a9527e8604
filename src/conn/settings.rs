//! [`ConnConfig`]: the connection-level settings a config compiles into
//! (hyper's builders, the timeouts, the keep-alive cap). Each config
//! generation has its own; a connection keeps the one it started with.

use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::TokioTimer;

use super::{caps::CapLimits, executor::Deferring, watchdog::Timeouts};
use crate::config::schema::Limits;

/// hyper's own default; setting it explicitly costs a heap buffer per request.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// Connection-level settings, fixed at start-up.
#[derive(Debug)]
pub struct ConnConfig {
    /// HTTP/1.x: plain connections that did not open with the HTTP/2
    /// preface, and TLS ones whose ALPN did not choose `h2`.
    pub(super) h1: http1::Builder,
    /// HTTP/2: plain connections that opened with the preface (h2c with
    /// prior knowledge), and TLS ones whose ALPN chose `h2`.
    pub(super) h2: http2::Builder<Deferring>,
    pub(super) timeouts: Timeouts,
    pub(super) keepalive_requests: u64,
    pub(super) handshake_timeout: Duration,
    /// The connection caps, read at each accept.
    pub caps: CapLimits,
}

/// The smallest read buffer hyper allows for a head.
pub(crate) const MIN_HEAD_BUF: usize = 8192;

impl ConnConfig {
    /// Builds the hyper settings from the configured limits.
    pub fn new(limits: &Limits) -> Self {
        let mut h1 = http1::Builder::new();
        // The header timeout is the watchdog's: hyper's own arms a timer per
        // request (and defaults to 30 s once a timer is set).
        h1.header_read_timeout(None)
            // Header blocks past this get 431 (414 when it was all request
            // line: `request_line.rs`); hyper needs at least 8 KiB.
            .max_buf_size(limits.max_header_bytes.max(MIN_HEAD_BUF))
            .keep_alive(true)
            // A client that closes its sending side once its request is
            // out (`printf … | nc -N`, some HTTP/1.0 tools) gets its answer,
            // as from nginx; hyper's default closes at the EOF, requests
            // read or not. A half-closed client that goes silent still
            // meets the watchdog's timeouts.
            .half_close(true);
        if limits.max_headers != HYPER_DEFAULT_MAX_HEADERS {
            h1.max_headers(limits.max_headers);
        }
        let mut h2 = http2::Builder::new(Deferring);
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(limits.h2_max_streams)
            .max_header_list_size(limits.max_header_bytes as u32)
            // WebSocket over HTTP/2 (RFC 8441): CONNECT with `:protocol`.
            .enable_connect_protocol();
        Self {
            h1,
            h2,
            timeouts: Timeouts {
                header: limits.header_timeout,
                idle: limits.keepalive_timeout,
            },
            keepalive_requests: limits.keepalive_requests,
            handshake_timeout: limits.handshake_timeout,
            caps: CapLimits {
                max: limits.max_connections,
                per_ip: limits.max_connections_per_ip,
                at_cap: limits.at_connection_cap,
            },
        }
    }
}
