//! What each request's store holds: WASI and wasi:http state, the memory
//! limit, the egress policy ([`Egress`]), and the host API (`troupe:host/api`,
//! whose `query-param` is the server's own decoder, `crate::pipeline::request::query_param`).

use std::sync::Arc;

use bytes::Bytes;
use wasmtime::{
    StoreLimits,
    component::{HasSelf, Linker, ResourceTable},
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::egress::Egress;
use crate::modules::hostapi::Services;

mod bindings {
    wasmtime::component::bindgen!({
        path: "plugins/wasm/wit/deps/troupe-host.wit",
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
        }
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

    fn kv_set(&mut self, key: String, value: Vec<u8>) {
        self.services.kv_set(&key, Bytes::from(value));
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
}

/// Adds `troupe:host/api` to a linker.
pub fn add_host_api(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    api::add_to_linker::<State, HasSelf<State>>(linker, |s| s)
}
