//! Listen sockets, bound before anything serves on them: at start-up for
//! every configured address, and by a config reload for added ones.
//! TCP addresses get `SO_REUSEADDR` and a deep backlog; a Unix socket's
//! path is cleared of a stale socket file (never of a live socket or any
//! other file) and its mode set once it is bound.

use std::{
    io,
    net::SocketAddr,
    os::unix::{fs::FileTypeExt, fs::PermissionsExt, net::UnixListener},
    path::Path,
};

use socket2::{Domain, Protocol, Socket, Type};
use troupe_actors::{ListenAddr, ListenSocket};

use crate::config::schema::Listen;

/// The backlog of every listen socket (nginx's default is 511; a burst
/// of new clients waits here while the server is at its connection cap).
const BACKLOG: i32 = 1024;

/// Binds every TCP address with `SO_REUSEADDR` and a deep backlog.
pub fn bind(addrs: &[SocketAddr]) -> io::Result<Vec<std::net::TcpListener>> {
    addrs.iter().map(|addr| bind_tcp(*addr)).collect()
}

/// Binds every configured address, TCP or Unix, in order.
pub fn bind_all(listen: &[Listen]) -> io::Result<Vec<ListenSocket>> {
    let mut bound = Vec::with_capacity(listen.len());
    for l in listen {
        match bind_one(l) {
            Ok(socket) => bound.push(socket),
            Err(e) => {
                // Socket files made so far would outlive a failed start.
                for (l, _) in listen.iter().zip(bound) {
                    l.addr.unlink();
                }
                return Err(e);
            }
        }
    }
    Ok(bound)
}

fn bind_one(listen: &Listen) -> io::Result<ListenSocket> {
    match &listen.addr {
        ListenAddr::Tcp(addr) => bind_tcp(*addr).map(ListenSocket::Tcp),
        ListenAddr::Unix(path) => bind_unix(path, listen.mode).map(ListenSocket::Unix),
    }
}

fn bind_tcp(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Sets a Unix socket file's permission bits (`mode=` in the config): at
/// its bind, and on a reload that changes them for a socket it keeps.
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn bind_unix(path: &Path, mode: Option<u32>) -> io::Result<UnixListener> {
    let named = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("cannot listen on unix:{}: {e}", path.display()),
        )
    };
    clear_stale(path).map_err(named)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&socket2::SockAddr::unix(path)?)
        .map_err(named)?;
    let listener: UnixListener = (|| {
        if let Some(mode) = mode {
            set_mode(path, mode)?;
        }
        socket.listen(BACKLOG)?;
        Ok(socket.into())
    })()
    .map_err(|e| {
        let _ = std::fs::remove_file(path);
        named(e)
    })?;
    Ok(listener)
}

/// Removes a socket file that no one listens on (left by a process that
/// was killed); a live socket, or a file that is not a socket, stays and
/// the bind fails on it.
fn clear_stale(path: &Path) -> io::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket",
        ));
    }
    // Non-blocking: a live server with a full backlog must not hang us.
    let probe = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    probe.set_nonblocking(true)?;
    match probe.connect(&socket2::SockAddr::unix(path)?) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path),
        Ok(()) => Err(live()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(live()),
        Err(e) => Err(e),
    }
}

fn live() -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrInUse,
        "another process is listening on it",
    )
}
