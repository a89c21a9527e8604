//! WebSockets for Lua scripts: the hooks `ws_open(socket, req)`,
//! `ws_message(socket, data, kind)` and `ws_close(socket, code)`, and the
//! host API `troupe.ws.send`, `troupe.ws.close`, `troupe.ws.sockets`.
//!
//! A hook runs like any other: on a pooled VM, under a fresh budget, the
//! first slice on the socket's own thread, and a call that outruns it
//! moves to the module pool (`bulkhead`) like a long `handle`: a
//! `ws_open` that does is awaited by the handshake there. After a
//! `ws_message` or `ws_close` moved, the socket's later calls then
//! wait, in order, in its [`Backlog`] and run on the pool after it, so a
//! script still sees one socket's calls one at a time and in order. A call
//! that fails there closes the socket with 1011 through the registry, as a
//! failed call on the socket's thread does.
//!
//! Hooks of one socket may run on different VMs: what a script keeps for
//! a socket goes into `troupe.kv`, and the set of open sockets is the
//! registry's (`troupe.ws.sockets()`), never a VM's globals.

use std::{collections::VecDeque, sync::Arc};

use bytes::Bytes;
use dashmap::{DashMap, mapref::entry::Entry};
use http::{HeaderMap, StatusCode};
use mlua::{Lua, LuaString, Table, Value};

use super::{Answer, Arg, Call, Inner, Run, convert};
use crate::{
    HttpError,
    modules::{
        bulkhead,
        instance::{Opening, WsData, WsOpen},
        ws::registry::{self, Refused},
    },
    pipeline::request::Request,
};

const WS_OPEN: Call = Call {
    hook: |vm| vm.ws_open.as_ref(),
    name: "ws_open(socket, req)",
    respond: false,
};
const WS_MESSAGE: Call = Call {
    hook: |vm| vm.ws_message.as_ref(),
    name: "ws_message(socket, data, kind)",
    respond: false,
};
const WS_CLOSE: Call = Call {
    hook: |vm| vm.ws_close.as_ref(),
    name: "ws_close(socket, code)",
    respond: false,
};

/// Messages one socket may have waiting behind a call that moved to the
/// module pool; past them (or [`BEHIND_BYTES`]) the client outruns the
/// script and the socket is closed (1011).
const BEHIND_MESSAGES: usize = 32;
/// Bytes of such messages (one message is always taken).
const BEHIND_BYTES: usize = 1 << 20;

/// The sockets of a module that have a call on the module pool.
#[derive(Default)]
pub(super) struct Backlogs(DashMap<u64, Backlog>);

/// One socket's calls waiting behind a moved one.
#[derive(Default)]
struct Backlog {
    later: VecDeque<Later>,
    /// Bytes of the messages in `later`.
    bytes: usize,
    /// Whether a task on the module pool works through `later`.
    running: bool,
    /// Whether a moved call failed: the socket is being closed (1011),
    /// its later messages are dropped, its `ws_close` still runs.
    failed: bool,
}

