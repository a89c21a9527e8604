//! The C ABI written for a [`Module`]: what [`export_module!`](crate::export_module) expands to.
//!
//! Each `extern "C"` function here is generic over the module type and
//! runs the module inside `catch_unwind`, so a panic turns into
//! `TROUPE_ERROR` (logged through the host) and never crosses the boundary:
//! a panic unwinding out of a separately built library aborts the server.

use std::{
    ffi::c_void,
    panic::{AssertUnwindSafe, catch_unwind},
};

use troupe_abi as abi;

use crate::{Filter, Host, Level, LogEntry, Module, Request, Response, WebSocket, WsMessage};

/// An instance as the host holds it: the module and its host table.
struct Instance<M> {
    module: M,
    host: Host,
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Runs a hook: an `Err` or a panic is logged and becomes `TROUPE_ERROR`.
fn guarded(host: Host, hook: &str, f: impl FnOnce() -> Result<i32, crate::Error>) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            host.log(Level::Error, &format!("{hook} failed: {e}"));
            abi::ERROR
        }
        Err(payload) => {
            let msg = panic_message(&*payload);
            // Logging itself must not unwind out of here either.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                host.log(Level::Error, &format!("{hook} panicked: {msg}"))
            }));
            abi::ERROR
        }
    }
}

/// # Safety
/// Called by the host only, as `init`.
pub unsafe extern "C" fn init<M: Module>(
    host: *const abi::Host,
    config: abi::Str,
    out: *mut *mut c_void,
) -> i32 {
    if host.is_null() || out.is_null() {
        return abi::ERROR;
    }
    // SAFETY: the host passes its table, valid until shutdown.
    let host = unsafe { Host::from_raw(host) };
    guarded(host, "init", || {
        // SAFETY: the config is borrowed for the call.
        let config = std::str::from_utf8(unsafe { config.as_bytes() })
            .map_err(|_| crate::Error::new("config is not UTF-8"))?;
        let module = M::init(host, config)?;
        let instance = Box::new(Instance { module, host });
        // SAFETY: `out` is the host's slot for the instance pointer.
        unsafe { *out = Box::into_raw(instance).cast() };
        Ok(abi::OK)
    })
}

/// # Safety
/// `instance` must come from [`init`] with the same `M`.
unsafe fn instance<'a, M>(ptr: *mut c_void) -> &'a Instance<M> {
    // SAFETY: see the function's contract.
    unsafe { &*ptr.cast::<Instance<M>>() }
}

/// # Safety
/// Called by the host only, as `handle`.
pub unsafe extern "C" fn handle<M: Module>(
    ptr: *mut c_void,
    req: *const abi::Request,
    resp: *mut abi::Response,
) -> i32 {
    // SAFETY: the host passes the instance from init and a live request.
    let (me, req) = unsafe { (instance::<M>(ptr), &*req) };
    guarded(me.host, "handle", || {
        let mut resp = Response::from_raw(me.host, resp);
        me.module.handle(&Request::from_raw(req), &mut resp)?;
        Ok(abi::OK)
    })
}

/// # Safety
/// Called by the host only, as `request_filter`.
pub unsafe extern "C" fn request_filter<M: Module>(
    ptr: *mut c_void,
    req: *const abi::Request,
    resp: *mut abi::Response,
) -> i32 {
    // SAFETY: as in `handle`.
    let (me, req) = unsafe { (instance::<M>(ptr), &*req) };
    guarded(me.host, "request_filter", || {
        let mut resp = Response::from_raw(me.host, resp);
        Ok(
            match me
                .module
                .request_filter(&Request::from_raw(req), &mut resp)?
            {
                Filter::Continue => abi::OK,
                Filter::Respond => abi::RESPOND,
            },
        )
    })
}

/// # Safety
/// Called by the host only, as `response_filter`.
pub unsafe extern "C" fn response_filter<M: Module>(
    ptr: *mut c_void,
    resp: *mut abi::Response,
) -> i32 {
    // SAFETY: as in `handle`.
    let me = unsafe { instance::<M>(ptr) };
    guarded(me.host, "response_filter", || {
        me.module
            .response_filter(&mut Response::from_raw(me.host, resp))?;
        Ok(abi::OK)
    })
}

/// # Safety
/// Called by the host only, as `log`.
pub unsafe extern "C" fn log<M: Module>(ptr: *mut c_void, entry: *const abi::LogEntry) {
    // SAFETY: as in `handle`.
    let (me, entry) = unsafe { (instance::<M>(ptr), &*entry) };
    guarded(me.host, "log", || {
        me.module.log(&LogEntry::from_raw(entry));
        Ok(abi::OK)
    });
}

