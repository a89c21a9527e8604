//! One sandboxed Lua VM: only safe libraries, a memory limit, an
//! instruction budget per call, the host API as `troupe`, and the module's
//! script compiled once.

use std::{
    borrow::Cow,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use mlua::{Function, HookTriggers, IntoLuaMulti, Lua, LuaOptions, StdLib, Thread, Value, VmState};

use super::{
    Limits,
    convert::{Keys, LuaRequest},
    raw::{self, Started},
};
use crate::modules::{hostapi::Services, instance::Hooks};

/// Instructions between two budget checks.
const CHECK_EVERY: u32 = 1000;

/// Globals removed unless the config grants `"load"`: they read files or
/// compile code at run time.
const LOADERS: [&str; 5] = ["load", "loadfile", "dofile", "require", "collectgarbage"];

/// The per-call instruction budget, shared with the VM's hook, cut into
/// slices: at the end of a slice the hook yields the call's coroutine, so
/// that a call that runs long can move to the module pool (see
/// `modules::bulkhead`) and, there, take turns with the other long calls.
#[derive(Debug)]
pub struct Budget {
    remaining: AtomicI64,
    exceeded: AtomicBool,
    /// `remaining` at which this slice ends (`i64::MIN`: never).
    slice_end: AtomicI64,
    /// Whether the last yield was the hook's.
    sliced: AtomicBool,
    /// The call's coroutine (its address): only it is yielded, never a
    /// coroutine the script made (its `coroutine.resume` would return early).
    call: AtomicUsize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            remaining: AtomicI64::new(0),
            exceeded: AtomicBool::new(false),
            slice_end: AtomicI64::new(i64::MIN),
            sliced: AtomicBool::new(false),
            call: AtomicUsize::new(0),
        }
    }
}

impl Budget {
    /// Starts a call with `instructions` to spend, the first `slice` of
    /// them before it yields (`None`: all of them).
    pub fn reset(&self, instructions: u64, slice: Option<u64>) {
        let instructions = i64::try_from(instructions).unwrap_or(i64::MAX);
        self.remaining.store(instructions, Ordering::Relaxed);
        self.exceeded.store(false, Ordering::Relaxed);
        self.end_slice_after(instructions, slice);
    }

    /// Gives the call, which yielded, its next `slice` of instructions.
    pub fn next_slice(&self, slice: u64) {
        self.end_slice_after(self.remaining.load(Ordering::Relaxed), Some(slice));
    }

    fn end_slice_after(&self, remaining: i64, slice: Option<u64>) {
        let end = match slice {
            Some(n) => remaining.saturating_sub(i64::try_from(n).unwrap_or(i64::MAX)),
            None => i64::MIN,
        };
        self.slice_end.store(end, Ordering::Relaxed);
        self.sliced.store(false, Ordering::Relaxed);
    }

    /// Whether the last call ran out.
    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }

    /// Whether the call yielded because its slice ended.
    pub fn sliced(&self) -> bool {
        self.sliced.load(Ordering::Relaxed)
    }

    /// The hook's check, every [`CHECK_EVERY`] instructions.
    fn check(&self, lua: &Lua) -> mlua::Result<VmState> {
        let left = self
            .remaining
            .fetch_sub(i64::from(CHECK_EVERY), Ordering::Relaxed);
        if left <= 0 {
            self.exceeded.store(true, Ordering::Relaxed);
            return Err(mlua::Error::runtime("instruction budget exceeded"));
        }
        if left > self.slice_end.load(Ordering::Relaxed)
            || lua.current_thread().to_pointer() as usize != self.call.load(Ordering::Relaxed)
        {
            return Ok(VmState::Continue);
        }
        self.sliced.store(true, Ordering::Relaxed);
        Ok(VmState::Yield)
    }
}

