//! Serving one accepted connection: HTTP/1.x and h2c on the same socket,
//! or HTTP/1.1 and HTTP/2 over TLS (`tls.rs`).
//!
//! A plain connection's first bytes tell the HTTP/2 preface from an HTTP/1
//! request (`preface.rs`), so one listener speaks HTTP/1.0, HTTP/1.1
//! (keep-alive, pipelining) and h2c with prior knowledge. Over TLS, ALPN
//! has already chosen: `h2` is served as HTTP/2, anything else as HTTP/1. Around hyper this module
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

/// `AsyncWrite` for a wrapper that only watches or changes reads: every
/// write goes to its `inner` stream as it is, unless a hook (the second
/// form) writes it instead.
macro_rules! writes_pass_through {
    ($wrapper:ident) => {
        $crate::conn::writes_pass_through!($wrapper, |_this, _cx, _bufs| None);
    };
    // `$hook` may write in the wrapper's stead: `Some(poll)` is the write's
    // outcome, `None` lets the bytes through as they are.
    ($wrapper:ident, |$this:ident, $cx:ident, $bufs:ident| $hook:expr) => {
        impl<S: AsyncWrite + Unpin> AsyncWrite for $wrapper<S> {
            fn poll_write(
                self: Pin<&mut Self>,
                $cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let $this = self.get_mut();
                let $bufs: &[io::IoSlice<'_>] = &[io::IoSlice::new(buf)];
                let hooked: Option<Poll<io::Result<usize>>> = $hook;
                hooked.unwrap_or_else(|| Pin::new(&mut $this.inner).poll_write($cx, buf))
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                $cx: &mut Context<'_>,
                $bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let $this = self.get_mut();
                let hooked: Option<Poll<io::Result<usize>>> = $hook;
                hooked.unwrap_or_else(|| Pin::new(&mut $this.inner).poll_write_vectored($cx, $bufs))
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.get_mut().inner).poll_flush(cx)
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
            }
        }
    };
}
// Also for wrappers elsewhere (the proxy's tunnel).
pub(crate) use writes_pass_through;

mod activity;
pub(crate) mod caps;
mod executor;
mod preface;
mod request_line;
pub(crate) mod settings;
mod tls;
mod upgraded;
mod watchdog;

use std::{future::poll_fn, net::SocketAddr, pin::Pin, sync::Arc, task::Poll};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use troupe_actors::ConnShutdown;

use crate::{
    pipeline::{
        self, Pipeline,
        layers::{Connection, smuggling::Sniff},
        tunnels::Tunnels,
    },
    sendfile::FileRegions,
    tls::Session,
};
use activity::{Action, Activity, Sniffed, Tracked};
pub use settings::ConnConfig;
pub use tls::serve_tls;
pub(crate) use {activity::Counts, preface::Prefixed, upgraded::raw_client};

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
    /// Fires at the drain deadline: closes this connection's tunnels.
    cut: CancellationToken,
}

impl<T> Ctx<T> {
    /// Where a request that takes the connection over runs it.
    fn tunnels(&self) -> Tunnels {
        let tracker = self.activity.tunnels.get_or_init(TaskTracker::new);
        Tunnels::new(tracker.clone(), self.cut.clone())
    }
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

