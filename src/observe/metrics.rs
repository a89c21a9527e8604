//! The HTTP series (P6.3), registered once in the server's registry.
//!
//! The request path never looks a series up: each route caches its own
//! handles on first use (a `OnceLock` in the compiled route), and a
//! connection adds its byte counts once, when it closes. What is left per
//! request is a few relaxed atomic adds and one clock read.
//!
//! | series | labels |
//! |---|---|
//! | `troupe_http_requests_total` | `server`, `route`, `status` (`2xx`…) |
//! | `troupe_http_request_duration_seconds` | `server`, `route` |
//! | `troupe_http_connections` (gauge, open now) | |
//! | `troupe_http_connections_total` | |
//! | `troupe_http_received_bytes_total`, `troupe_http_sent_bytes_total` | |
//! | `troupe_static_cache_hits_total`, `troupe_static_cache_misses_total`, `troupe_static_cache_evictions_total`; gauges `troupe_static_cache_bytes`, `troupe_static_cache_entries` (every static handler's file cache, summed) | |
//! | `troupe_http_sendfile_bytes_total` (file bytes the kernel sent with `sendfile`, never copied through user space; part of the sent bytes) | |
//! | `troupe_module_calls_total`, `troupe_module_errors_total` (5xx) | `module` (requests it answered, filtered or logged; its own 5xx) |
//! | `troupe_module_restarts_total`, `troupe_module_generation` (instances loaded) | `module` |
//! | `troupe_module_calls_moved_total` (Lua and WebAssembly calls that outran their first slice and went on on the module pool) | `module` |
//! | `troupe_tls_handshakes_total` | `outcome` (`ok`, `failed`, `timeout`, `draining`) |
//! | `troupe_tls_cert_reload_total` (certificate reloads by the certificate actor) | `outcome` (`ok`, `refused`: a file was refused) |
//! | `troupe_tls_cert_expiry_days` (gauge: days until the served certificate expires) | `server` (its first name) |
//! | `troupe_upstream_backend_up` (gauge: 1 while it takes requests) | `upstream`, `backend` (`ip:port`) |
//! | `troupe_upstream_health_changes_total` (active checks took it out or brought it back) | `upstream`, `backend`, `to` (`down`, `up`) |

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::StatusCode;
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// The series, and how routes get their handles.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    latency: HistogramVec,
    /// Connections open now.
    pub connections: IntGauge,
    /// Connections accepted.
    pub connections_total: IntCounter,
    /// Bytes read from clients.
    pub received: IntCounter,
    /// Bytes written to clients.
    pub sent: IntCounter,
    /// Of those, file bytes sent with `sendfile` (`src/sendfile.rs`).
    pub sendfile: IntCounter,
}

/// The static-file caches' series, shared by every `Static` handler of
/// every generation (each handler's cache adds its own part).
#[derive(Clone, Debug)]
pub struct StaticCacheMetrics {
    /// Requests answered from an entry without a `stat`.
    pub hits: IntCounter,
    /// Requests that had to look the file up (absent or due a re-check).
    pub misses: IntCounter,
    /// Entries evicted to stay within the byte bound.
    pub evictions: IntCounter,
    /// Weight held now (bodies plus a per-entry overhead).
    pub bytes: IntGauge,
    /// Entries held now.
    pub entries: IntGauge,
}

impl StaticCacheMetrics {
    fn new() -> prometheus::Result<Self> {
        Ok(Self {
            hits: IntCounter::new(
                "troupe_static_cache_hits_total",
                "Static-file requests answered from the cache",
            )?,
            misses: IntCounter::new(
                "troupe_static_cache_misses_total",
                "Static-file requests that looked the file up",
            )?,
            evictions: IntCounter::new(
                "troupe_static_cache_evictions_total",
                "Static-file cache entries evicted",
            )?,
            bytes: IntGauge::new(
                "troupe_static_cache_bytes",
                "Bytes held by the static-file caches",
            )?,
            entries: IntGauge::new(
                "troupe_static_cache_entries",
                "Entries held by the static-file caches",
            )?,
        })
    }

    fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.hits.clone()))?;
        registry.register(Box::new(self.misses.clone()))?;
        registry.register(Box::new(self.evictions.clone()))?;
        registry.register(Box::new(self.bytes.clone()))?;
        registry.register(Box::new(self.entries.clone()))
    }
}

/// The process's static-file cache series (registered with the HTTP ones).
pub fn static_cache() -> &'static StaticCacheMetrics {
    static SERIES: std::sync::OnceLock<StaticCacheMetrics> = std::sync::OnceLock::new();
    SERIES.get_or_init(|| StaticCacheMetrics::new().expect("valid metric names"))
}

/// Status classes, the `status` label's values.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Latency buckets, seconds: 100 µs to 10 s.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];

impl HttpMetrics {
    /// Registers the series in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new("troupe_http_requests_total", "Requests answered"),
            &["server", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "troupe_http_request_duration_seconds",
                "Time from the request head to the response head",
            )
            .buckets(BUCKETS.to_vec()),
            &["server", "route"],
        )?;
        let connections = IntGauge::new("troupe_http_connections", "Connections open now")?;
        let connections_total =
            IntCounter::new("troupe_http_connections_total", "Connections accepted")?;
        let received = IntCounter::new(
            "troupe_http_received_bytes_total",
            "Bytes read from clients",
        )?;
        let sent = IntCounter::new("troupe_http_sent_bytes_total", "Bytes written to clients")?;
        let sendfile = IntCounter::new(
            "troupe_http_sendfile_bytes_total",
            "File bytes sent to clients with sendfile",
        )?;
        registry.register(Box::new(sendfile.clone()))?;
        static_cache().register(registry)?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(connections_total.clone()))?;
        registry.register(Box::new(received.clone()))?;
        registry.register(Box::new(sent.clone()))?;
        Ok(Self {
            requests,
            latency,
            connections,
            connections_total,
            received,
            sent,
            sendfile,
        })
    }

    /// The handles of one route (`route` is its pattern; `""` for requests
    /// no route took), with its module's when a module answers it.
    pub fn route(&self, server: &str, route: &str, module: Option<ModuleMetrics>) -> RouteMetrics {
        RouteMetrics {
            by_class: CLASSES.map(|class| self.requests.with_label_values(&[server, route, class])),
            latency: self.latency.with_label_values(&[server, route]),
            module,
        }
    }
}

/// The per-module series.
#[derive(Clone, Debug)]
pub struct ModuleSeries {
    calls: IntCounterVec,
    errors: IntCounterVec,
    restarts: IntCounterVec,
    moved: IntCounterVec,
    generation: IntGaugeVec,
    websockets: IntGaugeVec,
}

impl ModuleSeries {
    /// Registers the series in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let counter = |name: &str, help: &str| -> prometheus::Result<IntCounterVec> {
            let vec = IntCounterVec::new(Opts::new(name, help), &["module"])?;
            registry.register(Box::new(vec.clone()))?;
            Ok(vec)
        };
        let generation = IntGaugeVec::new(
            Opts::new(
                "troupe_module_generation",
                "Instances of the module loaded so far",
            ),
            &["module"],
        )?;
        registry.register(Box::new(generation.clone()))?;
        let websockets = IntGaugeVec::new(
            Opts::new(
                "troupe_module_websockets",
                "WebSockets open on the module's routes (`WebSocket(module: ..)`), on any of its instances",
            ),
            &["module"],
        )?;
        registry.register(Box::new(websockets.clone()))?;
        Ok(Self {
            calls: counter(
                "troupe_module_calls_total",
                "Calls into a module: requests it answered as a handler or filtered as middleware, and lines it took as a logger",
            )?,
            errors: counter(
                "troupe_module_errors_total",
                "Calls into a module, as a handler or middleware, that answered (or failed) with a 5xx",
            )?,
            restarts: counter(
                "troupe_module_restarts_total",
                "Instances loaded again after a failure (not counting reloads)",
            )?,
            moved: counter(
                "troupe_module_calls_moved_total",
                "Calls that outran their first slice on the request's thread and went on on the low-priority module pool (Lua, WebAssembly)",
            )?,
            generation,
            websockets,
        })
    }

    /// One module's handles.
    pub fn module(&self, name: &str) -> ModuleMetrics {
        ModuleMetrics {
            calls: self.calls.with_label_values(&[name]),
            errors: self.errors.with_label_values(&[name]),
            restarts: self.restarts.with_label_values(&[name]),
            moved: self.moved.with_label_values(&[name]),
            generation: self.generation.with_label_values(&[name]),
            websockets: self.websockets.with_label_values(&[name]),
        }
    }
}

