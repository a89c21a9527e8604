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
//! HTTP/2 connections (`transport.rs` opens them) are kept beside the
//! stack, in a list of their own: an h2 sender is shared, not checked
//! out. A request takes a stream on the first open connection with fewer
//! than `max_streams` in flight (a count per connection, given back when
//! its [`H2Stream`] drops, at the end of the response body); when all are
//! full one more is opened, one opener at a time so that a burst does not
//! open a connection per request. A closed one is dropped from the list.
//! The HTTP/1.1 path never touches the list.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use http::{HeaderValue, Uri, Version, header, uri::PathAndQuery};
use hyper::{
    body::Incoming,
    client::conn::{http1, http2},
};

use super::{
    backend::Backend,
    body::UpstreamBody,
    transport::{self, Opened, Protocol, Transport},
};

/// What sends one request on one upstream connection: an HTTP/1.1
/// connection checked out of the pool, or a stream of a shared HTTP/2 one.
#[derive(Debug)]
pub(crate) enum Sender {
    H1(http1::SendRequest<UpstreamBody>),
    H2(H2Stream),
}

/// A failed send: the error, and the request when it never left.
pub(crate) type SendError = (hyper::Error, Option<http::Request<UpstreamBody>>);

impl Sender {
    /// Whether this is a stream of an HTTP/2 connection still open.
    pub(crate) fn is_open_h2(&self) -> bool {
        matches!(self, Sender::H2(s) if !s.conn.sender.is_closed())
    }

    /// Waits until the connection can take a request.
    pub(crate) async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Sender::H1(s) => s.ready().await,
            Sender::H2(s) => s.sender.ready().await,
        }
    }

    /// Sends `req`; on failure, gives it back if it never left. An
    /// HTTP/2 request names its host in `:authority` (from `Host`), and
    /// one given back has its `Host` again, ready for any connection.
    pub(crate) async fn try_send_request(
        &mut self,
        mut req: http::Request<UpstreamBody>,
    ) -> Result<http::Response<Incoming>, SendError> {
        match self {
            Sender::H1(s) => s.try_send_request(req).await.map_err(|mut e| {
                let back = e.take_message();
                (e.into_error(), back)
            }),
            Sender::H2(s) => {
                to_h2(&mut req, s.conn.tls);
                s.sender.try_send_request(req).await.map_err(|mut e| {
                    let back = e.take_message().map(from_h2);
                    (e.into_error(), back)
                })
            }
        }
    }
}

/// One stream's claim on a shared HTTP/2 connection.
#[derive(Debug)]
pub(crate) struct H2Stream {
    sender: http2::SendRequest<UpstreamBody>,
    conn: Arc<H2Conn>,
}

impl Drop for H2Stream {
    fn drop(&mut self) {
        self.conn.streams.fetch_sub(1, Relaxed);
    }
}

/// A shared HTTP/2 connection.
#[derive(Debug)]
struct H2Conn {
    sender: http2::SendRequest<UpstreamBody>,
    /// Streams in flight (claimed and not yet dropped).
    streams: AtomicU32,
    /// Its cap, `max_streams` when it was opened.
    cap: u32,
    /// `Transport::id` of the transport that opened it.
    transport: u64,
    /// Over TLS (the `:scheme`).
    tls: bool,
}

impl H2Conn {
    /// A stream on it, if it is open and has room.
    fn claim(self: &Arc<Self>) -> Option<Sender> {
        self.streams
            .fetch_update(Relaxed, Relaxed, |n| (n < self.cap).then_some(n + 1))
            .ok()?;
        Some(Sender::H2(H2Stream {
            sender: self.sender.clone(),
            conn: self.clone(),
        }))
    }
}

/// `Host` → `:authority` (the absolute URI hyper's h2 client sends).
pub(crate) fn to_h2(req: &mut http::Request<UpstreamBody>, tls: bool) {
    let host = req.headers_mut().remove(header::HOST);
    let pq = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut uri = Uri::builder()
        .scheme(if tls { "https" } else { "http" })
        .path_and_query(pq);
    if let Some(h) = host.as_ref().and_then(|h| h.to_str().ok()) {
        uri = uri.authority(h);
    }
    match uri.build() {
        Ok(u) => *req.uri_mut() = u,
        // A Host that is no authority: sent as a header after all.
        Err(_) => {
            if let Some(h) = host {
                req.headers_mut().insert(header::HOST, h);
            }
        }
    }
    *req.version_mut() = Version::HTTP_2;
}

/// The reverse of [`to_h2`], for a request given back unsent.
fn from_h2(mut req: http::Request<UpstreamBody>) -> http::Request<UpstreamBody> {
    if let Some(a) = req.uri().authority()
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        req.headers_mut().insert(header::HOST, v);
    }
    let pq = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *req.uri_mut() = Uri::from(pq);
    *req.version_mut() = Version::HTTP_11;
    req
}

/// The pool's limits, from the generation in force (they may change on
/// a reload; the pool itself carries over).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolLimits {
    pub max_idle: usize,
    pub idle_timeout: Duration,
    /// `Transport::id` of the group's transport: pooled connections of
    /// another (a reload changed TLS or the protocol) are not reused.
    pub transport: u64,
}

/// A backend's connections.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: Mutex<VecDeque<Idle>>,
    /// Open connections, busy or idle (decremented by each driver task).
    total: Arc<AtomicU32>,
    /// Shared HTTP/2 connections (HTTP/2 and `Auto` groups only).
    h2: Mutex<Vec<Arc<H2Conn>>>,
    /// Held by the one request opening an HTTP/2 connection.
    opening: tokio::sync::Mutex<()>,
    /// Whether this backend's last connection spoke HTTP/2 (`Auto`; set
    /// by every HTTP/2 connection, so false for an HTTP/1.1 group).
    speaks_h2: AtomicBool,
}

