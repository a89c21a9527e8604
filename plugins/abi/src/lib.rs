//! The C ABI of Troupe modules, mirrored in Rust.
//!
//! `plugins/include/troupe_module.h` is the contract; this crate is its
//! `#[repr(C)]` twin, shared by the host (which loads modules) and the Rust
//! SDK (which exports them), so both sides agree on one layout. Read the
//! header for the ownership rules: everything passed in is borrowed for the
//! call, and a module never hands memory to the host.
//!
//! Nothing here is safe to use directly; the host wraps it in `troupe`'s
//! `modules::native`, and module authors use the `troupe-module` SDK.
#![deny(missing_docs)]

use std::ffi::{c_char, c_void};

/// The ABI's major version (`TROUPE_ABI_MAJOR`): a module must match it.
pub const ABI_MAJOR: u32 = 1;
/// The revision of the major version this crate describes
/// (`TROUPE_ABI_REVISION`): 1 added the WebSocket hooks and functions,
/// 2 the host's `set_rate_key`.
pub const ABI_REVISION: u32 = 2;
/// The ABI version this crate describes (`TROUPE_ABI_VERSION`): the major
/// version in the low 16 bits, the revision in the high 16.
pub const ABI_VERSION: u32 = ABI_MAJOR | ABI_REVISION << 16;

/// The major version of an `abi_version`.
pub const fn major(version: u32) -> u32 {
    version & 0xffff
}

/// The revision of an `abi_version`.
pub const fn revision(version: u32) -> u32 {
    version >> 16
}

/// The first revision with the WebSocket hooks and host functions.
pub const REVISION_WEBSOCKET: u32 = 1;
/// The first revision whose host table has `set_rate_key`.
pub const REVISION_RATE_KEY: u32 = 2;

/// `TROUPE_WS_TEXT`: a text message (UTF-8).
pub const WS_TEXT: u32 = 1;
/// `TROUPE_WS_BINARY`: a binary message.
pub const WS_BINARY: u32 = 2;

/// The one symbol a module exports (`TROUPE_ENTRY_SYMBOL`).
pub const ENTRY_SYMBOL: &str = "troupe_module_entry";

/// `TROUPE_OK`: success; from `request_filter`, continue to the handler.
pub const OK: i32 = 0;
/// `TROUPE_RESPOND`: from `request_filter`, answer with the response now.
pub const RESPOND: i32 = 1;
/// `TROUPE_ERROR`: the hook failed; from `kv_set`, the write did not
/// reach the store.
pub const ERROR: i32 = -1;
/// `TROUPE_KV_FULL`: from `kv_set`, the write was refused because the
/// module is at its store quota (`kv` in its config).
pub const KV_FULL: i32 = 1;

/// Log levels for [`Host::log`], `TROUPE_LOG_*`.
pub mod level {
    /// An error.
    pub const ERROR: u32 = 1;
    /// A warning.
    pub const WARN: u32 = 2;
    /// Information.
    pub const INFO: u32 = 3;
    /// Debugging detail.
    pub const DEBUG: u32 = 4;
    /// Tracing detail.
    pub const TRACE: u32 = 5;
}

