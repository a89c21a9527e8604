//! Wiring: binds the listeners, builds the HTTP core, and starts the tree.
//!
//! [`start`] takes a checked config and sockets that are already bound, so
//! tests bind `127.0.0.1:0` and run the real server in-process; the binary
//! does the same with the configured addresses.

use std::{io, net::SocketAddr, path::PathBuf, sync::Arc};

use arc_swap::ArcSwap;
use troupe_actors::{
    Accepted, App, Applied, BoxFuture, ConnShutdown, ListenAddr, ListenSocket, ReloadStatus,
    RestartPolicy, Tree, TreeHandle, TreeSpec, Trigger,
};

use crate::{
    config::{Loaded, schema::AtConnectionCap},
    conn::{
        self,
        caps::{CapLimits, Caps, Permit, Refused},
    },
    generation::Generation,
    modules::{
        Slot,
        host::{Env, Hosted},
        hostapi::LocalServices,
        process::services::ChildServices,
    },
    observe::{
        logging,
        metrics::{
            AcmeMetrics, CertMetrics, HttpMetrics, ModuleSeries, TlsMetrics, UpstreamMetrics,
        },
    },
    pipeline::Pipeline,
    proxy::health,
    reload::Reloader,
    tls::{
        CertSource, LiveCerts, Tls,
        acme::{Acme, AcmeSource, Challenges},
    },
};

/// The HTTP core as the supervision tree sees it.
#[derive(Debug)]
pub struct Http {
    pipeline: Arc<Pipeline>,
    /// The published generation; a connection reads its settings once.
    generation: Arc<ArcSwap<Generation>>,
    /// The TLS acceptor, for connections on `tls` addresses.
    tls: Arc<Tls>,
    /// Open connections, for the caps (kept across reloads).
    caps: Arc<Caps>,
}

impl App for Http {
    type Snapshot = Generation;

    fn serve(
        &self,
        accepted: Accepted,
        listen: &ListenAddr,
        shutdown: ConnShutdown,
    ) -> BoxFuture<'static, ()> {
        let generation = self.generation.load();
        let cfg = generation.conn.clone();
        let (stream, peer) = match accepted {
            Accepted::Tcp(stream, peer) => (stream, peer),
            Accepted::Unix(stream) => {
                // No per-address cap: every client of the socket is the
                // proxy in front, at one address.
                let Some(permit) = self.admit(None, &cfg.caps) else {
                    return Box::pin(std::future::ready(()));
                };
                return permit.hold(conn::serve_unix(
                    self.pipeline.clone(),
                    cfg,
                    stream,
                    shutdown,
                ));
            }
        };
        let Some(permit) = self.admit(Some(peer), &cfg.caps) else {
            // Closed at once: the stream is dropped here.
            return Box::pin(std::future::ready(()));
        };
        // The one branch TLS adds to a plain connection.
        if let ListenAddr::Tcp(listen) = listen
            && generation.is_tls(*listen)
        {
            let conn = conn::serve_tls(
                self.pipeline.clone(),
                cfg,
                self.tls.clone(),
                stream,
                peer,
                shutdown,
            );
            return permit.hold(conn);
        }
        permit.hold(conn::serve(
            self.pipeline.clone(),
            cfg,
            stream,
            peer,
            shutdown,
        ))
    }

    fn room(&self) -> Option<BoxFuture<'static, ()>> {
        let caps = self.generation.load().conn.caps;
        if caps.at_cap != AtConnectionCap::Pause || self.caps.open() < caps.max {
            return None;
        }
        tracing::warn!(
            max_connections = caps.max,
            "connection cap reached: not accepting until a connection closes"
        );
        let open = self.caps.clone();
        Some(Box::pin(async move { open.room(caps.max).await }))
    }
}

impl Http {
    /// Counts a connection from `peer` (none on a Unix socket) under the
    /// caps, or logs why it is closed at once.
    fn admit(&self, peer: Option<SocketAddr>, caps: &CapLimits) -> Option<Permit> {
        self.caps
            .admit(peer.map(|p| p.ip()), caps)
            .map_err(|refused| refuse(refused, peer.unwrap_or(conn::UNIX_PEER), caps))
            .ok()
    }
}

