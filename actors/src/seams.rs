//! The seam between the supervision tree and the HTTP core.
//!
//! The tree knows lifecycle, not HTTP: it drives the rest of Troupe through
//! [`App`] alone, so this crate never depends on hyper or on the config schema.

use std::{future::Future, net::SocketAddr, pin::Pin};

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// A boxed, sendable future, as returned across the seam.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a listener tells its connections to stop.
#[derive(Clone, Debug, Default)]
pub struct ConnShutdown {
    /// Finish the requests in flight, then close (graceful shutdown).
    pub drain: CancellationToken,
    /// Close now: the drain deadline has passed.
    pub cut: CancellationToken,
}

/// What the tree needs from the HTTP core.
pub trait App: Send + Sync + 'static {
    /// The checked configuration the config actor holds.
    type Config: Send + Sync + 'static;
    /// The immutable request-path state the router actor publishes.
    type Snapshot: Send + Sync + 'static;

    /// Serves one accepted connection until it closes.
    ///
    /// `shutdown.drain` fires when the listener shuts down: the connection
    /// should finish its in-flight requests and close; `shutdown.cut` fires
    /// at the drain deadline: close at once. The future runs as a task
    /// tracked by the listener, which also reports it if it panics.
    fn serve(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        shutdown: ConnShutdown,
    ) -> BoxFuture<'static, ()>;
}
