//! [`WsHandler`]: the route's handler. Checks the WebSocket handshake,
//! asks the module (`ws_open`), answers it, and starts the socket's task.

use std::{sync::Arc, time::Duration};

use http::{HeaderName, HeaderValue, Method, StatusCode, Version, header};
use hyper::upgrade::OnUpgrade;

use super::{
    registry::Registration,
    socket::{self, Counted, Socket},
};
use crate::{
    HttpError,
    handler::{Handler, HandlerFuture, Response},
    modules::{
        instance::{Instance, Opening, WsOpen},
        slot::Slot,
    },
    pipeline::{
        body::Body,
        request::{Request, lists_token},
        tunnels::Tunnels,
    },
};

static SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
static SEC_WEBSOCKET_VERSION: HeaderName = HeaderName::from_static("sec-websocket-version");
static SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");

/// A route's WebSocket settings (`WebSocket(..)` in the config).
#[derive(Debug, Clone, Copy)]
pub struct WsSettings {
    /// The largest whole message a client may send.
    pub max_message: usize,
    /// The largest frame a client may send.
    pub max_frame: usize,
    /// Messages queued per socket before `ws_send` fails.
    pub queue: usize,
    /// How long sockets stay on a replaced instance before 1012.
    pub reload_drain: Duration,
    /// How long a socket may carry no frame before 1001 (`None`: forever).
    pub idle_timeout: Option<Duration>,
}

/// `handler: WebSocket(module: "name")`.
#[derive(Debug)]
pub struct WsHandler {
    slot: Arc<Slot>,
    settings: WsSettings,
}

impl WsHandler {
    /// Sockets handled by the module published in `slot`.
    pub fn new(slot: Arc<Slot>, settings: WsSettings) -> Self {
        Self { slot, settings }
    }
}

/// How the client asked to switch.
enum Asked {
    /// HTTP/1.1 Upgrade, with the answer to its key.
    Upgrade(HeaderValue),
    /// HTTP/2 extended CONNECT (RFC 8441): no key, answered 200.
    Connect,
}

impl Handler for WsHandler {
    fn call(&self, req: Request) -> HandlerFuture {
        HandlerFuture::new(open(self.slot.clone(), self.settings, req))
    }
}

/// Answers the handshake `req` for the module published in `slot`, and
/// starts the socket's task when the module accepts.
async fn open(slot: Arc<Slot>, settings: WsSettings, req: Request) -> Result<Response, HttpError> {
    let asked = match handshake(&req) {
        Ok(asked) => asked,
        Err(not) => return Ok(not.answer()),
    };
    let head = req.head();
    // Both are there for any request hyper can upgrade that came
    // through a connection (`conn/`).
    if head.extensions.get::<OnUpgrade>().is_none() || head.extensions.get::<Tunnels>().is_none() {
        return Ok(upgrade_required());
    }
    let instance: Arc<dyn Instance> = slot.load().instance()?.clone();
    if !instance.hooks().ws {
        return Err(HttpError::Internal(format!(
            "module `{}` has no ws_message hook",
            slot.name()
        )));
    }
    let loads = slot.loads();
    let (reg, rx) = Registration::new(slot.name().clone(), settings.queue);
    let id = reg.id();
    let mut opening = PendingOpen {
        call: Some(instance.ws_open(id, &req)),
        instance: instance.clone(),
        id,
    };
    let extra = match opening.answer().await? {
        WsOpen::Accept(headers) => headers,
        WsOpen::Refuse(resp) => return Ok(resp),
    };
    let (mut head, _) = req.into_parts();
    let (Some(upgrade), Some(tunnels)) = (
        head.extensions.remove::<OnUpgrade>(),
        head.extensions.remove::<Tunnels>(),
    ) else {
        unreachable_socket(&*instance, id);
        return Ok(upgrade_required());
    };
    let mut resp = Response::new(Body::Empty);
    *resp.headers_mut() = extra;
    let h = resp.headers_mut();
    match asked {
        Asked::Upgrade(accept) => {
            *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = resp.headers_mut();
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(SEC_WEBSOCKET_ACCEPT.clone(), accept);
        }
        Asked::Connect => {
            // 200 (set by `Response::new`): the stream is the socket.
            h.remove(&SEC_WEBSOCKET_ACCEPT);
        }
    }
    let sock = Socket {
        _open: Counted::new(&slot),
        reg,
        rx,
        instance,
        slot,
        loads,
        settings,
    };
    tunnels.spawn_until_cut(move |cut| socket::run(sock, upgrade, cut));
    Ok(resp)
}

