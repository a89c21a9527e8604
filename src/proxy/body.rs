//! The bodies the proxy moves: the request body on its way to a backend
//! ([`UpstreamBody`]: none, kept whole so it can be sent again, or
//! streamed), and the backend's response body on its way to the client
//! ([`Relay`]: streamed frame by frame, trailers included, under the read
//! timeout, giving the connection back to the pool when it ends).

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

use super::{
    backend::InFlight,
    pool::{PoolLimits, Sender},
};
use crate::pipeline::request::BodyStream;

/// A request body sent to a backend.
#[derive(Debug)]
pub(crate) enum UpstreamBody {
    /// Nothing, or whole (a clone of what is kept for a retry).
    Full(Option<Bytes>),
    /// The client's body, streamed as it arrives (not retryable once sent).
    Stream(BodyStream),
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Stream(s) => Pin::new(s).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Stream(s) => s.size_hint(),
        }
    }
}

/// What a response body holds of its backend until it ends: the
/// connection (back to the pool on a clean end, dropped, and so closed,
/// otherwise) and the in-flight count.
#[derive(Debug)]
pub(crate) struct Lease {
    pub sender: Sender,
    pub limits: PoolLimits,
    pub inflight: InFlight,
}

impl Lease {
    /// The exchange ended cleanly: the connection may serve another.
    pub(crate) fn release(self) {
        let Lease {
            sender,
            limits,
            inflight,
        } = self;
        inflight.backend().pool.put(sender, limits);
    }
}

/// A backend's response body, relayed to the client.
#[derive(Debug)]
pub(crate) struct Relay {
    inner: Incoming,
    lease: Option<Lease>,
    read_timeout: Duration,
    /// When a frame last arrived.
    last: Instant,
    /// Armed on the first wait, moved forward lazily (no timer work per
    /// frame while data flows).
    timer: Option<Pin<Box<Sleep>>>,
}

impl Relay {
    pub(crate) fn new(inner: Incoming, lease: Lease, read_timeout: Duration) -> Self {
        Self {
            inner,
            lease: Some(lease),
            read_timeout,
            last: Instant::now(),
            timer: None,
        }
    }

    fn end(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release();
        }
    }

    /// Whether the read timeout has run out while waiting.
    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = (self.last + self.read_timeout).into();
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }
}

impl http_body::Body for Relay {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let frame = match polled {
            Poll::Pending => {
                if this.timed_out(cx) {
                    // Dropping the lease closes the connection.
                    this.lease = None;
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "upstream read timed out",
                    ))));
                }
                return Poll::Pending;
            }
            Poll::Ready(frame) => frame,
        };
        this.last = Instant::now();
        match frame {
            None => {
                this.end();
                Poll::Ready(None)
            }
            Some(Ok(frame)) => {
                if this.inner.is_end_stream() {
                    this.end();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                this.lease = None;
                Poll::Ready(Some(Err(io::Error::other(e))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
