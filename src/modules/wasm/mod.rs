//! WebAssembly modules (P2.5): `wasi:http/proxy` components on wasmtime.
//!
//! Each request gets a fresh store and instance from a pre-linked
//! [`ProxyPre`] (wasi:http's semantics; a trapped instance is never
//! reused), with the module's limits: memory through `StoreLimits`,
//! CPU time through epoch interruption (a ticker thread bumps the engine's
//! epoch every millisecond while a call runs), and a cap on instances at
//! once.
//! A guest still running at its first tick moves to the module pool
//! (`modules::bulkhead`), where its time is counted on the CPU clock: a
//! guest waiting for the CPU behind the connection threads is not charged. Outbound
//! HTTP is denied except to the hosts `sandbox.allow_hosts` lists
//! (`egress.rs`). A trap answers 500 and logs the wasm backtrace, running
//! out of time 504, too many instances 503; none restarts the module.
//! Components may import `troupe:host/api`, the host API native and Lua
//! modules have (`plugins/wasm/wit/deps/troupe-host.wit`). As middleware a
//! component is called as a handler too, on a copy of the head; its
//! `pass` (a marked response, [`state::Passed`]) lets the request go on,
//! with the group its `set-upstream` chose. A component that exports
//! `troupe:host/websocket-handler` handles WebSockets (`ws.rs`): a fresh
//! instance per socket event, with the same limits.

mod cache;
mod egress;
mod engine;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz;
mod respond;
mod state;
mod ws;

use std::{path::Path, sync::Arc, time::Duration};

use futures_util::future::Either;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime::{Store, StoreLimitsBuilder, component::Linker};
use wasmtime_wasi_http::{
    WasiHttpView,
    p2::bindings::{Proxy, ProxyPre, http::types::Scheme},
};

use super::{
    bulkhead::{Admission, Lost, Offload, Slice, Ticket},
    entry::ModuleEntry,
    hostapi::Services,
    instance::{Filtered, Hooks, Instance, Opening, WsData, steer},
    pool::Pool,
    runtime::{LoadCx, Loaded, Part, Refused, Role, Runtime, load_blocking},
    slot::Slot,
};
use crate::{
    HttpError,
    config::schema::ModuleSpec,
    handler::{BoxFuture, HandlerFuture, Response},
    pipeline::{body::Body, request::Request},
};
use egress::{AllowList, Egress};
use engine::{MAX_MEMORY, Ticking};
use state::{Passed, State};

/// The runtime of `source: Wasm(..)` modules.
pub(crate) struct WasmRuntime;

/// A `wasi:http/proxy` component answers requests; as middleware it
/// answers them too, unless it calls `troupe:host/api` `pass` (its
/// request filter). One that exports `troupe:host/websocket-handler`
/// handles WebSockets. None has a response filter or log hook.
fn hooks(linked: &Linked) -> Hooks {
    let http = linked.http.is_some();
    Hooks {
        handle: http,
        request_filter: http,
        response_filter: false,
        log: false,
        ws: linked.ws.is_some(),
    }
}

impl Runtime for WasmRuntime {
    fn file_word(&self) -> &'static str {
        "component"
    }

    fn roles(&self) -> &'static [Role] {
        &[Role::Handler, Role::Middleware, Role::WebSocket]
    }

    /// The limits fit an instance, each `allow_hosts` entry parses, and
    /// the component compiles and links (errors name what is wrong: not a
    /// component, an import we do not provide).
    fn check(&self, spec: &ModuleSpec, file: &Path) -> Result<Option<Hooks>, Refused> {
        if spec.sandbox.memory > MAX_MEMORY {
            return Err(Refused::name(format!(
                "module `{}`: `sandbox.memory` is over the {MAX_MEMORY} bytes a WebAssembly instance may have",
                spec.name,
            )));
        }
        for host in &spec.sandbox.allow_hosts {
            AllowList::parse(&[host]).map_err(|message| Refused {
                message: format!("module `{}`: {message}", spec.name),
                at: Part::Value(host.clone()),
            })?;
        }
        let linked = load(file).map_err(|message| {
            Refused::file(format!(
                "module `{}`: {}: {message}",
                spec.name,
                file.display()
            ))
        })?;
        Ok(Some(hooks(&linked)))
    }

    fn load(
        &self,
        entry: Arc<ModuleEntry>,
        cx: LoadCx,
    ) -> BoxFuture<'static, Result<Loaded, String>> {
        Box::pin(load_blocking(move || WasmModule::new(&entry, cx.services)))
    }
}

