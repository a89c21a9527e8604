//! An upgraded connection through the proxy: the client's and the
//! backend's sockets joined byte for byte, with no framing (a WebSocket's
//! frames pass as they are, extensions included), until either side
//! closes, the tunnel idles past its timeout, or the drain deadline
//! passes (`pipeline::tunnels` drops it then).
//!
//! Two plain TCP sockets are handed to a pump thread (`pump.rs`); other
//! tunnels are copied by their task here. Either way the idle timeout is
//! checked on a coarse tick against a count of the bytes read on either
//! side, as the connection watchdog does, so that moving bytes costs no
//! timer work.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_util::either::Either;

use super::{backend::InFlight, pump};
use crate::conn::Prefixed;

/// Joins the two sides once both upgrades are done (the client's once our
/// answer went out). `inflight` keeps the tunnel counted on its backend
/// (least-connections and peak-EWMA see it) until it ends.
///
/// Two plain TCP sockets go to a pump (`pump.rs`); anything else (TLS on
/// either side, an HTTP/2 stream) is copied here.
pub(super) async fn run(client: OnUpgrade, backend: OnUpgrade, idle: Duration, inflight: InFlight) {
    let addr = inflight.backend().addr;
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(both) => both,
        Err(error) => {
            tracing::debug!(backend = %addr, %error, "upgrade not completed");
            return;
        }
    };
    let client = crate::conn::raw_client(client);
    let backend = backend.downcast::<TokioIo<TcpStream>>();
    let (client, backend) = match (client, backend) {
        (Ok(client), Ok(backend)) => {
            let sockets = client
                .stream
                .into_std()
                .and_then(|c| Ok((c, backend.io.into_inner().into_std()?)));
            match sockets {
                Ok((c, b)) => {
                    pump::join(pump::Joined {
                        client: c,
                        backend: b,
                        to_backend: client.ahead,
                        to_client: backend.read_buf,
                        idle,
                        inflight,
                        counts: client.counts,
                    })
                    .await
                }
                Err(error) => tracing::debug!(backend = %addr, %error, "tunnel not started"),
            }
            return;
        }
        both => both,
    };
    // A plain client's counts (the wrapper that kept them is gone) take
    // the tunnel's bytes, as the wrapper would have.
    let (client, mut counts) = match client {
        Ok(c) => (Ok(Prefixed::new(c.ahead, c.stream)), Some(c.counts)),
        Err(upgraded) => (Err(upgraded), None),
    };
    let backend = backend.map(|b| Prefixed::new(b.read_buf, b.io.into_inner()));
    let moved = copy(side(client), side(backend), idle, addr).await;
    if let (Some((up, down)), Some(counts)) = (moved, &mut counts) {
        counts.add(up, down);
    }
}

/// A side of a copied tunnel: a socket taken out of hyper (and the bytes
/// read ahead of it), or hyper's upgraded connection.
type Side = Either<Prefixed<TcpStream>, TokioIo<Upgraded>>;

fn side(taken: Result<Prefixed<TcpStream>, Upgraded>) -> Side {
    taken.map_or_else(
        |upgraded| Either::Right(TokioIo::new(upgraded)),
        Either::Left,
    )
}

/// Copies both ways until either side closes or the tunnel idles.
/// Returns the bytes moved each way when both sides closed.
async fn copy(
    client: Side,
    backend: Side,
    idle: Duration,
    addr: std::net::SocketAddr,
) -> Option<(u64, u64)> {
    let moved = Arc::new(AtomicU64::new(0));
    let mut client = Counted {
        inner: client,
        moved: moved.clone(),
    };
    let mut backend = Counted {
        inner: backend,
        moved: moved.clone(),
    };
    let copy = tokio::io::copy_bidirectional(&mut client, &mut backend);
    tokio::pin!(copy);
    let mut watch = IdleWatch::new(idle);
    loop {
        tokio::select! {
            done = &mut copy => {
                return match done {
                    Ok((up, down)) => {
                        tracing::debug!(backend = %addr, up, down, "tunnel closed");
                        Some((up, down))
                    }
                    Err(error) => {
                        tracing::debug!(backend = %addr, %error, "tunnel ended");
                        None
                    }
                };
            }
            _ = tokio::time::sleep(watch.tick()) => {
                if watch.expired(moved.load(Relaxed), Instant::now()) {
                    tracing::debug!(backend = %addr, ?idle, "tunnel idle; closed");
                    return None;
                }
            }
        }
    }
}

/// A tunnel's idle timeout, decided on a tick of a quarter of it (at
/// least 10 ms) from the count of bytes read on either side: it expires
/// once the count has not moved for the whole timeout.
pub(super) struct IdleWatch {
    pub timeout: Duration,
    seen: u64,
    quiet_since: Instant,
}

impl IdleWatch {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            seen: 0,
            quiet_since: Instant::now(),
        }
    }

    /// How often [`IdleWatch::expired`] must be asked.
    pub fn tick(&self) -> Duration {
        (self.timeout / 4).max(Duration::from_millis(10))
    }

    /// Whether no byte was read (`read` is the count so far) for the
    /// whole timeout, as of `now`.
    pub fn expired(&mut self, read: u64, now: Instant) -> bool {
        if read != self.seen {
            self.seen = read;
            self.quiet_since = now;
            return false;
        }
        now - self.quiet_since >= self.timeout
    }
}

/// A side of the tunnel that counts the bytes read from it.
struct Counted<S> {
    inner: S,
    moved: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut me.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            me.moved.fetch_add(n as u64, Relaxed);
        }
        polled
    }
}

crate::conn::writes_pass_through!(Counted);