/// A VM and the module's hooks in it.
pub struct Vm {
    pub(super) lua: Lua,
    pub(super) keys: Keys,
    /// The `req` every call gets: one userdata per VM whose request is
    /// swapped in and out, instead of a new userdata (and its finalizer)
    /// per request.
    pub(super) req: mlua::AnyUserData,
    pub(super) handle: Option<Function>,
    pub(super) access: Option<Function>,
    pub(super) header_filter: Option<Function>,
    pub(super) log: Option<Function>,
    pub(super) ws_open: Option<Function>,
    pub(super) ws_message: Option<Function>,
    pub(super) ws_close: Option<Function>,
    /// The coroutine every call runs in (reset for each): a coroutine can
    /// yield at the end of a slice and be resumed on another thread.
    pub(super) thread: Thread,
    pub(super) budget: Arc<Budget>,
}

/// Everything a VM is built from.
pub struct Spec<'a> {
    /// The script's name in error messages (its path).
    pub name: &'a str,
    /// The script.
    pub source: &'a [u8],
    /// The module's name, for the host API.
    pub module: &'a Arc<str>,
    /// The module's config text, as `troupe.config`.
    pub config: &'a str,
    /// Limits and grants.
    pub limits: &'a Limits,
    /// The host API.
    pub services: &'a Arc<dyn Services>,
}

/// The libraries `grant` may add; anything else is a config error.
pub fn check_grants(grants: &[String]) -> Result<(), String> {
    for g in grants {
        if !["os", "io", "load"].contains(&g.as_str()) {
            return Err(format!(
                "unknown grant `{g}` (expected \"os\", \"io\" or \"load\")"
            ));
        }
    }
    Ok(())
}

