//! WebSockets a module handles: the handle of one socket, and a message.

use troupe_abi as abi;

use crate::Host;

/// One open WebSocket, by its id: what [`Module::ws_open`](crate::Module::ws_open)
/// and the other `ws_` hooks are given.
///
/// Cheap to copy, `Send` and `Sync`: keep it (a chat room keeps every
/// socket of the room) and send to it from any hook or any thread. Sends
/// queue and never block; they fail with [`WsError`] once the socket is
/// closed, or while its client is not reading and its queue is full.
#[derive(Clone, Copy, Debug)]
pub struct WebSocket {
    host: Host,
    id: u64,
}

/// Why a send to a socket did not go: it is closed or closing, or its
/// client is not reading (its queue is full).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsError;

impl std::fmt::Display for WsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the WebSocket is closed or its queue is full")
    }
}

impl std::error::Error for WsError {}

/// One whole message a client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsMessage<'a> {
    /// A text message.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl WebSocket {
    #[doc(hidden)]
    pub fn from_raw(host: Host, id: u64) -> Self {
        Self { host, id }
    }

    /// Its id: unique for the server's life.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Queues a text message.
    pub fn send_text(&self, text: &str) -> Result<(), WsError> {
        self.send_raw(abi::WS_TEXT, text.as_bytes())
    }

    /// Queues a binary message.
    pub fn send_binary(&self, data: &[u8]) -> Result<(), WsError> {
        self.send_raw(abi::WS_BINARY, data)
    }

    /// Queues `msg` as it came (an echo).
    pub fn send(&self, msg: WsMessage<'_>) -> Result<(), WsError> {
        match msg {
            WsMessage::Text(t) => self.send_text(t),
            WsMessage::Binary(b) => self.send_binary(b),
        }
    }

    /// Closes the socket with `code` (1000 normal, 4000–4999 the module's
    /// own) and a short `reason`, after what is queued.
    pub fn close(&self, code: u16, reason: &str) -> Result<(), WsError> {
        let t = self.host.table();
        // SAFETY: borrowed strings for the call; the function never blocks.
        let code = unsafe { (t.ws_end)(t.ctx, self.id, code, abi::Str::new(reason.as_bytes())) };
        if code == abi::OK {
            Ok(())
        } else {
            Err(WsError)
        }
    }

    fn send_raw(&self, kind: u32, data: &[u8]) -> Result<(), WsError> {
        let t = self.host.table();
        // SAFETY: as in `close`.
        let code = unsafe { (t.ws_send)(t.ctx, self.id, kind, abi::Str::new(data)) };
        if code == abi::OK {
            Ok(())
        } else {
            Err(WsError)
        }
    }
}
