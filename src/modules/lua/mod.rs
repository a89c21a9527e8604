//! Lua modules (P2.6): scripts run in a pool of sandboxed Lua 5.4 VMs.
//!
//! - [`vm`]: one VM: safe libraries only, memory limit, instruction budget,
//!   the host API as `troupe`, the script compiled once.
//! - `convert`: the `req` userdata and the response table.
//!
//! A request takes a VM from the pool, calls the script's hook on it, and
//! puts it back; the pool grows to about one VM per thread that calls at
//! once (a VM runs one call at a time, and creating one costs ~28 µs
//! against ~2.4 µs for a call). A script error answers 500 and is logged
//! with the script, line and message; the VM is kept. A call that runs out
//! of its instruction budget answers 504, and one that hits the memory
//! limit 500; that VM is dropped and a fresh one made. None of these
//! restarts the module: they are the script's answers to one request.

mod convert;
mod vm;

use std::{path::Path, sync::Arc};

use super::{
    entry::ModuleEntry,
    hostapi::{Detached, Services},
    instance::{Filtered, Hooks, Instance},
    pool::Pool,
    runtime::{LoadCx, Loaded, Refused, Runtime, load_blocking, no_outbound},
};
use crate::{
    HttpError,
    config::schema::{ModuleSpec, Sandbox},
    handler::{BoxFuture, HandlerFuture, Response},
    pipeline::{log_hook::LogLine, request::Request},
};
use convert::LuaRequest;
use vm::{Spec, Vm};

/// The runtime of `source: Lua(..)` modules.
pub(crate) struct LuaRuntime;

impl Runtime for LuaRuntime {
    fn file_word(&self) -> &'static str {
        "script"
    }

    /// The script exists, compiles and runs its top level in a VM with
    /// its limits (against a host API that keeps nothing), its grants are
    /// known, and it defines at least one hook. Errors name the script
    /// and the line.
    fn check(&self, spec: &ModuleSpec, file: &Path) -> Result<Option<Hooks>, Refused> {
        no_outbound(spec)?;
        let limits = Limits::of(&spec.sandbox);
        let named = |e: String| Refused::file(format!("module `{}`: {e}", spec.name));
        vm::check_grants(&limits.grant).map_err(named)?;
        let source = vm::read(file).map_err(named)?;
        let script = file.display().to_string();
        vm::syntax(&script, &source).map_err(named)?;
        match hooks_of(&spec.name, &script, &source, "", &limits) {
            Ok(hooks) => some_hook(&script, hooks).map(Some).map_err(named),
            // The top level may read its config, which a config check does
            // not pass: `-t` probes with it, and a load refuses the script.
            Err(_) => Ok(None),
        }
    }

    /// Runs the script's top level once, with its config, against a host
    /// API that keeps nothing: its hooks, or the error a load would hit.
    fn probe(&self, entry: &ModuleEntry) -> Result<Hooks, String> {
        let source = vm::read(&entry.path)?;
        let script = entry.path.display().to_string();
        let limits = Limits::of(&entry.spec.sandbox);
        match hooks_of(&entry.name, &script, &source, &entry.config, &limits) {
            Ok(hooks) => some_hook(&script, hooks),
            Err(e) => Err(one_line(&e)),
        }
    }

    fn load(
        &self,
        entry: Arc<ModuleEntry>,
        cx: LoadCx,
    ) -> BoxFuture<'static, Result<Loaded, String>> {
        // Reads the script and compiles it into a first VM.
        Box::pin(load_blocking(move || LuaModule::new(&entry, cx.services)))
    }
}

/// The hooks a script defines, from a VM that ran its top level with
/// `config` against a host API that keeps nothing.
fn hooks_of(
    module: &str,
    script: &str,
    source: &[u8],
    config: &str,
    limits: &Limits,
) -> mlua::Result<Hooks> {
    let services: Arc<dyn Services> = Arc::new(Detached);
    Vm::new(&Spec {
        name: script,
        source,
        module: &Arc::from(module),
        config,
        limits,
        services: &services,
    })
    .map(|vm| vm.hooks())
}

/// `hooks`, unless the script defines none: a module that can take no
/// role is refused.
fn some_hook(script: &str, hooks: Hooks) -> Result<Hooks, String> {
    if hooks == Hooks::default() {
        return Err(format!(
            "{script}: defines none of handle, access, header_filter or log"
        ));
    }
    Ok(hooks)
}

/// What one Lua VM may use: the runtime's part of `sandbox`.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Bytes of memory.
    pub memory: usize,
    /// VM instructions per call.
    pub instructions: u64,
    /// Libraries beyond the safe ones: `os`, `io`, `load`.
    pub grant: Vec<String>,
}

impl Limits {
    fn of(sandbox: &Sandbox) -> Self {
        Self {
            memory: sandbox.memory,
            instructions: sandbox.instructions,
            grant: sandbox.grant.clone(),
        }
    }
}

/// A loaded Lua module.
pub struct LuaModule {
    name: Arc<str>,
    script: String,
    source: Vec<u8>,
    config: String,
    limits: Limits,
    services: Arc<dyn Services>,
    hooks: Hooks,
    pool: Pool<Vm>,
}

/// How one call ended badly.
enum Failure {
    /// The script raised an error (500); the VM is fine.
    Script(mlua::Error),
    /// The VM hit a limit; it is dropped.
    Limit(HttpError),
}

