//! [`Respond`]: the future hyper stores per request, and the way back up.
//!
//! A chain that answered at once is finished right away and hyper stores
//! only the response. A chain that awaits is kept with what the layers left
//! on the way down ([`Rest`]), and finished when it answers: the error
//! page, the layers' way up, and the connection told.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use super::layers::{Builtins, Connection, Exchange, Layer};
use crate::{
    error::Side,
    handler::{HandlerFuture, HandlerResult, Response},
};

/// What the layers left on the way down.
type Trail<C> = <Builtins as Layer<C>>::Trail;

/// The future hyper stores per request.
pub(crate) enum Respond<C: Connection> {
    /// The chain answered at once.
    Ready(Option<Response>),
    /// The chain is still working.
    Pending {
        chain: HandlerFuture,
        rest: Option<Rest<C>>,
    },
}

/// What finishing a waiting request needs. Dropping it counts the request
/// out, so a client that leaves mid-request is not left in flight.
pub(crate) struct Rest<C: Connection> {
    conn: Arc<C>,
    trail: Option<Trail<C>>,
    ex: Exchange,
}

impl<C: Connection> Drop for Rest<C> {
    fn drop(&mut self) {
        self.conn.done_waiting();
    }
}

impl<C: Connection> Respond<C> {
    /// Finishes now if the chain answered, else keeps it for hyper to poll.
    #[inline(always)]
    pub(super) fn new(
        conn: &Arc<C>,
        mut chain: HandlerFuture,
        trail: Trail<C>,
        ex: Exchange,
    ) -> Self {
        match chain.take_ready() {
            Some(result) => Respond::Ready(Some(finish(&**conn, result, trail, &ex))),
            None => {
                conn.waiting();
                Respond::Pending {
                    chain,
                    rest: Some(Rest {
                        conn: conn.clone(),
                        trail: Some(trail),
                        ex,
                    }),
                }
            }
        }
    }
}

/// The way back up: an error becomes its page, then each layer's `up`.
#[inline(always)]
fn finish<C: Connection>(
    conn: &C,
    result: HandlerResult,
    trail: Trail<C>,
    ex: &Exchange,
) -> Response {
    let mut resp = result.unwrap_or_else(|err| {
        match err.side() {
            Side::Server => tracing::warn!(%err, "request failed"),
            Side::Client => tracing::debug!(%err, "request refused"),
        }
        err.into_response()
    });
    conn.pipeline().layers.up(trail, &mut resp, ex, conn);
    // Last, so no middleware or layer ever reads a mapped body.
    if let Some(regions) = conn.file_regions() {
        resp.body_mut().use_sendfile(regions);
    }
    conn.answered();
    resp
}

impl<C: Connection> Future for Respond<C> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Respond::Ready(resp) => {
                Poll::Ready(Ok(resp.take().expect("Respond polled after completion")))
            }
            Respond::Pending { chain, rest } => {
                let result = ready!(Pin::new(chain).poll(cx));
                let mut rest = rest.take().expect("Respond polled after completion");
                let trail = rest.trail.take().expect("the trail is taken once");
                Poll::Ready(Ok(finish(&*rest.conn, result, trail, &rest.ex)))
            }
        }
    }
}
