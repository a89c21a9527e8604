//! The seam between the supervision tree and the HTTP core.
//!
//! The tree knows lifecycle, not HTTP: it drives the rest of Troupe through
//! [`App`] and [`ModuleHost`] alone, so this crate never depends on hyper,
//! on the config schema, or on any module runtime.

use std::{future::Future, net::SocketAddr, path::PathBuf, pin::Pin, sync::Arc, time::Duration};

use tokio::net::TcpStream;

use tokio_util::sync::CancellationToken;

use crate::{
    restart::RestartPolicy,
    socket::{Accepted, ListenAddr, ListenSocket},
};

/// A boxed, sendable future, as returned across the seam.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a listener tells its connections to stop.
#[derive(Clone, Debug, Default)]
pub struct ConnShutdown {
    /// Finish the requests in flight, then close (graceful shutdown).
    pub drain: CancellationToken,
    /// Close now: the drain deadline has passed.
    pub cut: CancellationToken,
}

/// What the tree needs from the HTTP core.
pub trait App: Send + Sync + 'static {
    /// The immutable request-path state the router actor publishes.
    type Snapshot: Send + Sync + 'static;

    /// Serves one accepted connection until it closes. `listen` is the
    /// address it came in on, as configured (the bound address for the
    /// admin API), for an app that serves addresses differently (TLS).
    ///
    /// `shutdown.drain` fires when the listener shuts down: the connection
    /// should finish its in-flight requests and close; `shutdown.cut` fires
    /// at the drain deadline: close at once. The future runs as a task
    /// tracked by the listener, which also reports it if it panics.
    fn serve(
        &self,
        conn: Accepted,
        listen: &ListenAddr,
        shutdown: ConnShutdown,
    ) -> BoxFuture<'static, ()>;

    /// Asked before each accept: `None` to accept now, or a future that
    /// ends when there is room for another connection (a cap on open
    /// connections that pauses accepting; clients wait in the backlog).
    fn room(&self) -> Option<BoxFuture<'static, ()>> {
        None
    }
}

/// The admin API's connections, served under their own listener actor
/// (`admin.<addr>`), supervised and drained like the others. The admin
/// API listens on TCP only.
pub struct AdminApp {
    serve: Box<dyn Fn(TcpStream, SocketAddr, ConnShutdown) -> BoxFuture<'static, ()> + Send + Sync>,
}

impl AdminApp {
    /// Wraps the function that serves one admin connection.
    pub fn new(
        serve: impl Fn(TcpStream, SocketAddr, ConnShutdown) -> BoxFuture<'static, ()>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self {
            serve: Box::new(serve),
        }
    }
}

impl App for AdminApp {
    type Snapshot = ();

    fn serve(
        &self,
        conn: Accepted,
        _listen: &ListenAddr,
        shutdown: ConnShutdown,
    ) -> BoxFuture<'static, ()> {
        match conn {
            Accepted::Tcp(stream, peer) => (self.serve)(stream, peer, shutdown),
            // Never bound for the admin API.
            Accepted::Unix(_) => Box::pin(std::future::ready(())),
        }
    }
}

/// One configured module, as its plugin-host actor drives it.
///
/// The host loads instances and publishes them where requests find them
/// (the request path never queues through the actor). What a module is
/// written in (C, Rust, WebAssembly, Lua) and where it runs (in process or
/// in a child) is the implementation's business.
pub trait ModuleHost: Send + Sync + 'static {
    /// The module's name, from the config.
    fn name(&self) -> &str;

    /// How its plugin-host actor is restarted.
    fn policy(&self) -> RestartPolicy;

    /// Loads and initialises a fresh instance and publishes it, replacing
    /// the one before (requests in flight finish on the old one).
    /// `failures` is how the request path reports that this instance
    /// failed. `reload` asks for the code to be read again from disk; a
    /// restart may reuse code already loaded.
    fn load(&self, failures: Failures, reload: bool) -> BoxFuture<'static, Result<(), String>>;

    /// Unpublishes the module: it failed for good, or it is stopping.
    fn retire(&self, why: Retired);

    /// A config reload replaced this host by another (the module's
    /// declaration or file changed) or removed the module, and the new
    /// config is in force. Nothing is unpublished (requests that found
    /// the old generation finish on it); what outlives a request on the
    /// old instance (a WebSocket) is told to move on.
    fn superseded(&self) {}
}

