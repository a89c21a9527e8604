//! How a group reaches its backends: plain TCP or TLS, HTTP/1.1 or
//! HTTP/2 ([`Transport`], compiled once per group at config load by
//! `config/upstream_tls.rs`), and opening one connection that way
//! ([`open`]).
//!
//! ```text
//! TCP connect ─ tls? ─ no ──────────────────────────┐
//!                      yes: handshake (SNI = server_name, else the
//!                           backend's host name, if any;
//!                           verified against ca or the system's roots;
//!                           ALPN by protocol) ──────┤
//!   h2 = Http2, or Auto and ALPN chose h2 ──────────┴─ hyper http1 | http2
//! ```
//!
//! The TCP connect and the TLS handshake share `connect_timeout`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::{ClientConfig, pki_types::ServerName};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_rustls::TlsConnector;

use super::{backend::Backend, body::UpstreamBody, pool::ConnectError};

/// The HTTP version spoken to a group's backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only (prior knowledge on TCP, ALPN `h2` over TLS).
    Http2,
    /// Over TLS: whatever ALPN settles, `h2` preferred.
    Auto,
}

/// How one group connects to its backends.
#[derive(Debug, Clone)]
pub struct Transport {
    /// TLS, when on.
    pub tls: Option<TlsTo>,
    /// The HTTP version.
    pub protocol: Protocol,
    /// HTTP/2 streams in flight per connection before another is opened.
    pub max_streams: u32,
    /// Tells transports apart (a hash of their config): a reload that
    /// changes it leaves the pooled connections of the old one unused.
    pub id: u64,
}

impl Default for Transport {
    fn default() -> Self {
        Self {
            tls: None,
            protocol: Protocol::Http1,
            max_streams: 100,
            id: 0,
        }
    }
}

/// TLS settings of a group, built at config load.
#[derive(Debug, Clone)]
pub struct TlsTo {
    /// The rustls config (roots, client certificate, ALPN).
    pub config: Arc<ClientConfig>,
    /// SNI and the name verified; `None`: the backend's host name when
    /// it has one, else its IP address.
    pub server_name: Option<ServerName<'static>>,
}

/// A freshly opened connection's sender, by the protocol it speaks.
pub(crate) enum Opened {
    H1(http1::SendRequest<UpstreamBody>),
    H2(http2::SendRequest<UpstreamBody>),
}

/// Opens a connection to `backend` the way `t` says, starts its driver
/// task (which calls `ended` when the connection is gone) and hands back
/// its sender.
pub(crate) async fn open(
    backend: &Backend,
    t: &Transport,
    timeout: Duration,
    ended: impl FnOnce() + Send + 'static,
) -> Result<Opened, ConnectError> {
    let addr = backend.addr;
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| ConnectError::Timeout)??;
    // Requests are small writes that must leave at once.
    tcp.set_nodelay(true)?;
    let Some(tls) = &t.tls else {
        return handshake(tcp, t.protocol == Protocol::Http2, addr, ended).await;
    };
    // The name the config resolved is the one the certificate carries
    // (checked to be a DNS name at config load).
    let name = tls
        .server_name
        .clone()
        .or_else(|| (backend.host.as_deref()).and_then(|h| ServerName::try_from(h.to_owned()).ok()))
        .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
    let connector = TlsConnector::from(tls.config.clone());
    let stream = tokio::time::timeout(timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| ConnectError::Timeout)?
        .map_err(ConnectError::Tls)?;
    let h2 = match t.protocol {
        Protocol::Http1 => false,
        Protocol::Http2 => true,
        Protocol::Auto => stream.get_ref().1.alpn_protocol() == Some(b"h2"),
    };
    handshake(stream, h2, addr, ended).await
}

async fn handshake<I>(
    io: I,
    h2: bool,
    addr: SocketAddr,
    ended: impl FnOnce() + Send + 'static,
) -> Result<Opened, ConnectError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    // The driver owns the socket: it ends when the connection closes,
    // the backend's or ours (every sender dropped, or an http1 request
    // abandoned half-way, which hyper answers by closing).
    if h2 {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            // A backend gone silent is found out between requests too.
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .handshake(io)
            .await?;
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%error, %addr, "upstream HTTP/2 connection ended");
            }
            ended();
        });
        Ok(Opened::H2(sender))
    } else {
        let (sender, conn) = http1::Builder::new().handshake(io).await?;
        tokio::spawn(async move {
            // With upgrades: after a 101 the socket goes to the tunnel
            // (`upgrade.rs`) and this task ends.
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(%error, %addr, "upstream connection ended");
            }
            ended();
        });
        Ok(Opened::H1(sender))
    }
}