/// What one instance may use: the runtime's part of `sandbox`.
#[derive(Debug, Clone)]
struct Limits {
    /// Bytes of linear memory.
    memory: usize,
    /// CPU time per request.
    time: Duration,
    /// Wall-clock time per request once it left for the module pool (the
    /// module's `timeout`).
    ceiling: Duration,
    /// Instances at once.
    instances: u32,
    /// Requests one instance serves before it is replaced.
    requests_per_instance: u32,
}

impl Limits {
    fn of(spec: &ModuleSpec) -> Self {
        let sandbox = &spec.sandbox;
        Self {
            memory: sandbox.memory,
            time: sandbox.time,
            ceiling: spec.timeout,
            instances: sandbox.instances,
            requests_per_instance: sandbox.requests_per_instance,
        }
    }
}

/// A component linked, with the exports it has.
struct Linked {
    /// `wasi:http/incoming-handler`.
    http: Option<ProxyPre<State>>,
    /// `troupe:host/websocket-handler`.
    ws: Option<ws::WsPre>,
}

fn load(path: &Path) -> Result<Linked, String> {
    let engine = engine::engine()?;
    let component = cache::component(engine, path)?;
    let linker = linker(engine)?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| format!("{e:#}"))?;
    let ws = ws::pre(pre.clone());
    match ProxyPre::new(pre) {
        Ok(http) => Ok(Linked {
            http: Some(http),
            ws,
        }),
        Err(_) if ws.is_some() => Ok(Linked { http: None, ws }),
        Err(e) => Err(format!(
            "{e:#} (expected a component of the wasi:http/proxy world, or one exporting troupe:host/websocket-handler)"
        )),
    }
}

fn linker(engine: &wasmtime::Engine) -> Result<Linker<State>, String> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| e.to_string())?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(|e| e.to_string())?;
    state::add_host_api(&mut linker).map_err(|e| e.to_string())?;
    ws::add_to_linker(&mut linker).map_err(|e| e.to_string())?;
    Ok(linker)
}

/// A loaded WebAssembly module.
pub struct WasmModule {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    /// Where the module's series are.
    slot: Arc<Slot>,
    /// Its HTTP handler, if it exports one.
    pre: Option<ProxyPre<State>>,
    /// Its socket hooks, if it exports them.
    ws: Option<ws::WsPre>,
    hooks: Hooks,
    limits: Limits,
    services: Arc<dyn Services>,
    allow: Arc<AllowList>,
    /// Instances running at once (`sandbox.instances`).
    running: Arc<Admission>,
    /// Instances that may serve again, when `requests_per_instance` > 1.
    warm: Pool<Warm>,
}

impl WasmModule {
    /// Compiles and links the component.
    pub fn new(entry: &ModuleEntry, services: Arc<dyn Services>) -> Result<Self, String> {
        let linked = load(&entry.path)?;
        let hooks = hooks(&linked);
        let sandbox = &entry.spec.sandbox;
        let allow = Arc::new(AllowList::parse(&sandbox.allow_hosts)?);
        let limits = Limits::of(&entry.spec);
        Ok(Self {
            inner: Arc::new(Inner {
                name: entry.slot.name().clone(),
                slot: entry.slot.clone(),
                pre: linked.http,
                ws: linked.ws,
                hooks,
                running: Arc::new(Admission::new(limits.instances as usize)),
                limits,
                services,
                allow,
                warm: Pool::default(),
            }),
        })
    }
}

/// An instance kept for its next request (`sandbox.requests_per_instance`).
struct Warm {
    store: Store<State>,
    proxy: Proxy,
    served: u32,
}

