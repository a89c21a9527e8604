//! The response body type every handler returns.
//!
//! An enum rather than a boxed body, so the common cases (empty, one buffer)
//! cost no allocation; streams (large files, modules) are boxed.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;

use crate::sendfile::{FileRegions, Sendable};

/// A response body.
#[derive(Debug, Default)]
pub enum Body {
    /// No bytes.
    #[default]
    Empty,
    /// One buffer, sent whole (cheap to clone from a cache).
    Full(Bytes),
    /// A stream of chunks, e.g. a large file read 256 KiB at a time.
    Stream(UnsyncBoxBody<Bytes, io::Error>),
    /// A file, which a plain HTTP/1.1 connection sends with `sendfile`
    /// when no middleware replaced it ([`Body::use_sendfile`]).
    File(Box<dyn Sendable>),
}

impl Body {
    /// A body of one buffer.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            Self::Empty
        } else {
            Self::Full(bytes)
        }
    }

    /// A body streamed from any `http_body::Body`.
    pub fn stream<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes, Error = io::Error> + Send + 'static,
    {
        Self::Stream(UnsyncBoxBody::new(body))
    }

    /// A file body the connection may send with `sendfile`.
    pub fn file(body: impl Sendable) -> Self {
        Self::File(Box::new(body))
    }

    /// Called by a connection that can `sendfile` with the final response
    /// (after every middleware): a file body yields mapped chunks for it.
    pub fn use_sendfile(&mut self, regions: &Arc<FileRegions>) {
        if let Body::File(file) = self {
            file.use_sendfile(regions);
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        match this {
            Body::Empty => Poll::Ready(None),
            Body::Full(bytes) => {
                let bytes = std::mem::take(bytes);
                *this = Body::Empty;
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Body::Stream(s) => Pin::new(s).poll_frame(cx),
            Body::File(f) => Pin::new(&mut **f).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(b) => b.is_empty(),
            Body::Stream(s) => s.is_end_stream(),
            Body::File(f) => f.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(b) => SizeHint::with_exact(b.len() as u64),
            Body::Stream(s) => s.size_hint(),
            Body::File(f) => f.size_hint(),
        }
    }
}