/// The TLS series, kept by the TLS acceptor (not by [`HttpMetrics`], which
/// every plain connection clones).
#[derive(Clone, Debug)]
pub struct TlsMetrics {
    handshakes: [IntCounter; 4],
}

/// How a TLS handshake ended, the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeOutcome {
    /// Finished.
    Ok = 0,
    /// The client sent something rustls refused, or left.
    Failed = 1,
    /// Not finished within the handshake timeout.
    Timeout = 2,
    /// Given up because the listener drained.
    Draining = 3,
}

impl TlsMetrics {
    /// Registers the series in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let handshakes = IntCounterVec::new(
            Opts::new("troupe_tls_handshakes_total", "TLS handshakes, by outcome"),
            &["outcome"],
        )?;
        registry.register(Box::new(handshakes.clone()))?;
        Ok(Self {
            handshakes: ["ok", "failed", "timeout", "draining"]
                .map(|outcome| handshakes.with_label_values(&[outcome])),
        })
    }

    /// Counts one handshake.
    pub fn handshake(&self, outcome: HandshakeOutcome) {
        self.handshakes[outcome as usize].inc();
    }
}

/// The certificate series, kept by the live certificates
/// (`tls::LiveCerts`).
#[derive(Clone, Debug)]
pub struct CertMetrics {
    /// `[ok, refused]`.
    reloads: [IntCounter; 2],
    expiry: GaugeVec,
}

impl CertMetrics {
    /// Registers the series in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let reloads = IntCounterVec::new(
            Opts::new(
                "troupe_tls_cert_reload_total",
                "Certificate reloads, by outcome (refused: a file was refused and its server kept its certificate)",
            ),
            &["outcome"],
        )?;
        let expiry = GaugeVec::new(
            Opts::new(
                "troupe_tls_cert_expiry_days",
                "Days until the certificate a server serves expires",
            ),
            &["server"],
        )?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(expiry.clone()))?;
        Ok(Self {
            reloads: ["ok", "refused"].map(|outcome| reloads.with_label_values(&[outcome])),
            expiry,
        })
    }

    /// Counts one reload.
    pub fn reload(&self, refused: bool) {
        self.reloads[usize::from(refused)].inc();
    }

    /// Sets the days left of every server's certificate, dropping servers
    /// gone since.
    pub fn expiry<'a>(&self, servers: impl IntoIterator<Item = (&'a str, f64)>) {
        self.expiry.reset();
        for (server, days) in servers {
            self.expiry.with_label_values(&[server]).set(days);
        }
    }
}

/// The ACME series, kept by the ACME side (`tls::acme::Acme`).
#[derive(Clone, Debug)]
pub struct AcmeMetrics {
    /// `[issued, failed]`.
    orders: [IntCounter; 2],
}

impl AcmeMetrics {
    /// Registers the series in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let orders = IntCounterVec::new(
            Opts::new(
                "troupe_acme_orders_total",
                "ACME orders, by outcome (issued, or failed and retried with backoff)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(orders.clone()))?;
        Ok(Self {
            orders: ["issued", "failed"].map(|outcome| orders.with_label_values(&[outcome])),
        })
    }

    /// Counts one order.
    pub fn order(&self, issued: bool) {
        self.orders[usize::from(!issued)].inc();
    }
}

/// (upstream, backend) pairs: the series' labels.
pub type BackendLabels = HashSet<(String, String)>;

/// The upstream series, kept by the `upstreams` supervisor's upkeep and
/// the group actors' probes (`proxy::health`).
#[derive(Clone, Debug)]
pub struct UpstreamMetrics {
    up: IntGaugeVec,
    turns: IntCounterVec,
    /// The (upstream, backend) pairs with series, so that a reload that
    /// drops a backend drops its series too ([`UpstreamMetrics::retain`]).
    exported: Arc<Mutex<BackendLabels>>,
    /// The set [`UpstreamMetrics::retain`] last pruned to: the same set
    /// again (every group's upkeep, every second) costs a pointer compare.
    pruned_to: Arc<Mutex<Option<Arc<BackendLabels>>>>,
}