    #[inline(always)]
    fn file_regions(&self) -> Option<&Arc<FileRegions>> {
        let regions = &self.activity.regions;
        (regions.enabled() && !self.activity.is_http2()).then_some(regions)
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
    // Only this wrapper, over a TcpStream, sends file regions itself.
    activity.regions.enable();
    let io = Tracked::<true>::new(stream, activity.clone(), pipeline.metrics().clone());
    run(pipeline, cfg, io, activity, peer, shutdown, Plain).await;
}

/// The address a Unix socket's clients have, for logs, `allow`/`deny`,
/// rate limits and `trusted_proxies`: loopback, since they are on this
/// host (nginx logs `unix:`; Node's proxy-addr and Caddy's
/// `trusted_proxies_unix` settle on the same: a local, trustable peer).
/// List `127.0.0.1` in `trusted_proxies` to believe the proxy in front.
pub const UNIX_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// Serves one connection on a Unix socket: plain HTTP, as [`serve`] does,
/// from [`UNIX_PEER`]. Bodies are written, not sent as file regions.
pub async fn serve_unix(
    pipeline: Arc<Pipeline>,
    cfg: Arc<ConnConfig>,
    stream: tokio::net::UnixStream,
    shutdown: ConnShutdown,
) {
    serve_io(pipeline, cfg, stream, UNIX_PEER, shutdown).await;
}

/// [`serve`] over any byte stream: a Unix socket, or an in-memory stream
/// in place of a socket where the fuzz targets drive it (`src/fuzzing.rs`).
pub(crate) async fn serve_io<S>(
    pipeline: Arc<Pipeline>,
    cfg: Arc<ConnConfig>,
    stream: S,
    peer: SocketAddr,
    shutdown: ConnShutdown,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let io = Tracked::<true, S>::new(stream, activity.clone(), pipeline.metrics().clone());
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
    let cut = shutdown.cut.clone();
    tokio::spawn(watchdog::watch(activity.clone(), cfg.timeouts, shutdown));
    // Ends the watchdog however this function ends, a panic included.
    let _done = activity::Done(activity.clone());
    let metrics = pipeline.metrics().clone();
    metrics.connections.inc();
    metrics.connections_total.inc();
    let _open = Open(metrics.connections.clone());
    let h2 = transport.session().map(Session::is_h2);
    // One shared context per connection: requests borrow it, and only a
    // request that has to wait clones it.
    let ctx = Arc::new(Ctx {
        pipeline,
        activity: activity.clone(),
        peer,
        max_requests: cfg.keepalive_requests,
        transport,
        cut,
    });
    let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        // Only requests hyper can upgrade (an HTTP/1.1 `Upgrade`, a
        // CONNECT) carry an `OnUpgrade`; the rest skip the insert.
        if req
            .extensions()
            .get::<hyper::upgrade::OnUpgrade>()
            .is_some()
        {
            req.extensions_mut().insert(ctx.tunnels());
        }
        pipeline::serve(&ctx, req)
    });
    match h2 {
        // ALPN chose.
        Some(h2) => serve_http(&cfg, io, h2, service, &activity, peer).await,
        // The first bytes choose; until they come the watchdog's header
        // timeout and the drain apply as they do to a request.
        None => {
            let mut io = io;
            let first = {
                let mut read = std::pin::pin!(preface::read_preface(&mut io));
                poll_fn(|cx| match activity.poll_action(cx) {
                    Action::None => read.as_mut().poll(cx).map(Some),
                    _ => Poll::Ready(None),
                })
                .await
            };
            match first {
                Some(Ok((h2, prefix))) => {
                    let io = preface::Prefixed::new(prefix, io);
                    serve_http(&cfg, io, h2, service, &activity, peer).await;
                }
                Some(Err(err)) => {
                    tracing::debug!(%peer, %err, "connection failed before a request")
                }
                None => tracing::debug!(%peer, "no request before the connection was closed"),
            }
        }
    }
    // An upgraded connection outlives hyper's: it is still open (and
    // drained) until its tunnel ends.
    if let Some(tunnels) = activity.tunnels.get() {
        tunnels.close();
        tunnels.wait().await;
    }
}

/// Serves the connection with hyper, as HTTP/2 or as HTTP/1.x (with
/// upgrades), until it ends.
async fn serve_http<I, S, B>(
    cfg: &ConnConfig,
    io: I,
    h2: bool,
    service: S,
    activity: &Activity,
    peer: SocketAddr,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B, Future: Send>
        + Send
        + 'static,
    B: hyper::body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static,
{
    let io = TokioIo::new(io);
    if h2 {
        // Batch its streams' answers from the first one (`drive`).
        activity.mark_http2();
        // Boxed: HTTP/2's connection state is the larger, and inline it
        // would size every HTTP/1 connection's future too.
        let mut conn = Box::pin(cfg.h2.serve_connection(io, service));
        drive(conn.as_mut(), |c| c.graceful_shutdown(), activity, peer).await;
    } else {
        let conn = cfg.h1.serve_connection(io, service).with_upgrades();
        tokio::pin!(conn);
        drive(conn, |c| c.graceful_shutdown(), activity, peer).await;
    }
}

/// Drives hyper's connection, taking the watchdog's requests between polls.
async fn drive<C>(
    mut conn: Pin<&mut C>,
    graceful: impl Fn(Pin<&mut C>),
    activity: &Activity,
    peer: SocketAddr,
) where
    C: Future<Output = Result<(), hyper::Error>>,
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
