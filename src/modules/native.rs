//! Native modules (P2.3, P2.4): loading a C-ABI library and calling its hooks.
//!
//! [`Library::open`] copies the file to a unique path before `dlopen`, so a
//! reload gets the new code (reopening a path that is still open returns the
//! old image) while requests in flight finish on the old copy. A C library
//! is unmapped when its last instance is dropped; a Rust one that touched
//! thread-locals is never unmapped by the system loader, so each reload of
//! a Rust module leaks its image (a few MiB) by design.
//!
//! [`Native`] is one initialised instance. Its calls are synchronous and
//! used both in the server (`InProcess`) and in a module's child process.

#![allow(unsafe_code)]

use std::{
    ffi::c_void,
    path::{Path, PathBuf},
    sync::Arc,
};

use troupe_abi as abi;

use super::{
    hostapi::{Builder, HostCtx, HostTable, Services},
    instance::Hooks,
};

/// Why a library cannot be used. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file is missing or unreadable.
    #[error("{file}: cannot read the module: {source}")]
    Read {
        /// The library.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `dlopen` refused it (not a shared library, missing dependencies…).
    #[error("{file}: cannot load the module: {reason}")]
    Open {
        /// The library.
        file: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// The entry symbol is missing.
    #[error(
        "{file}: missing symbol `{symbol}` (a module exports it; see plugins/include/troupe_module.h)"
    )]
    MissingSymbol {
        /// The library.
        file: PathBuf,
        /// The symbol looked up.
        symbol: &'static str,
    },
    /// Built against another version of the ABI.
    #[error(
        "{file}: `{symbol}` reports ABI version {found}, but this server speaks version {expected} (rebuild the module against plugins/include/troupe_module.h)",
        found = version_text(*found),
        expected = version_text(*expected)
    )]
    AbiMismatch {
        /// The library.
        file: PathBuf,
        /// The symbol that described it.
        symbol: &'static str,
        /// Its version.
        found: u32,
        /// Ours.
        expected: u32,
    },
    /// The descriptor has no `init` or no `shutdown`.
    #[error("{file}: the module descriptor has no `{hook}` function")]
    MissingHook {
        /// The library.
        file: PathBuf,
        hook: &'static str,
    },
}

/// An `abi_version` as people read it: `1`, or `1 revision 2`.
fn version_text(v: u32) -> String {
    match abi::revision(v) {
        0 => abi::major(v).to_string(),
        r => format!("{} revision {r}", abi::major(v)),
    }
}

/// What `troupe -t` learns of a native module: its library opens (the
/// symbol, the ABI version) and offers these hooks. Runs no hook.
pub(crate) fn probe(file: &Path) -> Result<Hooks, String> {
    Library::open(file)
        .map(|lib| lib.hooks())
        .map_err(|e| e.to_string())
}

/// An open module library.
pub struct Library {
    // Field order: the descriptor points into the library, which must
    // outlive it (drop order is declaration order).
    desc: &'static abi::Module,
    _lib: libloading::Library,
    file: PathBuf,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library").field("file", &self.file).finish()
    }
}

/// Copies `file` into a fresh private directory (mode 0700, removed when
/// the returned guard drops), so every load maps fresh code and no other
/// user can swap the copy between the copy and the `dlopen`.
fn private_copy(file: &Path) -> std::io::Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("troupe-module-")
        .tempdir()?;
    let name = file.file_name().unwrap_or_else(|| "module.so".as_ref());
    let copy = dir.path().join(name);
    let mut from = std::fs::File::open(file)?;
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&copy)?;
    std::io::copy(&mut from, &mut to)?;
    Ok((dir, copy))
}