#[derive(Debug)]
struct Idle {
    sender: http1::SendRequest<UpstreamBody>,
    since: Instant,
    transport: u64,
}

/// Why no connection could be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The TCP connect did not finish within `connect_timeout`.
    #[error("connect timed out")]
    Timeout,
    /// Refused or unreachable.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The TLS handshake failed (the certificate did not verify, ...).
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    /// hyper refused the connection (HTTP/2's preface failed).
    #[error("{0}")]
    Handshake(#[from] hyper::Error),
}

impl Pool {
    /// Open connections.
    pub(crate) fn total(&self) -> u32 {
        self.total.load(Relaxed)
    }

    /// Whether an idle connection (or an HTTP/2 one with room) is
    /// waiting (maybe expired).
    pub(crate) fn has_idle(&self) -> bool {
        self.idle.lock().is_ok_and(|idle| !idle.is_empty())
            // Never set for an HTTP/1.1 group, which so takes no other lock.
            || self.speaks_h2.load(Relaxed) && self.h2.lock().is_ok_and(|h2| {
                h2.iter()
                    .any(|c| !c.sender.is_closed() && c.streams.load(Relaxed) < c.cap)
            })
    }

    /// The most recently used idle connection that is still open and
    /// young enough, if any.
    pub(crate) fn take(&self, limits: PoolLimits) -> Option<Sender> {
        let now = Instant::now();
        let mut idle = self.idle.lock().ok()?;
        while let Some(conn) = idle.pop_back() {
            if now.duration_since(conn.since) < limits.idle_timeout
                && conn.transport == limits.transport
                && !conn.sender.is_closed()
            {
                return Some(Sender::H1(conn.sender));
            }
        }
        None
    }

    /// Keeps a connection whose exchange ended cleanly, unless it closed
    /// or the pool is full; ages out the oldest idle ones on the way.
    /// An HTTP/2 stream is given back by dropping it.
    pub(crate) fn put(&self, sender: Sender, limits: PoolLimits) {
        let Sender::H1(sender) = sender else {
            return;
        };
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
        idle.push_back(Idle {
            sender,
            since: now,
            transport: limits.transport,
        });
    }

    /// Drops the idle connections older than `idle_timeout` or closed by
    /// the backend, which closes their sockets: `take` and `put` age them
    /// only when requests come, so a quiet backend's would stay open.
    /// Returns how many were dropped.
    pub(crate) fn reap(&self, idle_timeout: Duration) -> usize {
        let now = Instant::now();
        let Ok(mut idle) = self.idle.lock() else {
            return 0;
        };
        let before = idle.len();
        idle.retain(|c| now.duration_since(c.since) < idle_timeout && !c.sender.is_closed());
        before - idle.len()
    }

    /// A stream on a shared HTTP/2 connection of transport `t` with room,
    /// if any; drops the closed ones on the way.
    pub(crate) fn take_h2(&self, t: &Transport) -> Option<Sender> {
        if t.protocol == Protocol::Auto && !self.speaks_h2.load(Relaxed) {
            return None;
        }
        let mut h2 = self.h2.lock().ok()?;
        h2.retain(|c| !c.sender.is_closed());
        h2.iter()
            .filter(|c| c.transport == t.id)
            .find_map(|c| c.claim())
    }

    /// Whether a new connection would likely be HTTP/2, so that openers
    /// should take turns (and then share what the first one opened).
    pub(crate) fn opens_h2(&self, t: &Transport) -> bool {
        match t.protocol {
            Protocol::Http1 => false,
            Protocol::Http2 => true,
            Protocol::Auto => self.speaks_h2.load(Relaxed),
        }
    }

    /// Taken by the one request opening an HTTP/2 connection.
    pub(crate) async fn opening(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.opening.lock().await
    }

    /// Opens a new connection to `backend` over `t` and starts its driver
    /// task; an HTTP/2 one joins the shared list, and the sender is a
    /// stream on it.
    pub(crate) async fn connect(
        &self,
        backend: &Backend,
        t: &Transport,
        timeout: Duration,
    ) -> Result<Sender, ConnectError> {
        let total = self.total.clone();
        let ended = move || {
            total.fetch_sub(1, Relaxed);
        };
        // Counted before the driver can end (and decrement).
        self.total.fetch_add(1, Relaxed);
        let opened = match transport::open(backend, t, timeout, ended).await {
            Ok(o) => o,
            Err(e) => {
                // No driver was started.
                self.total.fetch_sub(1, Relaxed);
                return Err(e);
            }
        };
        match opened {
            Opened::H1(sender) => {
                if t.protocol == Protocol::Auto {
                    self.speaks_h2.store(false, Relaxed);
                }
                Ok(Sender::H1(sender))
            }
            Opened::H2(sender) => {
                self.speaks_h2.store(true, Relaxed);
                let conn = Arc::new(H2Conn {
                    sender,
                    // This request's stream.
                    streams: AtomicU32::new(0),
                    cap: t.max_streams.max(1),
                    transport: t.id,
                    tls: t.tls.is_some(),
                });
                let stream = conn.claim().ok_or(ConnectError::Timeout)?;
                if let Ok(mut h2) = self.h2.lock() {
                    h2.push(conn);
                }
                Ok(stream)
            }
        }
    }
}
