//! Modules (P2.3, P2.4, P2.8–P2.10): code loaded at run time, each run by
//! its own plugin-host actor, reached by requests without a mailbox hop.
//!
//! ```text
//! config.ron `modules`  → ModuleEntry (config time: Runtime::check, a Slot per module)
//! plugin.<name> actor   → Hosted::load → Runtime::load → Slot::publish
//! route Module("name")  → ModuleHandler → Slot::load → Instance::handle
//! middleware Module(..) → ModuleFilter  → request_filter / response_filter
//! server `loggers`      → LogHooks      → Instance::log after the response
//! ```
//!
//! The seam, shared by every runtime:
//! - `runtime`: the `runtime::Runtime` trait and the table of runtimes.
//! - [`Instance`] (here): one loaded module, as requests call it.
//! - [`slot`]: where the current instance is published.
//! - `route`: the `Handler`, `Middleware` and log hook that routes use.
//! - `host`: the `ModuleHost` the plugin-host actor drives.
//! - `hostapi`: the host functions every module reaches (log, store, metrics).
//! - `kv`: the store they share, with each module's quota of it.
//!
//! One folder per runtime:
//! - `inprocess`: a native library called on the request's thread.
//! - [`process`]: a native library in a child process, over a unix socket.
//! - `lua`: Lua scripts in a pool of sandboxed VMs (feature `lua`).
//! - `wasm`: `wasi:http` components on wasmtime (feature `wasm`).
//!
//! `native` is the C ABI both native runtimes share: loading a library,
//! calling its hooks (in the server, or in a module's child process).

#[cfg(any(feature = "lua", feature = "wasm"))]
pub(crate) mod bulkhead;
pub(crate) mod entry;
pub(crate) mod host;
pub(crate) mod hostapi;
pub(crate) mod inprocess;
pub(crate) mod instance;
pub(crate) mod kind;
pub(crate) mod kv;
#[cfg(feature = "lua")]
pub(crate) mod lua;
pub(crate) mod native;
#[cfg(any(feature = "lua", feature = "wasm"))]
mod pool;
pub mod process;
pub(crate) mod route;
pub(crate) mod runtime;
pub mod slot;
pub(crate) mod table;
#[cfg(feature = "wasm")]
pub(crate) mod wasm;
pub(crate) mod ws;

pub use entry::{FileStamp, ModuleEntry};
pub use instance::{Filtered, Hooks, Instance};
pub use kind::RuntimeKind;
pub use runtime::Role;
pub use slot::Slot;
pub use table::{ModuleUse, probe};