impl Library {
    /// Copies `file` to a unique path, loads the copy, and checks its entry
    /// symbol and ABI version. Runs the library's constructors, but no hook.
    pub fn open(file: &Path) -> Result<Self, LoadError> {
        let (dir, copy) = private_copy(file).map_err(|source| LoadError::Read {
            file: file.to_owned(),
            source,
        })?;
        // SAFETY: loading runs the library's initialisers; that is what
        // loading a module means, and the config names this library.
        let lib = unsafe { libloading::Library::new(&copy) };
        // The mapping stays after the copy is removed; nothing is left behind.
        drop(dir);
        let lib = lib.map_err(|e| LoadError::Open {
            file: file.to_owned(),
            reason: e.to_string(),
        })?;
        let symbol = abi::ENTRY_SYMBOL;
        // SAFETY: the symbol's type is fixed by the ABI header.
        let entry = unsafe { lib.get::<abi::EntryFn>(symbol.as_bytes()) }.map_err(|_| {
            LoadError::MissingSymbol {
                file: file.to_owned(),
                symbol,
            }
        })?;
        // SAFETY: the entry point takes nothing and returns a static
        // descriptor inside the library, which `Library` keeps loaded.
        let desc = unsafe { entry() };
        if desc.is_null() {
            return Err(LoadError::MissingSymbol {
                file: file.to_owned(),
                symbol,
            });
        }
        // SAFETY: non-null, static in the library, which outlives `desc`.
        let desc: &'static abi::Module = unsafe { &*desc };
        // A revision we do not know has fields we would not read, and may
        // count on host functions we do not have.
        if abi::major(desc.abi_version) != abi::ABI_MAJOR
            || abi::revision(desc.abi_version) > abi::ABI_REVISION
        {
            return Err(LoadError::AbiMismatch {
                file: file.to_owned(),
                symbol,
                found: desc.abi_version,
                expected: abi::ABI_VERSION,
            });
        }
        for (hook, present) in [
            ("init", desc.init.is_some()),
            ("shutdown", desc.shutdown.is_some()),
        ] {
            if !present {
                return Err(LoadError::MissingHook {
                    file: file.to_owned(),
                    hook,
                });
            }
        }
        Ok(Self {
            desc,
            _lib: lib,
            file: file.to_owned(),
        })
    }

    /// The hooks the module offers.
    pub fn hooks(&self) -> Hooks {
        Hooks {
            handle: self.desc.handle.is_some(),
            request_filter: self.desc.request_filter.is_some(),
            response_filter: self.desc.response_filter.is_some(),
            log: self.desc.log.is_some(),
            ws: self.ws().message.is_some(),
        }
    }

    /// The WebSocket hooks, which only a descriptor of revision 1 or
    /// later has (an older one ends before them).
    fn ws(&self) -> WsHooks {
        if abi::revision(self.desc.abi_version) < abi::REVISION_WEBSOCKET {
            return WsHooks::default();
        }
        WsHooks {
            open: self.desc.ws_open,
            message: self.desc.ws_message,
            close: self.desc.ws_close,
        }
    }
}

/// A module's WebSocket hooks (none for an older descriptor).
#[derive(Default, Clone, Copy)]
struct WsHooks {
    open: Option<abi::WsOpenFn>,
    message: Option<abi::WsMessageFn>,
    close: Option<abi::WsCloseFn>,
}

/// A hook failed; the request gets 500.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The hook returned `TROUPE_ERROR` (or a code it may not return).
    #[error("the module's {hook} hook returned {code}")]
    Code {
        hook: &'static str,
        /// What it returned.
        code: i32,
    },
    /// The response it built is invalid.
    #[error("the module's {hook} hook built an invalid response: {why}")]
    Invalid {
        hook: &'static str,
        /// What was wrong.
        why: &'static str,
    },
    /// The module has no such hook.
    #[error("the module has no {0} hook")]
    Missing(&'static str),
}

impl CallError {
    /// Whether the module should be restarted: it returned an error code
    /// (it says it is broken). An invalid response or a missing hook only
    /// fails the request, so a client cannot make a module restart.
    pub fn restarts(&self) -> bool {
        matches!(self, CallError::Code { .. })
    }
}