/// Why a module no longer serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retired {
    /// It failed too often; its routes answer 503 until it recovers.
    Failed(String),
    /// The server is stopping.
    Stopped,
}

/// Reports failures seen on the request path to a module's host actor,
/// which then restarts the module with backoff. Cheap to clone.
///
/// It holds a plain callback, so this contract names no actor: the plugin
/// host builds one per instance it loads (see `plugin_host.rs`), tagged
/// with that instance's number, and ignores a late report from an
/// instance it has already replaced.
#[derive(Clone)]
pub struct Failures {
    sink: Arc<dyn Fn(String) + Send + Sync>,
}

impl std::fmt::Debug for Failures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Failures")
    }
}

impl Failures {
    /// Failures delivered to a function (the plugin host's, tools, tests).
    pub fn to_fn(f: impl Fn(String) + Send + Sync + 'static) -> Self {
        Self { sink: Arc::new(f) }
    }

    /// Reports that the instance failed. The first report restarts the
    /// module; later ones for the same instance are dropped with it.
    pub fn report(&self, reason: String) {
        (self.sink)(reason);
    }
}

/// How the config actor reloads the configuration: the HTTP core reads and
/// checks the file, the tree applies the result.
pub trait Reconfigure: Send + Sync + 'static {
    /// What a config compiles into for the request path.
    type Snapshot: Send + Sync + 'static;

    /// The files whose change triggers a reload: the config file, the
    /// files of modules marked `watch`, and a modules directory (any file
    /// in it). Asked again after every reload.
    fn watched(&self) -> Vec<PathBuf>;

    /// Reads the config again and checks it in full against the one in
    /// force, loading nothing yet: an `Err` (naming file, line and column)
    /// refuses the reload and nothing changes.
    fn plan(&self) -> BoxFuture<'static, Result<Plan<Self::Snapshot>, String>>;

    /// Called once the router has installed a reload's snapshot, before
    /// listeners change: publishes what requests read outside the snapshot
    /// (TLS certificates, which the handshake reads from a store of their
    /// own). Default: nothing.
    fn installed(&self, snapshot: &Arc<Self::Snapshot>) {
        let _ = snapshot;
    }
}

/// A checked config, and what applying it changes.
pub struct Plan<S> {
    /// The new request-path state; published once its modules are loaded.
    pub snapshot: Arc<S>,
    /// Modules new to the config: each gets a plugin host.
    pub add_modules: Vec<Arc<dyn ModuleHost>>,
    /// Modules whose config or file changed: each replaces the host of
    /// the module of the same name (an unchanged module is in no list and
    /// keeps its host, its instance and its state).
    pub replace_modules: Vec<Arc<dyn ModuleHost>>,
    /// Names of the modules gone from the config: their hosts stop, and
    /// each instance shuts down when its last request is done.
    pub remove_modules: Vec<String>,
    /// Addresses new to the config, already bound (keyed by the address
    /// as configured).
    pub add_listeners: Vec<(ListenAddr, ListenSocket)>,
    /// Configured addresses gone from the config: they stop accepting and
    /// their connections drain within `drain`.
    pub remove_listeners: Vec<ListenAddr>,
    /// How long a removed listener's connections may take to finish.
    pub drain: Duration,
    /// What changed, one line each, for the log and the admin API.
    pub changes: Vec<String>,
    /// Every upstream group of the new config: those with active checks
    /// get an actor (a group already checked keeps its actor, with the new
    /// settings), groups gone or no longer checked lose theirs.
    pub upstreams: Vec<Arc<dyn UpstreamGroup>>,
}

