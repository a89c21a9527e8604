//! Modules (P2.3, P2.4, P2.8–P2.10): code loaded at run time, each run by
//! its own plugin-host actor, reached by requests without a mailbox hop.
//!
//! ```text
//! config.ron `modules`  → ModuleEntry (compile time: a Slot per module)
//! plugin.<name> actor   → Hosted::load → InProcess | Process → Slot::publish
//! route Module("name")  → ModuleHandler → Slot::load → Instance::handle
//! middleware Module(..) → ModuleFilter  → request_filter / response_filter
//! server `loggers`      → LogHooks      → Instance::log after the response
//! ```
//!
//! - [`native`]: the C ABI: loading a library, calling its hooks.
//! - [`hostapi`]: the host functions every module reaches (log, store, metrics).
//! - [`inprocess`]: a native instance called on the request's thread.
//! - [`lua`]: Lua scripts in a pool of sandboxed VMs.
//! - [`wasm`]: `wasi:http` components on wasmtime, an instance per request.
//! - [`process`]: a native instance in a child process, over a unix socket.
//! - [`slot`]: where the current instance is published.
//! - [`route`]: the `Handler`, `Middleware` and log hook that routes use.
//! - [`host`]: the `ModuleHost` the plugin-host actor drives.

pub mod host;
pub mod hostapi;
pub mod inprocess;
pub mod lua;
pub mod native;
pub mod process;
pub mod route;
pub mod slot;
pub mod wasm;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    HttpError,
    config::schema::Isolation,
    handler::{BoxFuture, HandlerFuture, Response},
    pipeline::{body::Body, request::Request},
};
pub use host::{Env, Hosted};
pub use slot::Slot;

/// The hooks a module offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hooks {
    /// It answers requests.
    pub handle: bool,
    /// It filters requests before the handler.
    pub request_filter: bool,
    /// It changes responses after the handler.
    pub response_filter: bool,
    /// It sees every finished request.
    pub log: bool,
}

/// What a request filter decided.
pub enum Filtered {
    /// Go on with this request.
    Continue(Request),
    /// Answer with this instead.
    Respond(Response),
}

/// A finished request, as log hooks see it.
#[derive(Debug)]
pub struct LogLine {
    /// The method.
    pub method: http::Method,
    /// The decoded path.
    pub path: String,
    /// The raw query.
    pub query: String,
    /// The client.
    pub peer: SocketAddr,
    /// The status.
    pub status: u16,
    /// Body bytes, when known up front.
    pub bytes: u64,
    /// Time to the response head.
    pub duration: Duration,
}

/// One loaded module instance, whatever runs it. Each failure it sees
/// answers that request with a 5xx and is reported to its host actor.
pub trait Instance: Send + Sync + 'static {
    /// The hooks it offers.
    fn hooks(&self) -> Hooks;
    /// Answers a request.
    fn handle(&self, req: Request) -> HandlerFuture;
    /// Runs the request filter.
    fn request_filter(&self, req: Request) -> BoxFuture<'static, Result<Filtered, HttpError>>;
    /// Runs the response filter.
    fn response_filter(&self, resp: Response) -> HandlerFuture;
    /// Runs the log hook.
    fn log(&self, line: &LogLine);
}

/// What runs a module's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A shared library with the C ABI.
    Native,
    /// A Lua script.
    Lua,
    /// A WebAssembly component.
    Wasm,
}

/// A module as the config declares it, with the slot its routes read.
#[derive(Debug)]
pub struct ModuleEntry {
    /// Its name.
    pub name: String,
    /// What runs it.
    pub kind: Kind,
    /// The library or script, resolved against the config's directory.
    pub path: PathBuf,
    /// Its config text.
    pub config: String,
    /// Where it runs.
    pub isolation: Isolation,
    /// Per-call timeout (`Process` only).
    pub timeout: Duration,
    /// Run in-process hooks on the blocking pool.
    pub blocking: bool,
    /// Its restart budget.
    pub policy: troupe_actors::RestartPolicy,
    /// Its sandbox limits (Lua).
    pub sandbox: crate::config::schema::Sandbox,
    /// Reload the config when its file changes.
    pub watch: bool,
    /// Its declaration, serialized: equal fingerprints and an unchanged
    /// file mean a config reload leaves the module alone.
    pub fingerprint: String,
    /// Where its instance is published.
    pub slot: Arc<Slot>,
    /// Where it is declared in the config file (`file:line:col`), for errors.
    pub declared_at: String,
    /// The file as it was when the running instance was loaded from it.
    pub loaded_from: std::sync::Mutex<Option<FileStamp>>,
}

/// What tells a changed file from the one loaded: its modification time
/// and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
}

impl FileStamp {
    /// The stamp of `path` now, if it can be read.
    pub fn of(path: &std::path::Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
        })
    }
}

impl ModuleEntry {
    /// Whether the file differs from the one the running instance was
    /// loaded from (a file that cannot be read counts as unchanged: a
    /// reload would only fail).
    pub fn changed_on_disk(&self) -> bool {
        let Some(now) = FileStamp::of(&self.path) else {
            return false;
        };
        let loaded = *self.loaded_from.lock().unwrap_or_else(|e| e.into_inner());
        loaded != Some(now)
    }

    /// Loads the code once to check it, without running any hook: what
    /// `troupe -t` does for each module (a library's symbol and ABI
    /// version; a script's syntax is checked with the config already).
    pub fn probe(&self) -> Result<(), String> {
        match self.kind {
            Kind::Native => native::Library::open(&self.path)
                .map(|_| ())
                .map_err(|e| format!("{}: module `{}`: {e}", self.declared_at, self.name)),
            Kind::Lua | Kind::Wasm => Ok(()),
        }
    }
}

/// A module's answer as an HTTP response (validated when it was built).
fn into_response(status: http::StatusCode, headers: http::HeaderMap, body: Vec<u8>) -> Response {
    let mut resp = http::Response::new(Body::full(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}
