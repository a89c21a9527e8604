//! One module WebSocket's task: frames in → the module's hooks, its send
//! queue → frames out, until the socket closes, the module closes it, its
//! instance is replaced and the reload drain runs out (1012), no frame
//! goes either way for the route's `idle_timeout` (1001), or the server's
//! drain deadline passes (1001).
//!
//! Calls for one socket are made here, one at a time and in order, so a
//! module sees `ws_open`, its messages, then one `ws_close`. The framing
//! is tokio-tungstenite's, with a small read buffer (many sockets sit
//! idle) and the route's caps on messages and frames.

use std::{sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use prometheus::IntGauge;
use tokio::{sync::mpsc, time::Instant};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Error as WsError, Message, Utf8Bytes,
        error::ProtocolError,
        protocol::{CloseFrame, Role, WebSocketConfig, frame::coding::CloseCode},
    },
};
use tokio_util::sync::CancellationToken;

use super::{
    handler::WsSettings,
    registry::{Out, Registration},
};
use crate::modules::{
    instance::{Instance, WsData},
    slot::{Published, Slot},
};

/// Bytes read from the socket at a time; larger frames grow the buffer
/// only while they are read.
const READ_BUFFER: usize = 8 * 1024;

/// How long a closing socket waits to send its close frame, then for the
/// client's.
const CLOSE_WAIT: Duration = Duration::from_millis(500);
/// The same at the server's drain deadline, within the 300 ms the
/// connection's watchdog leaves tunnels (`conn/watchdog.rs`).
const CUT_WAIT: Duration = Duration::from_millis(120);

/// No close code was received (RFC 6455 §7.1.5).
const NO_STATUS: u16 = 1005;
/// The connection ended without a close frame.
const ABNORMAL: u16 = 1006;

/// An accepted socket, before its connection is upgraded.
pub(super) struct Socket {
    /// Its place in the module's open-socket gauge, for its life.
    pub _open: Counted,
    pub reg: Registration,
    pub rx: mpsc::Receiver<Out>,
    /// The instance it opened with, whatever the slot publishes later.
    pub instance: Arc<dyn Instance>,
    pub slot: Arc<Slot>,
    /// The slot's count of instances when it opened.
    pub loads: u64,
    pub settings: WsSettings,
}

/// Counts a socket in `troupe_module_websockets` from its accept to its
/// end (however the task ends, or if it never runs).
pub(super) struct Counted(Option<IntGauge>);

impl Counted {
    /// One more open socket of the module published in `slot`.
    pub fn new(slot: &Slot) -> Self {
        let gauge = slot.metrics().map(|m| m.websockets.clone());
        if let Some(g) = &gauge {
            g.inc();
        }
        Self(gauge)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(g) = &self.0 {
            g.dec();
        }
    }
}

type Stream = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Runs the socket once our answer went out; `cut` is the server's drain
/// deadline.
pub(super) async fn run(mut s: Socket, upgrade: OnUpgrade, cut: CancellationToken) {
    let id = s.reg.id();
    let code = match upgrade.await {
        Ok(io) => {
            let config = WebSocketConfig::default()
                .read_buffer_size(READ_BUFFER)
                .max_message_size(Some(s.settings.max_message))
                .max_frame_size(Some(s.settings.max_frame));
            let mut ws =
                WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, Some(config))
                    .await;
            serve(&mut s, &mut ws, &cut).await
        }
        Err(error) => {
            tracing::debug!(%error, "WebSocket upgrade not completed");
            ABNORMAL
        }
    };
    s.reg.close();
    s.instance.ws_close(id, code);
}