/// One initialised instance of a native module.
pub struct Native {
    // Drop order: the instance is shut down (in `Drop`) before the table
    // and the library go.
    ptr: *mut c_void,
    table: HostTable,
    lib: Arc<Library>,
}

// SAFETY: the header requires every hook to be thread-safe, and `ptr` is
// only ever passed back to the module.
unsafe impl Send for Native {}
unsafe impl Sync for Native {}

impl std::fmt::Debug for Native {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Native").field("lib", &self.lib).finish()
    }
}

impl Native {
    /// Runs the module's `init` with its config.
    pub fn init(
        lib: Arc<Library>,
        module: Arc<str>,
        config: &str,
        services: Arc<dyn Services>,
    ) -> Result<Self, CallError> {
        let table = HostTable::new(HostCtx::new(module, services));
        let mut ptr = std::ptr::null_mut();
        let init = lib.desc.init.ok_or(CallError::Missing("init"))?;
        // SAFETY: the ABI: a table valid until shutdown, a borrowed config,
        // and a slot for the instance pointer.
        let code = unsafe { init(table.as_ptr(), abi::Str::new(config.as_bytes()), &mut ptr) };
        if code != abi::OK {
            return Err(CallError::Code { hook: "init", code });
        }
        Ok(Self { ptr, table, lib })
    }

    /// The hooks the module offers.
    pub fn hooks(&self) -> Hooks {
        self.lib.hooks()
    }

    /// The module's name.
    pub fn module(&self) -> &Arc<str> {
        self.table.module()
    }

    /// `handle`: the module's answer.
    pub fn handle(&self, req: &abi::Request) -> Result<Builder, CallError> {
        let hook = self.lib.desc.handle.ok_or(CallError::Missing("handle"))?;
        let mut out = Builder::new();
        // SAFETY: the ABI; `out` outlives the call.
        let code = unsafe { hook(self.ptr, req, (&mut out as *mut Builder).cast()) };
        check("handle", code, &[abi::OK], out).map(|(_, b)| b)
    }

    /// `request_filter`: `(true, response)` to answer now, `(false, _)` to go on.
    pub fn request_filter(&self, req: &abi::Request) -> Result<(bool, Builder), CallError> {
        let hook = self
            .lib
            .desc
            .request_filter
            .ok_or(CallError::Missing("request_filter"))?;
        let mut out = Builder::new();
        // SAFETY: as in `handle`.
        let code = unsafe { hook(self.ptr, req, (&mut out as *mut Builder).cast()) };
        check("request_filter", code, &[abi::OK, abi::RESPOND], out)
            .map(|(code, b)| (code == abi::RESPOND, b))
    }

    /// `response_filter`: changes `head` (a [`Builder::head`]) in place.
    pub fn response_filter(&self, head: Builder) -> Result<Builder, CallError> {
        let hook = self
            .lib
            .desc
            .response_filter
            .ok_or(CallError::Missing("response_filter"))?;
        let mut out = head;
        // SAFETY: as in `handle`.
        let code = unsafe { hook(self.ptr, (&mut out as *mut Builder).cast()) };
        check("response_filter", code, &[abi::OK], out).map(|(_, b)| b)
    }

    /// `log`: sees a finished request.
    pub fn log(&self, entry: &abi::LogEntry) {
        if let Some(hook) = self.lib.desc.log {
            // SAFETY: the ABI; `entry` is borrowed for the call.
            unsafe { hook(self.ptr, entry) }
        }
    }

    /// `ws_open`: `(true, headers)` to accept (the headers go with the
    /// 101), `(false, response)` to refuse. A module without the hook
    /// accepts every socket.
    pub fn ws_open(&self, socket: u64, req: &abi::Request) -> Result<(bool, Builder), CallError> {
        let Some(hook) = self.lib.ws().open else {
            return Ok((true, Builder::new()));
        };
        let mut out = Builder::new();
        // SAFETY: as in `handle`.
        let code = unsafe { hook(self.ptr, socket, req, (&mut out as *mut Builder).cast()) };
        check("ws_open", code, &[abi::OK, abi::RESPOND], out).map(|(code, b)| (code == abi::OK, b))
    }