impl LuaModule {
    /// Reads the script and builds a first VM (which runs its top level).
    pub fn new(entry: &ModuleEntry, services: Arc<dyn Services>) -> Result<Self, String> {
        let source = vm::read(&entry.path)?;
        let mut module = Self {
            name: entry.slot.name().clone(),
            script: entry.path.display().to_string(),
            source,
            config: entry.config.clone(),
            limits: Limits::of(&entry.spec.sandbox),
            services,
            hooks: Hooks::default(),
            pool: Pool::default(),
        };
        let first = module.vm().map_err(|e| e.to_string())?;
        module.hooks = some_hook(&module.script, first.hooks())?;
        module.put(first);
        Ok(module)
    }

    fn vm(&self) -> mlua::Result<Vm> {
        Vm::new(&Spec {
            name: &self.script,
            source: &self.source,
            module: &self.name,
            config: &self.config,
            limits: &self.limits,
            services: &self.services,
        })
    }

    fn take(&self) -> Result<Vm, HttpError> {
        match self.pool.take() {
            Some(vm) => Ok(vm),
            None => self.vm().map_err(|e| {
                tracing::error!(module = %self.name, error = %e, "cannot create a Lua VM");
                HttpError::Internal(e.to_string())
            }),
        }
    }

    fn put(&self, vm: Vm) {
        self.pool.put(vm);
    }

    /// Runs `f` on a pooled VM under a fresh budget, and sorts out how it
    /// ended: the VM goes back to the pool unless it hit a limit.
    fn call<R>(&self, f: impl FnOnce(&Vm) -> mlua::Result<R>) -> Result<R, HttpError> {
        let vm = self.take()?;
        vm.budget.reset(self.limits.instructions);
        let result = f(&vm).map_err(|e| self.classify(&vm, e));
        match result {
            Ok(v) => {
                self.put(vm);
                Ok(v)
            }
            Err(Failure::Script(e)) => {
                tracing::warn!(module = %self.name, script = %self.script, error = %one_line(&e), "Lua error");
                self.put(vm);
                Err(HttpError::Internal(format!("Lua error: {e}")))
            }
            Err(Failure::Limit(e)) => {
                tracing::warn!(module = %self.name, script = %self.script, error = %e, "Lua VM hit a limit; replacing it");
                drop(vm);
                Err(e)
            }
        }
    }

    fn classify(&self, vm: &Vm, e: mlua::Error) -> Failure {
        if vm.budget.exceeded() {
            return Failure::Limit(HttpError::GatewayTimeout("Lua instruction budget exceeded"));
        }
        if is_memory(&e) {
            return Failure::Limit(HttpError::Internal(format!(
                "Lua memory limit ({} bytes) reached",
                self.limits.memory
            )));
        }
        Failure::Script(e)
    }
}

/// Whether an error (or what caused it) is the memory limit.
fn is_memory(e: &mlua::Error) -> bool {
    match e {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } => is_memory(cause),
        mlua::Error::WithContext { cause, .. } => is_memory(cause),
        _ => false,
    }
}

/// The first line of an error (mlua appends a traceback).
fn one_line(e: &mlua::Error) -> String {
    e.to_string().lines().next().unwrap_or("").to_owned()
}

impl Instance for LuaModule {
    fn hooks(&self) -> Hooks {
        self.hooks
    }

    fn handle(&self, req: Request) -> HandlerFuture {
        HandlerFuture::ready(
            self.call(|vm| {
                let Some(f) = &vm.handle else {
                    return Ok(Err(HttpError::Internal(
                        "the script defines no handle(req)".into(),
                    )));
                };
                // The request stays in the VM's `req` until the next call
                // replaces it: one borrow per call instead of two.
                vm.req.borrow_mut::<LuaRequest>()?.0 = Some(req);
                let answer = f.call::<mlua::Value>(&vm.req)?;
                Ok(convert::response(answer, &vm.keys))
            })
            .and_then(|r| r),
        )
    }

    fn request_filter(&self, req: Request) -> BoxFuture<'static, Result<Filtered, HttpError>> {
        let result = self.call(|vm| {
            let Some(f) = &vm.access else {
                return Ok(Ok(Filtered::Continue(req)));
            };
            vm.req.borrow_mut::<LuaRequest>()?.0 = Some(req);
            let verdict = f.call::<mlua::Value>(&vm.req);
            let req = vm.req.borrow_mut::<LuaRequest>()?.0.take();
            Ok(match (verdict?, req) {
                (mlua::Value::Nil, Some(req)) => Ok(Filtered::Continue(req)),
                (mlua::Value::Nil, None) => Err(HttpError::Internal("the request was lost".into())),
                (answer, _) => convert::response(answer, &vm.keys).map(Filtered::Respond),
            })
        });
        let result = result.and_then(|r| r);
        Box::pin(async move { result })
    }

    fn response_filter(&self, mut resp: Response) -> HandlerFuture {
        let head = self.call(|vm| {
            let Some(f) = &vm.header_filter else {
                return Ok(None);
            };
            let t = convert::head_table(&vm.lua, &resp)?;
            // The hook may change the table in place or return a new one.
            let out = match f.call::<mlua::Value>(&t)? {
                mlua::Value::Table(new) => new,
                _ => t,
            };
            Ok(Some(convert::head_of(&out, &vm.keys, resp.status())))
        });
        HandlerFuture::ready(match head {
            Ok(None) => Ok(resp),
            Ok(Some(Ok((status, headers)))) => {
                *resp.status_mut() = status;
                *resp.headers_mut() = headers;
                Ok(resp)
            }
            Ok(Some(Err(e))) | Err(e) => Err(e),
        })
    }

    fn log(&self, line: &LogLine) {
        let _ = self.call(|vm| match &vm.log {
            Some(f) => f.call::<()>(convert::log_table(&vm.lua, line)?),
            None => Ok(()),
        });
    }
}
