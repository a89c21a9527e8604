//! Reading a request body whole, in memory proportional to the bytes
//! received, however they are cut into frames.
//!
//! hyper hands out each body frame as a slice of the connection's read
//! buffer (8 KiB at first); while a frame lives, the buffer cannot be
//! reused and the next read allocates a fresh one. `BodyExt::collect`
//! keeps every frame to the end, so a client that trickles a body a byte
//! at a time made the server hold 8 KiB per byte it sent: with the
//! default 60 s `body_timeout` and a byte a second, about 480 KiB per
//! connection (measured 8 KiB per byte per connection by
//! tests/it/slow_clients.rs before this). Copying each frame into one
//! growing buffer lets hyper reuse its own, so a trickled body costs
//! what it sent. A body that comes in one frame (the common case: a small
//! body arriving with its head) is kept as it is, uncopied.

use std::pin::pin;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;

/// The body's data, whole; trailers are dropped (as `collect().to_bytes()`
/// drops them).
pub(crate) async fn collect<B>(body: B) -> Result<Bytes, B::Error>
where
    B: Body<Data = Bytes>,
{
    let mut body = pin!(body);
    // Grown as bytes come, not reserved for the declared length: that is
    // the client's to choose, and a slow client would have the server
    // hold it all.
    let mut joined = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        // The whole body in one frame: kept as it is. (Kept until a second
        // frame came, a trickled body's first byte would hold its buffer.)
        if joined.is_empty() && body.is_end_stream() {
            return Ok(data);
        }
        joined.extend_from_slice(&data);
    }
    Ok(joined.freeze())
}
