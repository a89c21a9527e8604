//! A plain TCP client connection taken back out of hyper after an upgrade,
//! for a tunnel that moves its bytes on the socket itself (the proxy's
//! pump, `proxy/pump.rs`) instead of through hyper's `Upgraded` and our
//! wrappers.

use bytes::{Bytes, BytesMut};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{activity::Counts, activity::Tracked, preface::Prefixed};

/// The socket of an upgraded plain TCP connection.
pub(crate) struct RawClient {
    pub stream: TcpStream,
    /// Bytes the client sent that were read before the upgrade (by hyper,
    /// past the request, or by the preface check): the tunnel sends them
    /// first.
    pub ahead: Bytes,
    /// The connection's byte counts: a tunnel adds what it moves, and they
    /// reach the metrics when dropped, as the wrapper's would have.
    pub counts: Counts<true>,
}

/// The upgraded connection's socket when it is a plain TCP connection
/// (`serve`); anything else (TLS, a Unix socket, an HTTP/2 stream) comes
/// back unchanged.
pub(crate) fn raw_client(upgraded: Upgraded) -> Result<RawClient, Upgraded> {
    let parts = upgraded.downcast::<TokioIo<Prefixed<Tracked<true, TcpStream>>>>()?;
    let (prefix, tracked) = parts.io.into_inner().into_parts();
    let (stream, counts) = tracked.into_parts();
    // hyper read `read_buf` from the prefix and then the socket, so
    // whatever is left of the prefix comes after it.
    let ahead = match (parts.read_buf.is_empty(), prefix.is_empty()) {
        (_, true) => parts.read_buf,
        (true, false) => prefix,
        (false, false) => {
            let mut both = BytesMut::from(&parts.read_buf[..]);
            both.extend_from_slice(&prefix);
            both.freeze()
        }
    };
    Ok(RawClient {
        stream,
        ahead,
        counts,
    })
}
