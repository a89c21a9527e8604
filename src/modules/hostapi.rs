//! The host API (P2.10): what every module may call, whatever its language.
//!
//! [`Services`] is the language-neutral set (log, a shared key-value store
//! with a quota per module, metric counters). In the server it is [`LocalServices`]; in a module's
//! child process it forwards to the server over the socket. The `extern "C"`
//! table in `table` exposes it, plus the response builder, to native code.

#![allow(unsafe_code)]

use std::ffi::c_void;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use troupe_abi as abi;

pub use super::kv::KvRefused;
use super::kv::{KvQuota, Store};

/// What a module can reach in the host.
pub trait Services: Send + Sync + 'static {
    /// Writes to the error log, tagged with the module.
    fn log(&self, module: &str, level: u32, msg: &str);
    /// Reads the shared store.
    fn kv_get(&self, key: &str) -> Option<Bytes>;
    /// Writes the shared store, charged to `module`; refused past its
    /// quota.
    fn kv_set(&self, module: &str, key: &str, value: Bytes) -> Result<(), KvRefused>;
    /// Deletes from the shared store (whoever wrote the key).
    fn kv_delete(&self, key: &str);
    /// Adds to the module's counter `name`.
    fn metric(&self, module: &str, name: &str, by: u64);
}

/// Logs a module's message through `tracing` at its level.
pub fn log_at(module: &str, level: u32, msg: &str) {
    match level {
        abi::level::ERROR => tracing::error!(module, "{msg}"),
        abi::level::WARN => tracing::warn!(module, "{msg}"),
        abi::level::INFO => tracing::info!(module, "{msg}"),
        abi::level::DEBUG => tracing::debug!(module, "{msg}"),
        _ => tracing::trace!(module, "{msg}"),
    }
}

/// The server's own services: one store and one counter family, shared by
/// every module of every kind.
#[derive(Debug)]
pub struct LocalServices {
    kv: Store,
    counters: prometheus::IntCounterVec,
}

impl LocalServices {
    /// Services whose counters are registered in `registry`.
    pub fn new(registry: &prometheus::Registry) -> Self {
        let counters = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "troupe_module_counter_total",
                "Counters incremented by modules through the host API.",
            ),
            &["module", "name"],
        )
        .expect("the metric name and labels are valid");
        // A second server in one process registers again; the first wins.
        let _ = registry.register(Box::new(counters.clone()));
        Self {
            kv: Store::new(registry),
            counters,
        }
    }

    /// Sets `module`'s share of the store (its `kv` config), at each load.
    pub fn set_kv_quota(&self, module: &str, quota: KvQuota) {
        self.kv.set_quota(module, quota);
    }

    /// What `module` holds in the store: (keys, bytes charged).
    pub fn kv_usage(&self, module: &str) -> (u64, u64) {
        self.kv.usage(module)
    }

    /// How many of `module`'s writes were refused.
    pub fn kv_refused(&self, module: &str) -> u64 {
        self.kv.refused(module)
    }

    /// The family modules count into (`module` and `name` labels).
    pub fn counters(&self) -> &prometheus::IntCounterVec {
        &self.counters
    }

    /// A counter's value, for tests and the admin API.
    pub fn counter(&self, module: &str, name: &str) -> u64 {
        self.counters.with_label_values(&[module, name]).get()
    }
}

impl Services for LocalServices {
    fn log(&self, module: &str, level: u32, msg: &str) {
        log_at(module, level, msg);
    }

    fn kv_get(&self, key: &str) -> Option<Bytes> {
        self.kv.get(key)
    }

    fn kv_set(&self, module: &str, key: &str, value: Bytes) -> Result<(), KvRefused> {
        self.kv.set(module, key, value)
    }

    fn kv_delete(&self, key: &str) {
        self.kv.delete(key);
    }

    fn metric(&self, module: &str, name: &str, by: u64) {
        self.counters.with_label_values(&[module, name]).inc_by(by);
    }
}