/// The socket's life; returns the close code the module hears.
async fn serve(s: &mut Socket, ws: &mut Stream, cut: &CancellationToken) -> u16 {
    let id = s.reg.id();
    // How often to look for a replaced instance and a quiet socket: often
    // enough for the drain and idle deadlines, rarely enough for many
    // idle sockets.
    let shortest = match s.settings.idle_timeout {
        Some(idle) => idle.min(s.settings.reload_drain),
        None => s.settings.reload_drain,
    };
    let every = (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut replaced_at: Option<Instant> = None;
    // A frame went either way since the last tick: a flag, not a clock
    // read per frame; the tick turns it into `quiet_since`.
    let mut active = false;
    let mut quiet_since = Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = cut.cancelled() => {
                return goodbye_within(ws, CloseCode::Away, "server stopping", CUT_WAIT).await;
            }
            out = s.rx.recv() => match out {
                Some(Out::Message(m)) => {
                    active = true;
                    if ws.send(m).await.is_err() {
                        return ABNORMAL;
                    }
                }
                Some(Out::End(code, reason)) => {
                    return goodbye(ws, CloseCode::from(code), reason).await;
                }
                // The registry holds the sender while the socket is open.
                None => return goodbye(ws, CloseCode::Error, "").await,
            },
            msg = ws.next() => {
                active = true;
                let data = match msg {
                    Some(Ok(Message::Text(ref t))) => WsData::Text(t.as_str()),
                    Some(Ok(Message::Binary(ref b))) => WsData::Binary(b),
                    Some(Ok(Message::Close(frame))) => {
                        s.reg.close();
                        finish(ws).await;
                        return frame.map_or(NO_STATUS, |f| u16::from(f.code));
                    }
                    // Pings are answered by tungstenite.
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return failed(ws, e).await,
                    None => return ABNORMAL,
                };
                if let Err(error) = s.instance.ws_message(id, data) {
                    tracing::warn!(module = %s.slot.name(), %error, "ws_message failed; socket closed");
                    return goodbye(ws, CloseCode::Error, "").await;
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                match replaced_at {
                    None if replaced(s) => replaced_at = Some(now),
                    Some(at) if now.duration_since(at) >= s.settings.reload_drain => {
                        return goodbye(ws, CloseCode::Restart, "module reloaded").await;
                    }
                    _ => {}
                }
                if std::mem::take(&mut active) {
                    quiet_since = now;
                } else if s
                    .settings
                    .idle_timeout
                    .is_some_and(|idle| now.duration_since(quiet_since) >= idle)
                {
                    return goodbye(ws, CloseCode::Away, "idle").await;
                }
            }
        }
    }
}

/// Whether the module has another instance than the one the socket
/// opened with: its slot published another (a module reload, or a
/// restart after a failure), or a config reload gave the module a new
/// slot (its declaration or file changed) or removed it.
fn replaced(s: &Socket) -> bool {
    if s.slot.loads() != s.loads || s.slot.superseded() {
        return true;
    }
    match &**s.slot.load() {
        Published::Ready(i) => !Arc::ptr_eq(i, &s.instance),
        Published::Failed(_) => true,
        _ => false,
    }
}

/// Closes the socket with `code` and waits (briefly) for the client's
/// close frame; returns the code.
async fn goodbye(ws: &mut Stream, code: CloseCode, reason: impl Into<Utf8Bytes>) -> u16 {
    goodbye_within(ws, code, reason, CLOSE_WAIT).await
}

/// [`goodbye`], waiting `wait` for each step.
async fn goodbye_within(
    ws: &mut Stream,
    code: CloseCode,
    reason: impl Into<Utf8Bytes>,
    wait: Duration,
) -> u16 {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(wait, ws.close(Some(frame))).await;
    finish_within(ws, wait).await;
    u16::from(code)
}

/// Reads to the end (which flushes tungstenite's reply to a close), for
/// at most [`CLOSE_WAIT`].
async fn finish(ws: &mut Stream) {
    finish_within(ws, CLOSE_WAIT).await;
}

async fn finish_within(ws: &mut Stream, wait: Duration) {
    let _ = tokio::time::timeout(wait, async { while let Some(Ok(_)) = ws.next().await {} }).await;
}

/// A framing error: tell the client why where the protocol has a code
/// for it, then drop the connection.
async fn failed(ws: &mut Stream, e: WsError) -> u16 {
    let code = match &e {
        WsError::Capacity(_) => CloseCode::Size,
        WsError::Utf8(_) => CloseCode::Invalid,
        // The client went away without a close frame: nobody to tell, and
        // RFC 6455 (7.1.5) names that 1006, not a protocol error.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            tracing::debug!(error = %e, "WebSocket ended");
            return ABNORMAL;
        }
        WsError::Protocol(_) => CloseCode::Protocol,
        _ => {
            tracing::debug!(error = %e, "WebSocket ended");
            return ABNORMAL;
        }
    };
    tracing::debug!(error = %e, "WebSocket closed");
    let code = goodbye(ws, code, "").await;
    linger(ws.get_mut(), CLOSE_WAIT).await;
    code
}

/// Reads and drops what the client is still sending (the rest of an
/// oversized message, say), for at most `wait`, after our side is shut:
/// closing with unread bytes makes the kernel reset the connection, and
/// the reset can destroy our close frame before the client reads it
/// (nginx's `lingering_close` for the same reason).
async fn linger<I>(io: &mut I, wait: Duration)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(wait, async {
        let _ = io.shutdown().await;
        let mut sink = [0u8; 16 * 1024];
        while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}
