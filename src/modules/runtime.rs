//! The runtime seam: what every module runtime does, and the table of them.
//!
//! A [`Runtime`] checks a module's declaration each time a config is read
//! (start-up, reload, `troupe -t`) and loads the module into an
//! [`Instance`] when its plugin host asks. Each runtime lives in a folder of
//! its own under `src/modules/`:
//!
//! | `RuntimeKind`   | config                                  | folder       |
//! |-----------------|-----------------------------------------|--------------|
//! | `InProcess`     | `source: Native(..)`                    | `inprocess/` |
//! | `Process`       | `source: Native(..), isolation: Process` | `process/`  |
//! | `Lua`           | `source: Lua(..)` (feature `lua`)       | `lua/`       |
//! | `Wasm`          | `source: Wasm(..)` (feature `wasm`)     | `wasm/`      |
//!
//! A fifth runtime is one more folder and one more row: a variant of
//! `RuntimeKind` (`kind.rs`) and its arm in the table (`table.rs`), the
//! one file that knows every runtime.

use std::{
    any::Any,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use troupe_actors::Failures;

use super::{
    entry::ModuleEntry,
    hostapi::Services,
    instance::{Hooks, Instance},
};
use crate::{config::schema::ModuleSpec, handler::BoxFuture};

/// One way of running modules.
pub(crate) trait Runtime: Sync {
    /// What its file is called in messages: `library`, `script`, …
    fn file_word(&self) -> &'static str;

    /// The roles its modules may take. A `wasi:http` component can only
    /// answer requests, so it is no middleware and no logger.
    fn roles(&self) -> &'static [Role] {
        &[Role::Handler, Role::Middleware, Role::Logger]
    }

    /// Checks a declaration whenever a config is read: the settings that
    /// apply to this runtime (refusing those that do not), and the file
    /// itself where that is cheap. Returns the module's hooks when they
    /// are known without loading it, so misused modules are refused with
    /// the config, not at the first request.
    fn check(&self, spec: &ModuleSpec, file: &Path) -> Result<Option<Hooks>, Refused>;

    /// What `troupe -t` adds for a module whose hooks [`Runtime::check`]
    /// could not tell: load the code once, serve nothing, say its hooks.
    fn probe(&self, entry: &ModuleEntry) -> Result<Hooks, String> {
        entry
            .hooks
            .ok_or_else(|| format!("module `{}`: its hooks are unknown", entry.name))
    }

    /// Loads and initialises a fresh instance.
    fn load(
        &self,
        entry: Arc<ModuleEntry>,
        cx: LoadCx,
    ) -> BoxFuture<'static, Result<Loaded, String>>;
}

/// A load that reads and compiles on the blocking pool (a script, a
/// component: tens of milliseconds), off the runtime's threads.
#[cfg(any(feature = "lua", feature = "wasm"))]
pub(crate) async fn load_blocking<I: Instance>(
    load: impl FnOnce() -> Result<I, String> + Send + 'static,
) -> Result<Loaded, String> {
    let instance = tokio::task::spawn_blocking(load)
        .await
        .map_err(|e| e.to_string())??;
    Ok(Loaded {
        instance: Arc::new(instance),
        read_file: true,
    })
}

/// Why a declaration was refused, and which part of it to point at.
#[derive(Debug)]
pub(crate) struct Refused {
    /// What is wrong and what was expected.
    pub message: String,
    /// Where in the declaration.
    pub at: Part,
}

/// A part of a module's declaration, for the error's line and column.
// The native runtimes only refuse settings, by the module's name.
#[cfg_attr(not(any(feature = "lua", feature = "wasm")), allow(dead_code))]
#[derive(Debug, Clone)]
pub(crate) enum Part {
    /// Its `name`.
    Name,
    /// Its file, in `source`.
    File,
    /// A string value in its settings (an `allow_hosts` entry, say).
    Value(String),
}

impl Refused {
    /// A refusal pointing at the module's name.
    pub(crate) fn name(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            at: Part::Name,
        }
    }

    /// A refusal pointing at the module's file.
    #[cfg_attr(not(any(feature = "lua", feature = "wasm")), allow(dead_code))]
    pub(crate) fn file(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            at: Part::File,
        }
    }
}

/// What one load gets from its plugin host.
pub(crate) struct LoadCx {
    /// Where the request path reports the instance's failures.
    pub failures: Failures,
    /// The operator asked for the code to be read again (a restart may
    /// reuse what [`Memo`] kept).
    pub reload: bool,
    /// The host API, for modules in the server's process.
    pub services: Arc<dyn Services>,
    /// The host API, for module hosts outside it.
    pub child_services: Arc<dyn Services>,
    /// The executable run as `module-host` for `Process` modules.
    pub module_host: PathBuf,
    /// What the runtime keeps for this module between loads.
    pub memo: Memo,
}

/// A loaded instance, and whether its code was read from the file now
/// (a restart that reused kept code did not: the file read last is still
/// the one running).
pub(crate) struct Loaded {
    /// The instance to publish.
    pub instance: Arc<dyn Instance>,
    /// Its code came from the file as it is now.
    pub read_file: bool,
}

/// What a runtime keeps for one module across restarts (a mapped
/// library, say), typed by the runtime that put it there.
#[derive(Clone, Default)]
pub(crate) struct Memo(Arc<Mutex<Option<Arc<dyn Any + Send + Sync>>>>);

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}

impl Memo {
    /// What was kept, if it is a `T`.
    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let kept = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        kept.downcast().ok()
    }

    /// Keeps `value` for the next load.
    pub(crate) fn set<T: Send + Sync + 'static>(&self, value: Arc<T>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
    }
}

/// What a module does for the routes that name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `handler: Module("name")`: needs a `handle` hook.
    Handler,
    /// `middleware: [Module("name")]`: needs a request or response filter.
    Middleware,
    /// A server's `loggers`: needs a `log` hook.
    Logger,
    /// `handler: WebSocket(module: "name")`: needs a `ws_message` hook.
    WebSocket,
}

impl Role {
    /// Whether a module with `hooks` can take this role.
    pub fn served_by(self, hooks: Hooks) -> bool {
        match self {
            Role::Handler => hooks.handle,
            Role::Middleware => hooks.request_filter || hooks.response_filter,
            Role::Logger => hooks.log,
            Role::WebSocket => hooks.ws,
        }
    }

    /// The role in the config's words, and what it needs.
    pub(crate) fn needs(self) -> (&'static str, &'static str) {
        match self {
            Role::Handler => ("a handler", "`handle` hook"),
            Role::Middleware => ("middleware", "request or response filter"),
            Role::Logger => ("a logger", "`log` hook"),
            Role::WebSocket => (
                "a WebSocket handler",
                "`ws_message` hook (a component: the troupe:host/websocket-handler export)",
            ),
        }
    }
}

/// Refuses `sandbox.allow_hosts` for a runtime whose modules cannot make
/// outbound requests.
pub(crate) fn no_outbound(spec: &ModuleSpec) -> Result<(), Refused> {
    if spec.sandbox.allow_hosts.is_empty() {
        return Ok(());
    }
    Err(Refused::name(format!(
        "module `{}`: only WebAssembly modules make outbound requests (expected no `sandbox.allow_hosts`)",
        spec.name
    )))
}
