//! WebSockets a component handles (`troupe:host/websocket-handler`,
//! `troupe:host/websocket` 0.2.4): the bindings, the socket functions a
//! component imports, and running one hook to its end for the socket's
//! task.
//!
//! **One fresh instance per hook call**, as wasi:http gives each request
//! one: a socket is not an instance. Keeping an instance for each open
//! socket would hold a slot of the engine's pooling allocator (256 across
//! every module, `engine.rs`) and its linear memory for as long as the
//! client stays, so a few hundred idle clients would exhaust the server;
//! a fresh instance costs a few tens of microseconds per message and
//! nothing between messages. What a socket must remember goes to the
//! key-value store (keyed by its id); a room asks the host for the
//! module's open sockets (`sockets`). Each call has the module's limits:
//! its memory, its CPU `time` (epoch interruption), its place among
//! `instances`, and the pool for calls that run long, as a request has.
//!
//! The [`Instance`](crate::modules::instance::Instance) seam's socket
//! hooks are plain calls from the socket's task; a guest call is a
//! future. [`wait`] polls it once where it is called (most hooks end
//! there, in microseconds) and, if it is still running, gives the thread
//! back to the runtime (`block_in_place`) while the call finishes, on the
//! module pool once its first slice is spent.

use std::{
    future::Future,
    sync::Arc,
    task::{Context, Poll, Wake, Waker},
};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use wasmtime::component::{HasSelf, InstancePre, Linker};

use super::state::State;
use crate::{
    HttpError,
    handler::Response,
    modules::{
        instance::{WsData, WsOpen, into_response},
        ws::registry::{self, Refused},
    },
    pipeline::request::Request,
};

mod bindings {
    wasmtime::component::bindgen!({
        path: "plugins/wasm/wit",
        world: "troupe:host/ws-host",
        require_store_data_send: true,
        exports: { default: async },
    });
}

use bindings::exports::troupe::host::websocket_handler as guest;
pub use bindings::troupe::host::websocket::Message;
use bindings::troupe::host::websocket::{self as host, SendError};

/// A component's socket hooks, linked and ready to instantiate.
pub type WsPre = bindings::WsHostPre<State>;

/// An instance's socket hooks.
pub type WsGuest = bindings::WsHost;

/// The socket hooks of a linked component, if it exports them.
pub fn pre(linked: InstancePre<State>) -> Option<WsPre> {
    WsPre::new(linked).ok()
}

/// Adds `troupe:host/websocket` to a linker.
pub fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    host::add_to_linker::<State, HasSelf<State>>(linker, |s| s)
}

impl host::Host for State {
    fn send(&mut self, socket: u64, msg: Message) -> Result<(), SendError> {
        let (kind, data) = match &msg {
            Message::Text(t) => (troupe_abi::WS_TEXT, t.as_bytes()),
            Message::Binary(b) => (troupe_abi::WS_BINARY, b.as_slice()),
        };
        registry::send(self.module(), socket, kind, data).map_err(refused)
    }

    fn close(&mut self, socket: u64, code: u16, reason: String) -> Result<(), SendError> {
        registry::end(self.module(), socket, code, reason.as_bytes()).map_err(refused)
    }

    fn sockets(&mut self) -> Vec<u64> {
        registry::open(self.module())
    }
}

fn refused(r: Refused) -> SendError {
    match r {
        Refused::Gone => SendError::Gone,
        Refused::Full => SendError::Full,
        Refused::Invalid => SendError::Invalid,
    }
}

/// One call of a socket hook.
pub enum Event {
    /// `on-open`.
    Open(u64, guest::Request),
    /// `on-message`.
    Message(u64, Message),
    /// `on-close`.
    Close(u64, u16),
}

/// What the hook returned.
pub enum Returned {
    /// `on-open`'s answer.
    Opened(Result<Vec<(String, Vec<u8>)>, guest::Answer>),
    /// The others return nothing.
    Done,
}

/// Calls `event`'s hook on `guest`.
pub async fn call(
    guest: &WsGuest,
    store: &mut wasmtime::Store<State>,
    event: Event,
) -> wasmtime::Result<Returned> {
    let hooks = guest.troupe_host_websocket_handler();
    Ok(match event {
        Event::Open(socket, req) => {
            Returned::Opened(hooks.call_on_open(&mut *store, socket, &req).await?)
        }
        Event::Message(socket, msg) => {
            hooks.call_on_message(&mut *store, socket, &msg).await?;
            Returned::Done
        }
        Event::Close(socket, code) => {
            hooks.call_on_close(&mut *store, socket, code).await?;
            Returned::Done
        }
    })
}

