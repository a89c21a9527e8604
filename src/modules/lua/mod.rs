//! Lua modules (P2.6): scripts run in a pool of sandboxed Lua 5.4 VMs.
//!
//! - [`vm`]: one VM: safe libraries only, memory limit, instruction budget,
//!   the host API as `troupe`, the script compiled once.
//! - `convert`: the `req` userdata and the response table.
//! - `ws`: the WebSocket hooks and `troupe.ws`.
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
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz;
mod raw;
mod vm;
mod ws;

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use super::{
    bulkhead::{self, Admission},
    entry::ModuleEntry,
    hostapi::{Detached, Services},
    instance::{Filtered, Hooks, Instance, Opening, WsData},
    pool::Pool,
    runtime::{LoadCx, Loaded, Refused, Role, Runtime, load_blocking, no_outbound},
    slot::Slot,
};
use crate::{
    HttpError,
    config::schema::ModuleSpec,
    handler::{BoxFuture, HandlerFuture, Response},
    pipeline::{log_hook::LogLine, request::Request},
};
use convert::LuaRequest;
use raw::Started;
use vm::{Spec, Vm};

/// The runtime of `source: Lua(..)` modules.
pub(crate) struct LuaRuntime;

impl Runtime for LuaRuntime {
    fn file_word(&self) -> &'static str {
        "script"
    }

    fn roles(&self) -> &'static [Role] {
        &[
            Role::Handler,
            Role::Middleware,
            Role::Logger,
            Role::WebSocket,
        ]
    }

    /// The script exists, compiles and runs its top level in a VM with
    /// its limits (against a host API that keeps nothing), its grants are
    /// known, and it defines at least one hook. Errors name the script
    /// and the line.
    fn check(&self, spec: &ModuleSpec, file: &Path) -> Result<Option<Hooks>, Refused> {
        no_outbound(spec)?;
        let limits = Limits::of(spec);
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
        let limits = Limits::of(&entry.spec);
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
            "{script}: defines none of handle, access, header_filter, log or ws_message"
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
    /// Calls in progress at once (`sandbox.instances`).
    pub calls: usize,
    /// Wall-clock time a call may take once it left for the module pool
    /// (the module's `timeout`): its instructions count what it ran, which
    /// a call starved of CPU does not spend.
    pub ceiling: Duration,
}

impl Limits {
    fn of(spec: &ModuleSpec) -> Self {
        let sandbox = &spec.sandbox;
        Self {
            ceiling: spec.timeout,
            memory: sandbox.memory,
            instructions: sandbox.instructions,
            grant: sandbox.grant.clone(),
            calls: sandbox.instances as usize,
        }
    }
}

/// A loaded Lua module.
pub struct LuaModule {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    /// Where the module's series are.
    slot: Arc<Slot>,
    script: String,
    source: Vec<u8>,
    config: String,
    limits: Limits,
    services: Arc<dyn Services>,
    hooks: Hooks,
    /// Whether the script defines `ws_open`, `ws_close` (both optional).
    ws_open: bool,
    ws_close: bool,
    /// Sockets whose calls wait behind one on the module pool.
    backlogs: ws::Backlogs,
    /// Boxed: a call moves its VM in and out of the pool and through the
    /// call's steps, and a pointer moves for less than the VM's fields.
    pool: Pool<Box<Vm>>,
    /// Calls in progress (`sandbox.instances`): a call beyond it is
    /// answered 503 at once. Calls that moved to the module pool hold
    /// their place until they end.
    running: Admission,
    /// Calls in a row that outran their first slice (saturating).
    long_streak: AtomicU32,
}

/// Instructions a call runs on the request's thread before it yields and
/// moves to the module pool (tens of microseconds): nearly every call ends
/// well within it (a hello runs about fifty). 100 000 left a connection
/// thread busy long enough, on every call of a module that loops, to show
/// in the other routes' p99.
const FIRST_SLICE: u64 = 20_000;

