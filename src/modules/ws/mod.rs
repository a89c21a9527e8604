//! WebSockets handled by modules (`handler: WebSocket(module: "name")`):
//! the host owns the handshake and the framing (tokio-tungstenite), the
//! module sees `ws_open`, whole messages in `ws_message`, and `ws_close`,
//! and sends through `ws_send` / `ws_end`.
//!
//! ```text
//! upgrade request → WsHandler (handler.rs): checks the handshake, takes
//!                   the module's current instance, registers a socket id
//!                   (registry.rs), calls ws_open → 101 (HTTP/1.1) or 200
//!                   (HTTP/2 extended CONNECT, RFC 8441)
//!                 → socket task (socket.rs), one per socket, run on the
//!                   connection's `Tunnels` (so the drain waits for it):
//!                   frames ⇄ hooks, the send queue → frames
//! ```
//!
//! A socket keeps the instance (an `Arc`) it opened with. When the
//! module has another one (its slot published another: a module reload
//! or restart; or a config reload that changed the module's declaration
//! or file gave it a new slot, or removed it, and superseded the old
//! one), the socket stays on the old instance for the route's
//! `reload_drain`, then is closed with 1012; after the route's
//! `idle_timeout` with no frame either way, and at the server's drain
//! deadline, it is closed with 1001. A config reload that keeps the
//! listener and the module keeps the connection, and with it the
//! socket. Open sockets are counted in `troupe_module_websockets`.

mod handler;
pub(crate) mod registry;
mod socket;

pub use handler::{WsHandler, WsSettings};
