//! The hot path of a Lua call in the raw C API: resetting the call's
//! coroutine, resuming it, and reading a response of the common shape, all
//! in one protected call.
//!
//! Through mlua, each of those steps was a protected call and a round of
//! registry-reference juggling of its own: a hello call cost ~3 300 more
//! instructions than this (11 200 against 7 900 above the core `/hello`;
//! BENCHMARKS.md, "Lua against nginx's Lua module"). Only the common case is raw: anything unusual (an answer of
//! another shape, a call that yields and moves to the module pool, errors)
//! leaves here as an mlua value or error, or goes on through mlua's
//! `Thread::resume`, exactly where mlua's own code would have left it.
#![allow(unsafe_code)]

use std::os::raw::c_int;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use mlua::{Function, IntoLuaMulti, Lua, Thread, Value, ffi};

use super::convert::Keys;
use crate::{handler::Response, modules::instance::into_response};

/// How the first slice of a call ended ([`start`]).
pub enum Started {
    /// The hook returned a response of the common shape, read at once.
    Read(Response),
    /// The hook returned this (for the caller to read).
    Returned(Value),
    /// The call's coroutine yielded: its slice ended, or the script yielded.
    Yielded,
    /// The call failed.
    Failed(mlua::Error),
}

/// Where [`start`]'s protected call finds the answer keys and, once the
/// call returned, the answer.
const STATUS_AT: c_int = 1;
const ANSWER_AT: c_int = 4;

/// Starts a call of `f` with `arg` (one value, or a tuple of them) in the
/// VM's coroutine and runs its first slice, all in one protected call:
/// the coroutine is reset and resumed with raw `lua_*` calls, and, with
/// `respond`, an answer of the common shape is read off the stack there
/// ([`read_response`]).
/// A call that yields goes on through [`Thread::resume`]: the coroutine
/// is left as mlua's own resume leaves it.
pub(super) fn start(
    lua: &Lua,
    thread: &Thread,
    keys: &Keys,
    f: &Function,
    arg: impl IntoLuaMulti,
    respond: bool,
) -> Started {
    let co = thread.state();
    let mut status = ffi::LUA_OK;
    let mut read = None;
    // SAFETY: the closure runs inside mlua's protected call on the
    // main state, whose frame holds the three keys (1..=3), `f` (4,
    // where its answer will go) and its arguments (5..); `co` is the
    // VM's own coroutine, alive as long as `thread`, and not running (a
    // VM runs one call at a time).
    // Nothing in the closure raises a Lua error while a Rust value of
    // its own is alive: the only calls that may raise (`luaL_tolstring`,
    // `luaL_traceback`, on the error path) come after the answer was
    // read, and a raise there lands in mlua's protected call.
    let ran = unsafe {
        lua.exec_raw::<Value>((&keys.status, &keys.headers, &keys.body, f, arg), |state| {
            // A coroutine left yielded or failed is closed (its
            // to-be-closed variables run); a finished one is emptied.
            if ffi::lua_status(co) != ffi::LUA_OK {
                ffi::lua_closethread(co, state);
            }
            ffi::lua_settop(co, 0);
            // A fresh coroutine has LUA_MINSTACK (20) slots: room
            // for the function and its few arguments.
            let nargs = ffi::lua_gettop(state) - ANSWER_AT;
            ffi::lua_xmove(state, co, nargs + 1);
            let mut results: c_int = 0;
            status = ffi::lua_resume(co, state, nargs, &mut results);
            match status {
                ffi::LUA_OK => {
                    // The first result is the answer (nil if none).
                    if results == 0 {
                        ffi::lua_pushnil(state);
                    } else {
                        ffi::lua_settop(co, ffi::lua_gettop(co) - results + 1);
                        ffi::lua_xmove(co, state, 1);
                    }
                    ffi::lua_settop(co, 0);
                    if respond {
                        read = read_response(state, STATUS_AT, ANSWER_AT);
                    }
                    ffi::lua_settop(state, ANSWER_AT);
                    if read.is_some() {
                        ffi::lua_settop(state, 0);
                    } else {
                        ffi::lua_replace(state, 1);
                        ffi::lua_settop(state, 1);
                    }
                }
                // Left as is for `Thread::resume` to go on with.
                ffi::LUA_YIELD => ffi::lua_settop(state, 0),
                _ => {
                    // As mlua's resume does: the error object moves
                    // here, and a message gets the coroutine's
                    // traceback (mlua's own errors are userdata).
                    ffi::lua_settop(state, 0);
                    ffi::lua_xmove(co, state, 1);
                    if status != ffi::LUA_ERRMEM && ffi::lua_type(state, 1) != ffi::LUA_TUSERDATA {
                        let message = ffi::luaL_tolstring(state, 1, std::ptr::null_mut());
                        if ffi::lua_checkstack(state, ffi::LUA_TRACEBACK_STACK) != 0 {
                            ffi::luaL_traceback(state, co, message, 0);
                            ffi::lua_replace(state, 1);
                        }
                        ffi::lua_settop(state, 1);
                    }
                }
            }
        })
    };
    let value = match ran {
        Ok(value) => value,
        Err(e) => return Started::Failed(e),
    };
    match status {
        ffi::LUA_OK => match read {
            Some(response) => Started::Read(response),
            None => Started::Returned(value),
        },
        ffi::LUA_YIELD => Started::Yielded,
        failed => Started::Failed(lua_error(failed, value)),
    }
}