/// The first slice of a module whose recent calls all outran theirs
/// ([`LONG_STREAK`] in a row): such a module is one that loops to its
/// budget, and every call of it would otherwise take [`FIRST_SLICE`] of a
/// connection thread before leaving. One check of the budget hook: the
/// call leaves at once, and a short call still ends here.
const SHORT_SLICE: u64 = 1_000;

/// Calls in a row that moved to the module pool before a module's calls
/// start with [`SHORT_SLICE`]; one call that ends within its first slice
/// gives the module [`FIRST_SLICE`] again.
const LONG_STREAK: u32 = 8;

/// Instructions a moved call runs on the module pool between turns, each
/// ended by [`bulkhead::end_of_slice`]: about how long a connection thread
/// that the pool thread displaced waits for its core. 10 000 take tens of
/// microseconds under the count hook; with 100 000 the good routes' p99
/// beside a looping module was about a fifth higher (BENCHMARKS.md,
/// "Fairness").
const POOL_SLICE: u64 = 10_000;

/// How one call ended badly.
enum Failure {
    /// The script raised an error (500); the VM is fine.
    Script(mlua::Error),
    /// The VM hit a limit; it is dropped.
    Limit(HttpError),
}

/// What a hook is called with.
enum Arg {
    /// The VM's `req`, holding the request.
    Req,
    /// A table made for the call.
    Table(mlua::Table),
    /// `ws_open(socket, req)`, `req` holding a copy of the handshake.
    Open(u64),
    /// `ws_message(socket, data, kind)`.
    Message(u64, mlua::LuaString, &'static str),
    /// `ws_close(socket, code)`.
    Close(u64, u16),
}

/// Where a call stands after a slice.
enum Step {
    Finished(mlua::Value),
    Yielded,
    Failed(mlua::Error),
}

/// A call's answer: at once, or from the module pool, where the call went
/// on after its first slice.
enum Run<R> {
    Done(Result<R, HttpError>),
    /// On the pool, with the module's `timeout`.
    Moved(tokio::task::JoinHandle<Result<R, HttpError>>, Duration),
}

impl<R: Send + 'static> Run<R> {
    /// The answer, awaited if the call moved. A caller that stops
    /// waiting (the client left) stops the call at its next turn.
    fn into_future(self) -> BoxFuture<'static, Result<R, HttpError>> {
        match self {
            Self::Done(result) => Box::pin(std::future::ready(result)),
            Self::Moved(handle, ceiling) => {
                let abort = AbortOnDrop(handle.abort_handle());
                Box::pin(async move {
                    let _abort = abort;
                    // Timed here, on the caller's runtime: the pool runs
                    // only when the CPU has room, its timers too.
                    match tokio::time::timeout(ceiling, handle).await {
                        Ok(done) => done.unwrap_or_else(|e| {
                            Err(HttpError::Internal(format!("the Lua call failed: {e}")))
                        }),
                        Err(_) => Err(HttpError::GatewayTimeout(
                            "the module took longer than its timeout",
                        )),
                    }
                })
            }
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl LuaModule {
    /// Reads the script and builds a first VM (which runs its top level).
    pub fn new(entry: &ModuleEntry, services: Arc<dyn Services>) -> Result<Self, String> {
        let source = vm::read(&entry.path)?;
        let limits = Limits::of(&entry.spec);
        let mut inner = Inner {
            name: entry.slot.name().clone(),
            slot: entry.slot.clone(),
            script: entry.path.display().to_string(),
            source,
            config: entry.config.clone(),
            running: Admission::new(limits.calls),
            long_streak: AtomicU32::new(0),
            limits,
            services,
            hooks: Hooks::default(),
            ws_open: false,
            ws_close: false,
            backlogs: ws::Backlogs::default(),
            pool: Pool::default(),
        };
        let first = inner.vm().map_err(|e| e.to_string())?;
        inner.hooks = some_hook(&inner.script, first.hooks())?;
        inner.ws_open = first.ws_open.is_some();
        inner.ws_close = first.ws_close.is_some();
        inner.pool.put(Box::new(first));
        Ok(Self {
            inner: Arc::new(inner),
        })
    }
}

impl Inner {
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

    fn take(&self) -> Result<Box<Vm>, HttpError> {
        match self.pool.take() {
            Some(vm) => Ok(vm),
            None => self.vm().map(Box::new).map_err(|e| {
                tracing::error!(module = %self.name, error = %e, "cannot create a Lua VM");
                HttpError::Internal(e.to_string())
            }),
        }
    }

    /// Calls the hook `call` names on a pooled VM under a fresh budget:
    /// `start` gives its argument and what `finish` keeps from the start;
    /// `finish` reads the answer. The first slice runs here; a call still
    /// running after it goes on on the module pool.
    fn run<R, K, S, F>(self: &Arc<Self>, call: Call, start: S, finish: F) -> Run<R>
    where
        R: Send + 'static,
        K: Send + 'static,
        S: FnOnce(&Vm) -> mlua::Result<(Arg, K)>,
        F: FnOnce(&Vm, Answer, K) -> Result<R, HttpError> + Send + 'static,
    {
        let Some(entered) = self.running.enter() else {
            return Run::Done(Err(HttpError::Unavailable(
                "too many calls of the module at once",
            )));
        };
        let vm = match self.take() {
            Ok(vm) => vm,
            Err(e) => return Run::Done(Err(e)),
        };
        vm.budget
            .reset(self.limits.instructions, Some(self.first_slice()));
        let (arg, kept) = match start(&vm) {
            Ok(started) => started,
            Err(e) => return Run::Done(self.settle(vm, e)),
        };
        let Some(f) = (call.hook)(&vm) else {
            let e = mlua::Error::runtime(format!("the script defines no {}", call.name));
            return Run::Done(self.settle(vm, e));
        };
        let first = match arg {
            Arg::Req => vm.start(f, &vm.req, call.respond),
            Arg::Table(t) => vm.start(f, t, call.respond),
            Arg::Open(socket) => vm.start(f, (socket, &vm.req), call.respond),
            Arg::Message(socket, data, kind) => vm.start(f, (socket, data, kind), call.respond),
            Arg::Close(socket, code) => vm.start(f, (socket, code), call.respond),
        };
        let answer = match first {
            Started::Read(response) => Answer::Response(response),
            Started::Returned(value) => Answer::Value(value),
            Started::Failed(e) => return Run::Done(self.settle(vm, e)),
            Started::Yielded if !vm.budget.sliced() => {
                let e = mlua::Error::runtime("a hook yielded: a hook must return its answer");
                return Run::Done(self.settle(vm, e));
            }
            Started::Yielded => {
                self.ran_long(true);
                // The place goes with the call; `carry_on` gives it back.
                entered.keep();
                if let Some(m) = self.slot.metrics() {
                    m.moved.inc();
                }
                let moved = bulkhead::spawn(self.clone().carry_on(vm, kept, finish));
                return Run::Moved(moved, self.limits.ceiling);
            }
        };
        self.ran_long(false);
        Run::Done(self.finish(vm, answer, kept, finish))
    }

    /// The first slice for this module's next call: short while its
    /// recent calls all ran long.
    fn first_slice(&self) -> u64 {
        if self.long_streak.load(Ordering::Relaxed) >= LONG_STREAK {
            SHORT_SLICE
        } else {
            FIRST_SLICE
        }
    }

    /// Counts a call that outran its first slice (`true`), or resets the
    /// streak for one that did not. A store only when it changes: calls
    /// of a well-behaved module read the counter and never write it.
    fn ran_long(&self, long: bool) {
        let streak = self.long_streak.load(Ordering::Relaxed);
        match (long, streak) {
            (true, n) if n < LONG_STREAK => self.long_streak.store(n + 1, Ordering::Relaxed),
            (false, n) if n > 0 => self.long_streak.store(0, Ordering::Relaxed),
            _ => {}
        }
    }

    /// The rest of a call that outran its first slice, on the module pool:
    /// a slice at a time, letting the pool's other calls run in between.
    async fn carry_on<R, K, F>(
        self: Arc<Self>,
        vm: Box<Vm>,
        kept: K,
        finish: F,
    ) -> Result<R, HttpError>
    where
        F: FnOnce(&Vm, Answer, K) -> Result<R, HttpError>,
    {
        // Given back however the call ends, an abort included.
        let _place = Returned(&self.running);
        let moved = Instant::now();
        loop {
            tokio::task::yield_now().await;
            if moved.elapsed() > self.limits.ceiling {
                tracing::warn!(module = %self.name, script = %self.script, timeout = ?self.limits.ceiling, "Lua call took longer than the module's timeout; replacing its VM");
                return Err(HttpError::GatewayTimeout(
                    "the module took longer than its timeout",
                ));
            }
            vm.budget.next_slice(POOL_SLICE);
            let resumed = vm.thread.resume::<mlua::Value>(());
            match step(&vm, resumed) {
                Step::Yielded => bulkhead::end_of_slice(),
                Step::Finished(v) => return self.finish(vm, Answer::Value(v), kept, finish),
                Step::Failed(e) => return self.settle(vm, e),
            }
        }
    }

    /// Reads the answer of a call that returned, and keeps the VM.
    fn finish<R, K>(
        &self,
        vm: Box<Vm>,
        answer: Answer,
        kept: K,
        finish: impl FnOnce(&Vm, Answer, K) -> Result<R, HttpError>,
    ) -> Result<R, HttpError> {
        let answer = finish(&vm, answer, kept);
        self.pool.put(vm);
        answer
    }

    /// Sorts out how a call failed: the VM goes back to the pool unless it
    /// hit a limit.
    fn settle<R>(&self, vm: Box<Vm>, failed: mlua::Error) -> Result<R, HttpError> {
        match self.classify(&vm, failed) {
            Failure::Script(e) => {
                tracing::warn!(module = %self.name, script = %self.script, error = %one_line(&e), "Lua error");
                // The failed coroutine is closed when the next call starts
                // (`raw::start`).
                self.pool.put(vm);
                Err(HttpError::Internal(format!("Lua error: {e}")))
            }
            Failure::Limit(e) => {
                tracing::warn!(module = %self.name, script = %self.script, error = %e, "Lua VM hit a limit; replacing it");
                drop(vm);
                // The replacement is built here, where the call ended: on
                // the module pool for a call that moved there (a loop
                // that ran to its budget), so the next request does not
                // pay for a new VM on a connection thread. A script that
                // no longer builds is reported by that request instead.
                if let Ok(fresh) = self.vm() {
                    self.pool.put(Box::new(fresh));
                }
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

/// Where the call on `vm` stands after it was resumed on the module pool.
fn step(vm: &Vm, resumed: mlua::Result<mlua::Value>) -> Step {
    match resumed {
        Err(e) => Step::Failed(e),
        Ok(v) => match vm.thread.status() {
            mlua::thread::ThreadStatus::Resumable if vm.budget.sliced() => Step::Yielded,
            mlua::thread::ThreadStatus::Resumable => Step::Failed(mlua::Error::runtime(
                "a hook yielded: a hook must return its answer",
            )),
            _ => Step::Finished(v),
        },
    }
}

/// A place kept with [`bulkhead::Entered::keep`], given back on drop.
struct Returned<'a>(&'a Admission);

impl Drop for Returned<'_> {
    fn drop(&mut self) {
        self.0.leave();
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

/// Which hook a call runs.
#[derive(Clone, Copy)]
struct Call {
    /// The hook on a VM.
    hook: fn(&Vm) -> Option<&mlua::Function>,
    /// Its name, for the error when a script lost it.
    name: &'static str,
    /// Whether its answer is a response, read at once when it has the
    /// common shape.
    respond: bool,
}

const HANDLE: Call = Call {
    hook: |vm| vm.handle.as_ref(),
    name: "handle(req)",
    respond: true,
};
const ACCESS: Call = Call {
    hook: |vm| vm.access.as_ref(),
    name: "access(req)",
    respond: true,
};
const HEADER_FILTER: Call = Call {
    hook: |vm| vm.header_filter.as_ref(),
    name: "header_filter(resp)",
    respond: false,
};
const LOG: Call = Call {
    hook: |vm| vm.log.as_ref(),
    name: "log(entry)",
    respond: false,
};

/// What a hook returned.
enum Answer {
    /// A response, read in the call (`Call::respond`).
    Response(Response),
    /// Anything else, for `finish` to read.
    Value(mlua::Value),
}

/// The response a `handle` or `access` hook returned.
fn response(vm: &Vm, answer: Answer) -> Result<Response, HttpError> {
    match answer {
        Answer::Response(r) => Ok(r),
        Answer::Value(v) => convert::response(v, &vm.keys),
    }
}

impl Instance for LuaModule {
    fn hooks(&self) -> Hooks {
        self.inner.hooks
    }

    fn handle(&self, req: Request) -> HandlerFuture {
        let run = self.inner.run(
            HANDLE,
            |vm| {
                // The request stays in the VM's `req` until the next call
                // replaces it: one borrow per call instead of two.
                vm.req.borrow_mut::<LuaRequest>()?.0 = Some(req);
                Ok((Arg::Req, ()))
            },
            |vm, answer, ()| response(vm, answer),
        );
        match run {
            Run::Done(result) => HandlerFuture::ready(result),
            moved => HandlerFuture::new(moved.into_future()),
        }
    }

    fn request_filter(&self, req: Request) -> BoxFuture<'static, Result<Filtered, HttpError>> {
        if !self.inner.hooks.request_filter {
            return Box::pin(std::future::ready(Ok(Filtered::Continue(req))));
        }
        self.inner
            .run(
                ACCESS,
                |vm| {
                    vm.req.borrow_mut::<LuaRequest>()?.0 = Some(req);
                    Ok((Arg::Req, ()))
                },
                |vm, verdict, ()| {
                    let req = vm
                        .req
                        .borrow_mut::<LuaRequest>()
                        .map_err(|e| HttpError::Internal(e.to_string()))?
                        .0
                        .take();
                    match (verdict, req) {
                        (Answer::Value(mlua::Value::Nil), Some(req)) => Ok(Filtered::Continue(req)),
                        (Answer::Value(mlua::Value::Nil), None) => {
                            Err(HttpError::Internal("the request was lost".into()))
                        }
                        (answer, _) => response(vm, answer).map(Filtered::Respond),
                    }
                },
            )
            .into_future()
    }

    fn response_filter(&self, mut resp: Response) -> HandlerFuture {
        if !self.inner.hooks.response_filter {
            return HandlerFuture::ready(Ok(resp));
        }
        let status = resp.status();
        let run = self.inner.run(
            HEADER_FILTER,
            |vm| {
                let t = convert::head_table(&vm.lua, &resp)?;
                Ok((Arg::Table(t.clone()), t))
            },
            move |vm, out, given| {
                // The hook may change the table in place or return a new one.
                let t = match out {
                    Answer::Value(mlua::Value::Table(new)) => new,
                    _ => given,
                };
                convert::head_of(&t, &vm.keys, status)
            },
        );
        let apply = move |head: Result<_, HttpError>| {
            let (status, headers) = head?;
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            Ok(resp)
        };
        match run {
            Run::Done(head) => HandlerFuture::ready(apply(head)),
            moved => {
                let head = moved.into_future();
                HandlerFuture::new(async move { apply(head.await) })
            }
        }
    }

    fn ws_open(&self, socket: u64, req: &Request) -> Opening {
        ws::open(&self.inner, socket, req)
    }

    fn ws_message(&self, socket: u64, msg: WsData<'_>) -> Result<(), String> {
        ws::message(&self.inner, socket, msg)
    }

    fn ws_close(&self, socket: u64, code: u16) {
        ws::close(&self.inner, socket, code);
    }

    fn log(&self, line: &LogLine) {
        if !self.inner.hooks.log {
            return;
        }
        // A log hook that moved to the module pool finishes there; nobody
        // waits for it.
        let _ = self.inner.run(
            LOG,
            |vm| {
                let t = convert::log_table(&vm.lua, line)?;
                Ok((Arg::Table(t), ()))
            },
            |_, _, ()| Ok(()),
        );
    }
}