    /// `ws_message`: one whole message; `Err` closes the socket.
    pub fn ws_message(&self, socket: u64, kind: u32, data: &[u8]) -> Result<(), CallError> {
        let hook = self
            .lib
            .ws()
            .message
            .ok_or(CallError::Missing("ws_message"))?;
        // SAFETY: the ABI; `data` is borrowed for the call.
        let code = unsafe { hook(self.ptr, socket, kind, abi::Str::new(data)) };
        match code {
            abi::OK => Ok(()),
            code => Err(CallError::Code {
                hook: "ws_message",
                code,
            }),
        }
    }

    /// `ws_close`: the socket is gone.
    pub fn ws_close(&self, socket: u64, code: u16) {
        if let Some(hook) = self.lib.ws().close {
            // SAFETY: the ABI.
            unsafe { hook(self.ptr, socket, code) }
        }
    }
}

fn check(
    hook: &'static str,
    code: i32,
    allowed: &[i32],
    out: Builder,
) -> Result<(i32, Builder), CallError> {
    if !allowed.contains(&code) {
        return Err(CallError::Code { hook, code });
    }
    if let Err(why) = out.status_code() {
        return Err(CallError::Invalid { hook, why });
    }
    Ok((code, out))
}

impl Drop for Native {
    fn drop(&mut self) {
        if let Some(shutdown) = self.lib.desc.shutdown {
            // SAFETY: no hook runs any more (this is the last reference), and
            // the table is still alive (fields drop after this).
            unsafe { shutdown(self.ptr) }
        }
        let _ = &self.table;
    }
}

/// Header fields and parameters that fit on the stack; more spill to the heap.
const INLINE_PAIRS: usize = 24;

/// The parts of a request, borrowed, before they take the ABI's shape.
pub struct RequestParts<'a, H, P> {
    pub method: &'a str,
    /// The decoded path.
    pub path: &'a str,
    /// The raw query.
    pub query: &'a str,
    /// Header fields.
    pub headers: H,
    /// Route parameters.
    pub params: P,
    pub body: &'a [u8],
    /// The client's `ip:port`.
    pub peer: &'a str,
}

fn pair(name: &[u8], value: &[u8]) -> abi::Pair {
    abi::Pair {
        name: abi::Str::new(name),
        value: abi::Str::new(value),
    }
}

/// Pairs on the stack, spilling to a `Vec` past [`INLINE_PAIRS`].
struct Pairs {
    inline: [std::mem::MaybeUninit<abi::Pair>; INLINE_PAIRS],
    spilled: Vec<abi::Pair>,
    len: usize,
}

impl Pairs {
    fn push(&mut self, p: abi::Pair) {
        if self.len < INLINE_PAIRS {
            self.inline[self.len].write(p);
        } else {
            if self.spilled.is_empty() {
                // SAFETY: all INLINE_PAIRS slots are written by now.
                let written = self.inline.iter().map(|p| unsafe { p.assume_init() });
                self.spilled.extend(written);
            }
            self.spilled.push(p);
        }
        self.len += 1;
    }

    fn as_slice(&self) -> &[abi::Pair] {
        if self.spilled.is_empty() {
            // SAFETY: the first `len` (≤ INLINE_PAIRS) slots are written,
            // and `MaybeUninit<T>` has the layout of `T`.
            unsafe { std::slice::from_raw_parts(self.inline.as_ptr().cast(), self.len) }
        } else {
            &self.spilled
        }
    }
}