/// One upstream group of the config in force, as the `upstreams`
/// supervisor keeps it: active health checks by the group's own actor,
/// and periodic upkeep. Requests read what it records (atomics on each
/// backend) without ever waiting for the actor.
pub trait UpstreamGroup: Send + Sync + 'static {
    /// Its name in the config.
    fn name(&self) -> &str;

    /// How often its backends are probed; `None`: it has no active
    /// checks, and so no actor.
    fn interval(&self) -> Option<Duration>;

    /// Probes every backend once and records the verdicts where requests
    /// read them (logging and counting each backend that goes down or
    /// comes back). It runs in the group's actor, so a panic here
    /// restarts that actor alone.
    fn check(&self) -> BoxFuture<'static, ()>;

    /// Periodic upkeep, every second or so: closes idle connections past
    /// their idle timeout, refreshes the group's gauges. Cheap and
    /// synchronous.
    fn maintain(&self);
}

/// The certificates the certificate actor keeps current: the HTTP core
/// reads and checks the files and publishes them where handshakes find
/// them; the tree decides when (a watched file changed, SIGHUP, the admin
/// API).
pub trait Certificates: Send + Sync + 'static {
    /// The certificate, key and client CA files in use, whose change
    /// triggers a reload. Asked again after every config reload.
    fn watched(&self) -> Vec<PathBuf>;

    /// Reads and checks every certificate and client CA again, off the
    /// request path, and publishes those that changed. A file that cannot
    /// be used is refused (its server keeps the certificate and CA it
    /// had) and named in the
    /// `Err`, with the reason; `Ok` says what was reloaded.
    fn reload(&self, trigger: &'static str) -> BoxFuture<'static, Result<String, String>>;
}

/// State the request path grows and only time shrinks (rate-limit keys
/// whose arrival times have passed, cache files past their size or their
/// `inactive` time): a [`crate::sweeper::Sweeper`] sweeps it on a timer, so
/// no request ever pays for the sweep.
pub trait Sweep: Send + Sync + 'static {
    /// How long between sweeps.
    fn every(&self) -> Duration;

    /// Forgets what has expired, and refreshes the gauges that count what
    /// is kept. Runs once at start and then every [`Sweep::every`]; a
    /// panic restarts its sweeper alone.
    fn sweep(&self);

    /// Whether the next sweep may block on the disk (it then runs on a
    /// blocking thread rather than the actor's).
    fn blocks(&self) -> bool {
        false
    }
}

/// Nothing to sweep.
#[derive(Debug, Default)]
pub struct NoSweep;

impl Sweep for NoSweep {
    fn every(&self) -> Duration {
        Duration::from_secs(3600)
    }

    fn sweep(&self) {}
}

/// Certificates for a tree that serves none.
#[derive(Debug, Default)]
pub struct NoCertificates;

impl Certificates for NoCertificates {
    fn watched(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    fn reload(&self, _trigger: &'static str) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async { Ok("no certificates".into()) })
    }
}

/// What one run of [`Authority::run`] did.
#[derive(Debug, Clone, Default)]
pub struct AcmeRun {
    /// The servers (first name each) that got a new certificate, written
    /// where the certificate files are read from; the certificate actor
    /// is then asked to publish them.
    pub issued: Vec<String>,
    /// When to run again: the next renewal or retry due. `None`: nothing
    /// to watch until the config changes.
    pub next: Option<Duration>,
}

/// The certificates the ACME actor keeps ordered: the HTTP core places
/// the orders with the CA and stores what it gets; the tree decides when
/// (at start, when a renewal falls due, after a config reload).
pub trait Authority: Send + Sync + 'static {
    /// Places every order that is due now (a server serving its stand-in
    /// certificate, a renewal whose time has come, a retry whose backoff
    /// has passed), off the request path, and says when to run again.
    /// Failures are the implementation's to log, count and back off from.
    fn run(&self) -> BoxFuture<'static, AcmeRun>;
}

/// An authority for a tree that orders no certificates.
#[derive(Debug, Default)]
pub struct NoAuthority;

impl Authority for NoAuthority {
    fn run(&self) -> BoxFuture<'static, AcmeRun> {
        Box::pin(async { AcmeRun::default() })
    }
}