/// # Safety
/// Called by the host only, as `ws_open`.
pub unsafe extern "C" fn ws_open<M: Module>(
    ptr: *mut c_void,
    socket: u64,
    req: *const abi::Request,
    resp: *mut abi::Response,
) -> i32 {
    // SAFETY: as in `handle`.
    let (me, req) = unsafe { (instance::<M>(ptr), &*req) };
    guarded(me.host, "ws_open", || {
        let mut resp = Response::from_raw(me.host, resp);
        let ws = WebSocket::from_raw(me.host, socket);
        Ok(
            match me.module.ws_open(ws, &Request::from_raw(req), &mut resp)? {
                Filter::Continue => abi::OK,
                Filter::Respond => abi::RESPOND,
            },
        )
    })
}

/// # Safety
/// Called by the host only, as `ws_message`.
pub unsafe extern "C" fn ws_message<M: Module>(
    ptr: *mut c_void,
    socket: u64,
    kind: u32,
    data: abi::Str,
) -> i32 {
    // SAFETY: as in `handle`; `data` is borrowed for the call.
    let (me, data) = unsafe { (instance::<M>(ptr), data.as_bytes()) };
    guarded(me.host, "ws_message", || {
        let msg = match kind {
            abi::WS_TEXT => WsMessage::Text(
                std::str::from_utf8(data).map_err(|_| crate::Error::new("text is not UTF-8"))?,
            ),
            _ => WsMessage::Binary(data),
        };
        me.module
            .ws_message(WebSocket::from_raw(me.host, socket), msg)?;
        Ok(abi::OK)
    })
}

/// # Safety
/// Called by the host only, as `ws_close`.
pub unsafe extern "C" fn ws_close<M: Module>(ptr: *mut c_void, socket: u64, code: u16) {
    // SAFETY: as in `handle`.
    let me = unsafe { instance::<M>(ptr) };
    guarded(me.host, "ws_close", || {
        me.module
            .ws_close(WebSocket::from_raw(me.host, socket), code);
        Ok(abi::OK)
    });
}

/// # Safety
/// Called by the host only, once, as `shutdown`.
pub unsafe extern "C" fn shutdown<M: Module>(ptr: *mut c_void) {
    // SAFETY: the host calls shutdown once, after every other hook.
    let boxed = unsafe { Box::from_raw(ptr.cast::<Instance<M>>()) };
    let host = boxed.host;
    guarded(host, "shutdown", move || {
        boxed.module.shutdown();
        drop(boxed);
        Ok(abi::OK)
    });
}

/// Exports a [`Module`] type as a Troupe module: defines the
/// `troupe_module_entry` symbol with the C ABI underneath. Use it once per
/// `cdylib`.
#[macro_export]
macro_rules! export_module {
    ($module:ty) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn troupe_module_entry() -> *const $crate::abi::Module {
            use $crate::{__export as x, Module as _};
            static DESCRIPTOR: $crate::abi::Module = $crate::abi::Module {
                abi_version: $crate::abi::ABI_VERSION,
                name: concat!(stringify!($module), "\0").as_ptr().cast(),
                init: Some(x::init::<$module>),
                handle: if <$module as $crate::Module>::HOOKS.handle {
                    Some(x::handle::<$module>)
                } else {
                    None
                },
                request_filter: if <$module as $crate::Module>::HOOKS.request_filter {
                    Some(x::request_filter::<$module>)
                } else {
                    None
                },
                response_filter: if <$module as $crate::Module>::HOOKS.response_filter {
                    Some(x::response_filter::<$module>)
                } else {
                    None
                },
                log: if <$module as $crate::Module>::HOOKS.log {
                    Some(x::log::<$module>)
                } else {
                    None
                },
                shutdown: Some(x::shutdown::<$module>),
                ws_open: if <$module as $crate::Module>::HOOKS.websocket {
                    Some(x::ws_open::<$module>)
                } else {
                    None
                },
                ws_message: if <$module as $crate::Module>::HOOKS.websocket {
                    Some(x::ws_message::<$module>)
                } else {
                    None
                },
                ws_close: if <$module as $crate::Module>::HOOKS.websocket {
                    Some(x::ws_close::<$module>)
                } else {
                    None
                },
            };
            &DESCRIPTOR
        }
    };
}
