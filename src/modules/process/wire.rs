//! The frames between the server and a module's child process.
//!
//! Each frame is one postcard-encoded message inside tokio-util's
//! length-delimited codec. Calls carry an id, so many requests are in
//! flight on one socket and replies may come back in any order. Requests
//! are encoded from borrowed data and decoded borrowing the frame, so a
//! request's bytes are copied once, into the socket.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::{net::unix::OwnedWriteHalf, sync::mpsc};
use tokio_util::codec::{FramedWrite, LengthDelimitedCodec};

use crate::modules::{Hooks, hostapi::KvRefused};

/// The largest frame either side accepts (a body is at most
/// `max_body_bytes`, well below this).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// The largest request or response body a frame may carry (the rest of a
/// frame is small; a head is at most a few hundred KiB).
pub const MAX_BODY: usize = MAX_FRAME - 1024 * 1024;

/// The codec both sides use.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// Which hook a [`ToChild::Call`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Hook {
    /// `handle`.
    Handle,
    /// `request_filter`.
    RequestFilter,
}

/// A request, borrowed from the server's `Request` or from a frame.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireRequest<'a> {
    pub method: &'a str,
    /// The decoded path.
    pub path: &'a str,
    /// The raw query.
    pub query: &'a str,
    /// Header fields.
    #[serde(borrow)]
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// Route parameters.
    pub params: Vec<(&'a str, &'a str)>,
    /// The body.
    #[serde(with = "serde_bytes")]
    pub body: &'a [u8],
    /// The client's `ip:port`.
    pub peer: &'a str,
}

/// A response, or a response head for a filter.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct WireResponse {
    pub status: u16,
    /// Header fields.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// From a request filter: answer now.
    pub respond: bool,
    /// From a request filter that goes on: the upstream group it chose
    /// (`set_upstream`).
    pub upstream: Option<String>,
    /// From a request filter that goes on: the rate-limit key it chose
    /// (`set_rate_key`).
    #[serde(with = "serde_bytes")]
    pub rate_key: Option<Vec<u8>>,
}

/// Why a call failed.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireError {
    /// What happened.
    pub why: String,
    /// Whether the module should be restarted (a crash-like failure) or
    /// only this request refused (an invalid response, a missing hook).
    pub restart: bool,
}

/// A finished request, for the log hook.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireLog<'a> {
    pub method: &'a str,
    /// The decoded path.
    pub path: &'a str,
    /// The raw query.
    pub query: &'a str,
    /// The client's `ip:port`.
    pub peer: &'a str,
    pub status: u16,
    /// Body bytes.
    pub bytes: u64,
    /// Microseconds to the response head.
    pub duration_us: u64,
}

/// Server → child.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild<'a> {
    /// First frame: run `init`.
    Init {
        /// The module's name.
        module: &'a str,
        /// Its config text.
        config: &'a str,
    },
    /// Run a hook on a request.
    Call {
        /// Matches the reply.
        id: u64,
        /// Which hook.
        hook: Hook,
        /// The request.
        #[serde(borrow)]
        req: WireRequest<'a>,
    },
    /// Run `response_filter` on a head.
    ResponseFilter {
        /// Matches the reply.
        id: u64,
        /// The handler's status.
        status: u16,
        /// The handler's header fields.
        headers: Vec<(&'a str, &'a [u8])>,
    },
    /// Run `log` (no reply).
    Log(#[serde(borrow)] WireLog<'a>),
    /// The answer to a [`ToServer::KvGet`].
    KvValue {
        /// The id of the question.
        id: u64,
        /// The value, if the key exists.
        value: Option<&'a [u8]>,
    },
    /// The answer to a [`ToServer::KvSet`]: stored, or why not.
    KvStored {
        /// The id of the write.
        id: u64,
        /// Refused past the module's quota.
        result: Result<(), KvRefused>,
    },
    /// No more calls will come: finish those queued, run `shutdown`, exit.
    /// (Not socket EOF: store reads still need answers while draining.)
    Close,
}

/// Child → server.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToServer<'a> {
    /// `init` succeeded; the module offers these hooks.
    Ready(Hooks),
    /// `init` (or loading) failed.
    InitFailed(String),
    /// The result of a call.
    Reply {
        /// The call's id.
        id: u64,
        /// The response, or why the hook failed.
        result: Result<WireResponse, WireError>,
    },
    /// Host API: read the shared store (answered with `KvValue`).
    KvGet {
        /// Matches the answer.
        id: u64,
        key: &'a str,
    },
    /// Host API: write the shared store (answered with `KvStored`: the
    /// module learns whether its quota let it in).
    KvSet {
        /// Matches the answer.
        id: u64,
        key: &'a str,
        /// The value.
        #[serde(with = "serde_bytes")]
        value: &'a [u8],
    },
    /// Host API: delete from the shared store.
    KvDelete(&'a str),
    /// Host API: add to a counter.
    Metric {
        /// The counter.
        name: &'a str,
        /// How much.
        by: u64,
    },
    /// Host API: log a line.
    Log {
        /// `TROUPE_LOG_*`.
        level: u32,
        /// The message.
        msg: &'a str,
    },
}

/// Encodes a frame into a buffer of about the right size up front: growing
/// a `Vec` from empty costs several reallocations per request.
pub fn encode<T: Serialize>(msg: &T) -> Bytes {
    encode_sized(msg, 256)
}

/// [`encode`] with a size hint (for frames carrying a body).
pub fn encode_sized<T: Serialize>(msg: &T, hint: usize) -> Bytes {
    let buf = Vec::with_capacity(hint);
    Bytes::from(postcard::to_extend(msg, buf).expect("frames always encode"))
}

/// Sends queued frames, flushing once per batch: under load many requests
/// share one write. Ends when every sender is gone, or on a write error.
pub async fn write_frames(mut rx: mpsc::UnboundedReceiver<Bytes>, half: OwnedWriteHalf) {
    let mut sink = FramedWrite::new(half, codec());
    while let Some(frame) = rx.recv().await {
        if sink.feed(frame).await.is_err() {
            return;
        }
        // Woken by the first frame, this task would run at once (tokio's
        // LIFO slot) and write one frame per syscall. Yielding once lets
        // the other ready tasks queue theirs, so one write carries many.
        tokio::task::yield_now().await;
        while let Ok(frame) = rx.try_recv() {
            if sink.feed(frame).await.is_err() {
                return;
            }
        }
        if SinkExt::<Bytes>::flush(&mut sink).await.is_err() {
            return;
        }
    }
}

/// Reads frames until EOF; a decode error ends the stream too (the peer is
/// broken, and the caller treats it like a crash).
pub type FrameStream =
    tokio_util::codec::FramedRead<tokio::net::unix::OwnedReadHalf, LengthDelimitedCodec>;

/// The next frame's bytes, or `None` at EOF or on an error.
pub async fn next_frame(frames: &mut FrameStream) -> Option<bytes::BytesMut> {
    frames.next().await.and_then(Result::ok)
}
