//! The `WebSocket` handler's settings: `handler: WebSocket(module: "echo")`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A route whose WebSockets a module handles: the server does the
/// handshake (HTTP/1.1 Upgrade, or HTTP/2 extended CONNECT) and the
/// framing, the module sees whole messages. Other requests get 426.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketSpec {
    /// The module, by its name in `modules`; it needs a `ws_message` hook.
    pub module: String,
    /// The largest message a client may send, whole; a larger one closes
    /// the socket with 1009. Default 1 MiB.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// The largest frame a client may send. Default 1 MiB.
    #[serde(default = "default_max_message")]
    pub max_frame_bytes: usize,
    /// Messages the module may queue for one socket before `ws_send`
    /// fails (a client that does not read). Default 256.
    #[serde(default = "default_queue")]
    pub send_queue: usize,
    /// After the module is reloaded, how long its sockets may stay on the
    /// instance they opened with before they are closed with 1012 (they
    /// may close before). Default 60 s.
    #[serde(default = "default_reload_drain", with = "humantime_serde")]
    pub reload_drain: Duration,
    /// A socket with no frame either way (a client's ping counts) for
    /// this long is closed with 1001 (going away), as nginx closes a
    /// quiet proxied WebSocket after `proxy_read_timeout`; `"0s"` never
    /// closes it. Default 60 s, like an upstream's `tunnel_idle_timeout`.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
}

fn default_max_message() -> usize {
    1 << 20
}
fn default_queue() -> usize {
    256
}
fn default_reload_drain() -> Duration {
    Duration::from_secs(60)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
