//! A response body that reaches its client as it arrives and is recorded
//! on the way, to be stored once it has arrived whole.
//!
//! The client is never held back for the cache: each frame is passed on
//! as it comes. The recording stops (and the fill gives up, releasing its
//! waiters) when the body grows past the zone's `max_entry_bytes`, fails,
//! carries trailers, or is dropped before its end (the client left).

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::{Bytes, BytesMut};
use http_body::{Body as _, Frame, SizeHint};

use super::{entry::Stored, fill::Writer, zone::CacheZone};
use crate::{kept::Named as _, pipeline::body::Body};

/// What becomes the entry once the body is whole.
pub(super) struct Pending {
    pub zone: Arc<CacheZone>,
    pub key: Arc<str>,
    pub writer: Writer,
    /// Builds the entry from the whole body.
    pub make: Box<dyn FnOnce(Bytes) -> Stored + Send>,
}

/// The body, recorded while `pending` is `Some`.
pub(super) struct Recorded {
    inner: Body,
    buf: BytesMut,
    limit: usize,
    pending: Option<Pending>,
}

impl Recorded {
    /// Wraps `inner`, to store it through `pending` once whole.
    pub fn new(inner: Body, pending: Pending) -> Self {
        let limit = pending.zone.params().max_entry_bytes as usize;
        let cap = inner.size_hint().exact().unwrap_or(0).min(limit as u64) as usize;
        Self {
            inner,
            buf: BytesMut::with_capacity(cap),
            limit,
            pending: Some(pending),
        }
    }

    fn finish(&mut self) {
        if let Some(p) = self.pending.take() {
            let entry = Arc::new((p.make)(std::mem::take(&mut self.buf).freeze()));
            p.zone.store(&p.key, entry.clone());
            p.writer.stored(entry);
        }
    }
}

impl http_body::Body for Recorded {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => match f.data_ref() {
                Some(data) if this.pending.is_some() => {
                    if this.buf.len() + data.len() > this.limit {
                        // Too large to keep: the waiters go upstream.
                        this.pending = None;
                        this.buf = BytesMut::new();
                    } else {
                        this.buf.extend_from_slice(data);
                    }
                }
                Some(_) => {}
                // Trailers are not stored: neither is the response.
                None => this.pending = None,
            },
            Some(Err(_)) => this.pending = None,
            None => this.finish(),
        }
        // A body that knows it has ended may never be polled to `None`.
        if frame.is_some() && this.inner.is_end_stream() {
            this.finish();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
