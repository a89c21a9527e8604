//! WebAssembly modules (P2.5): `wasi:http/proxy` components on wasmtime.
//!
//! Each request gets a fresh store and instance from a pre-linked
//! [`ProxyPre`] (wasi:http's semantics; a trapped instance is never
//! reused), with the module's limits: memory through [`StoreLimits`],
//! time through epoch interruption (a ticker thread bumps the engine's
//! epoch every 10 ms), and a semaphore capping instances at once. Outbound
//! HTTP is denied except to the hosts `sandbox.allow_hosts` lists
//! ([`egress`]). A trap answers 500 and logs the wasm backtrace, running
//! out of time 504, too many instances 503; none restarts the module.
//! Components may import `troupe:host/api`, the host API native and Lua
//! modules have (`plugins/wasm/wit/deps/troupe-host.wit`).

mod cache;
mod egress;
mod engine;
mod state;

use std::{path::Path, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::sync::Semaphore;
use wasmtime::{Store, StoreLimitsBuilder, component::Linker};
use wasmtime_wasi_http::{
    WasiHttpView,
    p2::bindings::{ProxyPre, http::types::Scheme},
};

use super::{Filtered, Hooks, Instance, LogLine, ModuleEntry, hostapi::Services};
use crate::{
    HttpError,
    config::schema::Sandbox,
    handler::{BoxFuture, HandlerFuture, Response},
    pipeline::{body::Body, request::Request},
};
use egress::{AllowList, Egress};
use state::State;

pub use engine::MAX_MEMORY;

/// Compiles and links a component: what `troupe -t` and start-up check.
/// Errors name what is wrong (not a component, an import we do not
/// provide).
pub fn check(path: &Path) -> Result<(), String> {
    load(path).map(|_| ())
}

/// Checks one `sandbox.allow_hosts` entry.
pub fn check_allow_host(entry: &str) -> Result<(), String> {
    AllowList::parse(&[entry]).map(|_| ())
}

fn load(path: &Path) -> Result<ProxyPre<State>, String> {
    let engine = engine::engine()?;
    let component = cache::component(engine, path)?;
    let linker = linker(engine)?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| format!("{e:#}"))?;
    ProxyPre::new(pre)
        .map_err(|e| format!("{e:#} (expected a component of the wasi:http/proxy world)"))
}

fn linker(engine: &wasmtime::Engine) -> Result<Linker<State>, String> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| e.to_string())?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(|e| e.to_string())?;
    state::add_host_api(&mut linker).map_err(|e| e.to_string())?;
    Ok(linker)
}

/// A loaded WebAssembly module.
pub struct WasmModule {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    pre: ProxyPre<State>,
    sandbox: Sandbox,
    services: Arc<dyn Services>,
    allow: Arc<AllowList>,
    running: Semaphore,
}

impl WasmModule {
    /// Compiles and links the component.
    pub fn new(entry: &ModuleEntry, services: Arc<dyn Services>) -> Result<Self, String> {
        let pre = load(&entry.path)?;
        let allow = Arc::new(AllowList::parse(&entry.sandbox.allow_hosts)?);
        Ok(Self {
            inner: Arc::new(Inner {
                name: entry.slot.name().clone(),
                pre,
                running: Semaphore::new(entry.sandbox.instances as usize),
                sandbox: entry.sandbox.clone(),
                services,
                allow,
            }),
        })
    }
}

