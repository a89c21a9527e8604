//! What each request's store holds: WASI and wasi:http state, the memory
//! limit, the egress policy ([`Egress`]), and the host API (`troupe:host/api`,
//! whose `query-param` is the server's own decoder, `crate::pipeline::request::query_param`).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use wasmtime::{
    StoreLimits,
    component::{HasSelf, Linker, Resource, ResourceTable},
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    WasiHttpCtx, WasiHttpCtxView, WasiHttpView, p2::types::HostResponseOutparam,
};

use super::egress::Egress;
use crate::modules::hostapi::Services;

mod bindings {
    wasmtime::component::bindgen!({
        path: "plugins/wasm/wit",
        world: "troupe:host/host",
        require_store_data_send: true,
        imports: {
            "troupe:host/api.respond": trappable,
            "troupe:host/api.pass": trappable,
        },
        // `respond` takes wasi:http's `response-outparam`: the same
        // resource wasmtime-wasi-http hands the guest.
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

/// `troupe:host/api` 0.1.x, for components built before 0.2.0 made
/// `kv-set` answer: the same functions, `kv-set` without a result.
mod v0_1 {
    wasmtime::component::bindgen!({
        inline: "
            package troupe:host@0.1.1;
            interface api {
                enum level { error, warn, info, debug, trace }
                log: func(level: level, message: string);
                kv-get: func(key: string) -> option<list<u8>>;
                kv-set: func(key: string, value: list<u8>);
                kv-delete: func(key: string);
                metric: func(name: string, by: u64);
                query-param: func(query: string, name: string) -> option<string>;
            }
            world host { import api; }
        ",
        world: "troupe:host/host",
    });
}

use bindings::troupe::host::api;

use crate::modules::bulkhead::Meter;

/// One request's store data.
pub struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    egress: Egress,
    /// The memory limit (`Store::limiter` reads it).
    pub limits: StoreLimits,
    /// The current request's CPU time and whether it left for the module
    /// pool (the epoch callback reads and charges it).
    pub meter: Arc<Meter>,
    module: Arc<str>,
    services: Arc<dyn Services>,
    /// The group `set-upstream` named, until `pass` takes it (cleared for
    /// each request a kept instance serves).
    pub upstream: Option<String>,
    /// The key `set-rate-key` chose, until `pass` takes it (cleared as
    /// `upstream` is).
    pub rate_key: Option<Vec<u8>>,
}

/// The mark on the response `pass` sends: not an answer, the request goes
/// on (to the group the component chose, if any).
#[derive(Debug, Clone)]
pub struct Passed {
    /// From `set-upstream`.
    pub upstream: Option<String>,
    /// From `set-rate-key`.
    pub rate_key: Option<Vec<u8>>,
}

impl State {
    /// Fresh state for one request of `module`.
    pub fn new(
        module: Arc<str>,
        services: Arc<dyn Services>,
        limits: StoreLimits,
        egress: Egress,
    ) -> Self {
        Self {
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            egress,
            limits,
            meter: Arc::default(),
            module,
            services,
            upstream: None,
            rate_key: None,
        }
    }

    /// The module it runs for.
    pub fn module(&self) -> &str {
        &self.module
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

impl api::Host for State {
    fn log(&mut self, level: api::Level, message: String) {
        let level = match level {
            api::Level::Error => troupe_abi::level::ERROR,
            api::Level::Warn => troupe_abi::level::WARN,
            api::Level::Info => troupe_abi::level::INFO,
            api::Level::Debug => troupe_abi::level::DEBUG,
            api::Level::Trace => troupe_abi::level::TRACE,
        };
        self.services.log(&self.module, level, &message);
    }

    fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
        self.services.kv_get(&key).map(|v| v.to_vec())
    }

    fn kv_set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        self.services
            .kv_set(&self.module, &key, Bytes::from(value))
            .map_err(|refused| refused.to_string())
    }

    fn kv_delete(&mut self, key: String) {
        self.services.kv_delete(&key);
    }

    fn metric(&mut self, name: String, by: u64) {
        self.services.metric(&self.module, &name, by);
    }

    fn query_param(&mut self, query: String, name: String) -> Option<String> {
        crate::pipeline::request::query_param(query.as_bytes(), &name).map(|v| v.into_owned())
    }

    fn respond(
        &mut self,
        out: Resource<HostResponseOutparam>,
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    ) -> wasmtime::Result<()> {
        let out = self.table.delete(out)?;
        // A refused answer reaches the client as a 500, and the log with
        // its reason, as any error the component answers.
        (out.send)(super::respond::response(
            &mut self.egress,
            status,
            headers,
            body,
        ));
        Ok(())
    }

    fn pass(&mut self, out: Resource<HostResponseOutparam>) -> wasmtime::Result<()> {
        let out = self.table.delete(out)?;
        let body = http_body_util::Empty::new()
            .map_err(|never: std::convert::Infallible| match never {})
            .boxed_unsync();
        let mut mark = hyper::Response::new(body);
        mark.extensions_mut().insert(Passed {
            upstream: self.upstream.take(),
            rate_key: self.rate_key.take(),
        });
        (out.send)(Ok(mark));
        Ok(())
    }

    fn set_upstream(&mut self, name: String) {
        self.upstream = Some(name);
    }

    fn set_rate_key(&mut self, key: Vec<u8>) {
        self.rate_key = Some(key);
    }
}

/// The 0.1.x host API: each function the current one's, but a refused
/// `kv-set` has no way back to the component, so it is dropped (logged at
/// debug and counted in `troupe_module_kv_refused_total`, as every refusal).
impl v0_1::troupe::host::api::Host for State {
    fn log(&mut self, level: v0_1::troupe::host::api::Level, message: String) {
        use v0_1::troupe::host::api::Level as Old;
        let level = match level {
            Old::Error => api::Level::Error,
            Old::Warn => api::Level::Warn,
            Old::Info => api::Level::Info,
            Old::Debug => api::Level::Debug,
            Old::Trace => api::Level::Trace,
        };
        api::Host::log(self, level, message);
    }

    fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
        api::Host::kv_get(self, key)
    }

    fn kv_set(&mut self, key: String, value: Vec<u8>) {
        let _ = api::Host::kv_set(self, key, value);
    }

    fn kv_delete(&mut self, key: String) {
        api::Host::kv_delete(self, key);
    }

    fn metric(&mut self, name: String, by: u64) {
        api::Host::metric(self, name, by);
    }

    fn query_param(&mut self, query: String, name: String) -> Option<String> {
        api::Host::query_param(self, query, name)
    }
}

/// Adds `troupe:host/api` to a linker: 0.2.x, and 0.1.x for components
/// built against it (two semver tracks, so a component gets the one it
/// was built for).
pub fn add_host_api(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    api::add_to_linker::<State, HasSelf<State>>(linker, |s| s)?;
    v0_1::troupe::host::api::add_to_linker::<State, HasSelf<State>>(linker, |s| s)
}
