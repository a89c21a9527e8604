//! WebAssembly modules (P2.5): `wasi:http/proxy` components on wasmtime.
//!
//! Each request gets a fresh store and instance from a pre-linked
//! [`ProxyPre`] (wasi:http's semantics; a trapped instance is never
//! reused), with the module's limits: memory through [`StoreLimits`],
//! time through epoch interruption (a ticker thread bumps the engine's
//! epoch every 10 ms), and a semaphore capping instances at once. Outbound
//! HTTP is denied. A trap answers 500 and logs the wasm backtrace, running
//! out of time 504, too many instances 503; none restarts the module.
//! Components may import `troupe:host/api`, the host API native and Lua
//! modules have (`plugins/wasm/wit/deps/troupe-host.wit`).

mod engine;
mod state;

use std::{path::Path, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::sync::Semaphore;
use wasmtime::{
    Store, StoreLimitsBuilder,
    component::{Component, Linker},
};
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
use state::State;

/// Compiles and links a component: what `troupe -t` and start-up check.
/// Errors name what is wrong (not a component, an import we do not
/// provide).
pub fn check(path: &Path) -> Result<(), String> {
    load(path).map(|_| ())
}

fn load(path: &Path) -> Result<ProxyPre<State>, String> {
    let engine = engine::engine()?;
    let component = Component::from_file(engine, path).map_err(|e| format!("{e:#}"))?;
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
    running: Semaphore,
}

impl WasmModule {
    /// Compiles and links the component.
    pub fn new(entry: &ModuleEntry, services: Arc<dyn Services>) -> Result<Self, String> {
        let pre = load(&entry.path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                name: entry.slot.name().clone(),
                pre,
                running: Semaphore::new(entry.sandbox.instances as usize),
                sandbox: entry.sandbox.clone(),
                services,
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
            State::new(self.name.clone(), self.services.clone(), limits),
        );
        store.limiter(|s| &mut s.limits);
        let ticks = (self.sandbox.time.as_millis() / engine::TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();

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
            Ok(Ok(resp)) => Ok(resp
                .map(|body| Body::stream(body.map_err(|e| std::io::Error::other(e.to_string()))))),
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