/// Logs a connection closed by a cap: the first of each second only, as
/// a flood would otherwise write a line per connection.
fn refuse(refused: Refused, peer: SocketAddr, caps: &CapLimits) {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if LAST.swap(now, std::sync::atomic::Ordering::Relaxed) == now {
        return;
    }
    match refused {
        Refused::Full => {
            tracing::warn!(%peer, max_connections = caps.max, "connection cap reached: closing new connections")
        }
        Refused::PerIp => {
            tracing::warn!(%peer, max_connections_per_ip = caps.per_ip, "per-address connection cap reached: closing its new connections")
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A socket or log file could not be opened.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// An actor of the tree failed to start.
    #[error("the supervision tree failed to start: {0}")]
    Tree(#[from] ractor::SpawnErr),
    /// The TLS acceptor could not be set up.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// A running server.
pub struct Running {
    tree: Tree,
    admin_addr: Option<SocketAddr>,
    generation: Arc<ArcSwap<Generation>>,
    services: Arc<LocalServices>,
    addrs: Vec<SocketAddr>,
    logs: logging::Logs,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addrs", &self.addrs)
            .finish()
    }
}

impl Running {
    /// The TCP addresses actually bound (port 0 resolved), in the
    /// config's order; Unix sockets are where the config says.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The supervision tree.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Graceful shutdown within the configured drain timeout; returns the
    /// number of connections cut at the deadline.
    pub async fn shutdown(self) -> usize {
        let drain = self.generation.load().config.limits.drain_timeout;
        let cut = self.tree.shutdown(drain).await;
        tracing::info!(cut, "stopped");
        cut
    }

    /// Where the admin API listens, if the config has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Reopens the log files at their paths (SIGUSR1, after logrotate
    /// moved them).
    pub fn reopen_logs(&self) -> io::Result<()> {
        self.logs.reopen()
    }

    /// Reloads one module while it keeps serving (see [`Tree::reload_module`]).
    pub async fn reload_module(&self, name: &str) -> Result<(), String> {
        self.tree.reload_module(name).await
    }

    /// Reloads every module whose file changed on disk since its running
    /// instance was loaded (SIGUSR2); returns each one tried, with how it
    /// went. A module whose reload fails keeps its old instance.
    pub async fn reload_changed(&self) -> Vec<(String, Result<(), String>)> {
        let mut tried = Vec::new();
        let generation = self.generation.load_full();
        for m in &generation.modules {
            if m.changed_on_disk() {
                tried.push((m.name.clone(), self.tree.reload_module(&m.name).await));
            }
        }
        tried
    }

    /// Reloads the config file (SIGHUP): applied in full, or refused with
    /// the reason (file, line and column) while the old config serves on.
    pub async fn reload_config(&self, trigger: Trigger) -> Result<Applied, String> {
        self.tree.handle().reload_config(trigger).await
    }

    /// Reads the TLS certificate files again (SIGHUP, with the config):
    /// what changed, or every file refused and why, whose server keeps its
    /// old certificate.
    pub async fn reload_certs(&self, trigger: Trigger) -> Result<String, String> {
        self.tree.handle().reload_certs(trigger).await
    }

    /// The config generation in force and how the last reload went.
    pub async fn config_status(&self) -> Option<ReloadStatus> {
        self.tree.handle().config_status().await
    }

    /// The config generation in force.
    pub fn generation(&self) -> Arc<Generation> {
        self.generation.load_full()
    }

    /// A module's published slot: its state and how often it was loaded.
    pub fn module(&self, name: &str) -> Option<Arc<Slot>> {
        self.generation.load().module(name).map(|m| m.slot.clone())
    }

    /// The host API's services (the shared store and module counters).
    pub fn services(&self) -> &LocalServices {
        &self.services
    }

    /// Resolves if the tree stops on its own (a root-level escalation).
    pub async fn stopped(&mut self) {
        self.tree.stopped().await;
    }
}

/// What the server needs from its surroundings, beyond the config.
#[derive(Debug, Clone)]
pub struct Options {
    /// The executable started as `<exe> module-host <library>` for each
    /// `Process` module. Default: this process's own executable.
    pub module_host: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            module_host: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("troupe")),
        }
    }
}

/// Starts the server on already-bound sockets (TCP or Unix, see
/// [`crate::listen::bind_all`]), one for each configured address in order.
pub async fn start<L: Into<ListenSocket>>(
    loaded: Loaded,
    listeners: Vec<L>,
) -> Result<Running, StartError> {
    start_with(loaded, listeners, Options::default()).await
}