/// Calls `f` with the request as a `troupe_request`.
///
/// This runs on every module call, so the header and parameter pairs are
/// built in place on the stack (no allocation, no copy) unless there are
/// more than `INLINE_PAIRS` of them.
pub fn with_raw_request<'a, H, P, R>(
    parts: RequestParts<'a, H, P>,
    f: impl FnOnce(&abi::Request) -> R,
) -> R
where
    H: Iterator<Item = (&'a [u8], &'a [u8])>,
    P: Iterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut pairs = Pairs {
        inline: [std::mem::MaybeUninit::uninit(); INLINE_PAIRS],
        spilled: Vec::new(),
        len: 0,
    };
    for (n, v) in parts.headers {
        pairs.push(pair(n, v));
    }
    let headers = pairs.len;
    for (n, v) in parts.params {
        pairs.push(pair(n, v));
    }
    let pairs = pairs.as_slice();
    f(&abi::Request {
        method: abi::Str::new(parts.method.as_bytes()),
        path: abi::Str::new(parts.path.as_bytes()),
        query: abi::Str::new(parts.query.as_bytes()),
        headers: pairs.as_ptr(),
        headers_len: headers,
        params: pairs[headers..].as_ptr(),
        params_len: pairs.len() - headers,
        body: abi::Str::new(parts.body),
        peer: abi::Str::new(parts.peer.as_bytes()),
    })
}

/// Formats a peer address without allocating; IPv4 (the common case) by
/// hand, because `Display` for `SocketAddr` cost more than the module call.
pub fn peer_text(peer: std::net::SocketAddr, buf: &mut [u8; 64]) -> &str {
    fn digits(mut n: u32, out: &mut [u8], at: &mut usize) {
        let mut tmp = [0u8; 10];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let d = &tmp[i..];
        out[*at..*at + d.len()].copy_from_slice(d);
        *at += d.len();
    }
    let n = match peer {
        std::net::SocketAddr::V4(v4) => {
            let mut at = 0;
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    buf[at] = b'.';
                    at += 1;
                }
                digits(u32::from(octet), buf, &mut at);
            }
            buf[at] = b':';
            at += 1;
            digits(u32::from(v4.port()), buf, &mut at);
            at
        }
        std::net::SocketAddr::V6(_) => {
            use std::io::Write as _;
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            // 64 bytes hold any "[v6%scope]:port".
            let _ = write!(cursor, "{peer}");
            usize::try_from(cursor.position()).unwrap_or(0)
        }
    };
    // SAFETY: both arms wrote ASCII digits, dots, colons and brackets
    // (or `Display`'s UTF-8) into `buf[..n]`.
    unsafe { std::str::from_utf8_unchecked(&buf[..n]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_requests_spill_past_the_inline_pairs() {
        let names: Vec<String> = (0..30).map(|i| format!("h{i}")).collect();
        let parts = RequestParts {
            method: "GET",
            path: "/p",
            query: "",
            headers: names.iter().map(|n| (n.as_bytes(), b"v".as_slice())),
            params: [(b"id".as_slice(), b"7".as_slice())].into_iter(),
            body: b"",
            peer: "127.0.0.1:1",
        };
        with_raw_request(parts, |r| {
            assert_eq!((r.headers_len, r.params_len), (30, 1));
            // SAFETY: the pointers are valid inside the callback.
            let (first, param) =
                unsafe { ((*r.headers).name.as_bytes(), (*r.params).name.as_bytes()) };
            assert_eq!((first, param), (b"h0".as_slice(), b"id".as_slice()));
        });
    }

    #[test]
    fn peers_format_like_display() {
        let mut buf = [0u8; 64];
        for text in [
            "127.0.0.1:1",
            "10.200.3.45:65535",
            "0.0.0.0:0",
            "[fe80::1:2:3:4]:65535",
        ] {
            let addr: std::net::SocketAddr = text.parse().unwrap();
            assert_eq!(peer_text(addr, &mut buf), text);
        }
    }
}
