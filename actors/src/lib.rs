//! The supervision tree of Troupe: lifecycle only, never the request path.
//!
//! ```text
//! troupe                      root supervisor (root.rs): starts, restarts, escalates
//! ├── acme                    orders and renews certificates from an ACME CA (acme.rs)
//! ├── certs                   watches and reloads the TLS certificates (certs.rs)
//! ├── config                  watches and reloads the config, in order (config.rs)
//! ├── listeners               supervisor of the listeners: add, remove, drain (listeners.rs)
//! │   ├── admin.<addr>        the admin API's listener, if configured (listener.rs)
//! │   └── listener.<addr>     one per listen address, TCP or unix:PATH (listener.rs, socket.rs)
//! │       └── connection tasks  tracked tasks, panics reported to the listener
//! ├── metrics                 owns the Prometheus registry (metrics.rs)
//! ├── modules                 supervisor of the plugin hosts (modules.rs)
//! │   └── plugin.<name>       one per module: load, restart, reload (plugin_host.rs)
//! ├── router                  owns the published request-path snapshot (router.rs)
//! └── upstreams               supervisor of the upstream groups' health (upstreams.rs)
//!     └── upstream.<name>     one per group with active checks: probes (upstream.rs)
//! ```
//!
//! No actor is registered by name in ractor's process-wide registry: the
//! names above live in a per-tree table ([`tree::Labels`]), and actors
//! reach one another through typed references that their supervisors keep
//! current across restarts ([`wiring`]), so several trees with the same
//! names can run in one process.
//!
//! # Layout
//! - [`seams`]: the traits through which the tree drives the rest: [`App`]
//!   (the HTTP core), [`ModuleHost`] (one module), [`Reconfigure`]
//!   (reading a new config), [`Certificates`] (reading the TLS
//!   certificates again) and [`Authority`] (ordering certificates from an
//!   ACME CA).
//! - [`restart`]: the one restart policy (backoff inside an intensity window).
//! - [`children`]: child specs and restarts, shared by every supervisor.
//! - [`tree`]: the actors' display names and paths; renders the live tree
//!   for the logs.
//! - `slot`: the current reference to one actor, refreshed by its
//!   supervisor on every restart: how siblings reach each other.
//! - [`wiring`]: the slots the control handle calls through, and
//!   [`TreeHandle`], made before the tree.
//! - One file per actor: `struct X; enum XMsg; struct XState; struct XArgs`.
//!
//! Requests never queue through a mailbox here: the router publishes an
//! [`arc_swap::ArcSwap`] snapshot that connection tasks read directly, and
//! actors only handle lifecycle and state changes.
#![deny(missing_docs, unsafe_code)]

pub mod acme;
pub mod certs;
pub mod children;
pub mod config;
pub mod listener;
pub mod listeners;
pub mod metrics;
pub mod modules;
pub mod plugin_host;
pub mod restart;
pub mod root;
pub mod router;
pub mod seams;
pub(crate) mod slot;
pub mod socket;
pub mod sweeper;
pub mod tree;
pub mod upstream;
pub mod upstreams;
mod watch;
pub mod wiring;

pub use config::{Applied, Outcome, ReloadStatus, Trigger};
pub use restart::RestartPolicy;
pub use root::{Tree, TreeSpec, spawn_tree};
pub use seams::{
    AcmeRun, AdminApp, App, Authority, BoxFuture, Certificates, ConnShutdown, Failures, ModuleHost,
    NoAuthority, NoCertificates, NoSweep, Plan, Reconfigure, Retired, Sweep, UpstreamGroup,
};
pub use socket::{Accepted, ListenAddr, ListenSocket};
pub use tree::Node;
pub use wiring::TreeHandle;