impl Inner {
    async fn serve(
        self: Arc<Self>,
        mut head: http::request::Parts,
        body: Bytes,
    ) -> Result<Response, HttpError> {
        with_authority(&mut head);
        // Held until the guest's call ends, which can be after the
        // handler returns (a streamed body).
        let permit = self.admit()?;
        let internal = |e: wasmtime::Error| HttpError::Internal(format!("{e:#}"));
        let Warm {
            mut store,
            proxy,
            served,
        } = match self.take_warm() {
            Some(mut warm) => {
                self.arm(&mut warm.store);
                warm
            }
            None => self.instantiate().await.map_err(|e| self.failure(Err(e)))?,
        };

        let wasi_req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, hyper_request(head, body))
            .map_err(internal)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(tx)
            .map_err(internal)?;
        let this = self.clone();
        let meter = store.data().meter.clone();
        let call: Guest = Box::pin(async move {
            let _permit = permit;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, wasi_req, out)
                .await?;
            // Only an instance that returned cleanly serves again.
            this.keep_warm(Warm {
                store,
                proxy,
                served: served + 1,
            });
            Ok(())
        });
        let moved = self.slot.metrics().map(|m| m.moved.clone());
        let call = Offload::new(call, meter, self.limits.ceiling, moved);
        // The guest runs on this task: most answer and return in one poll,
        // and a task of its own cost a spawn and a wake-up per request.
        // One that goes on after setting its response is driven alongside
        // the body, and spawned if the body outgrows what is gathered.
        let (resp, call) = match futures_util::future::select(call, rx).await {
            Either::Left((done, rx)) => match rx.await {
                Ok(resp) => (resp, None),
                Err(_) => return Err(self.failure(ended(done))),
            },
            Either::Right((Ok(resp), call)) => (resp, Some(call)),
            Either::Right((Err(_), call)) => return Err(self.failure(ended(call.await))),
        };
        let resp = resp.map_err(|code| {
            HttpError::Internal(format!("the component answered an error: {code:?}"))
        })?;
        let (head, body) = resp.into_parts();
        let body = body.map_err(|e| std::io::Error::other(e.to_string()));
        // A reused instance is kept only once its call returns: the body's
        // end waits for that, so the next request finds it.
        let reused = self.limits.requests_per_instance > 1;
        Ok(http::Response::from_parts(
            head,
            gather(body, call, reused).await,
        ))
    }

    /// A fresh store and instance, armed with its time limit (which also
    /// covers the component's start-up code).
    async fn instantiate(&self) -> wasmtime::Result<Warm> {
        let pre = self.pre.as_ref().ok_or_else(|| {
            wasmtime::Error::msg("the component exports no wasi:http/incoming-handler")
        })?;
        let mut store = self.store()?;
        let proxy = pre.instantiate_async(&mut store).await?;
        Ok(Warm {
            store,
            proxy,
            served: 0,
        })
    }

    /// A call's place among `instances`, and the epoch ticking for it
    /// (its time limit and first slice are counted in ticks): both held
    /// from before its instance is made until the guest's call ends.
    fn admit(&self) -> Result<(Ticket, Ticking), HttpError> {
        let permit = self
            .running
            .enter_owned()
            .ok_or(HttpError::Unavailable("too many instances of the module"))?;
        Ok((permit, Ticking::start()))
    }

    /// A fresh store with the module's limits, armed.
    fn store(&self) -> wasmtime::Result<Store<State>> {
        let engine = engine::engine().map_err(wasmtime::Error::msg)?;
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory)
            .instances(16)
            .build();
        let mut store = Store::new(
            engine,
            State::new(
                self.name.clone(),
                self.services.clone(),
                limits,
                Egress::new(self.name.clone(), self.allow.clone(), self.limits.time),
            ),
        );
        store.limiter(|s| &mut s.limits);
        let budget = self.limits.time;
        store.epoch_deadline_callback(move |mut store| {
            let meter = &store.data_mut().meter;
            // On the request's thread, a guest that used most of a tick of
            // CPU outran its first slice: it leaves for the module pool at
            // this yield (start-up code, which cannot leave, is stopped by
            // the CPU charged here alone).
            if !meter.moved() && meter.tick_here(engine::TICK) == Slice::Stay {
                return Ok(wasmtime::UpdateDeadline::Continue(1));
            }
            Ok(if meter.spent() >= budget {
                wasmtime::UpdateDeadline::Interrupt
            } else {
                wasmtime::UpdateDeadline::Yield(1)
            })
        });
        self.arm(&mut store);
        Ok(store)
    }

    /// Gives this request its time budget, counted afresh. Every tick
    /// the guest yields to the runtime (a busy guest must not hold a
    /// worker thread, and the connections queued on it); when its budget is
    /// spent it is interrupted.
    fn arm(&self, store: &mut Store<State>) {
        store.data_mut().meter = Arc::default();
        store.data_mut().upstream = None;
        store.data_mut().rate_key = None;
        store.set_epoch_deadline(1);
    }

    /// Runs one socket hook on a fresh instance, with the limits a
    /// request has (its place among `instances`, memory, CPU time, the
    /// module pool past its first slice, `timeout` there).
    async fn socket_event(self: Arc<Self>, event: ws::Event) -> Result<ws::Returned, HttpError> {
        let permit = self.admit()?;
        let pre = self.ws.as_ref().ok_or_else(|| {
            HttpError::Internal("the component exports no troupe:host/websocket-handler".into())
        })?;
        let mut store = self.store().map_err(|e| self.failure(Err(e)))?;
        let guest = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| self.failure(Err(e)))?;
        let meter = store.data().meter.clone();
        let call: SocketCall = Box::pin(async move {
            let _permit = permit;
            ws::call(&guest, &mut store, event).await
        });
        let moved = self.slot.metrics().map(|m| m.moved.clone());
        match Offload::new(call, meter, self.limits.ceiling, moved).await {
            Ok(Ok(returned)) => Ok(returned),
            Ok(Err(e)) => Err(self.failure(Err(e))),
            Err(lost) => Err(self.failure(Err(wasmtime::Error::new(lost)))),
        }
    }

    fn take_warm(&self) -> Option<Warm> {
        if self.limits.requests_per_instance <= 1 {
            return None;
        }
        self.warm.take()
    }

    fn keep_warm(&self, warm: Warm) {
        if warm.served < self.limits.requests_per_instance {
            self.warm.put(warm);
        }
    }

    /// Why the guest never set a response.
    fn failure(&self, ended: wasmtime::Result<()>) -> HttpError {
        let Err(e) = ended else {
            return HttpError::Internal("the component never set a response".into());
        };
        if let Some(Lost::TimedOut(after)) = e.downcast_ref::<Lost>() {
            tracing::warn!(module = %self.name, timeout = ?after, "WebAssembly instance took longer than the module's timeout");
            return HttpError::GatewayTimeout("the module took longer than its timeout");
        }
        if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
        {
            return HttpError::Unavailable("no WebAssembly instance slot is free");
        }
        match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => {
                tracing::warn!(module = %self.name, limit = ?self.limits.time, "WebAssembly instance ran out of CPU time");
                HttpError::GatewayTimeout("the module ran out of time")
            }
            _ => {
                tracing::warn!(module = %self.name, error = %format!("{e:#}"), "WebAssembly instance trapped");
                HttpError::Internal(format!("WebAssembly trap: {e}"))
            }
        }
    }
}