/// [`start`] with explicit [`Options`].
pub async fn start_with<L: Into<ListenSocket>>(
    loaded: Loaded,
    listeners: Vec<L>,
    options: Options,
) -> Result<Running, StartError> {
    // rustls has two providers compiled in (wasmtime-wasi-http enables
    // ring); name one for the clients that ask for the process default
    // (a WebAssembly module's outbound HTTPS). Already set: keep it.
    let _ =
        rustls::crypto::CryptoProvider::install_default(crate::tls::provider().as_ref().clone());
    let admin = loaded.admin.clone();
    let mut first = Generation::new(loaded);
    let (access, logs) = logging::open_access_log(&first.config.log, &first.base)?;
    let registry = prometheus::Registry::new();
    let metrics = HttpMetrics::new(&registry).map_err(io::Error::other)?;
    first.zones.register(&registry).map_err(io::Error::other)?;
    first.caches.register(&registry).map_err(io::Error::other)?;
    let listeners: Vec<ListenSocket> = listeners.into_iter().map(Into::into).collect();
    let locals = listeners
        .iter()
        .map(ListenSocket::local)
        .collect::<io::Result<Vec<_>>>()?;
    let configured: Vec<ListenAddr> = first.config.listen.iter().map(|l| l.addr.clone()).collect();
    first.resolve_tls_port(|key| {
        let at = configured.iter().position(|a| a.tcp() == Some(key))?;
        locals.get(at)?.tcp().map(|a| a.port())
    });
    let addrs = locals.iter().filter_map(ListenAddr::tcp).collect();
    // Each socket serves the configured address at its position (tests
    // bind their own port for the first one); a reload that drops that
    // address closes it.
    let listeners = configured.into_iter().zip(listeners).collect();
    let services = Arc::new(LocalServices::new(&registry));
    let series = ModuleSeries::new(&registry).map_err(io::Error::other)?;
    for m in &first.modules {
        m.slot.set_metrics(series.module(m.slot.name()));
    }
    let handle = TreeHandle::new();
    let env = Arc::new(Env {
        services: services.clone(),
        child_services: Arc::new(ChildServices::new(services.clone(), handle.clone())),
        module_host: options.module_host,
    });
    let hosts = first
        .modules
        .iter()
        .map(|m| {
            Arc::new(Hosted::new(m.clone(), env.clone())) as Arc<dyn troupe_actors::ModuleHost>
        })
        .collect();
    // ACME challenge answers: published by the ACME side, read by the
    // plain-HTTP pipeline (HTTP-01) and the TLS resolver (TLS-ALPN-01).
    let challenges = Arc::new(Challenges::default());
    let tls = Arc::new(Tls::new(
        TlsMetrics::new(&registry).map_err(io::Error::other)?,
        challenges.clone(),
    ));
    let certs = Arc::new(LiveCerts::new(
        tls.clone(),
        CertMetrics::new(&registry).map_err(io::Error::other)?,
    ));
    certs.install(&first.certs)?;
    let acme = Acme::new(
        certs.clone(),
        challenges.clone(),
        AcmeMetrics::new(&registry).map_err(io::Error::other)?,
    );
    // The registry every generation takes its zones from: one sweeper.
    let first_zones: Arc<dyn troupe_actors::Sweep> = first.zones.clone();
    let first_caches: Arc<dyn troupe_actors::Sweep> = first.caches.clone();
    let generation = Arc::new(ArcSwap::from_pointee(first));
    let http = Http {
        pipeline: Arc::new(Pipeline::new(
            generation.clone(),
            access,
            metrics,
            challenges,
        )),
        generation: generation.clone(),
        tls: tls.clone(),
        caps: Arc::default(),
    };
    let admin = match admin {
        Some(spec) => {
            let socket = crate::listen::bind(&[spec.listen])?.remove(0);
            let api = crate::admin::Admin::new(
                &spec,
                registry.clone(),
                generation.clone(),
                handle.clone(),
                certs.clone(),
            );
            Some((socket, Arc::new(api.app())))
        }
        None => None,
    };
    let admin_addr = admin
        .as_ref()
        .map(|(socket, _)| socket.local_addr())
        .transpose()?;
    let upstream_metrics = UpstreamMetrics::new(&registry).map_err(io::Error::other)?;
    let upstreams = health::groups(&generation.load().upstreams, &upstream_metrics);
    let reloader = Reloader {
        generation: generation.clone(),
        env,
        series,
        upstream_metrics,
        certs: certs.clone(),
    };
    let tree = troupe_actors::spawn_tree(TreeSpec {
        handle,
        app: Arc::new(http),
        config: Arc::new(reloader),
        snapshot: generation.clone(),
        listeners,
        policy: RestartPolicy::default(),
        module_counters: services.counters().clone(),
        registry,
        modules: hosts,
        admin,
        certs: Arc::new(CertSource(certs)),
        acme: Arc::new(AcmeSource(Arc::new(acme))),
        upstreams,
        limits: first_zones,
        caches: first_caches,
    })
    .await?;
    Ok(Running {
        tree,
        admin_addr,
        generation,
        services,
        addrs,
        logs,
    })
}
