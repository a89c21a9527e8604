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
    ffi::{CStr, c_void},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use troupe_abi as abi;

use super::{
    Hooks,
    hostapi::{Builder, HostCtx, HostTable, Services},
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
        "{file}: `{symbol}` reports ABI version {found}, but this server speaks version {expected} (rebuild the module against plugins/include/troupe_module.h)"
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
        /// The hook.
        hook: &'static str,
    },
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

/// A unique path for each copy, so every load maps fresh code.
fn copy_path(file: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "module".into());
    std::env::temp_dir().join(format!(
        "troupe-{}-{stem}-{}.so",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

impl Library {
    /// Copies `file` to a unique path, loads the copy, and checks its entry
    /// symbol and ABI version. Runs the library's constructors, but no hook.
    pub fn open(file: &Path) -> Result<Self, LoadError> {
        let copy = copy_path(file);
        std::fs::copy(file, &copy).map_err(|source| LoadError::Read {
            file: file.to_owned(),
            source,
        })?;
        // SAFETY: loading runs the library's initialisers; that is what
        // loading a module means, and the config names this library.
        let lib = unsafe { libloading::Library::new(&copy) };
        // The mapping stays after the unlink; nothing is left behind.
        let _ = std::fs::remove_file(&copy);
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
        if desc.abi_version != abi::ABI_VERSION {
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
        }
    }

    /// The name the module gives itself.
    pub fn declared_name(&self) -> String {
        if self.desc.name.is_null() {
            return String::new();
        }
        // SAFETY: the header says `name` is NUL-terminated and static.
        unsafe { CStr::from_ptr(self.desc.name) }
            .to_string_lossy()
            .into_owned()
    }
}

/// A hook failed; the request gets 500 and the module is restarted.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The hook returned `TROUPE_ERROR` (or a code it may not return).
    #[error("the module's {hook} hook returned {code}")]
    Code {
        /// The hook.
        hook: &'static str,
        /// What it returned.
        code: i32,
    },
    /// The response it built is invalid.
    #[error("the module's {hook} hook built an invalid response: {why}")]
    Invalid {
        /// The hook.
        hook: &'static str,
        /// What was wrong.
        why: &'static str,
    },
    /// The module has no such hook.
    #[error("the module has no {0} hook")]
    Missing(&'static str),
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
        let table = HostTable::new(HostCtx { module, services });
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

/// A request in the ABI's shape, borrowing the strings it points at.
pub struct RawRequest<'a> {
    pairs: Vec<abi::Pair>,
    headers: usize,
    fields: [&'a [u8]; 5],
}

impl<'a> RawRequest<'a> {
    /// Collects a request's parts; call [`RawRequest::with`] to use it.
    pub fn new(
        method: &'a str,
        path: &'a str,
        query: &'a str,
        headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
        params: impl Iterator<Item = (&'a [u8], &'a [u8])>,
        body: &'a [u8],
        peer: &'a str,
    ) -> Self {
        let mut pairs: Vec<abi::Pair> = headers
            .map(|(n, v)| abi::Pair {
                name: abi::Str::new(n),
                value: abi::Str::new(v),
            })
            .collect();
        let headers = pairs.len();
        pairs.extend(params.map(|(n, v)| abi::Pair {
            name: abi::Str::new(n),
            value: abi::Str::new(v),
        }));
        Self {
            pairs,
            headers,
            fields: [
                method.as_bytes(),
                path.as_bytes(),
                query.as_bytes(),
                body,
                peer.as_bytes(),
            ],
        }
    }

    /// The `troupe_request` view, valid while `self` is.
    pub fn raw(&self) -> abi::Request {
        let [method, path, query, body, peer] = self.fields;
        abi::Request {
            method: abi::Str::new(method),
            path: abi::Str::new(path),
            query: abi::Str::new(query),
            headers: self.pairs.as_ptr(),
            headers_len: self.headers,
            params: self.pairs[self.headers..].as_ptr(),
            params_len: self.pairs.len() - self.headers,
            body: abi::Str::new(body),
            peer: abi::Str::new(peer),
        }
    }
}
