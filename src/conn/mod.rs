//! Serving one accepted connection: HTTP/1.x and h2c on the same socket.
//!
//! hyper-util's auto builder sniffs the HTTP/2 preface, so one listener
//! speaks HTTP/1.0, HTTP/1.1 (keep-alive, pipelining) and h2c with prior
//! knowledge. Around hyper this module adds what hyper leaves to servers:
//! the header and idle timeouts and the drain (`watchdog.rs`), the cap on
//! requests per connection, and the smuggling sniff (`activity.rs`). Header
//! size and count limits are hyper's own (see [`ConnConfig::new`]).

mod activity;
mod executor;
pub(crate) mod settings;
mod watchdog;

use std::{
    convert::Infallible,
    future::{Future, poll_fn},
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::{HeaderValue, Version, header};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use troupe_actors::ConnShutdown;

use crate::{
    error::HttpError,
    handler::{HandlerFuture, HandlerResult, Response},
    pipeline::{Logged, Pipeline, Tally},
};
use activity::{Action, Activity, Tracked};
pub use settings::ConnConfig;

/// What every request on one connection shares.
struct Ctx {
    pipeline: Arc<Pipeline>,
    activity: Arc<Activity>,
    peer: SocketAddr,
    max_requests: u64,
}

/// Answers one request on a connection: routes it and runs its chain
/// synchronously, so a chain that answers at once (fixed responses, cache
/// hits, refusals) leaves hyper nothing to store but the response. Only a
/// chain that awaits keeps a (boxed) future.
fn respond(ctx: &Arc<Ctx>, req: hyper::Request<hyper::body::Incoming>) -> Respond {
    let activity = &ctx.activity;
    // Request smuggling: a length and a chunked encoding together mean two
    // parsers can disagree on where the body ends (RFC 9112 §6.3). hyper
    // hides the length in that case, so the raw bytes were sniffed
    // (activity.rs).
    if activity.take_length_and_chunked() && req.headers().contains_key(header::TRANSFER_ENCODING) {
        let refused = HttpError::BadRequest("both Content-Length and Transfer-Encoding");
        return Respond::Ready(Some(refused.into_response()));
    }
    let version = req.version();
    let served = activity.dispatched(version == Version::HTTP_2);
    let pipeline = &ctx.pipeline;
    let logged = pipeline.begin(&req, ctx.peer);
    let (mut chain, tally) = pipeline.dispatch(req, ctx.peer);
    match chain.take_ready() {
        Some(result) => Respond::Ready(Some(finish(ctx, result, logged, tally, served, version))),
        None => {
            activity.begin_waiting();
            Respond::Pending {
                chain,
                finish: Some(Finish {
                    ctx: ctx.clone(),
                    logged,
                    tally: Some(tally),
                    served,
                    version,
                }),
            }
        }
    }
}

/// The last steps of every request: error pages, `Server`, the access log,
/// and the per-connection request cap.
fn finish(
    ctx: &Ctx,
    result: HandlerResult,
    logged: Option<Logged>,
    tally: Tally,
    served: u64,
    version: Version,
) -> Response {
    let mut resp = ctx.pipeline.finish(result, logged, tally);
    ctx.activity.answered();
    if served >= ctx.max_requests {
        if version == Version::HTTP_2 {
            ctx.activity.signal(Action::Graceful);
        } else {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    resp
}

/// The future hyper stores per request.
enum Respond {
    /// The chain answered at once.
    Ready(Option<Response>),
    /// The chain is still working.
    Pending {
        chain: HandlerFuture,
        finish: Option<Finish>,
    },
}

/// What finishing a pending request needs; counts the request out when
/// dropped, so a client that leaves mid-request is not left in flight.
struct Finish {
    ctx: Arc<Ctx>,
    logged: Option<Logged>,
    tally: Option<Tally>,
    served: u64,
    version: Version,
}

impl Drop for Finish {
    fn drop(&mut self) {
        self.ctx.activity.end_waiting();
    }
}

impl Future for Respond {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Respond::Ready(resp) => {
                Poll::Ready(Ok(resp.take().expect("Respond polled after completion")))
            }
            Respond::Pending {
                chain,
                finish: pending,
            } => {
                let result = ready!(Pin::new(chain).poll(cx));
                let mut done = pending.take().expect("Respond polled after completion");
                let tally = done.tally.take().expect("tally taken once");
                let resp = finish(
                    &done.ctx,
                    result,
                    done.logged.take(),
                    tally,
                    done.served,
                    done.version,
                );
                Poll::Ready(Ok(resp))
            }
        }
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
    let service = service_fn(move |req| respond(&ctx, req));
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