enum Later {
    Message(Bytes, &'static str),
    Close(u16),
}

/// `ws_open`: a script without one accepts every socket.
pub(super) fn open(inner: &Arc<Inner>, socket: u64, req: &Request) -> Opening {
    if !inner.ws_open {
        return Box::pin(std::future::ready(Ok(WsOpen::Accept(HeaderMap::new()))));
    }
    let lent = lend(req);
    inner
        .run(
            WS_OPEN,
            |vm| {
                vm.req.borrow_mut::<convert::LuaRequest>()?.0 = Some(lent);
                Ok((Arg::Open(socket), ()))
            },
            |vm, answer, ()| opened(&vm.keys, answer),
        )
        .into_future()
}

/// What `ws_open` returned: nil accepts; a table without a status, or with
/// 101, accepts with its `headers`; one with a status from 300 on refuses
/// with it, as `handle`'s answer.
fn opened(keys: &convert::Keys, answer: Answer) -> Result<WsOpen, HttpError> {
    let t = match answer {
        Answer::Value(Value::Nil) => return Ok(WsOpen::Accept(HeaderMap::new())),
        Answer::Value(Value::Table(t)) => t,
        _ => return Err(bad_open()),
    };
    let (status, headers) = convert::head_of(&t, keys, StatusCode::SWITCHING_PROTOCOLS)?;
    match status.as_u16() {
        101 => Ok(WsOpen::Accept(headers)),
        300.. => convert::response(Value::Table(t), keys).map(WsOpen::Refuse),
        // A 200 would open an HTTP/2 socket that nothing serves.
        _ => Err(bad_open()),
    }
}

fn bad_open() -> HttpError {
    HttpError::Internal(
        "ws_open must return nil or { headers = .. } (accept), or { status = 300..599, .. } (refuse)"
            .into(),
    )
}

/// The handshake request, copied for the script's `req` (the handler
/// keeps the original to upgrade it). Its body is empty.
fn lend(req: &Request) -> Request {
    let head = req.head();
    let mut copy = http::Request::new(());
    *copy.method_mut() = head.method.clone();
    *copy.uri_mut() = head.uri.clone();
    *copy.version_mut() = head.version;
    *copy.headers_mut() = head.headers.clone();
    let params = req
        .params()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Request::new(
        copy.into_parts().0,
        Some(req.path().to_owned()),
        params,
        Bytes::new(),
        req.peer(),
    )
}

/// `ws_message`: runs now, or waits behind a call of the same socket that
/// moved to the module pool.
pub(super) fn message(inner: &Arc<Inner>, socket: u64, msg: WsData<'_>) -> Result<(), String> {
    let (data, kind) = match msg {
        WsData::Text(t) => (t.as_bytes(), "text"),
        WsData::Binary(b) => (b, "binary"),
    };
    if let Some(mut b) = inner.backlogs.0.get_mut(&socket) {
        if b.failed {
            return Err("an earlier message's call failed".into());
        }
        let over = b.later.len() >= BEHIND_MESSAGES || b.bytes + data.len() > BEHIND_BYTES;
        if over && !b.later.is_empty() {
            // The socket closes: what waits is dropped, `ws_close` runs.
            b.failed = true;
            return Err(format!(
                "{} messages wait for the script: the client outruns it",
                b.later.len()
            ));
        }
        b.bytes += data.len();
        b.later
            .push_back(Later::Message(Bytes::copy_from_slice(data), kind));
        return Ok(());
    }
    match run_message(inner, socket, data, kind) {
        Run::Done(done) => done.map_err(|e| e.to_string()),
        moved => {
            inner.backlogs.0.insert(
                socket,
                Backlog {
                    running: true,
                    ..Backlog::default()
                },
            );
            bulkhead::spawn(catch_up(inner.clone(), socket, moved));
            Ok(())
        }
    }
}

/// `ws_close`: after the socket's waiting calls, if any.
pub(super) fn close(inner: &Arc<Inner>, socket: u64, code: u16) {
    match inner.backlogs.0.entry(socket) {
        Entry::Occupied(mut e) if e.get().running => {
            e.get_mut().later.push_back(Later::Close(code));
            return;
        }
        Entry::Occupied(e) => {
            e.remove();
        }
        Entry::Vacant(_) => {}
    }
    if inner.ws_close {
        // One that moves finishes on the pool; nobody waits for it.
        let _ = run_close(inner, socket, code);
    }
}

fn run_message(inner: &Arc<Inner>, socket: u64, data: &[u8], kind: &'static str) -> Run<()> {
    inner.run(
        WS_MESSAGE,
        |vm| {
            let data = vm.lua.create_string(data)?;
            Ok((Arg::Message(socket, data, kind), ()))
        },
        |_, _, ()| Ok(()),
    )
}

fn run_close(inner: &Arc<Inner>, socket: u64, code: u16) -> Run<()> {
    inner.run(
        WS_CLOSE,
        |_| Ok((Arg::Close(socket, code), ())),
        |_, _, ()| Ok(()),
    )
}

/// On the module pool: waits for the socket's moved call, then runs the
/// calls that queued behind it, in order, until none is left.
async fn catch_up(inner: Arc<Inner>, socket: u64, first: Run<()>) {
    let mut outcome = first.into_future().await;
    loop {
        if let Err(e) = outcome {
            failed(&inner, socket, &e);
        }
        let next = match inner.backlogs.0.entry(socket) {
            Entry::Vacant(_) => return,
            Entry::Occupied(mut e) => {
                let b = e.get_mut();
                match b.later.pop_front() {
                    Some(Later::Message(data, kind)) => {
                        b.bytes -= data.len();
                        if b.failed {
                            outcome = Ok(());
                            continue;
                        }
                        Later::Message(data, kind)
                    }
                    Some(close) => close,
                    None if b.failed => {
                        // `close` runs `ws_close` when it comes.
                        b.running = false;
                        return;
                    }
                    None => {
                        e.remove();
                        return;
                    }
                }
            }
        };
        outcome = match next {
            Later::Message(data, kind) => {
                run_message(&inner, socket, &data, kind).into_future().await
            }
            Later::Close(code) => {
                inner.backlogs.0.remove(&socket);
                if inner.ws_close {
                    let _ = run_close(&inner, socket, code).into_future().await;
                }
                return;
            }
        };
    }
}

/// A moved `ws_message` failed: the socket closes with 1011, as when it
/// fails on the socket's thread.
fn failed(inner: &Inner, socket: u64, e: &HttpError) {
    if let Some(mut b) = inner.backlogs.0.get_mut(&socket) {
        b.failed = true;
    }
    tracing::warn!(module = %inner.name, error = %e, "ws_message failed; socket closed");
    let _ = registry::end(&inner.name, socket, 1011, b"");
}

/// `troupe.ws`: `send(socket, data [, "text"|"binary"])`,
/// `close(socket [, code [, reason]])` (each `true`, or `nil, why`: "gone",
/// "full", "invalid"), and `sockets()`, the ids of the module's open
/// sockets.
pub(super) fn api(lua: &Lua, module: &Arc<str>) -> mlua::Result<Table> {
    let ws = lua.create_table()?;
    let m = module.clone();
    ws.set(
        "send",
        lua.create_function(
            move |lua, (socket, data, kind): (u64, LuaString, Option<LuaString>)| {
                let kind = match kind.as_ref().map(|k| k.as_bytes()) {
                    None => troupe_abi::WS_TEXT,
                    Some(k) if *k == *b"text" => troupe_abi::WS_TEXT,
                    Some(k) if *k == *b"binary" => troupe_abi::WS_BINARY,
                    Some(_) => return answer(lua, Err(Refused::Invalid)),
                };
                answer(lua, registry::send(&m, socket, kind, &data.as_bytes()))
            },
        )?,
    )?;
    let m = module.clone();
    ws.set(
        "close",
        lua.create_function(
            move |lua, (socket, code, reason): (u64, Option<i64>, Option<LuaString>)| {
                let Ok(code) = u16::try_from(code.unwrap_or(1000)) else {
                    return answer(lua, Err(Refused::Invalid));
                };
                let reason = reason.as_ref().map(|r| r.as_bytes());
                let reason = reason.as_deref().map_or(&b""[..], |r| r);
                answer(lua, registry::end(&m, socket, code, reason))
            },
        )?,
    )?;
    let m = module.clone();
    ws.set(
        "sockets",
        lua.create_function(move |_, ()| Ok(registry::open(&m)))?,
    )?;
    Ok(ws)
}

/// `true`, or `nil, why`, as Lua's io functions answer.
fn answer(lua: &Lua, sent: Result<(), Refused>) -> mlua::Result<(Value, Value)> {
    let why = match sent {
        Ok(()) => return Ok((Value::Boolean(true), Value::Nil)),
        Err(Refused::Gone) => "gone",
        Err(Refused::Full) => "full",
        Err(Refused::Invalid) => "invalid",
    };
    Ok((Value::Nil, Value::String(lua.create_string(why)?)))
}