/// A host API that keeps nothing and logs nothing: what a script's top
/// level sees when the config check runs it.
#[cfg(feature = "lua")]
#[derive(Debug)]
pub(crate) struct Detached;

#[cfg(feature = "lua")]
impl Services for Detached {
    fn log(&self, _module: &str, _level: u32, _msg: &str) {}

    fn kv_get(&self, _key: &str) -> Option<Bytes> {
        None
    }

    fn kv_set(&self, _module: &str, _key: &str, _value: Bytes) -> Result<(), KvRefused> {
        Ok(())
    }

    fn kv_delete(&self, _key: &str) {}

    fn metric(&self, _module: &str, _name: &str, _by: u64) {}
}

/// A response a module builds through the host table.
#[derive(Debug)]
pub struct Builder {
    /// The status (200 unless set).
    pub status: u16,
    /// The header fields.
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Whether `append_body` is honoured (not in a response filter).
    body_open: bool,
    /// The first invalid thing the module did (a bad header name, say).
    pub invalid: Option<&'static str>,
    /// The upstream group a request filter chose (`set_upstream`).
    pub upstream: Option<String>,
    /// The rate-limit key a request filter chose (`set_rate_key`).
    pub rate_key: Option<Vec<u8>>,
}

impl Builder {
    /// A fresh 200 with no headers, as `handle` and `request_filter` see it.
    pub fn new() -> Self {
        Self {
            status: 200,
            headers: HeaderMap::new(),
            body: Vec::new(),
            body_open: true,
            invalid: None,
            upstream: None,
            rate_key: None,
        }
    }

    /// A handler's response head, as a response filter sees it.
    pub fn head(status: u16, headers: HeaderMap) -> Self {
        Self {
            status,
            headers,
            body: Vec::new(),
            body_open: false,
            invalid: None,
            upstream: None,
            rate_key: None,
        }
    }

    fn invalid(&mut self, why: &'static str) {
        self.invalid.get_or_insert(why);
    }

    /// The status, checked.
    pub fn status_code(&self) -> Result<StatusCode, &'static str> {
        if let Some(why) = self.invalid {
            return Err(why);
        }
        StatusCode::from_u16(self.status).map_err(|_| "invalid status")
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

/// The context behind `troupe_host.ctx`: who is calling, and the services.
pub struct HostCtx {
    module: std::sync::Arc<str>,
    /// Emptied when the instance is dropped: a module thread that outlives
    /// its instance then calls into nothing instead of freed memory.
    services: std::sync::RwLock<Option<std::sync::Arc<dyn Services>>>,
}

impl HostCtx {
    /// The context of one instance of `module`.
    pub fn new(module: std::sync::Arc<str>, services: std::sync::Arc<dyn Services>) -> Self {
        Self {
            module,
            services: std::sync::RwLock::new(Some(services)),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&dyn Services) -> R) -> Option<R> {
        let guard = self.services.read().ok()?;
        guard.as_deref().map(f)
    }
}

/// The host table handed to a native module's `init`, and the context it
/// points at.
///
/// Both are leaked on purpose (a few hundred bytes per instance): the SDK
/// hands out a `'static` host handle that a module thread may keep past
/// `shutdown`, so the table must stay valid; dropping the `HostTable`
/// only disconnects it from the services.
pub struct HostTable {
    table: &'static abi::Host,
    ctx: &'static HostCtx,
}

// SAFETY: the table is immutable after construction, and `ctx` is a
// `HostCtx`, which is `Send + Sync`.
unsafe impl Send for HostTable {}
unsafe impl Sync for HostTable {}

impl Drop for HostTable {
    fn drop(&mut self) {
        if let Ok(mut services) = self.ctx.services.write() {
            *services = None;
        }
    }
}

impl HostTable {
    /// A table whose calls go to `ctx`.
    pub fn new(ctx: HostCtx) -> Self {
        let ctx: &'static HostCtx = Box::leak(Box::new(ctx));
        let table = Box::leak(Box::new(abi::Host {
            abi_version: abi::ABI_VERSION,
            ctx: (ctx as *const HostCtx).cast_mut().cast(),
            log: table::log,
            kv_get: table::kv_get,
            kv_set: table::kv_set,
            kv_delete: table::kv_delete,
            metric_incr: table::metric_incr,
            set_status: table::set_status,
            status: table::status,
            add_header: table::add_header,
            set_header: table::set_header,
            append_body: table::append_body,
            ws_send: table::ws_send,
            ws_end: table::ws_end,
            set_upstream: table::set_upstream,
            set_rate_key: table::set_rate_key,
        }));
        Self { table, ctx }
    }