/// Compiles `source` without running it: the syntax check of `troupe -t`.
pub fn syntax(name: &str, source: &[u8]) -> Result<(), String> {
    let lua = Lua::new_with(StdLib::NONE, LuaOptions::default()).map_err(|e| e.to_string())?;
    lua.load(source)
        .set_name(format!("@{name}"))
        .into_function()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl Vm {
    /// The hooks the script defined.
    pub fn hooks(&self) -> Hooks {
        Hooks {
            handle: self.handle.is_some(),
            request_filter: self.access.is_some(),
            response_filter: self.header_filter.is_some(),
            log: self.log.is_some(),
            // `ws_open` and `ws_close` are optional, as in C.
            ws: self.ws_message.is_some(),
        }
    }

    /// Starts a call of `f` with `arg` in the VM's coroutine and runs its
    /// first slice in one protected call (see [`raw::start`]); with
    /// `respond`, an answer of the common shape is read there too.
    pub fn start(&self, f: &Function, args: impl IntoLuaMulti, respond: bool) -> Started {
        raw::start(&self.lua, &self.thread, &self.keys, f, args, respond)
    }

    /// A fresh VM with the script run once (defining its hooks).
    pub fn new(spec: &Spec<'_>) -> mlua::Result<Self> {
        let grants = &spec.limits.grant;
        let granted = |g: &str| grants.iter().any(|x| x == g);
        let mut libs =
            StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::UTF8 | StdLib::COROUTINE;
        if granted("os") {
            libs |= StdLib::OS;
        }
        if granted("io") {
            libs |= StdLib::IO;
        }
        if granted("load") {
            libs |= StdLib::PACKAGE;
        }
        let lua = Lua::new_with(libs, LuaOptions::default())?;
        let globals = lua.globals();
        if !granted("load") {
            for name in LOADERS {
                globals.raw_remove(name)?;
            }
        }
        install_host_api(&lua, spec)?;
        lua.set_memory_limit(spec.limits.memory)?;

        let budget = Arc::new(Budget::default());
        let hook_budget = budget.clone();
        lua.set_global_hook(
            HookTriggers::new().every_nth_instruction(CHECK_EVERY),
            move |lua, _| hook_budget.check(lua),
        )?;

        // The script's top level runs under the same budget as a call.
        budget.reset(spec.limits.instructions, None);
        lua.load(spec.source)
            .set_name(format!("@{}", spec.name))
            .exec()?;
        let hook = |name: &str| -> mlua::Result<Option<Function>> {
            Ok(match globals.raw_get::<Value>(name)? {
                Value::Function(f) => Some(f),
                _ => None,
            })
        };
        let keys = Keys {
            status: lua.create_string("status")?,
            headers: lua.create_string("headers")?,
            body: lua.create_string("body")?,
        };
        let req = lua.create_userdata(LuaRequest(None, spec.module.clone()))?;
        // Made after the hook is set: a thread takes the hook there is.
        let thread = lua.create_thread(lua.create_function(|_, ()| Ok(()))?)?;
        budget
            .call
            .store(thread.to_pointer() as usize, Ordering::Relaxed);
        Ok(Self {
            keys,
            req,
            handle: hook("handle")?,
            access: hook("access")?,
            header_filter: hook("header_filter")?,
            log: hook("log")?,
            ws_open: hook("ws_open")?,
            ws_message: hook("ws_message")?,
            ws_close: hook("ws_close")?,
            thread,
            budget,
            lua,
        })
    }
}

/// `troupe.log`, `troupe.kv.get/set/delete`, `troupe.metric`, `troupe.config`,
/// `troupe.query_param`, `troupe.ws.send/close/sockets` (`super::ws`);
/// `print` goes to the log too (stdout belongs to the access log).
fn install_host_api(lua: &Lua, spec: &Spec<'_>) -> mlua::Result<()> {
    let troupe = lua.create_table()?;
    let (services, module) = (spec.services.clone(), spec.module.clone());
    troupe.set(
        "log",
        lua.create_function(move |_, (a, b): (String, Option<String>)| {
            let (level, msg) = match b {
                Some(msg) => (level_of(&a), msg),
                None => (troupe_abi::level::INFO, a),
            };
            services.log(&module, level, &msg);
            Ok(())
        })?,
    )?;
    let (services, module) = (spec.services.clone(), spec.module.clone());
    lua.globals().set(
        "print",
        lua.create_function(move |_, args: mlua::Variadic<Value>| {
            let text: Vec<String> = args
                .iter()
                .map(|v| v.to_string().unwrap_or_else(|_| "?".into()))
                .collect();
            services.log(&module, troupe_abi::level::INFO, &text.join("\t"));
            Ok(())
        })?,
    )?;
    let kv = lua.create_table()?;
    let services = spec.services.clone();
    kv.set(
        "get",
        lua.create_function(move |lua, key: String| match services.kv_get(&key) {
            Some(v) => Ok(Value::String(lua.create_string(&v)?)),
            None => Ok(Value::Nil),
        })?,
    )?;
    let (services, module) = (spec.services.clone(), spec.module.clone());
    kv.set(
        "set",
        // `true`, or `nil, why` when refused (the module's `kv` quota), as
        // Lua's own io functions answer; a script that ignores it still runs.
        lua.create_function(move |lua, (key, value): (String, mlua::LuaString)| {
            match services.kv_set(&module, &key, Bytes::copy_from_slice(&value.as_bytes())) {
                Ok(()) => Ok((Value::Boolean(true), Value::Nil)),
                Err(refused) => Ok((
                    Value::Nil,
                    Value::String(lua.create_string(refused.to_string())?),
                )),
            }
        })?,
    )?;
    let services = spec.services.clone();
    kv.set(
        "delete",
        lua.create_function(move |_, key: String| {
            services.kv_delete(&key);
            Ok(())
        })?,
    )?;
    troupe.set("kv", kv)?;
    let (services, module) = (spec.services.clone(), spec.module.clone());
    troupe.set(
        "metric",
        lua.create_function(move |_, (name, by): (String, Option<u64>)| {
            services.metric(&module, &name, by.unwrap_or(1));
            Ok(())
        })?,
    )?;
    troupe.set("config", spec.config)?;
    // For a query that is not the request's (the `log` hook's
    // `entry.query`, a form body): the rules of `req:query_param`.
    troupe.set(
        "query_param",
        lua.create_function(|_, (query, name): (mlua::LuaString, String)| {
            Ok(
                crate::pipeline::request::query_param(&query.as_bytes(), &name)
                    .map(Cow::into_owned),
            )
        })?,
    )?;
    troupe.set("ws", super::ws::api(lua, spec.module)?)?;
    lua.globals().set("troupe", troupe)
}

fn level_of(name: &str) -> u32 {
    match name {
        "error" => troupe_abi::level::ERROR,
        "warn" => troupe_abi::level::WARN,
        "debug" => troupe_abi::level::DEBUG,
        "trace" => troupe_abi::level::TRACE,
        _ => troupe_abi::level::INFO,
    }
}

/// Reads a script for a VM.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}