/// The error a failed resume left, as mlua's `pop_error` makes it.
fn lua_error(status: c_int, value: Value) -> mlua::Error {
    let text = |v: &Value| match v {
        Value::String(s) => s.to_string_lossy(),
        other => other
            .to_string()
            .unwrap_or_else(|_| format!("{} error", other.type_name())),
    };
    match value {
        Value::Error(e) => *e,
        other if status == ffi::LUA_ERRMEM => mlua::Error::MemoryError(text(&other)),
        other => mlua::Error::RuntimeError(text(&other)),
    }
}

/// A handler's answer of the common shape, read straight off the Lua
/// stack in the protected call that ran the handler ([`start`]): a
/// string, or a table whose `status` is a valid integer status or nil,
/// whose `headers` is nil or a table of valid string values named by
/// valid string names, and whose `body` is a string or nil. Anything else,
/// invalid answers included, is `None`: [`response`] then reads the answer
/// again, with its conversions and error messages, so both agree on every
/// answer.
///
/// # Safety
///
/// `state` is in a protected call whose stack holds the keys `status`,
/// `headers` and `body` at `keys`, `keys + 1`, `keys + 2`, the answer at
/// `at`, and nothing above it; it has room for 3 more values. Values this
/// pushes stay on the stack for the caller to drop. Nothing here raises a
/// Lua error (raw reads, `lua_next` over an unmodified table, `lua_tolstring`
/// only on strings), so no Rust value is skipped by a `longjmp`.
pub(super) unsafe fn read_response(
    state: *mut ffi::lua_State,
    keys: c_int,
    at: c_int,
) -> Option<Response> {
    // SAFETY: as the caller promised.
    unsafe {
        match ffi::lua_type(state, at) {
            ffi::LUA_TSTRING => {
                return Some(into_response(
                    StatusCode::OK,
                    HeaderMap::new(),
                    bytes_at(state, at).to_vec(),
                ));
            }
            ffi::LUA_TTABLE => {}
            _ => return None,
        }
        ffi::lua_pushvalue(state, keys);
        let status = match ffi::lua_rawget(state, at) {
            ffi::LUA_TNIL => StatusCode::OK,
            ffi::LUA_TNUMBER if ffi::lua_isinteger(state, -1) != 0 => {
                let code = ffi::lua_tointegerx(state, -1, std::ptr::null_mut());
                StatusCode::from_u16(u16::try_from(code).ok()?).ok()?
            }
            _ => return None,
        };
        ffi::lua_settop(state, at);
        let mut headers = HeaderMap::new();
        ffi::lua_pushvalue(state, keys + 1);
        match ffi::lua_rawget(state, at) {
            ffi::LUA_TNIL => {}
            ffi::LUA_TTABLE => {
                let list = ffi::lua_gettop(state);
                ffi::lua_pushnil(state);
                while ffi::lua_next(state, list) != 0 {
                    if ffi::lua_type(state, -2) != ffi::LUA_TSTRING
                        || ffi::lua_type(state, -1) != ffi::LUA_TSTRING
                    {
                        return None;
                    }
                    let name = HeaderName::from_bytes(bytes_at(state, -2)).ok()?;
                    let value = HeaderValue::from_bytes(bytes_at(state, -1)).ok()?;
                    headers.try_append(name, value).ok()?;
                    ffi::lua_settop(state, -2);
                }
            }
            _ => return None,
        }
        ffi::lua_settop(state, at);
        ffi::lua_pushvalue(state, keys + 2);
        let body = match ffi::lua_rawget(state, at) {
            ffi::LUA_TSTRING => Bytes::copy_from_slice(bytes_at(state, -1)),
            ffi::LUA_TNIL => Bytes::new(),
            _ => return None,
        };
        ffi::lua_settop(state, at);
        let mut resp = http::Response::new(crate::Body::full(body));
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        Some(resp)
    }
}

/// The bytes of the string at `idx`, valid while it stays on the stack.
///
/// # Safety
///
/// The value at `idx` is a string (so `lua_tolstring` neither converts
/// nor allocates).
unsafe fn bytes_at<'a>(state: *mut ffi::lua_State, idx: c_int) -> &'a [u8] {
    let mut len = 0usize;
    // SAFETY: a string's bytes stay put while it is on the stack.
    unsafe {
        let p = ffi::lua_tolstring(state, idx, &mut len);
        std::slice::from_raw_parts(p.cast::<u8>(), len)
    }
}
