//! Serving one accepted connection: HTTP/1.x and h2c on the same socket.
//!
//! hyper-util's auto builder sniffs the HTTP/2 preface, so one listener
//! speaks HTTP/1.0, HTTP/1.1 (keep-alive, pipelining) and h2c with prior
//! knowledge. Around hyper this module adds what hyper leaves to servers:
//! the idle keep-alive timeout, the per-connection request cap, and the
//! graceful drain on shutdown. The header timeout and size limits are
//! hyper's own (see [`ConnConfig::new`]).

mod activity;

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use http::{HeaderValue, Version, header};
use hyper::service::service_fn;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::{config::schema::Limits, error::HttpError, pipeline::Pipeline};
use activity::{Activity, Tracked};

/// Connection-level settings, fixed at start-up.
#[derive(Debug)]
pub struct ConnConfig {
    builder: auto::Builder<TokioExecutor>,
    keepalive_timeout: Duration,
    keepalive_requests: u64,
}

impl ConnConfig {
    /// Builds the hyper settings from the configured limits.
    pub fn new(limits: &Limits) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            // hyper closes a connection whose header has not fully arrived
            // in time (slowloris). Its clock also runs while a keep-alive
            // connection waits for its next request, so an idle HTTP/1
            // connection lasts at most min(header, keep-alive) timeout.
            .header_read_timeout(limits.header_timeout)
            .max_headers(limits.max_headers)
            // Header blocks past this get 431; hyper needs at least 8 KiB.
            .max_buf_size(limits.max_header_bytes.max(8192))
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.h2_max_streams)
            .max_header_list_size(limits.max_header_bytes as u32);
        Self {
            builder,
            keepalive_timeout: limits.keepalive_timeout,
            keepalive_requests: limits.keepalive_requests,
        }
    }
}

/// Serves one connection until it closes, the client goes idle, or `drain`
/// fires (then in-flight requests finish and the connection closes).
pub async fn serve(
    pipeline: Arc<Pipeline>,
    cfg: Arc<ConnConfig>,
    stream: TcpStream,
    peer: SocketAddr,
    drain: CancellationToken,
) {
    let activity = Arc::new(Activity::default());
    let io = TokioIo::new(Tracked::new(stream, activity.clone()));
    let max_requests = cfg.keepalive_requests;
    let svc_activity = activity.clone();
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let pipeline = pipeline.clone();
        let activity = svc_activity.clone();
        async move {
            if req.headers().contains_key(header::TRANSFER_ENCODING)
                && activity.take_length_and_chunked()
            {
                let refused = HttpError::BadRequest("both Content-Length and Transfer-Encoding");
                return Ok::<_, Infallible>(refused.into_response());
            }
            let version = req.version();
            let (served, _in_flight) = activity.begin_request();
            let mut resp = pipeline.handle(req, peer).await;
            if served >= max_requests {
                if version == Version::HTTP_2 {
                    activity.request_close();
                } else {
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
            }
            Ok::<_, Infallible>(resp)
        }
    });
    let conn = cfg.builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);

    let tick = (cfg.keepalive_timeout / 4).max(Duration::from_millis(50));
    let mut idle = activity.idle_watch(cfg.keepalive_timeout);
    let mut closing = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(err) = res {
                    tracing::debug!(%peer, %err, "connection ended with an error");
                }
                return;
            }
            _ = drain.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = activity.close_requested(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = tokio::time::sleep(tick), if !closing => {
                if idle.expired() {
                    tracing::debug!(%peer, "idle keep-alive connection closed");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}
