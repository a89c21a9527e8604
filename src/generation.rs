//! [`Generation`]: one config generation, everything the request path and
//! the admin API read, published with one store.
//!
//! A config compiles into one immutable `Generation`: its routes, its
//! connection settings, the parsed file and its modules (each with the
//! slot its routes read). The router actor swaps the published
//! `Arc<Generation>` whole, so a request, a new connection and the admin
//! API always see the parts of one generation together: `/routes` and
//! `/config` never disagree, and a module looked up by name is the one
//! the routes call. A request loads it once and keeps it to its end.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use crate::{
    config::{Config, Loaded, schema::Listen},
    conn::settings::ConnConfig,
    modules::ModuleEntry,
    pipeline::snapshot::Snapshot,
    tls::Certs,
};

/// One compiled config, as published.
#[derive(Debug)]
pub struct Generation {
    /// The routes and per-request limits: what the request path reads.
    pub snapshot: Snapshot,
    /// The connection settings; a connection keeps the ones it started with.
    pub conn: Arc<ConnConfig>,
    /// The parsed file.
    pub config: Config,
    /// Its modules, each with the slot its routes read.
    pub modules: Vec<Arc<ModuleEntry>>,
    /// The file it came from.
    pub path: PathBuf,
    /// The directory relative paths start at.
    pub base: PathBuf,
    /// The servers' certificates; `Tls::publish` makes them the ones
    /// handshakes use when this generation is installed.
    pub certs: Certs,
    /// The upstream groups (`Proxy` routes hold theirs) and the registry
    /// the next generation takes its backends from.
    pub upstreams: Arc<crate::proxy::Upstreams>,
    /// The rate-limit zones in force (the registry the `limits` actor
    /// sweeps and the next generation takes its zones from).
    pub zones: Arc<crate::limit::Zones>,
    /// The cache zones in force (the registry the admin API purges and
    /// the next generation takes its zones from).
    pub caches: Arc<crate::cache::CacheZones>,
    /// The listen addresses (as configured) whose connections start with
    /// a TLS handshake; empty without TLS.
    pub tls_listen: Box<[SocketAddr]>,
    /// The port of the first `tls` address as bound (port 0 resolved),
    /// where `redirect_http` sends clients; see
    /// [`Generation::resolve_tls_port`].
    tls_port: Option<u16>,
    /// The files the config includes and the directories its globs look
    /// in, watched with the config file.
    pub included: Vec<PathBuf>,
}

impl Generation {
    /// The generation a checked config makes (its admin section and the
    /// uses of its modules are the caller's).
    pub fn new(loaded: Loaded) -> Self {
        let Loaded {
            config,
            snapshot,
            modules,
            path,
            base,
            admin: _,
            uses: _,
            certs,
            upstreams,
            zones,
            caches,
            included,
        } = loaded;
        Self {
            snapshot,
            conn: Arc::new(ConnConfig::new(&config.limits)),
            tls_listen: config
                .listen
                .iter()
                .filter(|l| l.tls)
                .filter_map(Listen::tcp)
                .collect(),
            certs,
            upstreams,
            zones,
            caches,
            config,
            modules,
            path,
            base,
            tls_port: None,
            included,
        }
    }

    /// Settles the port `redirect_http` sends clients to: the first `tls`
    /// address's, asking `bound` (an address as configured → the port its
    /// socket got) when it was configured as port 0.
    pub fn resolve_tls_port(&mut self, bound: impl Fn(SocketAddr) -> Option<u16>) {
        let Some(first) = self.config.listen.iter().find_map(tls_addr) else {
            return;
        };
        let port = match first.port() {
            0 => bound(first),
            port => Some(port),
        };
        if let Some(port) = port {
            self.tls_port = Some(port);
            self.snapshot.servers.set_redirect_port(port);
        }
    }

    /// The bound port of `listen` (as configured), if it is this
    /// generation's first `tls` address and was settled.
    pub fn tls_port_of(&self, listen: SocketAddr) -> Option<u16> {
        let first = self.config.listen.iter().find_map(tls_addr)?;
        if first == listen { self.tls_port } else { None }
    }

    /// Whether connections on `listen` (an address as configured) start
    /// with a TLS handshake. Without TLS this is one length check.
    #[inline]
    pub fn is_tls(&self, listen: SocketAddr) -> bool {
        !self.tls_listen.is_empty() && self.tls_listen.contains(&listen)
    }

    /// The module called `name`.
    pub fn module(&self, name: &str) -> Option<&Arc<ModuleEntry>> {
        self.modules.iter().find(|m| m.name == name)
    }
}

/// A `tls` listen entry's address (always TCP).
fn tls_addr(l: &Listen) -> Option<SocketAddr> {
    l.tls.then(|| l.tcp()).flatten()
}
