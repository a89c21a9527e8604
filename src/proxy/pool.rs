//! One backend's pool of HTTP/1.1 keep-alive connections, over hyper's
//! `client::conn::http1` (hyper-util's legacy `Client` has no cap per
//! host, and one pool per authority where we want one per backend).
//!
//! Idle connections are a stack (the most recently used is reused first,
//! so a quiet period lets the oldest age out), each with the time it went
//! idle; one older than `idle_timeout`, or closed by the backend, is
//! dropped instead of reused. Connections are counted from their connect
//! to the end of their driver task, for `max_total`. The lock is held for
//! a push or a pop only.
//!
//! The seam for HTTP/2 and TLS upstreams is [`Sender`] (today an http1
//! `SendRequest`) and [`connect`] (today plain TCP): an h2 sender is
//! shared rather than checked out, which the pool would keep beside the
//! stack.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::UpstreamBody;

/// What sends one request on one upstream connection.
pub(crate) type Sender = http1::SendRequest<UpstreamBody>;

/// The pool's limits, from the generation in force (they may change on
/// a reload; the pool itself carries over).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolLimits {
    pub max_idle: usize,
    pub idle_timeout: Duration,
}

/// A backend's connections.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: Mutex<VecDeque<Idle>>,
    /// Open connections, busy or idle (decremented by each driver task).
    total: Arc<AtomicU32>,
}

#[derive(Debug)]
struct Idle {
    sender: Sender,
    since: Instant,
}

/// Why no connection could be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The TCP connect did not finish within `connect_timeout`.
    #[error("connect timed out")]
    Timeout,
    /// Refused, unreachable, or the handshake failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// hyper refused the connection (cannot happen for plain HTTP/1).
    #[error("{0}")]
    Handshake(#[from] hyper::Error),
}

impl Pool {
    /// Open connections.
    pub(crate) fn total(&self) -> u32 {
        self.total.load(Relaxed)
    }

    /// Whether an idle connection is waiting (maybe expired).
    pub(crate) fn has_idle(&self) -> bool {
        self.idle.lock().is_ok_and(|idle| !idle.is_empty())
    }

    /// The most recently used idle connection that is still open and
    /// young enough, if any.
    pub(crate) fn take(&self, limits: PoolLimits) -> Option<Sender> {
        let now = Instant::now();
        let mut idle = self.idle.lock().ok()?;
        while let Some(conn) = idle.pop_back() {
            if now.duration_since(conn.since) < limits.idle_timeout && !conn.sender.is_closed() {
                return Some(conn.sender);
            }
        }
        None
    }

    /// Keeps a connection whose exchange ended cleanly, unless it closed
    /// or the pool is full; ages out the oldest idle ones on the way.
    pub(crate) fn put(&self, sender: Sender, limits: PoolLimits) {
        if sender.is_closed() || limits.max_idle == 0 {
            return;
        }
        let now = Instant::now();
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        while idle
            .front()
            .is_some_and(|c| now.duration_since(c.since) >= limits.idle_timeout)
        {
            idle.pop_front();
        }
        if idle.len() >= limits.max_idle {
            idle.pop_front();
        }
        idle.push_back(Idle { sender, since: now });
    }

    /// Opens a new connection to `addr` and starts its driver task.
    pub(crate) async fn connect(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Sender, ConnectError> {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ConnectError::Timeout)??;
        // Requests are small writes that must leave at once.
        tcp.set_nodelay(true)?;
        let (sender, conn) = http1::Builder::new().handshake(TokioIo::new(tcp)).await?;
        let total = self.total.clone();
        total.fetch_add(1, Relaxed);
        // The driver owns the socket: it ends when the connection closes,
        // the backend's or ours (every sender dropped, or a request
        // abandoned half-way, which hyper answers by closing).
        tokio::spawn(async move {
            // With upgrades: after a 101 the socket goes to the tunnel
            // (`upgrade.rs`) and this task ends.
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(%error, %addr, "upstream connection ended");
            }
            total.fetch_sub(1, Relaxed);
        });
        Ok(sender)
    }
}
