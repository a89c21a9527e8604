//! A response body run through an encoder as it streams.
//!
//! async-compression's tokio `bufread` encoders flush whenever their input
//! has nothing ready, so a slow stream (server-sent events, a trickling
//! upstream) goes out chunk by chunk instead of waiting for a full
//! buffer; a body that is all there (a cached file) is encoded in large
//! chunks.

use async_compression::{
    Level,
    tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder},
};
use futures_util::TryStreamExt;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::io::AsyncRead;
use tokio_util::io::{ReaderStream, StreamReader};

use super::{Levels, negotiate::Encoding};
use crate::pipeline::body::Body;

/// Output chunks are at most this big: large enough that a big body costs
/// few frames, small enough that the encoder works in pieces (edge.md
/// §4.4: at most 64 KiB per step on the request task).
const CHUNK: usize = 32 * 1024;

/// `body`, encoded with `encoding` at its level in `levels`.
pub(super) fn encode(body: Body, encoding: Encoding, levels: &Levels) -> Body {
    let input = StreamReader::new(body.into_data_stream());
    match encoding {
        Encoding::Gzip => framed(GzipEncoder::with_quality(
            input,
            Level::Precise(levels.gzip as i32),
        )),
        Encoding::Brotli => framed(BrotliEncoder::with_quality(
            input,
            Level::Precise(levels.brotli as i32),
        )),
        Encoding::Zstd => framed(ZstdEncoder::with_quality(
            input,
            Level::Precise(levels.zstd as i32),
        )),
    }
}

fn framed<R: AsyncRead + Send + 'static>(encoder: R) -> Body {
    let chunks = ReaderStream::with_capacity(encoder, CHUNK);
    Body::stream(StreamBody::new(chunks.map_ok(Frame::data)))
}