    /// The pointer passed to `init`.
    pub fn as_ptr(&self) -> *const abi::Host {
        self.table
    }

    /// The module's name.
    pub fn module(&self) -> &std::sync::Arc<str> {
        &self.ctx.module
    }
}

/// The `extern "C"` functions of the host table. None of them unwinds: they
/// only copy and validate, and never panic on what a module passes.
mod table {
    use super::*;

    /// # Safety
    /// `ctx` is the `HostCtx` of a live [`HostTable`].
    unsafe fn ctx<'a>(ctx: *mut c_void) -> &'a HostCtx {
        // SAFETY: see above; the module only has this pointer from its table.
        unsafe { &*ctx.cast::<HostCtx>() }
    }

    /// # Safety
    /// `s` is borrowed from the module for the call.
    unsafe fn text<'a>(s: abi::Str) -> std::borrow::Cow<'a, str> {
        // SAFETY: see above.
        String::from_utf8_lossy(unsafe { s.as_bytes() })
    }

    /// # Safety
    /// `resp` is a [`Builder`] the host passed to the running hook.
    unsafe fn builder<'a>(resp: *mut abi::Response) -> &'a mut Builder {
        // SAFETY: see above.
        unsafe { &mut *resp.cast::<Builder>() }
    }

    pub(super) unsafe extern "C" fn log(c: *mut c_void, level: u32, msg: abi::Str) {
        // SAFETY: the table's contract (troupe_module.h).
        let (c, msg) = unsafe { (ctx(c), text(msg)) };
        c.with(|s| s.log(&c.module, level, &msg));
    }