impl Inner {
    async fn serve(self: Arc<Self>, req: Request) -> Result<Response, HttpError> {
        let _permit = self
            .running
            .try_acquire()
            .map_err(|_| HttpError::Unavailable("too many instances of the module"))?;
        let engine = engine::engine().map_err(HttpError::Internal)?;
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.sandbox.memory)
            .instances(16)
            .build();
        let mut store = Store::new(
            engine,
            State::new(
                self.name.clone(),
                self.services.clone(),
                limits,
                Egress::new(self.name.clone(), self.allow.clone(), self.sandbox.time),
            ),
        );
        store.limiter(|s| &mut s.limits);
        // Every tick the guest yields to the runtime (a busy guest must not
        // hold a worker thread, and the connections queued on it, for its
        // whole time limit); when its ticks are spent it is interrupted.
        let mut ticks = (self.sandbox.time.as_millis() / engine::TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            ticks -= 1;
            Ok(if ticks == 0 {
                wasmtime::UpdateDeadline::Interrupt
            } else {
                wasmtime::UpdateDeadline::Yield(1)
            })
        });

        let incoming = hyper_request(&req);
        let internal = |e: wasmtime::Error| HttpError::Internal(format!("{e:#}"));
        let wasi_req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, incoming)
            .map_err(internal)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(tx)
            .map_err(internal)?;
        let pre = self.pre.clone();
        // The guest may go on writing the body after it has set the
        // response, so it runs as a task of its own.
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, wasi_req, out)
                .await
        });
        match rx.await {
            Ok(Ok(resp)) => {
                let (head, body) = resp.into_parts();
                let body = body.map_err(|e| std::io::Error::other(e.to_string()));
                Ok(http::Response::from_parts(head, gather(body).await))
            }
            Ok(Err(code)) => Err(HttpError::Internal(format!(
                "the component answered an error: {code:?}"
            ))),
            Err(_) => Err(self.failure(task.await)),
        }
    }

    /// Why the guest never set a response.
    fn failure(&self, joined: Result<wasmtime::Result<()>, tokio::task::JoinError>) -> HttpError {
        let e = match joined {
            Ok(Ok(())) => {
                return HttpError::Internal("the component never set a response".into());
            }
            Ok(Err(e)) => e,
            Err(e) => return HttpError::Internal(e.to_string()),
        };
        if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
        {
            return HttpError::Unavailable("no WebAssembly instance slot is free");
        }
        match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => {
                tracing::warn!(module = %self.name, limit = ?self.sandbox.time, "WebAssembly instance ran out of time");
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

/// Reads the start of a component's body: a small body that ends within
/// [`GATHER`] bytes becomes one buffer (sent with the head in one write and
/// a Content-Length); a larger one streams on, its first bytes first.
/// Streaming a small body cost a write per frame (perf: a third of the
/// CPU in `writev` and the wake-ups it caused).
async fn gather<B>(mut body: B) -> Body
where
    B: http_body::Body<Data = Bytes, Error = std::io::Error> + Send + Unpin + 'static,
{
    let mut buf = bytes::BytesMut::new();
    loop {
        match body.frame().await {
            None => return Body::full(buf.freeze()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
                if buf.len() > GATHER {
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
fn hyper_request(
    req: &Request,
) -> hyper::Request<impl http_body::Body<Data = Bytes, Error = hyper::Error> + Send + 'static> {
    let head = req.head();
    let mut out = hyper::Request::new(
        Full::new(req.body().clone()).map_err(|never: std::convert::Infallible| match never {}),
    );
    *out.method_mut() = head.method.clone();
    *out.uri_mut() = head.uri.clone();
    *out.version_mut() = head.version;
    *out.headers_mut() = head.headers.clone();
    out
}

impl Instance for WasmModule {
    fn hooks(&self) -> Hooks {
        Hooks {
            handle: true,
            ..Hooks::default()
        }
    }

    fn handle(&self, req: Request) -> HandlerFuture {
        HandlerFuture::new(self.inner.clone().serve(req))
    }

    fn request_filter(&self, req: Request) -> BoxFuture<'static, Result<Filtered, HttpError>> {
        Box::pin(async move { Ok(Filtered::Continue(req)) })
    }

    fn response_filter(&self, resp: Response) -> HandlerFuture {
        HandlerFuture::ready(Ok(resp))
    }

    fn log(&self, _line: &LogLine) {}
}
