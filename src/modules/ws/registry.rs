//! Open module WebSockets by id: what `ws_send` and `ws_end` reach, from
//! a hook or from any thread of the module (a broadcast).
//!
//! Each socket registers a bounded queue here when its module accepts it;
//! a send is a map lookup and a `try_send`, so it never blocks the caller
//! and a client that stops reading costs at most its queue. The socket's
//! task (`socket.rs`) writes what is queued. Ids are unique for the
//! server's life, so a module that kept the id of a closed socket gets an
//! error, never another client's socket.

use std::sync::{
    Arc, LazyLock,
    atomic::{AtomicU64, Ordering},
};

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// What a module asks of a socket.
#[derive(Debug)]
pub(crate) enum Out {
    /// Send this message.
    Message(Message),
    /// Close with this code and reason (after what is queued).
    End(u16, Utf8Bytes),
}

/// Why a send did not go.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// No open socket of this module has that id.
    Gone,
    /// Its queue is full: the client is not reading.
    Full,
    /// A text message that is not UTF-8, or an unknown kind.
    Invalid,
}

struct Entry {
    module: Arc<str>,
    tx: mpsc::Sender<Out>,
}

static SOCKETS: LazyLock<DashMap<u64, Entry>> = LazyLock::new(DashMap::new);
static NEXT: AtomicU64 = AtomicU64::new(1);

/// One socket's place in the registry; dropping it (or [`Registration::close`])
/// makes sends to the id fail.
#[derive(Debug)]
pub(crate) struct Registration {
    id: u64,
}

impl Registration {
    /// A fresh id for a socket of `module`, with a queue of `depth`
    /// messages, and the queue's other end.
    pub(crate) fn new(module: Arc<str>, depth: usize) -> (Self, mpsc::Receiver<Out>) {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(depth.max(1));
        SOCKETS.insert(id, Entry { module, tx });
        (Self { id }, rx)
    }

    /// The socket's id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The socket is closing: no more sends.
    pub(crate) fn close(&self) {
        SOCKETS.remove(&self.id);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.close();
    }
}

/// Queues `out` for socket `id` of `module`.
fn queue(module: &str, id: u64, out: Out) -> Result<(), Refused> {
    let entry = SOCKETS.get(&id).ok_or(Refused::Gone)?;
    if *entry.module != *module {
        return Err(Refused::Gone);
    }
    entry.tx.try_send(out).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => Refused::Full,
        mpsc::error::TrySendError::Closed(_) => Refused::Gone,
    })
}

/// `ws_send`: a message of `kind` (`WS_TEXT` or `WS_BINARY`) for socket
/// `id` of `module`.
pub(crate) fn send(module: &str, id: u64, kind: u32, data: &[u8]) -> Result<(), Refused> {
    let message = match kind {
        troupe_abi::WS_TEXT => {
            let text =
                Utf8Bytes::try_from(Bytes::copy_from_slice(data)).map_err(|_| Refused::Invalid)?;
            Message::Text(text)
        }
        troupe_abi::WS_BINARY => Message::Binary(Bytes::copy_from_slice(data)),
        _ => return Err(Refused::Invalid),
    };
    queue(module, id, Out::Message(message))
}

/// `ws_end`: closes socket `id` of `module` with `code` and `reason`.
pub(crate) fn end(module: &str, id: u64, code: u16, reason: &[u8]) -> Result<(), Refused> {
    // The codes an endpoint may send (RFC 6455 §7.4; 1004-1006 and 1015
    // are reserved, 2000-2999 are for extensions).
    if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
        return Err(Refused::Invalid);
    }
    // A close frame's reason is at most 123 bytes of UTF-8 (RFC 6455 §5.5).
    let mut cut = reason.len().min(123);
    while std::str::from_utf8(&reason[..cut]).is_err() {
        cut -= 1;
    }
    let reason = Utf8Bytes::try_from(Bytes::copy_from_slice(&reason[..cut]))
        .map_err(|_| Refused::Invalid)?;
    queue(module, id, Out::End(code, reason))
}

/// The ids of `module`'s open sockets, in no order (a WebAssembly room's
/// `sockets`, whose instances keep nothing between calls, and Lua's
/// `troupe.ws.sockets()`, whose VMs share nothing). Walks every open
/// socket of the server.
#[cfg_attr(not(any(feature = "wasm", feature = "lua")), allow(dead_code))]
pub(crate) fn open(module: &str) -> Vec<u64> {
    SOCKETS
        .iter()
        .filter(|e| *e.value().module == *module)
        .map(|e| *e.key())
        .collect()
}
