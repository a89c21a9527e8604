//! The supervision tree of Troupe: lifecycle only, never the request path.
//!
//! ```text
//! troupe                      root supervisor (root.rs): restarts children with backoff
//! ├── config                  watches and reloads the config, in order (config.rs)
//! ├── router                  owns the published request-path snapshot (router.rs)
//! ├── metrics                 owns the Prometheus registry (metrics.rs)
//! ├── modules                 supervisor of the plugin hosts (modules.rs)
//! │   └── plugin.<name>       one per module: load, restart, reload (plugin_host.rs)
//! └── listener.<addr>         one per listen address: accept loop (listener.rs)
//!     └── connection tasks    tracked tasks, panics reported to the listener
//! ```
//!
//! # Layout
//! - [`seams`]: the traits through which the tree drives the rest: [`App`]
//!   (the HTTP core), [`ModuleHost`] (one module) and [`Reconfigure`]
//!   (reading a new config).
//! - [`restart`]: the one restart policy (backoff inside an intensity window).
//! - [`children`]: child specs and restarts, shared by every supervisor.
//! - [`tree`]: renders the live tree for the logs.
//! - One file per actor: `struct X; enum XMsg; struct XState; struct XArgs`.
//!
//! Requests never queue through a mailbox here: the router publishes an
//! [`arc_swap::ArcSwap`] snapshot that connection tasks read directly, and
//! actors only handle lifecycle and state changes.
#![deny(missing_docs, unsafe_code)]

pub mod children;
pub mod config;
pub mod listener;
pub mod metrics;
pub mod modules;
pub mod plugin_host;
pub mod restart;
pub mod root;
pub mod router;
pub mod seams;
pub mod tree;

pub use config::{Applied, Outcome, ReloadStatus, Trigger};
pub use restart::RestartPolicy;
pub use root::{Tree, TreeHandle, TreeSpec, spawn_tree};
pub use seams::{
    AdminApp, App, BoxFuture, ConnShutdown, Failures, ModuleHost, Plan, Reconfigure, Retired,
};
