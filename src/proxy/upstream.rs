//! Upstream groups as one generation has them ([`Upstream`], [`Upstreams`]),
//! and the [`Registry`] that carries backends' runtime state from one
//! generation to the next.
//!
//! A generation's group is its config (backends and weights, policy,
//! timeouts, limits) plus the `Arc<Backend>` of each backend, which the
//! registry hands out by (group, address): a reload that keeps a backend
//! gets the same one, with its in-flight count, failures, latency
//! estimate and pooled connections. The registry holds them weakly, so a
//! backend no generation has any more is dropped with its connections.

use crate::client::Trusted;
use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    ops::RangeInclusive,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use http::{HeaderValue, Uri};

use super::{
    backend::Backend, balance::Balancer, pool::PoolLimits, retry::Budget, transport::Transport,
};

/// One group's timeouts and limits.
#[derive(Debug, Clone)]
pub struct Settings {
    /// To open a TCP connection.
    pub connect_timeout: Duration,
    /// Between two reads from the backend.
    pub read_timeout: Duration,
    /// An upgraded connection idle this long either way is closed.
    pub tunnel_idle_timeout: Duration,
    /// Idle connections kept per backend.
    pub max_idle: usize,
    /// Connections per backend; `None`: no cap.
    pub max_total: Option<u32>,
    /// Idle connections older than this are not reused.
    pub idle_timeout: Duration,
    /// Tries in all.
    pub tries: u32,
    /// No new try after this long.
    pub retry_timeout: Duration,
    /// Retries as a share of recent requests.
    pub retry_budget: f64,
    /// Retries allowed per window whatever the share.
    pub min_retries: u32,
    /// Bodies up to this size are kept for a retry.
    pub buffer_bytes: u64,
    /// Failures in a row that take a backend out.
    pub max_fails: u32,
    /// How long it stays out.
    pub fail_timeout: Duration,
    /// TCP or TLS, HTTP/1.1 or HTTP/2.
    pub transport: Transport,
    /// Active health checks, if the group has them.
    pub check: Option<Arc<HealthCheck>>,
}

impl Settings {
    pub(crate) fn pool(&self) -> PoolLimits {
        PoolLimits {
            max_idle: self.max_idle,
            idle_timeout: self.idle_timeout,
            transport: self.transport.id,
        }
    }
}

/// One group's active check, compiled from its `health.check`.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// What a probe does.
    pub probe: Probe,
    /// Between two probes of a backend.
    pub interval: Duration,
    /// A probe's deadline, connect included.
    pub timeout: Duration,
    /// Passes in a row that bring a backend back.
    pub rise: u32,
    /// Failures in a row that take it out.
    pub fall: u32,
}

/// What one probe does.
#[derive(Debug, Clone)]
pub enum Probe {
    /// `GET uri`; passes when the status is in `status`.
    Http {
        /// Path and query.
        uri: Uri,
        /// Passing statuses.
        status: RangeInclusive<u16>,
        /// The `Host` sent; `None`: the backend's address.
        host: Option<HeaderValue>,
    },
    /// A TCP connect.
    Tcp,
}

/// One upstream group in one generation.
#[derive(Debug)]
pub struct Upstream {
    /// Its name in `upstreams`.
    pub name: Arc<str>,
    /// Its backends, in config order.
    pub backends: Box<[Arc<Backend>]>,
    /// Their weights, by the same index.
    pub weights: Box<[u32]>,
    /// How one is picked.
    pub balancer: Balancer,
    /// Timeouts and limits.
    pub settings: Settings,
    /// Its retry budget (per generation: a reload starts it afresh).
    pub(crate) budget: Budget,
}

/// Every group of a generation, the trusted proxies, and the registry the
/// next generation takes its backends from.
#[derive(Debug, Default)]
pub struct Upstreams {
    /// The groups, by name (shared with every `Proxy` route, which
    /// looks up a group a module chose).
    pub groups: Arc<BTreeMap<String, Arc<Upstream>>>,
    /// `trusted_proxies`.
    pub trusted: Arc<Trusted>,
    /// Backends' state across generations.
    pub registry: Arc<Registry>,
}

/// Backends by (group, address), held weakly: whatever generations have
/// them keep them alive.
#[derive(Debug, Default)]
pub struct Registry {
    backends: Mutex<HashMap<BackendKey, Weak<Backend>>>,
}

/// (group name, backend address, the name it was resolved from): a
/// backend that keeps its address under another name is another backend,
/// since its connections carry the old name's SNI.
type BackendKey = (Arc<str>, SocketAddr, Option<Arc<str>>);

impl Registry {
    /// The backend `addr` (resolved from `host`, if named) of group
    /// `upstream`: the one a previous generation had, if any still lives,
    /// else a new one.
    pub fn backend(
        &self,
        upstream: &Arc<str>,
        addr: SocketAddr,
        host: Option<Arc<str>>,
    ) -> Arc<Backend> {
        let Ok(mut map) = self.backends.lock() else {
            return Arc::new(Backend::named(addr, host));
        };
        // Forget the ones no generation holds any more.
        map.retain(|_, b| b.strong_count() > 0);
        let key = (upstream.clone(), addr, host);
        if let Some(b) = map.get(&key).and_then(Weak::upgrade) {
            return b;
        }
        let b = Arc::new(Backend::named(addr, key.2.clone()));
        map.insert(key, Arc::downgrade(&b));
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_backend_keeps_its_state_a_dropped_one_goes() {
        let r = Registry::default();
        let (app, other): (Arc<str>, Arc<str>) = ("app".into(), "other".into());
        let addr: SocketAddr = ([127, 0, 0, 1], 9001).into();
        let first = r.backend(&app, addr, None);
        assert!(Arc::ptr_eq(&first, &r.backend(&app, addr, None)));
        assert!(!Arc::ptr_eq(&first, &r.backend(&other, addr, None)));
        // The same address under a name is another backend.
        let named = r.backend(&app, addr, Some("app.internal".into()));
        assert!(!Arc::ptr_eq(&first, &named));
        assert_eq!(named.authority, "app.internal:9001");
        assert_eq!(first.authority, "127.0.0.1:9001");
        drop(named);
        let weak = Arc::downgrade(&first);
        drop(first);
        assert!(weak.upgrade().is_none());
        let _ = r.backend(&app, ([127, 0, 0, 1], 9002).into(), None);
        assert_eq!(r.backends.lock().expect("lock").len(), 1);
    }
}