    pub(super) unsafe extern "C" fn kv_get(
        c: *mut c_void,
        key: abi::Str,
        buf: *mut u8,
        cap: usize,
    ) -> i64 {
        // SAFETY: the table's contract.
        let (c, key) = unsafe { (ctx(c), text(key)) };
        let Some(value) = c.with(|s| s.kv_get(&key)).flatten() else {
            return -1;
        };
        let n = value.len().min(cap);
        if n > 0 && !buf.is_null() {
            // SAFETY: the module gave `cap` writable bytes at `buf`.
            unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), buf, n) };
        }
        i64::try_from(value.len()).unwrap_or(i64::MAX)
    }

    pub(super) unsafe extern "C" fn kv_set(c: *mut c_void, key: abi::Str, value: abi::Str) -> i32 {
        // SAFETY: the table's contract.
        let (c, key, value) = unsafe { (ctx(c), text(key), value.as_bytes()) };
        match c.with(|s| s.kv_set(&c.module, &key, Bytes::copy_from_slice(value))) {
            Some(Ok(())) => abi::OK,
            Some(Err(refused)) => refused.code(),
            // The instance is gone: nothing was stored.
            None => abi::ERROR,
        }
    }

    pub(super) unsafe extern "C" fn kv_delete(c: *mut c_void, key: abi::Str) {
        // SAFETY: the table's contract.
        let (c, key) = unsafe { (ctx(c), text(key)) };
        c.with(|s| s.kv_delete(&key));
    }

    pub(super) unsafe extern "C" fn metric_incr(c: *mut c_void, name: abi::Str, by: u64) {
        // SAFETY: the table's contract.
        let (c, name) = unsafe { (ctx(c), text(name)) };
        c.with(|s| s.metric(&c.module, &name, by));
    }

    pub(super) unsafe extern "C" fn set_status(resp: *mut abi::Response, status: u16) {
        // SAFETY: the table's contract.
        let b = unsafe { builder(resp) };
        if (100..=999).contains(&status) {
            b.status = status;
        } else {
            b.invalid("invalid status");
        }
    }

    pub(super) unsafe extern "C" fn status(resp: *const abi::Response) -> u16 {
        // SAFETY: the table's contract.
        unsafe { builder(resp.cast_mut()) }.status
    }

    /// # Safety
    /// The table's contract.
    unsafe fn field(
        b: &mut Builder,
        name: abi::Str,
        value: abi::Str,
    ) -> Option<(HeaderName, HeaderValue)> {
        // SAFETY: borrowed for the call.
        let (name, value) = unsafe { (name.as_bytes(), value.as_bytes()) };
        match (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            (Ok(n), Ok(v)) => Some((n, v)),
            _ => {
                b.invalid("invalid response header");
                None
            }
        }
    }

    pub(super) unsafe extern "C" fn add_header(
        resp: *mut abi::Response,
        name: abi::Str,
        value: abi::Str,
    ) {
        // SAFETY: the table's contract.
        let b = unsafe { builder(resp) };
        // SAFETY: the table's contract.
        if let Some((n, v)) = unsafe { field(b, name, value) }
            && b.headers.try_append(n, v).is_err()
        {
            b.invalid("too many response headers");
        }
    }

    pub(super) unsafe extern "C" fn set_header(
        resp: *mut abi::Response,
        name: abi::Str,
        value: abi::Str,
    ) {
        // SAFETY: the table's contract.
        let b = unsafe { builder(resp) };
        // SAFETY: the table's contract.
        if let Some((n, v)) = unsafe { field(b, name, value) }
            && b.headers.try_insert(n, v).is_err()
        {
            b.invalid("too many response headers");
        }
    }

    // ---- WebSocket (revision 1): sockets by id, `ws/registry.rs` ----

    pub(super) unsafe extern "C" fn ws_send(
        c: *mut c_void,
        socket: u64,
        kind: u32,
        data: abi::Str,
    ) -> i32 {
        // SAFETY: the table's contract.
        let (c, data) = unsafe { (ctx(c), data.as_bytes()) };
        match super::super::ws::registry::send(&c.module, socket, kind, data) {
            Ok(()) => abi::OK,
            Err(_) => abi::ERROR,
        }
    }

    pub(super) unsafe extern "C" fn ws_end(
        c: *mut c_void,
        socket: u64,
        code: u16,
        reason: abi::Str,
    ) -> i32 {
        // SAFETY: the table's contract.
        let (c, reason) = unsafe { (ctx(c), reason.as_bytes()) };
        match super::super::ws::registry::end(&c.module, socket, code, reason) {
            Ok(()) => abi::OK,
            Err(_) => abi::ERROR,
        }
    }

    pub(super) unsafe extern "C" fn set_upstream(resp: *mut abi::Response, name: abi::Str) {
        // SAFETY: the table's contract.
        let (b, name) = unsafe { (builder(resp), text(name)) };
        b.upstream = Some(name.into_owned());
    }

    pub(super) unsafe extern "C" fn set_rate_key(resp: *mut abi::Response, key: abi::Str) {
        // SAFETY: the table's contract.
        let (b, key) = unsafe { (builder(resp), key.as_bytes()) };
        b.rate_key = Some(key.to_vec());
    }

    pub(super) unsafe extern "C" fn append_body(resp: *mut abi::Response, bytes: abi::Str) {
        // SAFETY: the table's contract.
        let b = unsafe { builder(resp) };
        if b.body_open {
            // SAFETY: borrowed for the call.
            b.body.extend_from_slice(unsafe { bytes.as_bytes() });
        }
    }
}