impl UpstreamMetrics {
    /// Registers the series in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let up = IntGaugeVec::new(
            Opts::new(
                "troupe_upstream_backend_up",
                "1 while a backend takes requests (neither down by active checks nor ejected by passive health), else 0",
            ),
            &["upstream", "backend"],
        )?;
        let turns = IntCounterVec::new(
            Opts::new(
                "troupe_upstream_health_changes_total",
                "Backends that active checks took out (to=down) or brought back (to=up)",
            ),
            &["upstream", "backend", "to"],
        )?;
        registry.register(Box::new(up.clone()))?;
        registry.register(Box::new(turns.clone()))?;
        Ok(Self {
            up,
            turns,
            exported: Arc::default(),
            pruned_to: Arc::default(),
        })
    }

    /// Sets whether `backend` of `upstream` takes requests.
    pub fn set_up(&self, upstream: &str, backend: &str, up: bool) {
        self.up
            .with_label_values(&[upstream, backend])
            .set(i64::from(up));
        self.exported_now(upstream, backend);
    }

    /// Remembers that the pair has series (by the upkeep, once a second
    /// per backend: off the request path).
    fn exported_now(&self, upstream: &str, backend: &str) {
        let new = self
            .exported
            .lock()
            .is_ok_and(|mut e| e.insert((upstream.to_owned(), backend.to_owned())));
        // A pair new since the last pruning (maybe a late probe of a group
        // a reload removed) is checked at the next upkeep.
        if new && let Ok(mut last) = self.pruned_to.lock() {
            *last = None;
        }
    }

    /// Drops the series of every backend not in `live` (the groups of the
    /// config in force, called by their upkeep): a backend a reload
    /// removed must not linger on dashboards with its last value. A set
    /// already pruned to is not walked again.
    pub fn retain(&self, live: &Arc<BackendLabels>) {
        if let Ok(mut last) = self.pruned_to.lock() {
            if last.as_ref().is_some_and(|l| Arc::ptr_eq(l, live)) {
                return;
            }
            *last = Some(live.clone());
        }
        let Ok(mut exported) = self.exported.lock() else {
            return;
        };
        exported.retain(|(upstream, backend)| {
            if live.contains(&(upstream.clone(), backend.clone())) {
                return true;
            }
            let _ = self.up.remove_label_values(&[upstream, backend]);
            for to in ["up", "down"] {
                let _ = self.turns.remove_label_values(&[upstream, backend, to]);
            }
            false
        });
    }

    /// Counts a backend going down or coming back.
    pub fn turned(&self, upstream: &str, backend: &str, up: bool) {
        let to = if up { "up" } else { "down" };
        self.turns.with_label_values(&[upstream, backend, to]).inc();
        self.exported_now(upstream, backend);
    }
}

/// One module's handles, kept in its slot.
#[derive(Clone, Debug)]
pub struct ModuleMetrics {
    /// Requests it answered as a handler, filtered as middleware, or saw
    /// as a log hook.
    pub calls: IntCounter,
    /// Of those, the ones its own code turned into a 5xx.
    pub errors: IntCounter,
    /// Restarts after a failure (not reloads).
    pub restarts: IntCounter,
    /// Calls that moved to the module pool.
    pub moved: IntCounter,
    /// Instances loaded so far.
    pub generation: IntGauge,
    /// WebSockets open on it (the old slot's and the new one's alike).
    pub websockets: IntGauge,
}

/// One route's cached handles.
#[derive(Debug)]
pub struct RouteMetrics {
    by_class: [IntCounter; 5],
    latency: Histogram,
    module: Option<ModuleMetrics>,
}

impl RouteMetrics {
    /// Counts one answer.
    pub fn record(&self, status: StatusCode, took: Duration) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].inc();
        self.latency.observe(took.as_secs_f64());
        if let Some(module) = &self.module {
            module.calls.inc();
            if class == 4 {
                module.errors.inc();
            }
        }
    }
}
