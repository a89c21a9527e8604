//! Serving one accepted connection: HTTP/1.x and h2c on the same socket,
//! or HTTP/1.1 and HTTP/2 over TLS (`tls.rs`).
//!
//! hyper-util's auto builder sniffs the HTTP/2 preface, so one listener
//! speaks HTTP/1.0, HTTP/1.1 (keep-alive, pipelining) and h2c with prior
//! knowledge. Over TLS, ALPN has already chosen: `h2` is served by an
//! HTTP/2-only builder, anything else as HTTP/1. Around hyper this module
//! adds what hyper leaves to servers: the header and idle timeouts and the
//! drain (`watchdog.rs`), and the bookkeeping the pipeline's layers read
//! through [`Connection`] (requests served, for the keep-alive cap; what
//! the socket sniffed, for the smuggling refusal; the TLS session, for
//! 421 and HSTS). Header size and count limits are hyper's own (see
//! [`ConnConfig::new`]).
//!
//! A plain connection and a TLS one run the same generic code,
//! monomorphized: the plain one carries no TLS state, and every question
//! about TLS is a constant `None` for it.

mod activity;
mod executor;
pub(crate) mod settings;
mod tls;
mod watchdog;

use std::{
    error::Error as StdError, future::poll_fn, net::SocketAddr, pin::Pin, sync::Arc, task::Poll,
};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use troupe_actors::ConnShutdown;

use crate::{
    pipeline::{
        self, Pipeline,
        layers::{Connection, smuggling::Sniff},
    },
    tls::Session,
};
use activity::{Action, Activity, Sniffed, Tracked};
pub use settings::ConnConfig;
pub use tls::serve_tls;

/// What a connection knows of its transport: nothing for plain TCP, the
/// session for TLS.
trait Transport: Send + Sync + 'static {
    fn session(&self) -> Option<&Session>;
}

/// Plain TCP.
struct Plain;

impl Transport for Plain {
    #[inline(always)]
    fn session(&self) -> Option<&Session> {
        None
    }
}

impl Transport for Session {
    #[inline(always)]
    fn session(&self) -> Option<&Session> {
        Some(self)
    }
}

/// What every request on one connection shares: what the pipeline's
/// layers ask of their connection ([`Connection`]).
struct Ctx<T> {
    pipeline: Arc<Pipeline>,
    activity: Arc<Activity>,
    peer: SocketAddr,
    max_requests: u64,
    transport: T,
}

impl<T: Transport> Connection for Ctx<T> {
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

    #[inline(always)]
    fn tls(&self) -> Option<&Session> {
        self.transport.session()
    }
}

/// Serves one plain connection until it closes, the watchdog closes it
/// (header or idle timeout, a client that stopped reading), `shutdown.drain`
/// fires (in-flight requests finish first) or `shutdown.cut` does (at once).
pub async fn serve(
    pipeline: Arc<Pipeline>,
    cfg: Arc<ConnConfig>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: ConnShutdown,
) {
    let activity = Arc::new(Activity::default());
    let io = Tracked::<true>::new(stream, activity.clone(), pipeline.metrics().clone());
    run(pipeline, cfg, io, activity, peer, shutdown, Plain).await;
}

/// [`serve`] for any byte stream already wrapped to feed `activity`:
/// plain TCP, or TLS after its handshake.
async fn run<S, T>(
    pipeline: Arc<Pipeline>,
    cfg: Arc<ConnConfig>,
    io: S,
    activity: Arc<Activity>,
    peer: SocketAddr,
    shutdown: ConnShutdown,
    transport: T,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: Transport,
{
    // ALPN chose HTTP/2: batch its streams' answers from the first one.
    let h2 = transport.session().is_some_and(Session::is_h2);
    if h2 {
        activity.mark_http2();
    }
    tokio::spawn(watchdog::watch(activity.clone(), cfg.timeouts, shutdown));
    // Ends the watchdog however this function ends, a panic included.
    let _done = activity::Done(activity.clone());
    let metrics = pipeline.metrics().clone();
    metrics.connections.inc();
    metrics.connections_total.inc();
    let _open = Open(metrics.connections.clone());
    let io = TokioIo::new(io);
    // One shared context per connection: requests borrow it, and only a
    // request that has to wait clones it.
    let ctx = Arc::new(Ctx {
        pipeline,
        activity: activity.clone(),
        peer,
        max_requests: cfg.keepalive_requests,
        transport,
    });
    let service = service_fn(move |req| pipeline::serve(&ctx, req));
    if h2 {
        // The version is known: no preface sniffing, and no HTTP/1 upgrades
        // to offer.
        let conn = cfg.h2.serve_connection(io, service);
        tokio::pin!(conn);
        drive(conn, |c| c.graceful_shutdown(), &activity, peer).await;
    } else {
        let conn = cfg.builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        drive(conn, |c| c.graceful_shutdown(), &activity, peer).await;
    }
}

/// Drives hyper's connection, taking the watchdog's requests between polls.
async fn drive<C>(
    mut conn: Pin<&mut C>,
    graceful: impl Fn(Pin<&mut C>),
    activity: &Activity,
    peer: SocketAddr,
) where
    C: Future<Output = Result<(), Box<dyn StdError + Send + Sync>>>,
{
    let mut closing = false;
    let result = poll_fn(|cx| {
        match activity.poll_action(cx) {
            Action::None => {}
            Action::Graceful if !closing => {
                closing = true;
                graceful(conn.as_mut());
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
        // their answers go out in one write. (The first streams of an h2c
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
