//! Serving one accepted connection: HTTP/1.x and h2c on the same socket.
//!
//! hyper-util's auto builder sniffs the HTTP/2 preface, so one listener
//! speaks HTTP/1.0, HTTP/1.1 (keep-alive, pipelining) and h2c with prior
//! knowledge. Around hyper this module adds what hyper leaves to servers:
//! the header and idle timeouts and the drain (`watchdog.rs`), and the
//! bookkeeping the pipeline's layers read through [`Connection`] (requests
//! served, for the keep-alive cap; what the socket sniffed, for the
//! smuggling refusal). Header size and count limits are hyper's own (see
//! [`ConnConfig::new`]).

mod activity;
mod executor;
pub(crate) mod settings;
mod watchdog;

use std::{future::poll_fn, net::SocketAddr, sync::Arc, task::Poll};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use troupe_actors::ConnShutdown;

use crate::pipeline::{
    self, Pipeline,
    layers::{Connection, smuggling::Sniff},
};
use activity::{Action, Activity, Tracked};
pub use settings::ConnConfig;

/// What every request on one connection shares: what the pipeline's
/// layers ask of their connection ([`Connection`]).
struct Ctx {
    pipeline: Arc<Pipeline>,
    activity: Arc<Activity>,
    peer: SocketAddr,
    max_requests: u64,
}

impl Connection for Ctx {
    fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn waiting(&self) {
        self.activity.begin_waiting();
    }

    fn done_waiting(&self) {
        self.activity.end_waiting();
    }

    fn answered(&self) {
        self.activity.answered();
    }

    fn dispatched(&self, http2: bool) -> u64 {
        self.activity.dispatched(http2)
    }

    fn max_requests(&self) -> u64 {
        self.max_requests
    }

    fn close_gracefully(&self) {
        self.activity.signal(Action::Graceful);
    }

    fn sniff(&self) -> &Sniff {
        &self.activity.sniff
    }
}

/// Serves one connection until it closes, the watchdog closes it (header
/// or idle timeout, a client that stopped reading), `shutdown.drain` fires
/// (in-flight requests finish first) or `shutdown.cut` does (at once).
pub async fn serve(
    pipeline: Arc<Pipeline>,
    cfg: Arc<ConnConfig>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: ConnShutdown,
) {
    let activity = Arc::new(Activity::default());
    tokio::spawn(watchdog::watch(activity.clone(), cfg.timeouts, shutdown));
    // Ends the watchdog however this function ends, a panic included.
    let _done = activity::Done(activity.clone());
    let metrics = pipeline.metrics().clone();
    metrics.connections.inc();
    metrics.connections_total.inc();
    let _open = Open(metrics.connections.clone());
    let io = TokioIo::new(Tracked::new(stream, activity.clone(), metrics));
    // One shared context per connection: requests borrow it, and only a
    // request that has to wait clones it.
    let ctx = Arc::new(Ctx {
        pipeline,
        activity: activity.clone(),
        peer,
        max_requests: cfg.keepalive_requests,
    });
    let service = service_fn(move |req| pipeline::serve(&ctx, req));
    let conn = cfg.builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    // Drive the connection, taking the watchdog's requests between polls.
    let mut closing = false;
    let result = poll_fn(|cx| {
        match activity.poll_action(cx) {
            Action::None => {}
            Action::Graceful if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            Action::Graceful => {}
            Action::Abort => {
                tracing::debug!(%peer, "request header timed out; connection closed");
                return Poll::Ready(Ok(()));
            }
        }
        if !activity.is_http2() {
            return conn.as_mut().poll(cx);
        }
        // HTTP/2 streams accepted during this poll are queued, not spawned
        // (executor.rs): answer them right after, and poll hyper again so
        // their answers go out in one write. (The first streams of a
        // connection, before it is known to be HTTP/2, are spawned.)
        loop {
            let driving = executor::Driving::enter();
            let polled = conn.as_mut().poll(cx);
            drop(driving);
            let answered = executor::run_deferred();
            if polled.is_ready() || !answered {
                return polled;
            }
        }
    })
    .await;
    if let Err(err) = result {
        tracing::debug!(%peer, %err, "connection ended with an error");
    }
}

/// Counts the connection out of the open gauge however `serve` ends.
struct Open(prometheus::IntGauge);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}
