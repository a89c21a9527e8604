//! Listen sockets as the tree sees them: an address that is either TCP or
//! a Unix domain socket path ([`ListenAddr`]), the socket bound to it
//! ([`ListenSocket`]), and what accepting on it gives ([`Accepted`]).
//!
//! The tree only accepts and hands over; binding (mode bits, stale socket
//! files) is the HTTP core's, and so is serving either kind of stream.

use std::{
    fmt, io,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// Where a listener listens, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListenAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix domain socket's path (nginx's `listen unix:PATH`).
    Unix(PathBuf),
}

impl ListenAddr {
    /// The TCP address, if this is one.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(addr) => Some(*addr),
            Self::Unix(_) => None,
        }
    }

    /// Removes a Unix socket's file, once nothing listens on it, so that
    /// the path is free for the next start. Nothing for TCP.
    pub fn unlink(&self) {
        if let Self::Unix(path) = self
            && let Err(e) = std::fs::remove_file(path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the socket file");
        }
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(addr: SocketAddr) -> Self {
        Self::Tcp(addr)
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => addr.fmt(f),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A bound listen socket, not yet accepting.
#[derive(Debug)]
pub enum ListenSocket {
    /// A TCP socket.
    Tcp(std::net::TcpListener),
    /// A Unix domain socket.
    Unix(std::os::unix::net::UnixListener),
}

impl From<std::net::TcpListener> for ListenSocket {
    fn from(socket: std::net::TcpListener) -> Self {
        Self::Tcp(socket)
    }
}

impl From<std::os::unix::net::UnixListener> for ListenSocket {
    fn from(socket: std::os::unix::net::UnixListener) -> Self {
        Self::Unix(socket)
    }
}

impl ListenSocket {
    /// The address actually bound (a TCP port 0 resolved).
    pub fn local(&self) -> io::Result<ListenAddr> {
        match self {
            Self::Tcp(s) => s.local_addr().map(ListenAddr::Tcp),
            Self::Unix(s) => {
                let addr = s.local_addr()?;
                let path = addr.as_pathname().map(Path::to_path_buf).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "an unnamed Unix socket")
                })?;
                Ok(ListenAddr::Unix(path))
            }
        }
    }

    /// Accepts on a duplicate of the socket, so that a restarted listener
    /// keeps the same socket and its backlog.
    pub(crate) fn acceptor(&self) -> io::Result<Acceptor> {
        Ok(match self {
            Self::Tcp(s) => {
                let dup = s.try_clone()?;
                dup.set_nonblocking(true)?;
                Acceptor::Tcp(TcpListener::from_std(dup)?)
            }
            Self::Unix(s) => {
                let dup = s.try_clone()?;
                dup.set_nonblocking(true)?;
                Acceptor::Unix(UnixListener::from_std(dup)?)
            }
        })
    }
}

/// An accepted connection.
#[derive(Debug)]
pub enum Accepted {
    /// A TCP connection and its peer's address.
    Tcp(TcpStream, SocketAddr),
    /// A Unix socket connection: its peer has no network address.
    Unix(UnixStream),
}

impl Accepted {
    /// The peer's address: none on a Unix socket.
    pub fn peer(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(_, peer) => Some(*peer),
            Self::Unix(_) => None,
        }
    }
}

/// A listener's accepting side.
pub(crate) enum Acceptor {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Acceptor {
    pub(crate) async fn accept(&self) -> io::Result<Accepted> {
        match self {
            Self::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                // Answers are written whole; Nagle would only hold back
                // the tail of each one.
                let _ = stream.set_nodelay(true);
                Ok(Accepted::Tcp(stream, peer))
            }
            Self::Unix(l) => Ok(Accepted::Unix(l.accept().await?.0)),
        }
    }
}