/// Bodies up to this size are gathered before the head is sent.
const GATHER: usize = 64 * 1024;

/// The guest's call.
type Guest = std::pin::Pin<Box<dyn Future<Output = wasmtime::Result<()>> + Send>>;

/// The guest's call, which moves to the module pool if it runs long.
type Call = Offload<Guest>;

/// A socket hook's call.
type SocketCall = std::pin::Pin<Box<dyn Future<Output = wasmtime::Result<ws::Returned>> + Send>>;

/// How a call ended, wherever it ran.
fn ended(call: Result<wasmtime::Result<()>, Lost>) -> wasmtime::Result<()> {
    call.map_err(wasmtime::Error::new)?
}

/// Reads the start of a component's body, driving the guest's `call` (if
/// it is still running) alongside: a small body that ends within
/// [`GATHER`] bytes becomes one buffer (sent with the head in one write and
/// a Content-Length); a larger one streams on, its first bytes first, and
/// the guest finishes on a task of its own. With `wait` (a reused
/// instance), a small body's response also waits for the guest to return,
/// so its instance is back in the pool before the next request can come.
/// Streaming a small body cost a
/// write per frame (perf: a third of the CPU in `writev` and the wake-ups
/// it caused).
async fn gather<B>(mut body: B, mut call: Option<Call>, wait: bool) -> Body
where
    B: http_body::Body<Data = Bytes, Error = std::io::Error> + Send + Unpin + 'static,
{
    let mut buf = bytes::BytesMut::new();
    loop {
        let frame = match call.as_mut() {
            None => body.frame().await,
            Some(running) => match futures_util::future::select(running, body.frame()).await {
                Either::Left((done, _)) => {
                    after_response(done);
                    call = None;
                    continue;
                }
                Either::Right((frame, _)) => frame,
            },
        };
        match frame {
            None => {
                // The guest goes on after its body: a reused one is awaited
                // (it must return to be kept), a fresh one finishes apart.
                match call {
                    Some(running) if wait => after_response(running.await),
                    Some(running) => {
                        tokio::spawn(async move { after_response(running.await) });
                    }
                    None => {}
                }
                return Body::full(buf.freeze());
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
                if buf.len() > GATHER {
                    if let Some(running) = call.take() {
                        tokio::spawn(async move { after_response(running.await) });
                    }
                    let first = http_body_util::Full::new(buf.freeze())
                        .map_err(|never: std::convert::Infallible| match never {});
                    return Body::stream(Prefixed {
                        first: Some(first),
                        rest: body,
                    });
                }
            }
            Some(Err(e)) => {
                return Body::stream(http_body_util::Empty::new().map_err(
                    move |_: std::convert::Infallible| std::io::Error::other(e.to_string()),
                ));
            }
        }
    }
}