/// A `ws_open` the handshake awaits. Dropped before it answers (the
/// client left while the call ran on the module pool), it lets the call
/// finish in a task of its own and closes a socket it accepted (1006):
/// a module hears `ws_close` for every socket its `ws_open` accepted, so
/// what it keeps per socket (`troupe.kv`) is let go.
struct PendingOpen {
    call: Option<Opening>,
    instance: Arc<dyn Instance>,
    id: u64,
}

impl PendingOpen {
    async fn answer(&mut self) -> Result<WsOpen, HttpError> {
        let Some(call) = self.call.as_mut() else {
            return Err(HttpError::Internal("ws_open answered already".into()));
        };
        let answer = call.await;
        self.call = None;
        answer
    }
}

impl Drop for PendingOpen {
    fn drop(&mut self) {
        let Some(call) = self.call.take() else {
            return;
        };
        let (instance, id) = (self.instance.clone(), self.id);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Ok(WsOpen::Accept(_)) = call.await {
                    unreachable_socket(&*instance, id);
                }
            });
        }
    }
}

/// A socket that was accepted but cannot run after all: the module hears
/// it closed.
fn unreachable_socket(instance: &dyn Instance, id: u64) {
    instance.ws_close(id, 1006);
}

/// Why a request is not a WebSocket handshake we take.
enum NotWs {
    /// A plain request: 426.
    Plain,
    /// Another version of the protocol: 426 naming ours.
    Version,
    /// A CONNECT for something else: 400.
    Connect,
    /// A malformed key: 400.
    Key,
}

impl NotWs {
    fn answer(self) -> Response {
        match self {
            NotWs::Plain => upgrade_required(),
            NotWs::Version => wrong_version(),
            NotWs::Connect => plain(StatusCode::BAD_REQUEST, "CONNECT is not a WebSocket\n"),
            NotWs::Key => plain(StatusCode::BAD_REQUEST, "bad Sec-WebSocket-Key\n"),
        }
    }
}

/// Whether `req` is a WebSocket handshake we take.
fn handshake(req: &Request) -> Result<Asked, NotWs> {
    let head = req.head();
    if head.method == Method::CONNECT {
        let websocket = head
            .extensions
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
        if !websocket || head.version != Version::HTTP_2 {
            return Err(NotWs::Connect);
        }
        if !version_13(&head.headers) {
            return Err(NotWs::Version);
        }
        return Ok(Asked::Connect);
    }
    let asks = head.method == Method::GET
        && head.version == Version::HTTP_11
        && lists_token(&head.headers, header::CONNECTION, "upgrade")
        && lists_token(&head.headers, header::UPGRADE, "websocket");
    if !asks {
        return Err(NotWs::Plain);
    }
    if !version_13(&head.headers) {
        return Err(NotWs::Version);
    }
    // RFC 6455 §4.2.1: the key is 16 bytes in base64, 24 characters.
    let key = head
        .headers
        .get(&SEC_WEBSOCKET_KEY)
        .filter(|k| k.len() == 24)
        .ok_or(NotWs::Key)?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let accept = HeaderValue::try_from(accept).map_err(|_| NotWs::Key)?;
    Ok(Asked::Upgrade(accept))
}

fn version_13(headers: &http::HeaderMap) -> bool {
    headers
        .get(&SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13")
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    let mut resp = Response::new(Body::full(body.as_bytes()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// 426: this route only speaks WebSocket.
fn upgrade_required() -> Response {
    let mut resp = plain(
        StatusCode::UPGRADE_REQUIRED,
        "this route only takes WebSocket connections\n",
    );
    resp.headers_mut()
        .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    resp
}

/// 426 with the version we speak (RFC 6455 §4.4).
fn wrong_version() -> Response {
    let mut resp = plain(
        StatusCode::UPGRADE_REQUIRED,
        "unsupported Sec-WebSocket-Version (expected 13)\n",
    );
    resp.headers_mut().insert(
        SEC_WEBSOCKET_VERSION.clone(),
        HeaderValue::from_static("13"),
    );
    resp
}
