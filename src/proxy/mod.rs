//! The reverse proxy (issue 13): upstream groups, balancing, a connection
//! pool per backend, and the `Proxy` handler.
//!
//! | file | owns |
//! |---|---|
//! | `upstream.rs` | a generation's groups; the registry that keeps backends across reloads |
//! | `backend.rs` | one backend's runtime state (atomics): in flight, failures, ejection, peak-EWMA |
//! | `balance.rs` | picking a backend: round-robin, least-conn, ketama hash, peak-EWMA P2C |
//! | `pool.rs` | one backend's connections: an HTTP/1.1 keep-alive stack, shared HTTP/2 ones |
//! | `transport.rs` | how a group connects: TCP or TLS, HTTP/1.1, HTTP/2 or ALPN's choice |
//! | `verdict.rs` | one backend's active-health verdict: up or down, rise/fall counts |
//! | `health.rs` | active checks (HTTP or TCP probes) and upkeep, as the `upstreams` actors drive them |
//! | `headers.rs` | hop-by-hop stripping, forwarding headers |
//! | `retry.rs` | when a try may be made again; the retry budget |
//! | `body.rs` | request and response bodies across the proxy |
//! | `upgrade.rs` | upgrades (WebSocket over HTTP/1.1 and HTTP/2): what the backend is sent, the answer |
//! | `tunnel.rs` | an upgraded connection: both sides joined, with its idle timeout |
//! | `pump.rs` | the pump threads that move plain TCP tunnels' bytes, nginx-style |
//! | `choice.rs` | a module's choice of group for one request ([`UpstreamChoice`]) |
//! | `forward.rs` | the handler: one request through all of the above |
//!
//! `config/upstreams.rs` compiles the config into [`Upstreams`] (a field
//! of the `Generation`) and each `Proxy(..)` route into a [`Proxy`].

mod backend;
pub mod balance;
mod body;
mod choice;
mod forward;
pub mod headers;
pub mod health;
mod pool;
mod pump;
mod retry;
pub mod transport;
mod tunnel;
mod upgrade;
pub mod upstream;
mod verdict;

pub use crate::client::Trusted;
pub use backend::Backend;
pub use choice::UpstreamChoice;
pub use forward::{HostMode, Proxy};
pub use upstream::{HealthCheck, Probe, Registry, Settings, Upstream, Upstreams};