/// A borrowed byte string (`troupe_str`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Str {
    /// First byte; may be null when `len` is 0.
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl Str {
    /// Borrows a byte slice for the duration of a call.
    pub fn new(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// The bytes.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that outlive `'a` (or `len`
    /// must be 0).
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            &[]
        } else {
            // SAFETY: the caller guarantees `ptr` points to `len` bytes.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// One header field or route parameter (`troupe_pair`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Pair {
    /// Name.
    pub name: Str,
    /// Value.
    pub value: Str,
}

/// A request, borrowed for one hook call (`troupe_request`).
#[repr(C)]
#[derive(Debug)]
pub struct Request {
    /// The method.
    pub method: Str,
    /// The decoded, normalized path.
    pub path: Str,
    /// The raw query string, without `?`.
    pub query: Str,
    /// Header fields; names are lower case.
    pub headers: *const Pair,
    /// Number of header fields.
    pub headers_len: usize,
    /// Route parameters.
    pub params: *const Pair,
    /// Number of route parameters.
    pub params_len: usize,
    /// The buffered body.
    pub body: Str,
    /// The client's `ip:port`.
    pub peer: Str,
}

/// A response under construction, owned by the host (`troupe_response`).
#[repr(C)]
pub struct Response {
    _opaque: [u8; 0],
}

/// What the log hook sees (`troupe_log_entry`).
#[repr(C)]
#[derive(Debug)]
pub struct LogEntry {
    /// The method.
    pub method: Str,
    /// The decoded path.
    pub path: Str,
    /// The raw query string.
    pub query: Str,
    /// The client's `ip:port`.
    pub peer: Str,
    /// The response status.
    pub status: u16,
    /// Response body bytes, when known up front.
    pub bytes: u64,
    /// Microseconds from routing to the response head.
    pub duration_us: u64,
}

/// The host API table (`troupe_host`).
#[repr(C)]
pub struct Host {
    /// [`ABI_VERSION`].
    pub abi_version: u32,
    /// Passed back as the first argument of the store, log and metric calls.
    pub ctx: *mut c_void,
    /// Logs a message at a level.
    pub log: unsafe extern "C" fn(ctx: *mut c_void, level: u32, msg: Str),
    /// Copies up to `cap` bytes of a value; returns its length or -1.
    pub kv_get: unsafe extern "C" fn(ctx: *mut c_void, key: Str, buf: *mut u8, cap: usize) -> i64,
    /// Sets a key: [`OK`], [`KV_FULL`] (over the module's quota) or
    /// [`ERROR`]. (A `void` before the quotas: modules that ignore the
    /// result keep working.)
    pub kv_set: unsafe extern "C" fn(ctx: *mut c_void, key: Str, value: Str) -> i32,
    /// Deletes a key.
    pub kv_delete: unsafe extern "C" fn(ctx: *mut c_void, key: Str),
    /// Adds to a named counter.
    pub metric_incr: unsafe extern "C" fn(ctx: *mut c_void, name: Str, by: u64),
    /// Sets the response status.
    pub set_status: unsafe extern "C" fn(resp: *mut Response, status: u16),
    /// The response status.
    pub status: unsafe extern "C" fn(resp: *const Response) -> u16,
    /// Appends a header field.
    pub add_header: unsafe extern "C" fn(resp: *mut Response, name: Str, value: Str),
    /// Replaces a header field.
    pub set_header: unsafe extern "C" fn(resp: *mut Response, name: Str, value: Str),
    /// Appends to the body.
    pub append_body: unsafe extern "C" fn(resp: *mut Response, bytes: Str),

    // ---- WebSocket (revision 1) ----
    /// Queues a message ([`WS_TEXT`] or [`WS_BINARY`]) for a socket:
    /// [`OK`] or [`ERROR`] (gone, not the module's, queue full, bad UTF-8).
    pub ws_send: unsafe extern "C" fn(ctx: *mut c_void, socket: u64, kind: u32, data: Str) -> i32,
    /// Closes a socket with a code and a reason, after what is queued.
    pub ws_end: unsafe extern "C" fn(ctx: *mut c_void, socket: u64, code: u16, reason: Str) -> i32,

    // ---- Request filters (revision 1) ----
    /// From `request_filter`: sends this request to the upstream group
    /// `name` instead of its `Proxy` route's (`TROUPE_OK` to go on).
    pub set_upstream: unsafe extern "C" fn(resp: *mut Response, name: Str),
    // ---- Rate-limit keys (revision 2) ----
    /// From `request_filter`: the key this request counts under in the
    /// rate-limit zones keyed by `Module` (`TROUPE_OK` to go on). Only in
    /// a host table of revision [`REVISION_RATE_KEY`] or later.
    pub set_rate_key: unsafe extern "C" fn(resp: *mut Response, key: Str),
}

/// `init`: creates an instance.
pub type InitFn =
    unsafe extern "C" fn(host: *const Host, config: Str, instance: *mut *mut c_void) -> i32;
/// `handle`: answers a request.
pub type HandleFn =
    unsafe extern "C" fn(instance: *mut c_void, req: *const Request, resp: *mut Response) -> i32;
/// `response_filter`: changes a response head.
pub type ResponseFilterFn = unsafe extern "C" fn(instance: *mut c_void, resp: *mut Response) -> i32;
/// `log`: sees a finished request.
pub type LogFn = unsafe extern "C" fn(instance: *mut c_void, entry: *const LogEntry);
/// `ws_open`: a socket asks to open (same codes as `request_filter`).
pub type WsOpenFn = unsafe extern "C" fn(
    instance: *mut c_void,
    socket: u64,
    req: *const Request,
    resp: *mut Response,
) -> i32;
/// `ws_message`: one whole message.
pub type WsMessageFn =
    unsafe extern "C" fn(instance: *mut c_void, socket: u64, kind: u32, data: Str) -> i32;
/// `ws_close`: the socket is gone.
pub type WsCloseFn = unsafe extern "C" fn(instance: *mut c_void, socket: u64, code: u16);
/// `shutdown`: frees the instance.
pub type ShutdownFn = unsafe extern "C" fn(instance: *mut c_void);

/// The descriptor a module exports (`troupe_module`).
#[repr(C)]
#[derive(Debug)]
pub struct Module {
    /// [`ABI_VERSION`]: its [`major`] must be [`ABI_MAJOR`]; its
    /// [`revision`] says which of the fields below it has.
    pub abi_version: u32,
    /// NUL-terminated name, for logs.
    pub name: *const c_char,
    /// Creates an instance.
    pub init: Option<InitFn>,
    /// Answers requests routed to the module.
    pub handle: Option<HandleFn>,
    /// Middleware before the handler (same signature as `handle`).
    pub request_filter: Option<HandleFn>,
    /// Middleware after the handler.
    pub response_filter: Option<ResponseFilterFn>,
    /// Log hook.
    pub log: Option<LogFn>,
    /// Frees the instance.
    pub shutdown: Option<ShutdownFn>,

    // ---- WebSocket (revision 1): absent from a revision 0 descriptor ----
    /// A socket asks to open.
    pub ws_open: Option<WsOpenFn>,
    /// One whole message on a socket.
    pub ws_message: Option<WsMessageFn>,
    /// A socket is gone.
    pub ws_close: Option<WsCloseFn>,
}

// SAFETY: a descriptor is an immutable static in the module.
unsafe impl Sync for Module {}

/// `troupe_module_entry`.
pub type EntryFn = unsafe extern "C" fn() -> *const Module;
