//! Listen sockets, bound before anything serves on them: at start-up for
//! every configured address, and by a config reload for added ones.

use std::{io, net::SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// Binds every address with `SO_REUSEADDR` and a deep backlog.
pub fn bind(addrs: &[SocketAddr]) -> io::Result<Vec<std::net::TcpListener>> {
    addrs
        .iter()
        .map(|addr| {
            let socket = Socket::new(
                Domain::for_address(*addr),
                Type::STREAM,
                Some(Protocol::TCP),
            )?;
            socket.set_reuse_address(true)?;
            socket.set_nonblocking(true)?;
            socket
                .bind(&(*addr).into())
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            socket.listen(1024)?;
            Ok(socket.into())
        })
        .collect()
}