/// Logs a guest that failed after it set its response: the client has its
/// answer, so only the log can tell.
fn after_response(done: Result<wasmtime::Result<()>, Lost>) {
    if let Err(e) = ended(done) {
        tracing::warn!(error = %format!("{e:#}"), "WebAssembly instance failed after it set its response");
    }
}

/// A body whose first bytes were already read.
struct Prefixed<F, B> {
    first: Option<F>,
    rest: B,
}

impl<F, B> http_body::Body for Prefixed<F, B>
where
    F: http_body::Body<Data = Bytes, Error = std::io::Error> + Unpin,
    B: http_body::Body<Data = Bytes, Error = std::io::Error> + Unpin,
{
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        if let Some(first) = self.first.as_mut() {
            match std::pin::Pin::new(first).poll_frame(cx) {
                std::task::Poll::Ready(None) => self.first = None,
                other => return other,
            }
        }
        std::pin::Pin::new(&mut self.rest).poll_frame(cx)
    }
}

/// The request as wasi:http takes it: the head, and the buffered body.
/// wasi:http refuses a request with no authority at all, which an
/// HTTP/1.0 one may be (the core refuses an HTTP/1.1 one without `Host`):
/// the component sees an empty one, as the client sent.
fn with_authority(head: &mut http::request::Parts) {
    if head.uri.authority().is_none() && !head.headers.contains_key(http::header::HOST) {
        head.headers
            .insert(http::header::HOST, http::HeaderValue::from_static(""));
    }
}

fn hyper_request(
    head: http::request::Parts,
    body: Bytes,
) -> hyper::Request<impl http_body::Body<Data = Bytes, Error = hyper::Error> + Send + 'static> {
    hyper::Request::from_parts(
        head,
        Full::new(body).map_err(|never: std::convert::Infallible| match never {}),
    )
}

impl Instance for WasmModule {
    fn hooks(&self) -> Hooks {
        self.inner.hooks
    }

    fn handle(&self, req: Request) -> HandlerFuture {
        let (head, body) = req.into_parts();
        let serve = self.inner.clone().serve(head, body);
        HandlerFuture::new(async move {
            let resp = serve.await?;
            if resp.extensions().get::<Passed>().is_some() {
                return Err(HttpError::Internal(
                    "the component called `pass`, but it is the route's handler".into(),
                ));
            }
            Ok(resp)
        })
    }

    /// The component sees a copy of the head (and the buffered body, if
    /// any); the request itself waits here for the route's handler.
    fn request_filter(&self, req: Request) -> BoxFuture<'static, Result<Filtered, HttpError>> {
        let (mut head, ()) = http::Request::new(()).into_parts();
        head.method = req.method().clone();
        head.uri = req.uri().clone();
        head.version = req.version();
        head.headers = req.headers().clone();
        let serve = self.inner.clone().serve(head, req.body().clone());
        let module = self.inner.name.clone();
        Box::pin(async move {
            let resp = serve.await?;
            Ok(match resp.extensions().get::<Passed>() {
                Some(passed) => Filtered::Continue(steer(
                    req,
                    &module,
                    passed.upstream.clone(),
                    passed.rate_key.clone(),
                )),
                None => Filtered::Respond(resp),
            })
        })
    }

    fn ws_open(&self, socket: u64, req: &Request) -> Opening {
        let event = ws::Event::Open(socket, ws::request(req));
        let call = self.inner.clone().socket_event(event);
        // Awaited by the handshake: a call the meter moves to the module
        // pool does not hold the connection's thread.
        Box::pin(async move {
            match call.await? {
                ws::Returned::Opened(answer) => ws::opened(answer),
                ws::Returned::Done => Err(HttpError::Internal("on-open gave no answer".into())),
            }
        })
    }

    /// A failed call (a trap, out of time or memory, no free instance)
    /// closes the socket (1011); the module goes on serving.
    fn ws_message(&self, socket: u64, msg: WsData<'_>) -> Result<(), String> {
        let event = ws::Event::Message(socket, ws::message(msg));
        ws::wait(self.inner.clone().socket_event(event))
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn ws_close(&self, socket: u64, code: u16) {
        let event = ws::Event::Close(socket, code);
        if let Err(error) = ws::wait(self.inner.clone().socket_event(event)) {
            tracing::debug!(module = %self.inner.name, %error, "on-close failed");
        }
    }
}