/// `on-open`'s argument: the handshake's head.
pub fn request(req: &Request) -> guest::Request {
    let head = req.head();
    guest::Request {
        method: head.method.as_str().to_owned(),
        path_with_query: head
            .uri
            .path_and_query()
            .map_or_else(|| head.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        headers: head
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
    }
}

/// `on-message`'s argument.
pub fn message(data: WsData<'_>) -> Message {
    match data {
        WsData::Text(t) => Message::Text(t.to_owned()),
        WsData::Binary(b) => Message::Binary(b.to_vec()),
    }
}

/// What `on-open` said, as the socket handler takes it: the headers for
/// the 101, or the refusal. Either is checked as `respond` checks a
/// response; a malformed one fails the handshake (500).
pub fn opened(answer: Result<Vec<(String, Vec<u8>)>, guest::Answer>) -> Result<WsOpen, HttpError> {
    match answer {
        Ok(headers) => Ok(WsOpen::Accept(header_map(headers)?)),
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.status)
                .ok()
                .filter(|s| !s.is_informational())
                .ok_or_else(|| {
                    HttpError::Internal(format!(
                        "on-open refused with status {}, which is not an answer",
                        refusal.status
                    ))
                })?;
            let resp: Response = into_response(status, header_map(refusal.headers)?, refusal.body);
            Ok(WsOpen::Refuse(resp))
        }
    }
}

fn header_map(headers: Vec<(String, Vec<u8>)>) -> Result<HeaderMap, HttpError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let bad = || HttpError::Internal(format!("on-open gave a malformed header `{name}`"));
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
        let v = HeaderValue::from_bytes(&value).map_err(|_| bad())?;
        map.append(n, v);
    }
    Ok(map)
}

/// Runs `call` to its end from a plain function: one poll here, then, if
/// it is still running, the rest with this worker thread handed over to
/// the runtime's other tasks (`block_in_place`), so a guest that runs
/// to its time limit stalls no connection. Outside a multi-threaded
/// runtime it parks the thread instead.
pub fn wait<F: Future>(call: F) -> F::Output {
    let mut call = std::pin::pin!(call);
    if let Poll::Ready(out) = call.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return out;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(rt) if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| rt.block_on(call))
        }
        _ => park_on(call),
    }
}

/// Wakes a parked thread.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn park_on<F: Future>(mut call: std::pin::Pin<&mut F>) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = call.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: Vec<(&str, &[u8])>) -> guest::Answer {
        guest::Answer {
            status,
            headers: headers
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v.to_vec()))
                .collect(),
            body: b"no\n".to_vec(),
        }
    }

    #[test]
    fn on_open_accepts_with_its_headers_or_refuses_with_its_answer() {
        let Ok(WsOpen::Accept(h)) = opened(Ok(vec![(
            "sec-websocket-protocol".into(),
            b"chat".to_vec(),
        )])) else {
            panic!("not accepted")
        };
        assert_eq!(h["sec-websocket-protocol"], "chat");
        let Ok(WsOpen::Refuse(resp)) = opened(Err(answer(403, vec![("x-why", b"rules")]))) else {
            panic!("not refused")
        };
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(resp.headers()["x-why"], "rules");
    }

    #[test]
    fn a_malformed_answer_fails_the_handshake() {
        for bad in [
            opened(Err(answer(101, vec![]))),
            opened(Err(answer(1000, vec![]))),
            opened(Err(answer(403, vec![("bad name", b"x")]))),
            opened(Ok(vec![("x-ok".into(), b"line\nbreak".to_vec())])),
        ] {
            assert!(matches!(bad, Err(HttpError::Internal(_))));
        }
    }

    #[test]
    fn wait_finishes_a_call_that_yields_outside_a_runtime() {
        let mut polls = 0;
        let out = wait(std::future::poll_fn(|cx| {
            polls += 1;
            if polls < 3 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(polls)
            }
        }));
        assert_eq!(out, 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wait_hands_the_worker_over_while_a_call_runs_on() {
        // A call that needs another task to finish: it ends only if this
        // worker's other tasks can run while it waits.
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let _ = tx.send(7);
        });
        assert_eq!(wait(rx), Ok(7));
    }
}
