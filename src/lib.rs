//! Troupe: an nginx-class HTTP server whose every part is a supervised actor.
//!
//! # Layout
//! - [`config`]: `config.ron` → checked schema → compiled [`pipeline::snapshot::Snapshot`].
//! - `app`: binds sockets, builds the HTTP core, starts the supervision tree
//!   (the `troupe-actors` crate in `actors/`).
//! - `conn`: one accepted connection (HTTP/1.x + h2c, or HTTPS after a
//!   handshake; timeouts, drain).
//! - [`tls`]: certificates by SNI, the rustls configs, the handshake.
//! - [`pipeline`]: THE HOT PATH — one request: snapshot → server → route →
//!   middleware → handler. Never awaits an actor.
//! - [`handler`]: the public [`Handler`] and [`Middleware`] traits.
//! - `handlers`: core handlers (`Return`, `Static`, `Redirect`).
//! - `middleware`: core middleware (`SetHeaders`, `RequireHeader`, `Compress`).
//! - [`modules`]: native modules (C ABI, Rust SDK, in process or in a
//!   child process), Lua scripts and WebAssembly components, each run by
//!   its own plugin-host actor.
//! - [`proxy`]: the reverse proxy: upstream groups, balancing, pools,
//!   the `Proxy` handler.
//! - [`cache`]: the response cache (`proxy_cache`): zones, RFC 9111
//!   freshness, coalescing, stale serving, purge.
//! - [`limit`]: rate limiting (a keyed GCRA that can delay as well as refuse).
//! - [`error`]: [`HttpError`], the one error → status mapping.
//! - [`observe`]: access log and error-log set-up.
//! - [`control`]: `troupe -s` and the pid file it reads.
//! - [`allocator`]: the binary's global allocator (mimalloc).
//! - `admin`: the admin API on its own listener.
//! - `fuzzing` (feature `fuzzing`): the invariants the fuzz targets and
//!   property tests check, over crate-private parts.
//!
//! `ARCHITECTURE.md` at the repository root draws the actor tree, the
//! messages, and the request path.
// Only the C ABIs opt out: `modules::native`, `modules::hostapi`,
// `modules::wasm::cache` and `modules::lua::raw`.
#![deny(missing_docs, unsafe_code)]

pub(crate) mod admin;
pub mod allocator;
pub(crate) mod app;
pub mod cache;
pub mod client;
pub mod config;
pub(crate) mod conn;
pub mod control;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub(crate) mod generation;
pub mod handler;
pub(crate) mod handlers;
pub(crate) mod held;
pub mod kept;
pub mod limit;
pub(crate) mod listen;
pub(crate) mod middleware;
pub mod modules;
pub mod notify;
pub mod observe;
pub mod pipeline;
pub mod proxy;
pub(crate) mod reload;
// Without the static handler nothing maps a file: the mapping half is unused.
#[cfg_attr(not(feature = "handler-static"), allow(dead_code))]
pub(crate) mod sendfile;
pub mod tls;

pub use app::{Options, Running, StartError, start, start_with};
pub use error::HttpError;
pub use handler::{BoxFuture, Handler, HandlerFuture, HandlerResult, Middleware, Next, Response};
pub use listen::{bind, bind_all};
/// Compression: the codings, the media-type list, `troupe precompress`.
pub use middleware::compress;
pub use pipeline::{body::Body, request::Request};
pub use reload::Trigger;
